// The HTTP API's routes (see router.hpp).
#include "control/api/router.hpp"

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "api/protocol.hpp"
#include "api/wire.hpp"
#include "control/commands/request.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

constexpr ApiRoute kRoutes[] = {
    {"GET", "/v1/status", false},
    {"GET", "/v1/addresses/{addr}", true},
    {"POST", "/v1/addresses/{addr}/suspend", true},
    {"POST", "/v1/addresses/{addr}/resume", true},
    {"GET", "/v1/requests", true},
    {"POST", "/v1/requests", true},
    {"GET", "/v1/approvals", true},
    {"POST", "/v1/approvals", false},
    {"DELETE", "/v1/approvals/{addr}", false},
};

HttpResponse error(int status, const std::string& why) {
    return {status, json{{"error", why}}};
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decoding ('+' a space in a query): nullopt for a bad escape, a control character or what is not
// UTF-8 once decoded (it would go into a JSON request).
std::optional<std::string> decode(std::string_view s, bool query) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            const int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (query && c == '+') {
            c = ' ';
        }
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
        out += c;
    }
    if (!valid_utf8(out)) return std::nullopt;
    return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
    std::vector<std::string_view> out;
    size_t start = 0;
    for (;;) {
        const size_t at = s.find(sep, start);
        out.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
        if (at == std::string_view::npos) return out;
        start = at + 1;
    }
}

struct Target {
    std::vector<std::string> segments;  // decoded, after the leading '/'
    std::map<std::string, std::string> query;
};

std::optional<Target> parse_target(std::string_view t, std::string* why) {
    if (t.empty() || t.front() != '/') {
        *why = "the request target must be a path";
        return std::nullopt;
    }
    Target out;
    const size_t q = t.find('?');
    const std::string_view path = t.substr(1, q == std::string_view::npos ? std::string_view::npos : q - 1);
    for (auto seg : split(path, '/')) {
        auto d = decode(seg, false);
        if (!d) {
            *why = "a bad percent-escape, a control character or bytes that are not UTF-8 in the path";
            return std::nullopt;
        }
        out.segments.push_back(std::move(*d));
    }
    if (q != std::string_view::npos && q + 1 < t.size()) {
        for (auto part : split(t.substr(q + 1), '&')) {
            if (part.empty()) continue;
            const size_t eq = part.find('=');
            auto k = decode(part.substr(0, eq), true);
            auto v = decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), true);
            if (!k || !v) {
                *why = "a bad percent-escape, a control character or bytes that are not UTF-8 in the query";
                return std::nullopt;
            }
            if (!out.query.emplace(*k, *v).second) {
                *why = "query parameter '" + printable(*k, 40) + "' given twice";
                return std::nullopt;
            }
        }
    }
    return out;
}

// The route matching these segments: its index, and {addr}'s value; -1 when no path matches, -2 when a
// path matches but not with this method (*allow: the methods it has).
int match(const Target& t, const std::string& method, std::string* addr, std::string* allow) {
    bool path_matched = false;
    for (size_t i = 0; i < std::size(kRoutes); ++i) {
        const auto want = split(std::string_view(kRoutes[i].path).substr(1), '/');
        if (want.size() != t.segments.size()) continue;
        std::string a;
        bool ok = true;
        for (size_t k = 0; k < want.size() && ok; ++k) {
            if (want[k] == "{addr}")
                a = t.segments[k];
            else
                ok = want[k] == t.segments[k];
        }
        if (!ok) continue;
        path_matched = true;
        *allow += (allow->empty() ? "" : ", ") + std::string(kRoutes[i].method);
        if (method == kRoutes[i].method) {
            *addr = a;
            return static_cast<int>(i);
        }
    }
    return path_matched ? -2 : -1;
}

bool in_scope(const ApiToken& t, const Prefix& p) {
    if (t.role == TokenRole::Operator) return true;
    return std::any_of(t.scopes.begin(), t.scopes.end(), [&](const Prefix& s) { return inside(p, s); });
}

bool json_in_scope(const ApiToken& t, const json& rec) {
    if (!rec.is_object() || !rec.contains("prefix") || !rec["prefix"].is_string()) return false;
    auto p = parse_prefix(rec["prefix"].get<std::string>());
    return p && in_scope(t, *p);
}

// A customer token's scopes as the list and requests commands' "within": the handler keeps only those.
json scopes_json(const ApiToken& t) {
    json out = json::array();
    for (const auto& p : t.scopes) out.push_back(to_string(p));
    return out;
}

// The reply's body without the control envelope.
json body_of(json reply) {
    reply.erase(key::kVersion);
    reply.erase(key::kOk);
    return reply;
}

// The body's fields a route takes, renamed ("address" is the command's "addr", on the routes whose address
// is in the body); any other is refused.
json fields(const json& body, std::initializer_list<const char*> allowed, std::string* why,
            bool address = true) {
    json out = json::object();
    for (const auto& item : body.items()) {
        const std::string& k = item.key();
        const json& v = item.value();
        if (k == "address" && address) {
            out["addr"] = v;
            continue;
        }
        if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; })) {
            *why = "unknown or read-only field '" + printable(k, 40) + "'";
            return nullptr;
        }
        out[k] = v;
    }
    return out;
}

}  // namespace

