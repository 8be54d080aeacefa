// Request field readers (see request.hpp).
#include "control/commands/request.hpp"

namespace portcullis {

using nlohmann::json;

std::string need_string(const json& req, const char* key) {
    if (!req.contains(key)) throw RequestError(std::string("missing '") + key + "'");
    if (!req[key].is_string()) throw RequestError(std::string("'") + key + "' must be a string");
    return req[key].get<std::string>();
}

std::string opt_string(const json& req, const char* key) {
    return req.contains(key) ? need_string(req, key) : std::string();
}

int64_t opt_int(const json& req, const char* key, int64_t lo, int64_t hi) {
    if (!req.contains(key)) return -1;
    if (!req[key].is_number_integer()) throw RequestError(std::string("'") + key + "' must be an integer");
    const auto v = req[key].get<int64_t>();
    if (v < lo || v > hi)
        throw RequestError(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " +
                           std::to_string(hi));
    return v;
}

Prefix need_prefix(const json& req, const char* key) {
    const auto text = need_string(req, key);
    std::string why;
    auto p = parse_prefix(text, &why);
    if (!p) throw RequestError("'" + printable(text) + "': " + why);
    return *p;
}

std::string text_field(const json& req, const char* key, size_t max) {
    auto v = need_string(req, key);
    if (auto err = check_text(key, v, max); !err.empty()) throw RequestError(err);
    return v;
}

bool opt_bool(const json& req, const char* key) {
    if (!req.contains(key)) return false;
    if (!req[key].is_boolean()) throw RequestError(std::string("'") + key + "' must be true or false");
    return req[key].get<bool>();
}

void read_names(const json& req, Approval& a) {
    if (req.contains("hostname")) {
        a.hostname = need_string(req, "hostname");
        if (!a.hostname.empty() && !valid_hostname(a.hostname))
            throw RequestError("hostname '" + printable(a.hostname) +
                               "' is not a fully qualified domain name");
    }
    if (!req.contains("domains")) return;
    if (!req["domains"].is_array()) throw RequestError("'domains' must be an array of strings");
    if (req["domains"].size() > kMaxDomains)
        throw RequestError("domains: more than " + std::to_string(kMaxDomains));
    a.domains.clear();
    for (const auto& d : req["domains"]) {
        if (!d.is_string() || !valid_hostname(d.get<std::string>()))
            throw RequestError("domains: " + printable(reply_line(d), 80) +
                               " is not a domain name such as example.com");
        a.domains.push_back(d.get<std::string>());
    }
}

std::vector<Prefix> within_of(const nlohmann::json& req) {
    std::vector<Prefix> out;
    if (!req.contains("within")) return out;
    if (!req["within"].is_array() || req["within"].empty() || req["within"].size() > 64)
        throw RequestError("'within' must be a list of 1 to 64 prefixes");
    for (const auto& v : req["within"]) {
        std::string why;
        auto p = v.is_string() ? parse_prefix(v.get<std::string>(), &why) : std::nullopt;
        if (!p) throw RequestError("within: " + (v.is_string() ? why : std::string("not a string")));
        out.push_back(*p);
    }
    return out;
}

bool is_within(const Prefix& p, const std::vector<Prefix>& within) {
    if (within.empty()) return true;
    for (const auto& w : within)
        if (inside(p, w)) return true;
    return false;
}

}  // namespace portcullis
