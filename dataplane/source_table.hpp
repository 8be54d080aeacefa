// Per-source connection accounting shared by every worker, so that a sender's limits hold whichever worker
// (RX queue) its connections land on. Workers update it with atomic operations only: no locks, no allocation.
//
// Layout: a fixed array of 64-byte slots (one cache line each) in groups of kWays. A source is identified by
// a 64-bit keyed hash of its address (SipHash-2-4, key random per start), so a slot's identity is one atomic
// word that a compare-and-swap claims; the group is chosen by the same hash. Two different sources would
// share a slot only if their 64-bit ids collided (about n^2 / 2^65: once in 10^7 runs with a million sources,
// and not something a sender can aim for without the key).
//
// A source is an IPv4 address, or an IPv6 prefix (a /64 by default: one customer's subnet is one sender, so
// rotating through its 2^64 addresses buys nothing). Slots are claimed only for connections whose handshake
// completed (spoofed SYNs never complete one): the tracker peeks at a source's slot when a SYN arrives and
// claims one when the handshake is seen.
//
// A slot counts the source's open connections (one fetch-add), its connection rate (GCRA: one word holding
// the theoretical arrival time, equivalent to a token bucket holding one minute's worth), and its daily
// volume (one word: UTC day << 32 | count), kept only when a daily limit applies. A group with no free way
// reuses an idle one (no open connection, no rate debt, nothing counted today); failing that, the one idle
// longest that holds only a daily count (reclaimed, counted: the table is too small for the day's senders).
// An update that races with such a reuse notices that the id changed and undoes itself.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "common/net_addr.hpp"
#include "dataplane/cookie.hpp"
#include "dataplane/limits.hpp"

namespace portcullis {

// Why a connection was not admitted.
enum class Admit : uint8_t { Ok, Concurrency, Rate, Daily, NoSlot };

// What the control plane shows for one source.
struct SourceView {
    bool found = false;
    uint32_t concurrent = 0;  // connections open now
    uint32_t rate_used = 0;   // connections in the current one-minute rate window (GCRA debt, rounded up)
    uint32_t daily = 0;       // counted today
};

class SourceTable {
  public:
    static constexpr uint32_t kWays = 8;
    static constexpr uint32_t kNone = UINT32_MAX;

    // capacity: slots, rounded up to a power of two (at least kWays). v6_prefix: the IPv6 prefix length one
    // source stands for (1..128). max_flows: connections one source may hold open when its limits set no
    // concurrency limit (0: none). Allocates: control side only.
    SourceTable(uint32_t capacity, const CookieKey& key, uint8_t v6_prefix = 64, uint32_t max_flows = 0);
    // The slots the constructor allocates for `capacity` (64 bytes each).
    static uint64_t slots_for(uint32_t capacity) {
        uint64_t n = kWays;
        while (n < capacity) n <<= 1;
        return n;
    }
    static constexpr size_t kSlotBytes = 64;

    uint64_t id_of(const IpAddr& a) const;

    // The source's slot, claiming a free or idle one if it has none. kNone when its group is all busy.
    // *reclaimed (optional): set when a slot holding another source's daily count had to be taken.
    uint32_t acquire(uint64_t id, uint64_t now_us, uint32_t day, bool* reclaimed = nullptr);
    // What admit() would say now, without claiming a slot or counting anything (a SYN: the handshake has not
    // completed yet). A source with no slot has nothing against it: Ok.
    Admit peek(uint64_t id, const Limits& l, uint64_t now_us, uint32_t day) const;

    // Counts a new connection from the source in `slot` against `l`. With enforce, a connection over a limit
    // is not counted and the limit is returned; Ok means it holds one concurrency unit until release().
    // Without enforce (monitor mode), it is always counted (and held), and the limit it would break returned.
    Admit admit(uint32_t slot, uint64_t id, const Limits& l, uint64_t now_us, uint32_t day, bool enforce);
    // Takes a concurrency unit without checking limits (a connection found already open).
    void hold(uint32_t slot) { slots_[slot].concurrent.fetch_add(1, std::memory_order_acq_rel); }
    // Gives back the concurrency unit of an admitted connection.
    void release(uint32_t slot);
    // Counts one message today (MAIL FROM); false when that breaks `daily` (it is counted anyway).
    bool count_message(uint32_t slot, uint32_t daily_limit, uint32_t day);

    // Read-only, from any thread.
    SourceView view(const IpAddr& a, const Limits& l, uint64_t now_us, uint32_t day) const;
    uint32_t capacity() const { return mask_ + 1; }
    size_t bytes() const { return sizeof(Slot) * capacity(); }
    uint32_t in_use() const;  // slots holding a source (a scan: control side, for figures)
    uint8_t v6_prefix() const { return v6_prefix_; }
    uint32_t max_flows() const { return max_flows_; }

  private:
    struct alignas(64) Slot {
        std::atomic<uint64_t> id{0};       // 0: free
        std::atomic<uint64_t> tat_us{0};   // GCRA theoretical arrival time
        std::atomic<uint64_t> daily{0};    // day << 32 | count
        std::atomic<uint64_t> last_us{0};  // last admission
        std::atomic<uint32_t> concurrent{0};
    };
    static_assert(sizeof(Slot) == kSlotBytes);

    bool idle(const Slot& s, uint64_t now_us, uint32_t day) const;
    const Slot* find(uint64_t id) const;

    uint32_t concurrency_cap(const Limits& l) const { return l.concurrent ? l.concurrent : max_flows_; }

    std::unique_ptr<Slot[]> slots_;
    uint32_t mask_;
    CookieKey key_;
    uint8_t v6_prefix_;
    uint32_t max_flows_;
};

// GCRA arithmetic, exposed for tests: the emission interval for `rate_per_min`, in microseconds.
inline uint64_t gcra_interval_us(uint32_t rate_per_min) {
    return rate_per_min ? 60'000'000ull / rate_per_min : 0;
}

}  // namespace portcullis
