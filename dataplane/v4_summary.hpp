// A /16 summary in front of an IPv4 address set (a CRoaring bitmap): two bits per /16, "something in it" and
// "all of it". A lookup in a /16 the set covers wholly or not at all is one bit test in 16 KiB that stays in
// cache; only an address in a partly covered /16 asks the bitmap (whose lookup is a binary search over its
// containers, then inside one: tens of cycles and a few branch mispredictions). Every SMTP-port segment asks
// "managed?", "approved?" and "relay?", so under a SYN flood this is the difference between the set lookups
// dominating the packet path or not. Built on the control side with the snapshot; read-only after.
#pragma once

#include <bitset>
#include <cstdint>
#include <roaring/roaring.hh>

namespace portcullis {

class V4Summary {
  public:
    // Summarises `set` (the set must not change afterwards without a rebuild). Costs one iterator move and
    // two rank queries per /16 the set touches.
    void build(const ::Roaring& set) {
        any_.reset();
        full_.reset();
        roaring_uint32_iterator_t* it = roaring_create_iterator(&set.roaring);
        uint64_t cursor = 0;
        while (cursor <= UINT32_MAX &&
               roaring_move_uint32_iterator_equalorlarger(it, static_cast<uint32_t>(cursor))) {
            const uint32_t hi = it->current_value >> 16;
            const uint32_t first = hi << 16, last = first | 0xffffu;
            const uint64_t below = first ? set.rank(first - 1) : 0;
            any_.set(hi);
            if (set.rank(last) - below == 65536) full_.set(hi);
            cursor = uint64_t{last} + 1;
        }
        roaring_free_uint32_iterator(it);
        built_ = true;
    }
    // Whether `set` (the one summarised) holds a.
    [[gnu::always_inline]] bool contains(const ::Roaring& set, uint32_t a) const {
        if (!built_) [[unlikely]]
            return set.contains(a);
        const uint32_t hi = a >> 16;
        if (!any_.test(hi)) return false;
        if (full_.test(hi)) return true;
        return set.contains(a);
    }

  private:
    std::bitset<65536> any_, full_;
    bool built_ = false;
};

}  // namespace portcullis
