// Flattening of IPv6 prefixes into sorted, disjoint intervals (see prefix6_set.hpp).
#include "dataplane/prefix6_set.hpp"

namespace portcullis {

void Prefix6Set::seal() {
    auto all = std::move(pending_);
    pending_.clear();
    all.insert(all.end(), intervals_.begin(), intervals_.end());
    std::sort(all.begin(), all.end(), [](const Interval& a, const Interval& b) { return a.first < b.first; });
    intervals_.clear();
    for (const auto& iv : all) {
        if (!intervals_.empty()) {
            auto& back = intervals_.back();
            // Merge overlap or adjacency; back.last + 1 would overflow only at the very top of the space.
            if (iv.first <= back.last || (back.last != ~u128{0} && iv.first == back.last + 1)) {
                back.last = std::max(back.last, iv.last);
                continue;
            }
        }
        intervals_.push_back(iv);
    }
    intervals_.shrink_to_fit();
}

}  // namespace portcullis