std::span<const ApiRoute> api_routes() {
    return kRoutes;
}

int status_of(const json& reply) {
    if (reply.value(key::kOk, false)) return 200;
    const std::string code = reply.contains(key::kCode) && reply[key::kCode].is_string()
                                 ? reply[key::kCode].get<std::string>()
                                 : std::string();
    if (code == err::kBanned || code == err::kConflict) return 409;
    if (code == err::kNotFound) return 404;
    if (code == err::kForbidden) return 403;
    if (code == err::kUnavailable) return 503;
    const std::string text = reply.value(key::kError, std::string());
    if (text.rfind("not saved", 0) == 0) return 503;
    if (text.rfind("internal error", 0) == 0) return 500;
    return 400;
}

ApiRouter::ApiRouter(const TokenStore& tokens, AuditLog& audit, ApiRate rate)
    : tokens_(tokens), audit_(audit), rate_(rate) {}

bool ApiRouter::take(const std::string& name, double rate, Clock::time_point now, int* retry_after) {
    const double burst = std::max(1.0, 2 * rate);
    auto [it, fresh] = buckets_.try_emplace(name, Bucket{burst, now});
    Bucket& b = it->second;
    b.level = std::min(burst, b.level + std::chrono::duration<double>(now - b.at).count() * rate);
    b.at = now;
    if (b.level >= 1) {
        b.level -= 1;
        return true;
    }
    *retry_after = std::max(1, static_cast<int>((1 - b.level) / rate + 0.999));
    return false;
}

