// Most-specific-wins flattening (see prefix_flatten.hpp).
#include "control/policy/prefix_flatten.hpp"

namespace portcullis {

std::vector<AddrRange> flatten_innermost(const std::vector<PrefixSpan>& spans) {
    std::vector<AddrRange> out;
    auto emit = [&](u128 a, u128 b, const PrefixSpan& s) {
        if (!s.granted || a > b) return;
        if (!out.empty() && out.back().tag == s.tag && out.back().last != ~u128{0} &&
            out.back().last + 1 == a)
            out.back().last = b;
        else
            out.push_back({a, b, s.tag});
    };
    std::vector<PrefixSpan> open;  // nested spans, innermost last
    u128 pos = 0;                  // first address not yet emitted
    for (const auto& s : spans) {
        while (!open.empty() && open.back().last < s.first) {
            const auto e = open.back();
            open.pop_back();
            emit(pos, e.last, e);
            pos = e.last + 1;  // e.last < s.first: cannot overflow
        }
        if (!open.empty() && pos < s.first) emit(pos, s.first - 1, open.back());
        pos = s.first;
        open.push_back(s);
    }
    bool done = false;
    while (!open.empty()) {
        const auto e = open.back();
        open.pop_back();
        if (!done && pos <= e.last) emit(pos, e.last, e);
        if (e.last == ~u128{0})
            done = true;
        else if (pos <= e.last)
            pos = e.last + 1;
    }
    return out;
}

}  // namespace portcullis
