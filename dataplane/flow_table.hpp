// A worker's table of SMTP-class TCP flows, and the TCP state machine each entry follows.
//
// Why not rte_hash: a lookup here is one cache line. Entries live in the table itself (open addressing,
// linear probing, 64 bytes each), where rte_hash reads a bucket, then a key-store entry, then the caller's
// data array. Deletion shifts the following entries back (no tombstones), so probe sequences stay short at
// any age. The hash is SipHash-2-4 with a key random per start: the 4-tuples are chosen by the customers
// whose traffic is policed, and an unkeyed or linear hash (CRC) would let one of them build collision chains.
// Single writer: only the owning worker touches its table (the control thread reads only its size, relaxed).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

#include "dataplane/cookie.hpp"
#include "dataplane/parse.hpp"

namespace portcullis {

struct FlowKey {
    uint64_t client[2];  // the inside (rack) end: address (IPv4 in the low word), port
    uint64_t server[2];
    uint16_t cport, sport;
    uint8_t v6;
    uint8_t pad[3];
    bool operator==(const FlowKey&) const = default;
};
static_assert(sizeof(FlowKey) == 40);

// The key of the flow a segment belongs to: outbound segments run client -> server, inbound the reverse.
FlowKey flow_key(const Parsed& p, bool outbound);

enum class FlowState : uint8_t {
    Empty,        // a free table entry
    SynSent,      // the client's SYN seen
    SynRecv,      // the server's SYN-ACK seen (acknowledging the SYN)
    Established,  // the client acknowledged the server's SYN-ACK: a handshake the client really made
    Closing,      // a FIN from one side
    Closed,       // FINs from both sides, or a RST: lingers to absorb retransmissions, holds no limit unit
    Candidate,  // SMTP found by its commands on a port that is not an SMTP port, not yet acknowledged by the
                // server (a spoofed one-segment "session" never is): holds no source slot
};
const char* flow_state_name(FlowState s);
// Unconfirmed entries: cheap to make for anyone who can send a packet, so the first to go under pressure.
inline bool unconfirmed(FlowState s) {
    return s == FlowState::SynSent || s == FlowState::SynRecv || s == FlowState::Candidate;
}

// Two cache lines: the first holds what a lookup and the verdict need, the second the sequence space the
// normaliser checks segments against.
struct alignas(64) Flow {
    FlowKey key;
    uint32_t hash;       // the key's hash: its home slot, kept for deletion
    uint32_t expire_ms;  // Now::ms after which the entry goes
    uint32_t src_slot;   // the SourceTable slot it holds a concurrency unit in, or SourceTable::kNone
    uint32_t inspect;    // the Inspector slot reading it, or Inspector::kNone
    FlowState state;
    uint8_t fins;
    uint8_t ctl;          // flowctl bits
    uint8_t tcp;          // tcpctl bits
    uint32_t server_seq;  // a refused session: the sequence number the server's RST carries

    // The client's side (what the server has been sent in order).
    uint32_t client_next;  // the next client sequence number: data starting later is not forwarded
    uint32_t ts_recent;    // the client's latest timestamp value (tcpctl::kTs)
    uint32_t first_seq;    // a Candidate: the sequence number of its first command segment
    // The server's side.
    uint32_t server_next;  // the next server sequence number
    uint32_t server_ack;   // the highest acknowledgement from the server: its rcv_nxt
    uint32_t
        server_edge;     // the right edge of the server's receive window (ack + scaled window), highest seen
    uint32_t opened_ms;  // when the entry was made (early drop takes the oldest unconfirmed)
    uint16_t ho_index;   // its source's cell in the tracker's half-open counts
    uint8_t ttl;         // the TTL or hop limit the client's SYN came with
    uint8_t server_ws;   // the server's window scale (tcpctl::kWs)
    uint8_t client_ws;   // the client's offered window scale
    uint8_t pad1[27];
};

namespace flowctl {
inline constexpr uint8_t kDirect = 0x01;     // to a blocked port (direct-to-MX): the built-in checks apply
inline constexpr uint8_t kInspected = 0x02;  // inspection started (and maybe ended): not again
inline constexpr uint8_t kRefused = 0x04;    // refused mid-session for what it said
inline constexpr uint8_t kOtherPort = 0x08;  // found by its commands on a port that is not an SMTP port
inline constexpr uint8_t kHalfOpen = 0x10;   // counted in the tracker's per-source half-open figures
inline constexpr uint8_t kRelay = 0x20;      // to a relay host: relay limits
}  // namespace flowctl
namespace tcpctl {
inline constexpr uint8_t kServerSeq = 0x01;  // server_next/server_ack/server_wnd are known
inline constexpr uint8_t kTs = 0x02;         // timestamps negotiated: PAWS applies to the client's segments
inline constexpr uint8_t kWs = 0x04;         // window scaling negotiated
inline constexpr uint8_t kClientTs = 0x08;   // the client's SYN offered timestamps
inline constexpr uint8_t kClientWs = 0x10;   // the client's SYN offered window scaling
}  // namespace tcpctl
static_assert(sizeof(Flow) == 128);

class FlowTable {
  public:
    // Holds up to max_flows flows in a power-of-two array at most 3/4 full. Allocates: control side only.
    FlowTable(uint32_t max_flows, const CookieKey& hash_key);
    // The array's size for max_flows (what the constructor allocates: slots_for() * sizeof(Flow) bytes).
    static uint64_t slots_for(uint32_t max_flows) {
        uint64_t n = 1;
        while (n < std::max<uint64_t>(16, (uint64_t{max_flows} * 4 + 2) / 3)) n <<= 1;
        return n;
    }

