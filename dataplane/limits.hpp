// Per-source limit values and the table that says which apply to an address. The control side resolves
// every approval's overrides against the configured defaults when it builds a policy snapshot, so a worker
// looks up finished values: one binary search over sorted, disjoint address ranges (IPv4 addresses are held
// as 128-bit integers below 2^32 with a family flag), only when an SMTP connection is opened.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/net_addr.hpp"

namespace portcullis {

struct Limits {
    uint32_t concurrent = 0;    // open SMTP connections at once; 0: unlimited
    uint32_t rate_per_min = 0;  // new SMTP connections per minute (burst: one minute's worth); 0: unlimited
    uint32_t daily = 0;         // messages (or connections, where unreadable) per UTC day; 0: unlimited
    bool operator==(const Limits&) const = default;
};

// Values per address range: sorted, disjoint ranges (prefix_flatten's output) and a binary search.
template <class T>
class AddrMap {
  public:
    struct Range {
        u128 first, last;
        T value;
    };
    void assign(bool v6, std::vector<Range> ranges) { (v6 ? v6_ : v4_) = std::move(ranges); }

    // The value for `a`, or nullptr when no range covers it.
    const T* find(const IpAddr& a) const {
        const auto& v = a.v6 ? v6_ : v4_;
        const u128 key = a.v6 ? a.v6addr : u128{a.v4};
        auto it =
            std::upper_bound(v.begin(), v.end(), key, [](u128 k, const Range& r) { return k < r.first; });
        if (it == v.begin() || key > std::prev(it)->last) return nullptr;
        return &std::prev(it)->value;
    }
    const T& find(const IpAddr& a, const T& fallback) const {
        const T* v = find(a);
        return v ? *v : fallback;
    }
    size_t size() const { return v4_.size() + v6_.size(); }

  private:
    std::vector<Range> v4_, v6_;
};

using LimitMap = AddrMap<Limits>;

}  // namespace portcullis
