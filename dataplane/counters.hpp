// Per-worker packet counters, one per reason a packet went where it went. Each worker writes only its own
// block (no atomic read-modify-write, no shared cache line); the control thread sums the blocks to report.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "api/counter_catalogue.hpp"
#include "dataplane/cookie.hpp"
#include "dataplane/parse.hpp"

namespace portcullis {

enum class Ctr : uint16_t {
#define PORTCULLIS_ENUM(name, help) name,
    PORTCULLIS_COUNTERS(PORTCULLIS_ENUM)
#undef PORTCULLIS_ENUM
        count
};

static_assert(static_cast<size_t>(Ctr::count) == kCounterCount);

// The counter that records a given malformation; Malformation and the malformed_* counters share an order.
inline Ctr malformed_counter(Malformation m) {
    static_assert(static_cast<int>(Ctr::malformed_fragment_offset_one) -
                      static_cast<int>(Ctr::malformed_eth_truncated) ==
                  static_cast<int>(Malformation::FragmentOffsetOne) -
                      static_cast<int>(Malformation::EthTruncated));
    static_assert(
        static_cast<int>(Malformation::FragmentOffsetOne) + 1 == static_cast<int>(Malformation::Count),
        "the last malformation must have the last malformed_* counter");
    return static_cast<Ctr>(static_cast<int>(Ctr::malformed_eth_truncated) + static_cast<int>(m) -
                            static_cast<int>(Malformation::EthTruncated));
}

// The refusal_* counter of a ReplyReason: they share an order.
inline Ctr refusal_counter(ReplyReason r) {
    static_assert(static_cast<int>(Ctr::refusal_payload) - static_cast<int>(Ctr::refusal_unapproved) ==
                  static_cast<int>(ReplyReason::Payload) - static_cast<int>(ReplyReason::Unapproved));
    static_assert(static_cast<int>(ReplyReason::Payload) + 1 == static_cast<int>(ReplyReason::count));
    return static_cast<Ctr>(static_cast<int>(Ctr::refusal_unapproved) + static_cast<int>(r));
}

class alignas(64) Counters {
  public:
    // Single writer: a relaxed load + store compiles to a plain add, yet is a well-defined concurrent read.
    void add(Ctr c, uint64_t n = 1) {
        auto& v = v_[static_cast<size_t>(c)];
        v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t get(Ctr c) const { return v_[static_cast<size_t>(c)].load(std::memory_order_relaxed); }

  private:
    std::array<std::atomic<uint64_t>, kCounterCount> v_{};
};

}  // namespace portcullis
