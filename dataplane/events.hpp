// Refusal events, from each worker to the control thread, so that operators see refusals per source
// (`portcullisctl show ADDR`, `stats`). One single-producer/single-consumer rte_ring of fixed-size elements
// per worker: enqueued once per burst, drained by the control loop. A full ring loses the event, never the
// packet's verdict, and counts it (events_lost).
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/net_addr.hpp"

namespace portcullis {

// Plain data, no initialisers: a burst's worth sits uninitialised on the worker's stack until used. One per
// refusal (Segment::report): what the event stream (control/daemon/event_log.hpp) and the per-source figures
// need, and nothing the control side can find itself (the approval record, the session's EHLO name).
struct RefusalEvent {
    u128 v6src;      // the source, when v6
    u128 v6dst;      // the destination, when v6
    uint64_t us;     // the worker's clock (dataplane/clock.hpp) when the segment was read
    uint32_t v4src;  // when !v6
    uint32_t v4dst;
    uint32_t rule;  // Payload refused by a rule: its id; 0 otherwise
    uint16_t sport, dport;
    uint8_t v6;
    uint8_t syn;     // a connection attempt, not a later segment
    uint8_t reason;  // a ReplyReason
    uint8_t flags;   // kEventMonitor, kEventSession
    uint8_t action;  // the Action that answered it
    uint8_t pad[3];

    IpAddr source() const { return v6 ? IpAddr::from_v6(v6src) : IpAddr::from_v4(v4src); }
    IpAddr destination() const { return v6 ? IpAddr::from_v6(v6dst) : IpAddr::from_v4(v4dst); }
};
static_assert(sizeof(RefusalEvent) == 64, "one cache line; rte_ring element sizes are multiples of 4");
static_assert(std::is_trivially_default_constructible_v<RefusalEvent>);
inline constexpr uint8_t kEventMonitor = 1;  // monitor mode: forwarded, a would-be refusal
inline constexpr uint8_t kEventSession = 2;  // a session ended mid-way (not a connection attempt refused)

// Per worker: at 64 bytes an event, 1 MiB; the control loop drains it at least every 10 ms.
inline constexpr unsigned kEventRingSize = 16384;

// What a session said, for the operator's evidence (`portcullisctl show ADDR`: the EHLO names and MAIL FROM
// domains a source used lately), and what its receivers answered it (5xx replies). One per EHLO/HELO or MAIL
// FROM read, on a per-worker ring like the refusal events.
struct ObservationEvent {
    u128 v6addr;
    uint32_t v4;
    uint8_t v6;
    uint8_t kind;  // kObservedEhlo or kObservedMailDomain
    uint8_t len;   // bytes of text used
    uint8_t pad;
    char text[120];  // the name, or a receiver's 5xx reply line, cut at 120 bytes

    IpAddr source() const { return v6 ? IpAddr::from_v6(v6addr) : IpAddr::from_v4(v4); }
};
static_assert(sizeof(ObservationEvent) % 4 == 0);
static_assert(std::is_trivially_default_constructible_v<ObservationEvent>);
inline constexpr uint8_t kObservedEhlo = 1, kObservedMailDomain = 2;
// A receiver's 5xx reply to an inspected session (the greeting, EHLO, MAIL FROM, RCPT TO, DATA, the message's
// end): its first line, as the receiver wrote it ("554 5.7.1 ... blocked using ...").
inline constexpr uint8_t kObservedRemoteRefusal = 3;

}  // namespace portcullis
