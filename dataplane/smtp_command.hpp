// The client's SMTP command lines as the inspection reads them: which command a complete line is, its
// argument, and the checks the policy makes on it (an EHLO name must be a fully qualified host name, a MAIL
// FROM domain one of the approved ones). Pure functions over bytes already assembled into a line, without its
// CR LF. Where servers differ in what they accept, the parser takes the wider reading (leading white space
// before the verb, white space around MAIL FROM's colon), so that a line some server obeys is never read as
// harmless.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis {

enum class SmtpCommand : uint8_t { Other, Helo, MailFrom, StartTls, Data, Bdat, Quit };

struct CommandLine {
    SmtpCommand cmd = SmtpCommand::Other;
    // EHLO/HELO: the name; MAIL FROM: the reverse-path without <>, "" for the null sender.
    std::string_view arg;
    // false: the line was cut (only a prefix of it is at hand) inside what the checks need: the verb, an
    // EHLO/HELO name, a MAIL FROM path, BDAT's arguments.
    bool whole = true;
    // BDAT: its arguments parsed ("BDAT <decimal size> [LAST]"); size and last are valid only then.
    bool chunk_ok = false;
    bool last = false;
    uint64_t size = 0;
};

// truncated: `line` is only the first part of a longer line.
CommandLine parse_command(std::string_view line, bool truncated = false);

// White space as servers skip it between words (isspace() in the C locale).
inline bool is_smtp_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

// A fully qualified host name: at least two labels of letters, digits and hyphens (1-63 each, no hyphen at
// either end), at most 253 characters, the last label not all digits; one trailing dot allowed.
bool is_fqdn(std::string_view name);
// An address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
bool is_address_literal(std::string_view name);
// Case-insensitive equality, a trailing dot on either side ignored.
bool same_name(std::string_view a, std::string_view b);
// The domain of an address ("user@example.com" -> "example.com"), "" if none.
std::string_view domain_of(std::string_view address);

// What an approval says about the names its servers use (empty: anything the general checks allow).
struct ApprovalNames {
    std::string hostname;
    std::vector<std::string> domains;
};

}  // namespace portcullis
