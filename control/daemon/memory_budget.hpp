// What the gateway's tables will take, checked before the ports come up against what the process can have, so
// that a max_flows, max_sources, max_inspected or mbufs too large for the machine stops the start with one
// line naming the key, instead of an OOM kill once the ports are up.
//
// Where each table lives: the flow tables (one per worker), the per-source table and the inspectors (one per
// worker) are on the process heap, allocated and touched at start; the packet buffer pool is in DPDK (EAL)
// memory: hugepages, or with --no-huge the EAL's own anonymous memory, which is then the process's too.
// Limits read: MemAvailable (/proc/meminfo), RLIMIT_AS and RLIMIT_DATA against what is mapped already
// (/proc/self/status), the memory limit of the process's cgroup (v1 or v2, every level up), and for the EAL
// its free heap and free hugepages.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "control/config.hpp"

namespace portcullis {

// One table and the key that sizes it.
struct MemoryItem {
    std::string key;       // "max_flows"
    std::string amount;    // "4000000000 flows per worker"
    uint64_t bytes = 0;    // for every worker together
    unsigned workers = 1;  // bytes is this many tables' worth (1: one shared table)
    bool eal = false;      // in DPDK memory
};

// A bound on memory and where it comes from.
struct MemoryLimit {
    enum class Source { None, MemAvailable, RlimitAs, RlimitData, Cgroup, Eal };
    uint64_t bytes = UINT64_MAX;
    Source source = Source::None;
};

struct MemoryAvailable {
    MemoryLimit process;          // the tightest of MemAvailable, the rlimits and the cgroup
    MemoryLimit eal;              // DPDK memory that can still be had (free heap and free hugepages)
    bool eal_in_process = false;  // no hugepages: DPDK memory is the process's anonymous memory too
};

// An mbuf with its mempool header, as rte_mempool_calc_obj_size() gives it for the default buffer size on
// x86-64 (main() passes the EAL's own figure).
inline constexpr uint64_t kMbufObjectBytes = 2432;

// The tables for cfg with `workers` workers; mbuf_object: bytes per packet buffer in the pool.
std::vector<MemoryItem> memory_needed(const Config& cfg, unsigned workers,
                                      uint64_t mbuf_object = kMbufObjectBytes);

// Where the limits are read (tests point them elsewhere).
struct MemoryPaths {
    std::string meminfo = "/proc/meminfo";
    std::string status = "/proc/self/status";
    std::string cgroup = "/proc/self/cgroup";
    std::string mountinfo = "/proc/self/mountinfo";
    std::string prefix;  // put before the cgroup file system paths found in mountinfo
};
// The process's limits now; eal_free: what the EAL can still allocate (0 before the EAL is up).
MemoryAvailable memory_available(uint64_t eal_free, bool eal_hugepages, const MemoryPaths& paths = {});

// After rte_eal_init(): bytes per packet buffer in the pool (rte_mempool_calc_obj_size), and the DPDK memory
// still to be had: the free EAL heap, plus the free hugepages it may grow into.
uint64_t mbuf_object_bytes();
uint64_t eal_free_bytes();

// "" when the tables fit, else the one-line error naming the key with the largest share, e.g.
// "max_flows: 4000000000 flows per worker need 512 GiB; this machine has 20 GiB available".
std::string check_memory(const std::vector<MemoryItem>& need, const MemoryAvailable& avail);

// 512 GiB, 1.5 GiB, 300 MiB, 12 KiB.
std::string format_bytes(uint64_t bytes);

}  // namespace portcullis
