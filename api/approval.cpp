// Approval records and their JSON and line forms (see approval.hpp).
#include "api/approval.hpp"

#include <charconv>
#include <ctime>
#include <stdexcept>

#include "api/wire.hpp"

namespace portcullis {

namespace {

constexpr const char* kStateNames[] = {"approved", "suspended", "revoked", "banned", "pending", "denied"};
static_assert(std::size(kStateNames) == kStates);
constexpr const char* kStateList = "approved, suspended, revoked, banned, pending, denied";

std::optional<uint32_t> parse_u32(std::string_view s) {
    uint32_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
    return v;
}

std::vector<std::string> split_commas(std::string_view s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        const auto comma = s.find(',', start);
        const auto part =
            s.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
        if (!part.empty()) out.emplace_back(part);
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return out;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Whitespace-separated tokens; double quotes group, backslash escapes inside them (\n \r \t \xHH, and any
// other character stands for itself).
bool tokenize(std::string_view line, std::vector<std::string>& out, std::string* why) {
    std::string cur;
    bool in_token = false, quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '\\' && i + 1 < line.size()) {
                const char e = line[++i];
                if (e == 'n') {
                    cur += '\n';
                } else if (e == 'r') {
                    cur += '\r';
                } else if (e == 't') {
                    cur += '\t';
                } else if (e == 'x' && i + 2 < line.size() && hex_digit(line[i + 1]) >= 0 &&
                           hex_digit(line[i + 2]) >= 0) {
                    cur += static_cast<char>(hex_digit(line[i + 1]) * 16 + hex_digit(line[i + 2]));
                    i += 2;
                } else {
                    cur += e;
                }
            } else if (c == '"') {
                quoted = false;
            } else {
                cur += c;
            }
        } else if (c == '"') {
            quoted = in_token = true;
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            if (in_token) out.push_back(std::move(cur));
            cur.clear();
            in_token = false;
        } else {
            cur += c;
            in_token = true;
        }
    }
    if (quoted) {
        *why = "unterminated quote";
        return false;
    }
    if (in_token) out.push_back(std::move(cur));
    return true;
}

bool is_control(unsigned char c) {
    return c < 0x20 || c == 0x7f;
}

std::string quote_if_needed(const std::string& v) {
    bool plain = !v.empty();
    for (unsigned char c : v) plain = plain && !is_control(c) && c != ' ' && c != '"' && c != '\\';
    if (plain) return v;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string q = "\"";
    for (unsigned char c : v) {
        if (c == '"' || c == '\\') {
            q += '\\';
            q += static_cast<char>(c);
        } else if (c == '\n') {
            q += "\\n";
        } else if (c == '\r') {
            q += "\\r";
        } else if (c == '\t') {
            q += "\\t";
        } else if (is_control(c)) {
            q += "\\x";
            q += kHex[c >> 4];
            q += kHex[c & 15];
        } else {
            q += static_cast<char>(c);
        }
    }
    return q + "\"";
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {  // H. Hinnant's algorithm
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

const char* state_name(ApprovalState s) {
    return kStateNames[static_cast<int>(s)];
}

std::optional<ApprovalState> parse_state(std::string_view s) {
    for (int i = 0; i < kStates; ++i)
        if (s == kStateNames[i]) return static_cast<ApprovalState>(i);
    return std::nullopt;
}

bool is_fact_key(std::string_view k) {
    for (const char* f : kFactKeys)
        if (k == f) return true;
    return false;
}

std::string check_fact(std::string_view key, std::string_view value) {
    if (!is_fact_key(key)) return "unknown request fact '" + printable(key, 40) + "'";
    if (key == "volume_daily" || key == "volume_monthly") {
        const auto n = parse_u32(value);
        if (!n || *n > kMaxDaily * 31)
            return std::string(key) + ": '" + printable(value, 40) + "' is not a whole number of messages";
        return {};
    }
    return check_text(std::string(key).c_str(), value, kMaxFact);
}

bool valid_complaint_ref(std::string_view ref) {
    if (ref.empty() || ref.size() > kMaxComplaintRef) return false;
    for (unsigned char c : ref)
        if (c <= 0x20 || c >= 0x7f || c == ',' || c == '"' || c == '\\') return false;
    return true;
}

bool PrefixLess::operator()(const Prefix& a, const Prefix& b) const {
    if (a.addr.v6 != b.addr.v6) return !a.addr.v6;
    if (a.addr.v6) {
        if (a.first6() != b.first6()) return a.first6() < b.first6();
    } else if (a.first4() != b.first4()) {
        return a.first4() < b.first4();
    }
    return a.len < b.len;
}

bool valid_hostname(std::string_view h) {
    if (h.empty() || h.size() > 253 || h.find('.') == std::string_view::npos) return false;
    if (h.back() == '.') h.remove_suffix(1);
    size_t label = 0;
    for (size_t i = 0; i <= h.size(); ++i) {
        if (i == h.size() || h[i] == '.') {
            if (label == 0 || label > 63 || h[i - 1] == '-' || h[i - label] == '-') return false;
            label = 0;
            continue;
        }
        const char c = h[i];
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
        ++label;
    }
    return true;
}

std::string check_text(const char* field, std::string_view v, size_t max) {
    if (v.size() > max)
        return std::string(field) + ": " + std::to_string(v.size()) + " bytes, at most " +
               std::to_string(max);
    return {};
}

std::optional<uint32_t> parse_rate(std::string_view text) {
    uint32_t per = 1;
    if (text.ends_with("/min")) {
        text.remove_suffix(4);
    } else if (text.ends_with("/h")) {
        text.remove_suffix(2);
        per = 60;
    }
    auto n = parse_u32(text);
    if (!n) return std::nullopt;
    return static_cast<uint32_t>((uint64_t{*n} + per - 1) / per);  // rounds up, never wraps to 0
}

std::optional<int64_t> parse_time(std::string_view t, int64_t now) {
    if (t.starts_with("+")) {
        if (t.size() < 3) return std::nullopt;
        const char unit = t.back();
        auto n = parse_u32(t.substr(1, t.size() - 2));
        const int64_t mult = unit == 'd'   ? 86400
                             : unit == 'h' ? 3600
                             : unit == 'm' ? 60
                             : unit == 's' ? 1
                                           : 0;
        if (!n || mult == 0) return std::nullopt;
        return now + *n * mult;
    }
    // YYYY-MM-DD[THH:MM[:SS]][Z]
    if (t.size() < 10 || t[4] != '-' || t[7] != '-') return std::nullopt;
    auto y = parse_u32(t.substr(0, 4)), mo = parse_u32(t.substr(5, 2)), d = parse_u32(t.substr(8, 2));
    if (!y || !mo || !d || *mo < 1 || *mo > 12 || *d < 1) return std::nullopt;
    static constexpr unsigned kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
    if (*d > kDays[*mo - 1] || (*mo == 2 && *d == 29 && !leap)) return std::nullopt;
    int64_t secs = days_from_civil(*y, *mo, *d) * 86400;
    auto rest = t.substr(10);
    if (!rest.empty()) {
        if (rest.back() == 'Z') rest.remove_suffix(1);
        if (rest.size() != 6 && rest.size() != 9) return std::nullopt;
        if (rest[0] != 'T' && rest[0] != ' ') return std::nullopt;
        auto hh = parse_u32(rest.substr(1, 2)), mm = parse_u32(rest.substr(4, 2));
        if (!hh || !mm || rest[3] != ':' || *hh > 23 || *mm > 59) return std::nullopt;
        secs += *hh * 3600 + *mm * 60;
        if (rest.size() == 9) {
            auto ss = parse_u32(rest.substr(7, 2));
            if (!ss || rest[6] != ':' || *ss > 59) return std::nullopt;
            secs += *ss;
        }
    }
    return secs;
}

std::string format_time(int64_t t) {
    if (t == 0) return "never";
    const time_t tt = static_cast<time_t>(t);
    tm g{};
    gmtime_r(&tt, &g);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &g);
    return buf;
}

nlohmann::json to_json(const Approval& a) {
    return nlohmann::json{{"prefix", to_string(a.prefix)},
                          {"state", state_name(a.state)},
                          {"hostname", a.hostname},
                          {"domains", a.domains},
                          {"max_concurrent", a.max_concurrent},
                          {"rate_per_min", a.rate_per_min},
                          {"daily", a.daily},
                          {"ticket", a.ticket},
                          {"reason", a.reason},
                          {"operator", a.operator_name},
                          {"created", a.created},
                          {"updated", a.updated},
                          {"expires", a.expires},
                          {"facts", a.facts},
                          {"requested", a.requested},
                          {"retry_after", a.retry_after},
                          {"complaints", complaints_json(a.complaints)},
                          {"dns", a.dns}};
}

nlohmann::json complaints_json(const std::vector<Complaint>& list) {
    auto out = nlohmann::json::array();
    for (const auto& c : list)
        out.push_back({{"ref", c.ref}, {"at", c.at}, {"reason", c.reason}, {"operator", c.operator_name}});
    return out;
}

Approval approval_from_json(const nlohmann::json& j) {
    if (!j.is_object()) throw std::runtime_error("a record must be an object");
    Approval a;
    auto str = [&](const char* k) -> std::string {
        if (!j.contains(k)) return {};
        if (!j[k].is_string()) throw std::runtime_error(std::string(k) + ": must be a string");
        return j[k].get<std::string>();
    };
    auto num = [&](const char* k, int64_t lo, int64_t hi) -> int64_t {
        if (!j.contains(k)) return 0;
        if (!j[k].is_number_integer()) throw std::runtime_error(std::string(k) + ": must be an integer");
        const auto v = j[k].get<int64_t>();
        if (v < lo || v > hi) throw std::runtime_error(std::string(k) + ": out of range");
        return v;
    };
    std::string why;
    auto p = parse_prefix(str("prefix"), &why);
    if (!p) throw std::runtime_error("prefix: " + (j.contains("prefix") ? why : std::string("missing")));
    a.prefix = *p;
    const auto st = str("state");
    if (!st.empty()) {
        auto s = parse_state(st);
        if (!s) throw std::runtime_error("state: '" + printable(st) + "' is not one of " + kStateList);
        a.state = *s;
    }
    a.hostname = str("hostname");
    if (!a.hostname.empty() && !valid_hostname(a.hostname))
        throw std::runtime_error("hostname: '" + printable(a.hostname) +
                                 "' is not a fully qualified domain name");
    if (j.contains("domains")) {
        if (!j["domains"].is_array()) throw std::runtime_error("domains: must be an array of strings");
        for (const auto& d : j["domains"]) {
            if (!d.is_string() || !valid_hostname(d.get<std::string>()))
                throw std::runtime_error("domains: each must be a domain name such as example.com");
            a.domains.push_back(d.get<std::string>());
        }
    }
    if (a.domains.size() > kMaxDomains)
        throw std::runtime_error("domains: more than " + std::to_string(kMaxDomains));
    a.max_concurrent = static_cast<uint32_t>(num("max_concurrent", 0, kMaxConcurrent));
    a.rate_per_min = static_cast<uint32_t>(num("rate_per_min", 0, kMaxRatePerMin));
    a.daily = static_cast<uint32_t>(num("daily", 0, kMaxDaily));
    a.ticket = str("ticket");
    a.reason = str("reason");
    a.operator_name = str("operator");
    // Times past year 9999 (which 0.1 accepted) mean "never" in practice: they are read as the last
    // printable second rather than refusing a stored record.
    a.created = std::min(num("created", 0, INT64_MAX), kMaxTime);
    a.updated = std::min(num("updated", 0, INT64_MAX), kMaxTime);
    a.expires = std::min(num("expires", 0, INT64_MAX), kMaxTime);
    // Records of 0.1 have none of what follows: they load as they were.
    a.requested = std::min(num("requested", 0, INT64_MAX), kMaxTime);
    a.retry_after = std::min(num("retry_after", 0, INT64_MAX), kMaxTime);
    if (j.contains("facts")) {
        if (!j["facts"].is_object()) throw std::runtime_error("facts: must be an object of strings");
        for (const auto& [k, v] : j["facts"].items()) {
            if (!v.is_string()) throw std::runtime_error("facts: " + printable(k, 40) + " must be a string");
            if (auto err = check_fact(k, v.get<std::string>()); !err.empty()) throw std::runtime_error(err);
            if (!v.get<std::string>().empty()) a.facts[k] = v.get<std::string>();
        }
    }
    if (j.contains("dns") && !j["dns"].is_null()) {
        if (!j["dns"].is_object() || j["dns"].dump().size() > 8192)
            throw std::runtime_error("dns: must be an object (the last DNS check) of at most 8 KiB");
        a.dns = j["dns"];
    }
    if (j.contains("complaints")) {
        if (!j["complaints"].is_array()) throw std::runtime_error("complaints: must be an array");
        if (j["complaints"].size() > kMaxComplaints)
            throw std::runtime_error("complaints: more than " + std::to_string(kMaxComplaints));
        for (const auto& c : j["complaints"]) {
            if (!c.is_object() || !c.contains("ref") || !c["ref"].is_string() ||
                !valid_complaint_ref(c["ref"].get<std::string>()))
                throw std::runtime_error("complaints: each needs a ref of 1 to 128 printable characters");
            Complaint k;
            k.ref = c["ref"].get<std::string>();
            if (c.contains("at")) {
                if (!c["at"].is_number_integer())
                    throw std::runtime_error("complaints: at must be an integer");
                k.at = std::clamp<int64_t>(c["at"].get<int64_t>(), 0, kMaxTime);
            }
            for (auto [key, field] : {std::pair{"reason", &k.reason}, {"operator", &k.operator_name}}) {
                if (!c.contains(key)) continue;
                if (!c[key].is_string())
                    throw std::runtime_error(std::string("complaints: ") + key + " must be a string");
                *field = c[key].get<std::string>();
            }
            if (auto err = check_text("complaints: reason", k.reason, kMaxReason); !err.empty())
                throw std::runtime_error(err);
            a.complaints.push_back(std::move(k));
        }
    }
    return a;
}

std::string to_line(const Approval& a) {
    std::string s = to_string(a.prefix);
    auto kv = [&](const char* k, const std::string& v) {
        if (!v.empty()) s += std::string(" ") + k + "=" + quote_if_needed(v);
    };
    if (a.state != ApprovalState::Approved) kv("state", state_name(a.state));
    kv("hostname", a.hostname);
    std::string doms;
    for (const auto& d : a.domains) doms += (doms.empty() ? "" : ",") + d;
    kv("domains", doms);
    if (a.max_concurrent) kv("max_concurrent", std::to_string(a.max_concurrent));
    if (a.rate_per_min) kv("rate", std::to_string(a.rate_per_min) + "/min");
    if (a.daily) kv("daily", std::to_string(a.daily));
    if (a.expires) kv("expires", format_time(a.expires));
    kv("ticket", a.ticket);
    kv("reason", a.reason);
    if (a.requested) kv("requested", format_time(a.requested));
    if (a.retry_after) kv("retry_after", format_time(a.retry_after));
    for (const auto& [k, v] : a.facts) kv(("req." + k).c_str(), v);
    for (const auto& c : a.complaints) kv("complaint", c.ref + "," + format_time(c.at) + "," + c.reason);
    return s;
}

std::optional<Approval> parse_line(std::string_view line, std::string* why) {
    why->clear();
    std::vector<std::string> tok;
    if (!tokenize(line, tok, why)) return std::nullopt;
    if (tok.empty() || tok[0].starts_with("#")) return std::nullopt;
    Approval a;
    auto p = parse_prefix(tok[0], why);
    if (!p) {
        *why = "'" + printable(tok[0]) + "': " + *why;
        return std::nullopt;
    }
    a.prefix = *p;
    for (size_t i = 1; i < tok.size(); ++i) {
        const auto eq = tok[i].find('=');
        if (eq == std::string::npos) {
            *why = "'" + printable(tok[i]) + "': expected key=value";
            return std::nullopt;
        }
        const std::string k = tok[i].substr(0, eq), v = tok[i].substr(eq + 1);
        auto bad = [&](const std::string& what) {
            *why = printable(k, 40) + ": '" + printable(v) + "' " + what;
            return std::nullopt;
        };
        if (k == "state") {
            auto s = parse_state(v);
            if (!s) return bad(std::string("is not one of ") + kStateList);
            a.state = *s;
        } else if (k == "hostname") {
            if (!valid_hostname(v)) return bad("is not a fully qualified domain name");
            a.hostname = v;
        } else if (k == "domains") {
            a.domains = split_commas(v);
            for (const auto& d : a.domains)
                if (!valid_hostname(d)) return bad("is not a list of domain names");
            if (a.domains.size() > kMaxDomains) return bad("names more than 64 domains");
        } else if (k == "max_concurrent" || k == "daily") {
            auto n = parse_u32(v);
            const int64_t max = k == "daily" ? kMaxDaily : kMaxConcurrent;
            if (!n) return bad("is not a whole number");
            if (*n > max) return bad("is over " + std::to_string(max));
            (k == "daily" ? a.daily : a.max_concurrent) = *n;
        } else if (k == "rate") {
            auto n = parse_rate(v);
            if (!n || *n > kMaxRatePerMin) return bad("is not a rate such as 30/min (at most 1000000/min)");
            a.rate_per_min = *n;
        } else if (k == "requested" || k == "retry_after") {
            auto t = parse_time(v, 0);
            if (!t || v.starts_with("+")) return bad("is not a date such as 2026-12-31T18:00:00Z");
            if (*t < 0) return bad("is not after 1970-01-01T00:00:00Z");
            (k == "requested" ? a.requested : a.retry_after) = *t;
        } else if (k.starts_with("req.")) {
            if (auto err = check_fact(k.substr(4), v); !err.empty()) {
                *why = err;
                return std::nullopt;
            }
            if (!v.empty()) a.facts[k.substr(4)] = v;  // an empty fact is no fact (the line omits it)
        } else if (k == "complaint") {
            // REF,TIME,REASON (the reason may hold commas)
            const auto c1 = v.find(','), c2 = c1 == std::string::npos ? c1 : v.find(',', c1 + 1);
            if (c2 == std::string::npos) return bad("is not REF,TIME,REASON");
            Complaint c;
            c.ref = v.substr(0, c1);
            if (!valid_complaint_ref(c.ref))
                return bad("has no valid complaint id (1 to 128 printable characters)");
            auto t = parse_time(v.substr(c1 + 1, c2 - c1 - 1), 0);
            if (!t || v[c1 + 1] == '+' || *t < 0) return bad("has no date such as 2026-12-31T18:00:00Z");
            c.at = *t;
            c.reason = v.substr(c2 + 1);
            if (auto err = check_text("complaint reason", c.reason, kMaxReason); !err.empty()) {
                *why = err;
                return std::nullopt;
            }
            if (a.complaints.size() == kMaxComplaints) return bad("is one complaint too many (at most 100)");
            a.complaints.push_back(std::move(c));
        } else if (k == "expires") {
            auto t = parse_time(v, 0);
            if (!t || v.starts_with("+"))
                return bad("is not a date such as 2026-12-31 or 2026-12-31T18:00:00Z");
            if (*t <= 0) return bad("is not after 1970-01-01T00:00:00Z");
            a.expires = *t;
        } else if (k == "ticket" || k == "reason") {
            if (auto err = check_text(k.c_str(), v, k == "ticket" ? kMaxTicket : kMaxReason); !err.empty()) {
                *why = err;
                return std::nullopt;
            }
            (k == "ticket" ? a.ticket : a.reason) = v;
        } else {
            *why = "unknown key '" + printable(k, 40) + "'";
            return std::nullopt;
        }
    }
    return a;
}

}  // namespace portcullis
