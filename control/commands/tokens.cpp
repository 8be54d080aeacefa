// The HTTP API's tokens as control commands (portcullisctl token add|list|revoke): the secret is in the
// reply to token_add only, never in the audit log or the token file (control/api/tokens.hpp).
#include "control/api/tokens.hpp"

#include "control/commands/request.hpp"
#include "control/commands/services.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

TokenStore& tokens_of(Services& s) {
    if (!s.tokens) throw RequestError("the HTTP API is off (api_listen is not set): no tokens to manage");
    return *s.tokens;
}

json token_add(Services& s, const Call& c) {
    TokenStore& store = tokens_of(s);
    ApiToken t;
    t.name = need_string(c.req, "name");
    const std::string role = need_string(c.req, "role");
    if (role == "operator")
        t.role = TokenRole::Operator;
    else if (role == "customer")
        t.role = TokenRole::Customer;
    else
        throw RequestError("'role' must be operator or customer");
    if (c.req.contains("scopes")) {
        if (!c.req["scopes"].is_array()) throw RequestError("'scopes' must be an array of prefixes");
        if (c.req["scopes"].size() > TokenStore::kMaxScopes) throw RequestError("at most 64 scopes");
        for (const auto& v : c.req["scopes"]) {
            std::string why;
            auto p = v.is_string() ? parse_prefix(v.get<std::string>(), &why) : std::nullopt;
            if (!p) throw RequestError("scope: " + (v.is_string() ? why : std::string("not a string")));
            t.scopes.push_back(*p);
        }
    }
    t.created = now_s();
    t.created_by = c.peer.user;
    std::string secret;
    if (auto why = store.add(t, &secret); !why.empty()) {
        s.audit.record(c.peer, "token_add", c.req, nullptr, nullptr, "refused: " + why);
        throw RequestError(why);
    }
    const json shown = token_json(store.tokens().at(t.name), false);
    if (auto err = s.audit.record(c.peer, "token_add", c.req, nullptr, shown, "ok"); !err.empty())
        return error_reply("token " + t.name + " made, but not audited: " + err);
    return ok_reply({{"token", shown}, {"secret", secret}});
}

json token_list(Services& s, const Call&) {
    json out = json::array();
    for (const auto& [n, t] : tokens_of(s).tokens()) out.push_back(token_json(t, false));
    return ok_reply({{"tokens", std::move(out)}});
}

json token_revoke(Services& s, const Call& c) {
    TokenStore& store = tokens_of(s);
    const std::string name = need_string(c.req, "name");
    const auto it = store.tokens().find(name);
    const json before = it == store.tokens().end() ? json(nullptr) : token_json(it->second, false);
    if (auto why = store.revoke(name); !why.empty()) {
        s.audit.record(c.peer, "token_revoke", c.req, before, nullptr, "refused: " + why);
        throw RequestError(why);
    }
    s.audit.record(c.peer, "token_revoke", c.req, before, nullptr, "ok");
    return ok_reply({{"revoked", name}});
}

}  // namespace

std::span<const Handler> token_handlers() {
    static const Handler table[] = {
        {cmd::kTokenAdd, token_add},
        {cmd::kTokenList, token_list},
        {cmd::kTokenRevoke, token_revoke},
    };
    return table;
}

}  // namespace portcullis
