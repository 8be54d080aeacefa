// An immutable set of IPv6 prefixes for per-packet membership tests.
//
// Why not a Roaring64Map of /64s: hosting customers get anything from a /128 to a /48, and keying on the
// upper 64 bits would widen a /128 approval to its whole /64. Prefixes are instead flattened, once, when a
// policy snapshot is built, into sorted, disjoint [first, last] intervals of 128-bit integers; a lookup is a
// binary search over one contiguous array: O(log n), no pointers to chase, no allocation, and 32 bytes per
// interval.
#pragma once

#include <algorithm>
#include <vector>

#include "common/net_addr.hpp"

namespace portcullis {

class Prefix6Set {
  public:
    struct Interval {
        u128 first;
        u128 last;
    };

    Prefix6Set() = default;
    // Adds a prefix; call seal() before lookups.
    void add(const Prefix& p) { pending_.push_back({p.first6(), p.last6()}); }
    void add_range(u128 first, u128 last) { pending_.push_back({first, last}); }
    // Sorts and merges overlapping or adjacent intervals.
    void seal();

    bool contains(u128 addr) const {
        // First interval whose start is past addr; the one before it is the only candidate.
        auto it = std::upper_bound(intervals_.begin(), intervals_.end(), addr,
                                   [](u128 a, const Interval& iv) { return a < iv.first; });
        return it != intervals_.begin() && addr <= std::prev(it)->last;
    }
    bool empty() const { return intervals_.empty(); }
    size_t interval_count() const { return intervals_.size(); }

  private:
    std::vector<Interval> pending_;
    std::vector<Interval> intervals_;
};

}  // namespace portcullis