std::variant<HttpResponse, ApiCall> ApiRouter::route(const HttpRequest& req, Clock::time_point now) {
    std::string why;
    const auto target = parse_target(req.target, &why);
    if (!target) return error(400, why);
    std::string addr_text, allow;
    const int r = match(*target, req.method, &addr_text, &allow);
    if (r == -1) return error(404, "no such endpoint (see docs/api.yaml)");
    if (r == -2) {
        HttpResponse rsp =
            error(405, "method " + printable(req.method, 10) + " not allowed here (" + allow + ")");
        rsp.allow = allow;
        return rsp;
    }
    const ApiRoute& route = kRoutes[r];

    // Who: a bearer token.
    int retry = 0;
    std::string_view auth = req.authorization;
    const ApiToken* token = nullptr;
    if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) {
        auth.remove_prefix(7);
        while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
        while (!auth.empty() && auth.back() == ' ') auth.remove_suffix(1);
        token = tokens_.authenticate(auth);
    }
    if (!token) {
        HttpResponse rsp =
            error(401, req.authorization.empty() ? "an API token is needed (Authorization: Bearer)"
                                                 : "the API token is not valid");
        rsp.auth_challenge = true;
        return rsp;
    }
    if (!take(token->name, rate_.rate, now, &retry)) {
        HttpResponse rsp =
            error(429, "token " + token->name + " is over its rate of " +
                           std::to_string(static_cast<int>(rate_.rate)) + " requests a second");
        rsp.retry_after = retry;
        return rsp;
    }
    const Peer peer{-1, -1, -1, std::string(role_name(token->role)) + ":" + token->name};
    const ApiToken tok = *token;  // the reply may come after a revoke: the check is made with what was
    auto forbid = [&](const std::string& why) {
        audit_.record(peer, "api", json{{"method", req.method}, {"target", printable(req.target, 200)}},
                      nullptr, nullptr, "refused: " + why);
        return error(403, why);
    };
    if (tok.role == TokenRole::Customer && !route.customer)
        return forbid("a customer's token may not " + std::string(route.method) + " " + route.path);

    // What: the body (a JSON object, when there is one) and the address in the path.
    json body = json::object();
    if (req.method != "GET" && !req.body.empty()) {
        auto parsed = parse_request(req.body, &why);
        if (!parsed) return error(400, "body: " + why);
        if (!parsed->is_object()) return error(400, "body: a JSON object is needed");
        body = std::move(*parsed);
    }
    std::optional<Prefix> addr;
    if (!addr_text.empty() || std::string_view(route.path).find("{addr}") != std::string_view::npos) {
        addr = parse_prefix(addr_text, &why);
        if (!addr) return error(400, "address '" + printable(addr_text, 60) + "': " + why);
        if (!in_scope(tok, *addr))
            return forbid(to_string(*addr) + " is outside token " + tok.name + "'s scopes");
    }
    auto no_query = [&]() -> std::optional<HttpResponse> {
        if (target->query.empty()) return std::nullopt;
        return error(400, "unknown query parameter '" + printable(target->query.begin()->first, 40) + "'");
    };

    json cmd;
    // A list's reply for a customer: what the command's "within" kept, checked again here (a record outside
    // the token's scopes never leaves, whatever the command did).
    auto only_in_scope = [](auto plain, const ApiToken& tok, const char* key) {
        return [plain, tok, key](const json& reply) {
            HttpResponse rsp = plain(reply);
            if (rsp.status == 200 && rsp.body.contains(key)) {
                json kept = json::array();
                for (auto& r : rsp.body[key])
                    if (json_in_scope(tok, r)) kept.push_back(std::move(r));
                rsp.body[key] = std::move(kept);
            }
            return rsp;
        };
    };
    auto plain = [](const json& reply) -> HttpResponse {
        if (reply.value(key::kOk, false)) return {200, body_of(reply)};
        json e = {{"error", reply.value(key::kError, std::string("error"))}};
        if (reply.contains(key::kCode)) e["code"] = reply[key::kCode];
        return {status_of(reply), e};
    };
    std::function<HttpResponse(const json&)> finish = plain;
    const std::string path = route.path;
    if (path == "/v1/status") {
        if (auto e = no_query()) return *e;
        cmd = {{"cmd", cmd::kStatus}};
    } else if (path == "/v1/addresses/{addr}") {
        if (auto e = no_query()) return *e;
        cmd = {{"cmd", cmd::kShow}, {"addr", to_string(*addr)}};
        if (tok.role == TokenRole::Customer)
            finish = [plain, tok](const json& reply) {
                HttpResponse rsp = plain(reply);
                // A wider record (the provider's) is shown as what it grants, not as its papers.
                if (rsp.status == 200 && rsp.body.contains("record") && rsp.body["record"].is_object() &&
                    !json_in_scope(tok, rsp.body["record"]))
                    for (const char* k : {"ticket", "reason", "operator", "facts", "complaints", "dns"})
                        rsp.body["record"].erase(k);
                return rsp;
            };
    } else if (path == "/v1/addresses/{addr}/suspend" || path == "/v1/addresses/{addr}/resume") {
        if (auto e = no_query()) return *e;
        cmd = fields(body, {"reason", "ticket"}, &why, false);
        if (cmd.is_null()) return error(400, why);
        cmd["cmd"] = path.ends_with("suspend") ? cmd::kSuspend : cmd::kResume;
        cmd["addr"] = to_string(*addr);
    } else if (path == "/v1/requests" && req.method == "GET") {
        if (auto e = no_query()) return *e;
        cmd = {{"cmd", cmd::kRequests}};
        if (tok.role == TokenRole::Customer) {
            cmd["within"] = scopes_json(tok);
            finish = only_in_scope(plain, tok, "requests");
        }
    } else if (path == "/v1/requests") {
        if (auto e = no_query()) return *e;
        if (tok.role == TokenRole::Customer)
            cmd = fields(body, {"hostname", "domains", "facts", "ticket", "reason"}, &why);
        else
            cmd = fields(
                body, {"hostname", "domains", "facts", "ticket", "reason", "force", "skip_dns_check"}, &why);
        if (cmd.is_null()) return error(400, why);
        if (!cmd.contains("addr") || !cmd["addr"].is_string()) return error(400, "'address' is needed");
        auto p = parse_prefix(cmd["addr"].get<std::string>(), &why);
        if (!p) return error(400, "address: " + why);
        if (!in_scope(tok, *p)) return forbid(to_string(*p) + " is outside token " + tok.name + "'s scopes");
        cmd["cmd"] = cmd::kRequest;
    } else if (path == "/v1/approvals" && req.method == "GET") {
        for (const auto& [k, v] : target->query)
            if (k != "state") return error(400, "unknown query parameter '" + printable(k, 40) + "'");
        cmd = {{"cmd", cmd::kList}};
        if (target->query.count("state")) cmd["state"] = target->query.at("state");
        if (tok.role == TokenRole::Customer) {
            cmd["within"] = scopes_json(tok);
            finish = only_in_scope(plain, tok, "records");
        }
    } else if (path == "/v1/approvals") {
        if (auto e = no_query()) return *e;
        cmd = fields(body,
                     {"hostname", "domains", "max_concurrent", "rate_per_min", "daily", "expires", "ticket",
                      "reason", "force", "require_fcrdns", "skip_dns_check"},
                     &why);
        if (cmd.is_null()) return error(400, why);
        if (!cmd.contains("addr")) return error(400, "'address' is needed");
        cmd["cmd"] = cmd::kApprove;
    } else {  // DELETE /v1/approvals/{addr}
        cmd = fields(body, {"reason", "ticket"}, &why, false);
        if (cmd.is_null()) return error(400, why);
        for (const auto& [k, v] : target->query) {
            if (k != "ban" && k != "force")
                return error(400, "unknown query parameter '" + printable(k, 40) + "'");
            if (v != "true" && v != "false") return error(400, "'" + k + "' is true or false");
            cmd[k] = v == "true";
        }
        cmd["cmd"] = cmd::kRevoke;
        cmd["addr"] = to_string(*addr);
    }
    cmd[key::kVersion] = kProtocolVersion;
    return ApiCall{cmd.dump(), peer, std::move(finish)};
}

}  // namespace portcullis
