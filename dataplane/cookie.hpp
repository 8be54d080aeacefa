// Stateless handshake cookies for the SMTP refusal responder: the initial sequence number the gateway
// answers a refused SYN with is a keyed hash (SipHash-2-4, 128-bit key random per start) of the connection's
// addresses and ports and a 64-second time slot. A later segment proves it saw that SYN-ACK by acknowledging
// it; one that cannot (a forged or stale ACK) gets nothing. No state is kept per connection.
#pragma once

#include <cstdint>

#include "dataplane/parse.hpp"

namespace portcullis {

struct CookieKey {
    uint64_t k0 = 0, k1 = 0;
};

uint64_t siphash24(const CookieKey& key, const uint8_t* data, size_t len);

// The cookie for the connection `p` belongs to (client -> server direction), in time slot `slot`.
uint32_t syn_cookie(const CookieKey& key, const Parsed& p, uint64_t slot);

// Seconds per cookie slot: a cookie stays valid for one to two slots.
inline constexpr uint64_t kCookieSlotSeconds = 64;

}  // namespace portcullis
