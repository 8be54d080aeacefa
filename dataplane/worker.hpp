// A worker lcore's run-to-completion loop: poll both ports' RX queue, decide each frame, send bursts on.
// Nothing here allocates, locks, logs or makes a system call; what happened is recorded in Counters.
#pragma once

#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>

#include "dataplane/clock.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/flow_tracker.hpp"
#include "dataplane/policy.hpp"

namespace portcullis {

inline constexpr uint16_t kBurst = 32;

// A worker's heartbeat, read by the control loop's watchdog (control/daemon/watchdog.hpp): one beat per pass
// of its loop. stall_ms is a test hook (allow_test_hooks): the worker spins that long without a beat once.
struct alignas(64) WorkerPulse {
    std::atomic<uint64_t> beats{0};
    std::atomic<uint32_t> stall_ms{0};
};

struct WorkerContext {
    uint16_t inside_port = 0;
    uint16_t outside_port = 1;
    uint16_t queue = 0;
    const std::atomic<const Policy*>* policy = nullptr;
    const std::atomic<bool>* stop = nullptr;
    Counters* counters = nullptr;
    rte_rcu_qsbr* qsbr = nullptr;  // registered (thread id = queue) and online before launch
    rte_ring* events = nullptr;  // refusal events to the control thread (RefusalEvent elements); may be null
    Clock clock;                 // the same for every worker
    FlowTracker* flows = nullptr;  // this worker's; null: SMTP flows are forwarded untracked, unlimited
    // After a pass that received nothing, sleep this long (0: poll without pause). A lab or an idle site
    // trades a little latency for a core, as DPDK's power examples do; never taken while traffic flows.
    uint32_t idle_sleep_us = 0;
    WorkerPulse* pulse = nullptr;  // may be null (tests)
};

// Table entries the worker examines for expiry every kSweepEvery loop iterations.
inline constexpr uint32_t kSweepBudget = 64;
inline constexpr uint32_t kSweepEvery = 32;

// The lcore entry point (rte_eal_remote_launch): arg is a WorkerContext*. Returns when *stop is set.
// Loads the policy snapshot once per iteration and reports an RCU quiescent state when done with it.
int worker_main(void* arg);

// One burst received on the inside port: classified, tracked, forwarded, refused or dropped. Exposed for
// tests.
void process_outbound(const WorkerContext& ctx, const Policy& pol, rte_mbuf** pkts, uint16_t n, LazyNow& now);
// One burst received on the outside port: forwarded to the inside untouched (replies from SMTP ports move
// their flow's state). Exposed for tests.
void process_inbound(const WorkerContext& ctx, const Policy& pol, rte_mbuf** pkts, uint16_t n, LazyNow& now);

}  // namespace portcullis
