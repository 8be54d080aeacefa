// Most-specific-wins flattening: CIDR prefixes are either nested or disjoint, so a sweep over them sorted by
// (first address, widest first) with a stack of open prefixes yields, for every address, the innermost prefix
// covering it. Used to turn approval records (an approved /24 with a suspended /32 inside it, ...) into the
// plain "granted" address ranges the dataplane's bitmaps and interval sets hold. O(n) after sorting.
#pragma once

#include <vector>

#include "common/net_addr.hpp"

namespace portcullis {

struct PrefixSpan {
    u128 first, last;
    bool granted;
    uint32_t tag = 0;  // carried to the ranges it decides (e.g. an index of limit values)
};

struct AddrRange {
    u128 first, last;
    uint32_t tag = 0;
};

// spans: sorted by first ascending, then last descending (wider first), no duplicates.
// Returns the sorted ranges where the innermost span is granted, with its tag; adjacent ranges with the same
// tag are merged.
std::vector<AddrRange> flatten_innermost(const std::vector<PrefixSpan>& spans);

}  // namespace portcullis
