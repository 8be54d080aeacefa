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

// Why a connection is refused: carried in the cookie's low bits, so the stateless responder knows, when the
// handshake completes, which reply line to send (each reason has its own, from config).
enum class ReplyReason : uint8_t {
    Unapproved,   // port 25 from a managed, unapproved source
    Concurrency,  // over the source's concurrent-connection limit
    Rate,         // over its new-connections-per-minute limit
    Daily,        // over its daily volume
    Busy,         // the flow table is full
    Payload,      // what it said broke the policy (inspection)
    count
};
inline constexpr unsigned kReplyReasons = static_cast<unsigned>(ReplyReason::count);
inline constexpr uint32_t kCookieReasonMask = 7;  // three low bits carry the ReplyReason
static_assert(kReplyReasons <= kCookieReasonMask + 1);

// The cookie for the connection `p` belongs to (client -> server direction), in time slot `slot`: 29 bits of
// keyed hash above the three bits of `reason`.
uint32_t syn_cookie(const CookieKey& key, const Parsed& p, uint64_t slot, ReplyReason reason);

// Seconds per cookie slot: a cookie stays valid for one to two slots.
inline constexpr uint64_t kCookieSlotSeconds = 64;

}  // namespace portcullis
