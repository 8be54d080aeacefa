// Worker time from the TSC: microseconds since the daemon started (for flow timeouts and rate limits) and the
// UTC day (for daily volumes). Converting is one 64x64->128 multiply and a shift, no system call.
#pragma once

#include <rte_cycles.h>

#include <cstdint>

#include "common/net_addr.hpp"

namespace portcullis {

struct Now {
    uint64_t us = 0;   // since the clock's start
    uint32_t ms = 0;   // the same, in milliseconds, wrapping (compare with int32_t differences)
    uint32_t day = 0;  // UTC days since 1970-01-01
};

struct Clock {
    uint64_t tsc0 = 0;     // TSC at start
    uint64_t us_mult = 0;  // microseconds per TSC tick, in 32.32 fixed point
    int64_t unix_us0 = 0;  // wall-clock microseconds at start

    static Clock make(uint64_t tsc_now, uint64_t tsc_hz, int64_t unix_us_now) {
        return Clock{tsc_now, static_cast<uint64_t>((static_cast<u128>(1'000'000) << 32) / tsc_hz),
                     unix_us_now};
    }
    Now at(uint64_t tsc) const {
        Now n;
        n.us = static_cast<uint64_t>((static_cast<u128>(tsc - tsc0) * us_mult) >> 32);
        n.ms = static_cast<uint32_t>(n.us / 1000);
        n.day = static_cast<uint32_t>((static_cast<uint64_t>(unix_us0) + n.us) / 86'400'000'000ull);
        return n;
    }
    // For tests and the control thread: a given offset since start.
    Now after_us(uint64_t us) const {
        Now n;
        n.us = us;
        n.ms = static_cast<uint32_t>(us / 1000);
        n.day = static_cast<uint32_t>((static_cast<uint64_t>(unix_us0) + us) / 86'400'000'000ull);
        return n;
    }
};

// The current time, read from the TSC at most once, at the first get(): a burst that needs no time (all of
// ordinary traffic) reads none. (rdtsc costs from tens to, under some hypervisors, thousands of cycles.)
class LazyNow {
  public:
    explicit LazyNow(const Clock& c) : clock_(&c) {}
    explicit LazyNow(const Now& fixed) : now_(fixed), ready_(true) {}
    const Now& get() {
        if (!ready_) [[unlikely]] {
            now_ = clock_->at(rte_rdtsc());
            ready_ = true;
        }
        return now_;
    }

  private:
    const Clock* clock_ = nullptr;
    Now now_;
    bool ready_ = false;
};

}  // namespace portcullis
