// Fuzz target: the API's token file (state_dir/api_tokens.json: written by the daemon, but a disk, a restore
// or a hand edit may leave anything there). TokenStore::parse() on any bytes either refuses with one line
// (std::runtime_error) or gives a set in which every token is valid (a name that check_name() takes, a
// customer with a scope, a 64-hex-digit hash); such a set written out and read back is the same set.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "control/api/tokens.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace portcullis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::map<std::string, ApiToken> tokens;
    try {
        tokens = TokenStore::parse(text);
    } catch (const std::runtime_error& e) {
        if (std::string(e.what()).find('\n') != std::string::npos) fuzz::fail("a refusal spans lines");
        return 0;
    }
    auto list = nlohmann::json::array();
    for (const auto& [name, t] : tokens) {
        if (name != t.name || !TokenStore::check_name(name).empty()) fuzz::fail("a token with a bad name");
        if (t.role == TokenRole::Customer && t.scopes.empty()) fuzz::fail("a customer token without a scope");
        if (t.hash.size() != 64) fuzz::fail("a hash of %zu characters", t.hash.size());
        list.push_back(token_json(t, true));
    }
    const auto again = TokenStore::parse(nlohmann::json{{"format", 1}, {"tokens", list}}.dump(
        -1, ' ', false, nlohmann::json::error_handler_t::replace));
    if (again.size() != tokens.size()) fuzz::fail("the set does not read back whole");
    for (const auto& [name, t] : tokens) {
        const auto& b = again.at(name);
        if (b.hash != t.hash || b.role != t.role || b.scopes != t.scopes || b.created != t.created)
            fuzz::fail("token %s reads back different", name.c_str());
    }
    return 0;
}
