// Refusal events, from each worker to the control thread, so that operators see refusals per source
// (`portcullisctl show ADDR`, `stats`). One single-producer/single-consumer rte_ring of fixed-size elements
// per worker: enqueued once per burst, drained by the control loop. A full ring loses the event, never the
// packet's verdict, and counts it (events_lost).
#pragma once

#include <cstdint>

#include "common/net_addr.hpp"

namespace portcullis {

struct RefusalEvent {
    IpAddr src;
    uint16_t dport = 0;
    uint8_t syn = 0;  // a connection attempt, not a later segment
    uint8_t pad[13] = {};
};
static_assert(sizeof(RefusalEvent) % 4 == 0, "rte_ring element sizes are multiples of 4");

inline constexpr unsigned kEventRingSize = 4096;

}  // namespace portcullis
