// SMTP command-line parsing and name checks (see smtp_command.hpp).
#include "dataplane/smtp_command.hpp"

namespace portcullis {

namespace {

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i)
        if (lower(s[i]) != prefix[i]) return false;
    return true;
}

bool equals_ci(std::string_view s, std::string_view word) {
    return s.size() == word.size() && starts_with_ci(s, word);
}

// s is a beginning of `word` (a line cut right after s may still go on as `word`).
bool is_prefix_ci(std::string_view s, std::string_view word) {
    return s.size() <= word.size() && starts_with_ci(s, word.substr(0, s.size()));
}

std::string_view skip_space(std::string_view s) {
    while (!s.empty() && is_smtp_space(s.front())) s.remove_prefix(1);
    return s;
}

size_t word_end(std::string_view s) {
    size_t i = 0;
    while (i < s.size() && !is_smtp_space(s[i])) ++i;
    return i;
}

// "BDAT" arguments: a decimal size (digits only, 64 bits) and an optional LAST, nothing else.
bool parse_bdat(std::string_view rest, CommandLine& c) {
    rest = skip_space(rest);
    uint64_t n = 0;
    size_t i = 0;
    for (; i < rest.size() && rest[i] >= '0' && rest[i] <= '9'; ++i) {
        const auto d = static_cast<uint64_t>(rest[i] - '0');
        if (n > (UINT64_MAX - d) / 10) return false;
        n = n * 10 + d;
    }
    if (i == 0 || (i < rest.size() && !is_smtp_space(rest[i]))) return false;
    rest = skip_space(rest.substr(i));
    bool last = false;
    if (!rest.empty()) {
        const size_t w = word_end(rest);
        if (!equals_ci(rest.substr(0, w), "last") || !skip_space(rest.substr(w)).empty()) return false;
        last = true;
    }
    c.size = n;
    c.last = last;
    return true;
}

// MAIL FROM: the path after "MAIL". Sendmail skips white space before and after "FROM" and the colon,
// Postfix after the colon: both are read.
void parse_mail(std::string_view rest, bool truncated, CommandLine& c) {
    rest = skip_space(rest);
    if (!starts_with_ci(rest, "from")) {
        if (truncated && is_prefix_ci(rest, "from")) c.whole = false;
        return;
    }
    rest = skip_space(rest.substr(4));
    if (rest.empty() || rest.front() != ':') {
        if (truncated && rest.empty()) c.whole = false;
        return;
    }
    c.cmd = SmtpCommand::MailFrom;
    rest = skip_space(rest.substr(1));
    if (!rest.empty() && rest.front() == '<') {
        const size_t close = rest.find('>');
        c.arg = rest.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1);
        c.whole = !truncated || close != std::string_view::npos;
    } else {
        const size_t e = word_end(rest);
        c.arg = rest.substr(0, e);
        c.whole = !truncated || e < rest.size();
    }
}

}  // namespace

CommandLine parse_command(std::string_view line, bool truncated) {
    CommandLine c;
    line = skip_space(line);
    const size_t w = word_end(line);
    // Cut inside the first word: what it is matters only when it may still become a verb read here (a SASL
    // response line is one long word, harmless).
    if (truncated && w == line.size() && !starts_with_ci(line, "mail")) {
        for (std::string_view verb : {"ehlo", "helo", "mail", "starttls", "data", "bdat", "quit"})
            if (is_prefix_ci(line, verb)) c.whole = false;
        return c;
    }
    const std::string_view verb = line.substr(0, w);
    const std::string_view rest = line.substr(w);
    if (equals_ci(verb, "ehlo") || equals_ci(verb, "helo")) {
        c.cmd = SmtpCommand::Helo;
        const std::string_view name = skip_space(rest);
        const size_t e = word_end(name);
        c.arg = name.substr(0, e);
        c.whole = !truncated || e < name.size();
    } else if (starts_with_ci(line, "mail")) {
        parse_mail(line.substr(4), truncated, c);
    } else if (equals_ci(verb, "starttls")) {
        c.cmd = SmtpCommand::StartTls;
    } else if (equals_ci(verb, "data")) {
        c.cmd = SmtpCommand::Data;
    } else if (equals_ci(verb, "bdat")) {
        c.cmd = SmtpCommand::Bdat;
        c.whole = !truncated;
        c.chunk_ok = !truncated && parse_bdat(rest, c);
    } else if (equals_ci(verb, "quit")) {
        c.cmd = SmtpCommand::Quit;
    }
    return c;
}

bool is_fqdn(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty() || name.size() > 253) return false;
    int labels = 0;
    bool last_numeric = true;
    size_t start = 0;
    while (start <= name.size()) {
        size_t end = name.find('.', start);
        if (end == std::string_view::npos) end = name.size();
        const std::string_view label = name.substr(start, end - start);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        last_numeric = true;
        for (char c : label) {
            const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            const bool digit = c >= '0' && c <= '9';
            if (!alpha && !digit && c != '-') return false;
            if (!digit) last_numeric = false;
        }
        ++labels;
        start = end + 1;
    }
    return labels >= 2 && !last_numeric;
}

bool is_address_literal(std::string_view name) {
    if (name.size() < 3 || name.front() != '[' || name.back() != ']') return false;
    for (char c : name.substr(1, name.size() - 2)) {
        const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                        c == '.' || c == ':' || c == 'I' || c == 'P' || c == 'v' || c == 'V' || c == 'p' ||
                        c == 'i';
        if (!ok) return false;
    }
    return true;
}

bool same_name(std::string_view a, std::string_view b) {
    if (!a.empty() && a.back() == '.') a.remove_suffix(1);
    if (!b.empty() && b.back() == '.') b.remove_suffix(1);
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

std::string_view domain_of(std::string_view address) {
    const size_t at = address.rfind('@');
    return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

}  // namespace portcullis
