// The API's token set (see tokens.hpp).
#include "control/api/tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "control/store/durable_file.hpp"

namespace portcullis {

namespace {

std::string hex(const unsigned char* p, size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    s.reserve(2 * n);
    for (size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

bool is_hex64(const std::string& s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

}  // namespace

const char* role_name(TokenRole r) {
    return r == TokenRole::Operator ? "operator" : "customer";
}

nlohmann::json token_json(const ApiToken& t, bool with_hash) {
    auto scopes = nlohmann::json::array();
    for (const auto& p : t.scopes) scopes.push_back(to_string(p));
    nlohmann::json j = {{"name", t.name},
                        {"role", role_name(t.role)},
                        {"scopes", scopes},
                        {"created", t.created},
                        {"created_by", t.created_by}};
    if (with_hash) j["sha256"] = t.hash;
    return j;
}

std::string TokenStore::check_name(const std::string& name) {
    if (name.empty() || name.size() > 64) return "a token's name is 1 to 64 characters";
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
            return "a token's name may hold letters, digits, '.', '_' and '-' only";
    return {};
}

std::string TokenStore::hash_secret(std::string_view secret) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(secret.data(), secret.size(), md, &len, EVP_sha256(), nullptr) != 1 || len != 32)
        throw std::runtime_error("SHA-256 failed");
    return hex(md, len);
}

std::map<std::string, ApiToken> TokenStore::parse(const std::string& text) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw std::runtime_error("not a JSON object");
    if (!j.contains("format") || j["format"] != 1)
        throw std::runtime_error("unknown format (this daemon reads format 1)");
    if (!j.contains("tokens") || !j["tokens"].is_array())
        throw std::runtime_error("'tokens' must be an array");
    if (j["tokens"].size() > kMaxTokens) throw std::runtime_error("more than 10000 tokens");
    std::map<std::string, ApiToken> out;
    for (const auto& e : j["tokens"]) {
        auto str = [&](const char* k) {
            if (!e.is_object() || !e.contains(k) || !e[k].is_string())
                throw std::runtime_error(std::string("a token without a string '") + k + "'");
            return e[k].get<std::string>();
        };
        ApiToken t;
        t.name = str("name");
        if (auto why = check_name(t.name); !why.empty()) throw std::runtime_error(why);
        const std::string role = str("role");
        if (role == "operator")
            t.role = TokenRole::Operator;
        else if (role == "customer")
            t.role = TokenRole::Customer;
        else
            throw std::runtime_error("token " + t.name + ": unknown role");
        t.hash = str("sha256");
        if (!is_hex64(t.hash)) throw std::runtime_error("token " + t.name + ": sha256 is not 64 hex digits");
        t.created_by = str("created_by").substr(0, 128);
        if (!e.contains("created") || !e["created"].is_number_integer())
            throw std::runtime_error("token " + t.name + ": 'created' must be an integer");
        t.created = e["created"].get<int64_t>();
        if (!e.contains("scopes") || !e["scopes"].is_array() || e["scopes"].size() > kMaxScopes)
            throw std::runtime_error("token " + t.name + ": 'scopes' must be an array of at most 64");
        for (const auto& s : e["scopes"]) {
            std::string why;
            auto p = s.is_string() ? parse_prefix(s.get<std::string>(), &why) : std::nullopt;
            if (!p) throw std::runtime_error("token " + t.name + ": a scope is not a prefix");
            t.scopes.push_back(*p);
        }
        if (t.role == TokenRole::Customer && t.scopes.empty())
            throw std::runtime_error("token " + t.name + ": a customer token needs a scope");
        if (!out.emplace(t.name, t).second) throw std::runtime_error("token " + t.name + " twice");
    }
    return out;
}

TokenStore::TokenStore(std::filesystem::path path) : path_(std::move(path)) {
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec) && !ec) return;
    std::ifstream in(path_);
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    if (!in || in.bad()) {
        broken_ = path_.string() + ": cannot be read";
        return;
    }
    try {
        tokens_ = parse(ss.str());
    } catch (const std::exception& e) {
        broken_ = path_.string() + ": " + e.what();
    }
}

std::string TokenStore::save(const std::map<std::string, ApiToken>& next) {
    auto list = nlohmann::json::array();
    for (const auto& [n, t] : next) list.push_back(token_json(t, true));
    const nlohmann::json doc = {{"format", 1}, {"tokens", std::move(list)}};
    // 0600: the hashes do not open the API, but nobody else has business reading them.
    return write_file_durably(path_, doc.dump(1) + "\n", 0600);
}

std::string TokenStore::add(ApiToken token, std::string* secret) {
    if (!broken_.empty())
        return "the token file is unusable (" + broken_ + "): repair or remove it, then restart";
    if (auto why = check_name(token.name); !why.empty()) return why;
    if (tokens_.count(token.name)) return "a token named " + token.name + " exists (revoke it first)";
    if (tokens_.size() >= kMaxTokens) return "too many tokens (at most 10000)";
    if (token.role == TokenRole::Customer && token.scopes.empty())
        return "a customer token needs at least one --scope";
    if (token.role == TokenRole::Operator && !token.scopes.empty())
        return "an operator token has no scope (it may act everywhere)";
    if (token.scopes.size() > kMaxScopes) return "at most 64 scopes";
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return "no randomness for a secret (RAND_bytes failed)";
    std::string s = kPrefix + hex(raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    token.hash = hash_secret(s);
    auto next = tokens_;
    next[token.name] = token;
    if (auto err = save(next); !err.empty()) return "not saved: " + err;
    tokens_ = std::move(next);
    *secret = std::move(s);
    return {};
}

std::string TokenStore::revoke(const std::string& name) {
    if (!broken_.empty())
        return "the token file is unusable (" + broken_ + "): repair or remove it, then restart";
    if (!tokens_.count(name)) return "no token named " + name.substr(0, 64);
    auto next = tokens_;
    next.erase(name);
    if (auto err = save(next); !err.empty()) return "not saved: " + err;
    tokens_ = std::move(next);
    return {};
}

const ApiToken* TokenStore::authenticate(std::string_view secret) const {
    if (secret.size() != 4 + 64) return nullptr;  // its length is no secret
    const std::string h = hash_secret(secret);
    const ApiToken* found = nullptr;
    for (const auto& [n, t] : tokens_)  // every hash compared: the time says nothing of which matched
        if (CRYPTO_memcmp(h.data(), t.hash.data(), h.size()) == 0) found = &t;
    return found;
}

}  // namespace portcullis
