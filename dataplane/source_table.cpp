// Lock-free per-source accounting (see source_table.hpp).
#include "dataplane/source_table.hpp"

#include <algorithm>
#include <bit>

namespace portcullis {

namespace {
constexpr auto kAcq = std::memory_order_acquire;
constexpr auto kRel = std::memory_order_release;
constexpr auto kRlx = std::memory_order_relaxed;
constexpr auto kAcqRel = std::memory_order_acq_rel;

uint64_t pack_daily(uint32_t day, uint32_t count) {
    return (uint64_t{day} << 32) | count;
}
}  // namespace

SourceTable::SourceTable(uint32_t capacity, const CookieKey& key, uint8_t v6_prefix, uint32_t max_flows)
    : mask_(static_cast<uint32_t>(slots_for(capacity) - 1)),
      key_(key),
      v6_prefix_(v6_prefix < 1     ? 1
                 : v6_prefix > 128 ? 128
                                   : v6_prefix),
      max_flows_(max_flows) {
    slots_ = std::make_unique<Slot[]>(size_t{mask_} + 1);
}

uint64_t SourceTable::id_of(const IpAddr& a) const {
    uint8_t buf[17];
    u128 v = a.v6 ? a.v6addr : u128{a.v4};
    if (a.v6 && v6_prefix_ < 128) v &= ~((u128{1} << (128 - v6_prefix_)) - 1);  // the source's prefix
    const auto bytes = v6_to_bytes(v);
    std::copy(bytes.begin(), bytes.end(), buf);
    buf[16] = a.v6 ? 6 : 4;
    return siphash24(key_, buf, sizeof buf) | 1;  // never 0, which marks a free slot
}

bool SourceTable::idle(const Slot& s, uint64_t now_us, uint32_t day) const {
    const uint64_t d = s.daily.load(kRlx);
    return s.concurrent.load(kRlx) == 0 && s.tat_us.load(kRlx) <= now_us &&
           (static_cast<uint32_t>(d >> 32) != day || static_cast<uint32_t>(d) == 0);
}

uint32_t SourceTable::acquire(uint64_t id, uint64_t now_us, uint32_t day, bool* reclaimed) {
    // The group: the id's bits above the way index (the low bit is always 1).
    const uint32_t base = static_cast<uint32_t>(id >> 1) & mask_ & ~(kWays - 1);
    for (uint32_t w = 0; w < kWays; ++w)
        if (slots_[base + w].id.load(kAcq) == id) return base + w;
    // Claim the first free way. Two workers claiming for the same source race for the same way; the loser
    // finds the winner's id there and shares it.
    for (uint32_t w = 0; w < kWays; ++w) {
        Slot& s = slots_[base + w];
        uint64_t expected = 0;
        if (s.id.load(kRlx) != 0 && s.id.load(kRlx) != id) continue;
        if (s.id.compare_exchange_strong(expected, id, kAcqRel)) {
            s.last_us.store(now_us, kRlx);
            return base + w;
        }
        if (expected == id) return base + w;
    }
    // Reuse an idle way.
    for (uint32_t w = 0; w < kWays; ++w) {
        Slot& s = slots_[base + w];
        uint64_t old = s.id.load(kAcq);
        if (!idle(s, now_us, day)) continue;
        if (s.id.compare_exchange_strong(old, id, kAcqRel)) {
            s.tat_us.store(0, kRlx);
            s.daily.store(0, kRlx);
            s.last_us.store(now_us, kRel);
            return base + w;
        }
    }
    // Reclaim the way idle longest that holds nothing but a daily count: the table is too small for the
    // day's senders, and losing one idle source's count beats refusing a sender that is here now.
    for (int attempt = 0; attempt < 2; ++attempt) {
        uint32_t victim = kNone;
        uint64_t oldest = UINT64_MAX;
        for (uint32_t w = 0; w < kWays; ++w) {
            const Slot& s = slots_[base + w];
            if (s.concurrent.load(kRlx) != 0 || s.tat_us.load(kRlx) > now_us) continue;
            const uint64_t last = s.last_us.load(kRlx);
            if (last < oldest) {
                oldest = last;
                victim = base + w;
            }
        }
        if (victim == kNone) return kNone;
        Slot& s = slots_[victim];
        uint64_t old = s.id.load(kAcq);
        if (s.concurrent.load(kRlx) == 0 && s.id.compare_exchange_strong(old, id, kAcqRel)) {
            s.tat_us.store(0, kRlx);
            s.daily.store(0, kRlx);
            s.last_us.store(now_us, kRel);
            if (reclaimed) *reclaimed = true;
            return victim;
        }
    }
    return kNone;
}

Admit SourceTable::peek(uint64_t id, const Limits& l, uint64_t now_us, uint32_t day) const {
    const Slot* s = find(id);
    if (!s) return Admit::Ok;
    const uint32_t cap = concurrency_cap(l);
    if (cap && s->concurrent.load(kRlx) >= cap) return Admit::Concurrency;
    if (l.rate_per_min) {
        const uint64_t t = gcra_interval_us(l.rate_per_min);
        const uint64_t tat = s->tat_us.load(kRlx);
        if (tat > now_us && tat - now_us > t * (l.rate_per_min - 1)) return Admit::Rate;
    }
    if (l.daily) {
        const uint64_t d = s->daily.load(kRlx);
        if (static_cast<uint32_t>(d >> 32) == day && static_cast<uint32_t>(d) >= l.daily) return Admit::Daily;
    }
    return Admit::Ok;
}

Admit SourceTable::admit(uint32_t slot, uint64_t id, const Limits& l, uint64_t now_us, uint32_t day,
                         bool enforce) {
    Slot& s = slots_[slot];
    Admit verdict = Admit::Ok;
    const uint32_t open = s.concurrent.fetch_add(1, kAcqRel) + 1;
    if (const uint32_t cap = concurrency_cap(l); cap && open > cap) {
        verdict = Admit::Concurrency;
        if (enforce) {
            s.concurrent.fetch_sub(1, kAcqRel);
            return verdict;
        }
    }
    if (l.rate_per_min) {
        // GCRA: admit when the theoretical arrival time is at most tau ahead of now; each admission pushes
        // it one emission interval further.
        const uint64_t t = gcra_interval_us(l.rate_per_min);
        const uint64_t tau = t * (l.rate_per_min - 1);
        uint64_t tat = s.tat_us.load(kRlx);
        for (;;) {
            const uint64_t from = std::max(tat, now_us);
            if (from - now_us > tau) {
                if (verdict == Admit::Ok) verdict = Admit::Rate;
                if (enforce) {
                    s.concurrent.fetch_sub(1, kAcqRel);
                    return verdict;
                }
            }
            if (s.tat_us.compare_exchange_weak(tat, from + t, kAcqRel)) break;
        }
    }
    // Daily volume: kept only where a daily limit applies (a source with none leaves no state for the day).
    uint64_t d = s.daily.load(kRlx);
    for (; l.daily;) {
        const uint32_t count = static_cast<uint32_t>(d >> 32) == day ? static_cast<uint32_t>(d) : 0;
        if (count >= l.daily) {
            if (verdict == Admit::Ok) verdict = Admit::Daily;
            if (enforce) {
                s.concurrent.fetch_sub(1, kAcqRel);
                return verdict;
            }
        }
        if (s.daily.compare_exchange_weak(d, pack_daily(day, count + 1), kAcqRel)) break;
    }
    s.last_us.store(now_us, kRlx);
    if (s.id.load(kAcq) != id) [[unlikely]] {  // the slot was reused for another source meanwhile
        s.concurrent.fetch_sub(1, kAcqRel);
        return Admit::NoSlot;
    }
    return verdict;
}

void SourceTable::release(uint32_t slot) {
    Slot& s = slots_[slot];
    uint32_t c = s.concurrent.load(kRlx);
    // Never below zero, whatever happened: a slot that leaked would otherwise stay busy for good.
    while (c && !s.concurrent.compare_exchange_weak(c, c - 1, kAcqRel)) {
    }
}

bool SourceTable::count_message(uint32_t slot, uint32_t daily_limit, uint32_t day) {
    if (!daily_limit) return true;  // no daily limit: no daily state
    Slot& s = slots_[slot];
    uint64_t d = s.daily.load(kRlx);
    for (;;) {
        const uint32_t count = static_cast<uint32_t>(d >> 32) == day ? static_cast<uint32_t>(d) : 0;
        if (s.daily.compare_exchange_weak(d, pack_daily(day, count + 1), kAcqRel))
            return !daily_limit || count < daily_limit;
    }
}

const SourceTable::Slot* SourceTable::find(uint64_t id) const {
    const uint32_t base = static_cast<uint32_t>(id >> 1) & mask_ & ~(kWays - 1);
    for (uint32_t w = 0; w < kWays; ++w)
        if (slots_[base + w].id.load(kAcq) == id) return &slots_[base + w];
    return nullptr;
}

SourceView SourceTable::view(const IpAddr& a, const Limits& l, uint64_t now_us, uint32_t day) const {
    SourceView v;
    const Slot* s = find(id_of(a));
    if (!s) return v;
    v.found = true;
    v.concurrent = s->concurrent.load(kRlx);
    const uint64_t tat = s->tat_us.load(kRlx);
    if (const uint64_t t = gcra_interval_us(l.rate_per_min); t && tat > now_us)
        v.rate_used = static_cast<uint32_t>((tat - now_us + t - 1) / t);
    const uint64_t d = s->daily.load(kRlx);
    if (static_cast<uint32_t>(d >> 32) == day) v.daily = static_cast<uint32_t>(d);
    return v;
}

uint32_t SourceTable::in_use() const {
    uint32_t n = 0;
    for (uint32_t i = 0; i <= mask_; ++i) n += slots_[i].id.load(kRlx) != 0;
    return n;
}

}  // namespace portcullis