    uint32_t hash(const FlowKey& k) const;
    Flow* find(const FlowKey& k, uint32_t h);
    // A new entry for k (absent), state Empty for the caller to fill; nullptr when max_flows are held.
    Flow* insert(const FlowKey& k, uint32_t h);
    // Early drop (as Linux conntrack does): with max_flows held, the unconfirmed entry closest to expiry (the
    // oldest: unconfirmed entries all have the half-open timeout) among the kEarlyDropScan after k's home
    // slot is passed to on_drop, removed, and k inserted in its place. nullptr when there is none (the table
    // is full of confirmed flows). The scan reads only the entries' first cache lines, contiguous in memory.
    static constexpr uint32_t kEarlyDropScan = 16;
    template <class F>
    Flow* insert_early_drop(const FlowKey& k, uint32_t h, F&& on_drop) {
        if (size() < max_) return insert(k, h);
        // Entries whose server never answered (SYN sent) go first, the oldest of them; then any unconfirmed.
        Flow* victim = nullptr;
        for (uint32_t n = 0, i = h & mask_; n < kEarlyDropScan; ++n, i = (i + 1) & mask_) {
            Flow& f = slots_[i];
            if (f.state == FlowState::Empty || !unconfirmed(f.state)) continue;
            const bool silent = f.state == FlowState::SynSent;
            const bool victim_silent = victim && victim->state == FlowState::SynSent;
            if (!victim || (silent && !victim_silent) ||
                (silent == victim_silent && static_cast<int32_t>(f.expire_ms - victim->expire_ms) < 0))
                victim = &f;
        }
        if (!victim) return nullptr;
        on_drop(*victim);
        erase(victim);
        return insert(k, h);
    }
    bool under_pressure() const { return uint64_t{size()} * 4 >= uint64_t{max_} * 3; }
    void erase(Flow* f) { erase_at(static_cast<uint32_t>(f - slots_.get())); }

    // Examines `budget` entries from where the last call stopped; calls on_expire(flow) for each entry whose
    // expiry has passed, then removes it.
    template <class F>
    void sweep(uint32_t now_ms, uint32_t budget, F&& on_expire) {
        while (budget--) {
            Flow& f = slots_[cursor_];
            if (f.state != FlowState::Empty && static_cast<int32_t>(now_ms - f.expire_ms) >= 0) {
                on_expire(f);
                erase_at(cursor_);  // an entry may move into this slot: look again next time round
            }
            cursor_ = (cursor_ + 1) & mask_;
        }
    }

    uint32_t size() const { return size_.load(std::memory_order_relaxed); }
    uint32_t max_flows() const { return max_; }
    uint32_t slots() const { return mask_ + 1; }
    size_t bytes() const { return sizeof(Flow) * slots(); }

  private:
    void erase_at(uint32_t i);

    std::unique_ptr<Flow[]> slots_;
    uint32_t mask_;
    uint32_t max_;
    std::atomic<uint32_t> size_{0};  // written by the worker only; read by the control thread
    uint32_t cursor_ = 0;
    CookieKey key_;
};

}  // namespace portcullis
