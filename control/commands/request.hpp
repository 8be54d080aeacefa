// What every command handler needs to read a request: typed access to its fields, each failure a
// RequestError whose text becomes the one-line error reply; and the clock the handlers share.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "api/approval.hpp"
#include "api/wire.hpp"
#include "common/net_addr.hpp"
#include "control/store/audit.hpp"

namespace portcullis {

// A request the daemon refuses for what it says: the reply is {"ok": false, "error": what()}.
// `code`: the error's kind when it has one (api/protocol.hpp, err::).
struct RequestError : std::runtime_error {
    explicit RequestError(const std::string& what, const char* code = nullptr)
        : std::runtime_error(what), code(code) {}
    const char* code;
};

inline int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The HTTP API acts as "<role>:<token name>" (a name no Unix user can have): a customer's token is held to
// what a customer may do here and there (control/api/router.hpp checks the rest).
inline bool is_customer_name(const std::string& user) {
    return user.rfind("customer:", 0) == 0;
}
inline bool is_customer(const Peer& peer) {
    return is_customer_name(peer.user);
}

// Field readers: a missing or mistyped field is a RequestError naming it.
std::string need_string(const nlohmann::json& req, const char* key);
std::string opt_string(const nlohmann::json& req, const char* key);                   // "" when absent
int64_t opt_int(const nlohmann::json& req, const char* key, int64_t lo, int64_t hi);  // -1 when absent
bool opt_bool(const nlohmann::json& req, const char* key);                            // false when absent
Prefix need_prefix(const nlohmann::json& req, const char* key = "addr");
// Operator text (a ticket, a reason) within its bound.
std::string text_field(const nlohmann::json& req, const char* key, size_t max);
// The request's "hostname" and "domains", when given, into the record (approve, request): an FQDN, at most
// kMaxDomains domain names. Throws RequestError naming the field.
void read_names(const nlohmann::json& req, Approval& a);

// The request's "within" (a list of prefixes: list and requests keep only the records inside one of them; the
// HTTP API sends a customer token's scopes), or empty: everything.
std::vector<Prefix> within_of(const nlohmann::json& req);
bool is_within(const Prefix& p, const std::vector<Prefix>& within);

// Prefix relations the handlers check: the same family and one holds the other's first address; inner lies
// wholly inside outer.
inline bool overlaps(const Prefix& a, const Prefix& b) {
    return a.addr.v6 == b.addr.v6 && (a.contains(b.addr) || b.contains(a.addr));
}
inline bool inside(const Prefix& inner, const Prefix& outer) {
    return inner.addr.v6 == outer.addr.v6 && outer.len <= inner.len && outer.contains(inner.addr);
}

}  // namespace portcullis
