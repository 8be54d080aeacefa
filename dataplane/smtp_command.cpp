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

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The keyword alone on its line, or followed by a space.
bool is_keyword(std::string_view line, std::string_view kw) {
    return starts_with_ci(line, kw) &&
           (line.size() == kw.size() || line[kw.size()] == ' ' || line[kw.size()] == '\t');
}

}  // namespace

CommandLine parse_command(std::string_view line) {
    CommandLine c;
    if (is_keyword(line, "ehlo") || is_keyword(line, "helo")) {
        c.cmd = SmtpCommand::Helo;
        std::string_view rest = trim(line.substr(4));
        c.arg = rest.substr(0, rest.find_first_of(" \t"));
    } else if (starts_with_ci(line, "mail")) {
        std::string_view rest = trim(line.substr(4));
        if (!starts_with_ci(rest, "from:")) return c;
        c.cmd = SmtpCommand::MailFrom;
        rest = trim(rest.substr(5));
        if (!rest.empty() && rest.front() == '<') {
            const size_t close = rest.find('>');
            c.arg = rest.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1);
        } else {
            c.arg = rest.substr(0, rest.find_first_of(" \t"));
        }
    } else if (is_keyword(line, "starttls")) {
        c.cmd = SmtpCommand::StartTls;
    } else if (is_keyword(line, "data") || is_keyword(line, "bdat")) {
        c.cmd = SmtpCommand::Data;
    } else if (is_keyword(line, "quit")) {
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
