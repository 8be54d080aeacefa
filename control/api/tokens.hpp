// The HTTP API's bearer tokens: a name, a role (operator: what the CLI can do; customer: read, suspend,
// resume and request, only inside its scopes) and the SHA-256 of its secret. The secret is 32 random bytes
// from OpenSSL's RAND_bytes, shown once when the token is made and never kept: a plain SHA-256 does for a
// secret of 256 random bits (no dictionary to try), and a request is matched against every token's hash
// with CRYPTO_memcmp, in constant time. The set lives in one JSON file written durably (durable_file.hpp).
// A file that cannot be read never stops the daemon (the racks' traffic does not depend on the API): the
// API then has no tokens (every request 401), broken() says why, and token add/revoke are refused rather
// than write over the file the operator has to repair or remove.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/net_addr.hpp"

namespace portcullis {

enum class TokenRole { Operator, Customer };
const char* role_name(TokenRole r);

struct ApiToken {
    std::string name;  // [A-Za-z0-9._-], 1 to 64
    TokenRole role = TokenRole::Customer;
    std::vector<Prefix> scopes;  // customer: where it may act (at least one); operator: none
    std::string hash;            // hex SHA-256 of the secret
    int64_t created = 0;
    std::string created_by;
};

class TokenStore {
  public:
    static constexpr size_t kMaxTokens = 10000, kMaxScopes = 64;
    static constexpr const char* kPrefix = "pcu_";  // every secret starts so (secret scanners find them)

    // path: the token file; missing is an empty set; unreadable or invalid is an empty set and broken().
    explicit TokenStore(std::filesystem::path path);
    // "" or why the token file could not be read (the set is then empty and stays so).
    const std::string& broken() const { return broken_; }
    // Reads a token file's text: the tokens, or std::runtime_error naming what is wrong.
    static std::map<std::string, ApiToken> parse(const std::string& text);

    // A new token; its secret is returned once and only its hash kept. "" error or why not (the file is
    // unchanged then and so is the set).
    std::string add(ApiToken token, std::string* secret);
    std::string revoke(const std::string& name);  // "" or why not
    const std::map<std::string, ApiToken>& tokens() const { return tokens_; }
    // The token whose secret this is, or nullptr; constant time in the secret's content.
    const ApiToken* authenticate(std::string_view secret) const;

    static std::string check_name(const std::string& name);  // "" or why the name will not do
    static std::string hash_secret(std::string_view secret);

  private:
    std::string save(const std::map<std::string, ApiToken>& next);
    std::filesystem::path path_;
    std::map<std::string, ApiToken> tokens_;
    std::string broken_;
};

nlohmann::json token_json(const ApiToken& t, bool with_hash);

}  // namespace portcullis
