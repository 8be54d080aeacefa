// A worker lcore's run-to-completion loop: poll both ports' RX queue, decide each frame, send bursts on.
// Nothing here allocates, locks, logs or makes a system call; what happened is recorded in Counters.
#pragma once

#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>

#include "dataplane/counters.hpp"
#include "dataplane/policy.hpp"

namespace portcullis {

inline constexpr uint16_t kBurst = 32;

struct WorkerContext {
    uint16_t inside_port = 0;
    uint16_t outside_port = 1;
    uint16_t queue = 0;
    const std::atomic<const Policy*>* policy = nullptr;
    const std::atomic<bool>* stop = nullptr;
    Counters* counters = nullptr;
    rte_rcu_qsbr* qsbr = nullptr;  // registered (thread id = queue) and online before launch
    rte_ring* events = nullptr;  // refusal events to the control thread (RefusalEvent elements); may be null
    uint64_t tsc_per_slot = 0;   // TSC ticks per cookie slot (kCookieSlotSeconds); 0: always slot 0
};

// The lcore entry point (rte_eal_remote_launch): arg is a WorkerContext*. Returns when *stop is set.
// Loads the policy snapshot once per iteration and reports an RCU quiescent state when done with it.
int worker_main(void* arg);

// One burst received on the inside port: classified, forwarded, refused or dropped. Exposed for tests.
void process_outbound(const WorkerContext& ctx, const Policy& pol, rte_mbuf** pkts, uint16_t n);
// One burst received on the outside port: forwarded to the inside untouched. Exposed for tests.
void process_inbound(const WorkerContext& ctx, rte_mbuf** pkts, uint16_t n);

}  // namespace portcullis
