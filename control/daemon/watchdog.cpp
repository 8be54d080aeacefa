// systemd readiness and watchdog (see watchdog.hpp).
#include "control/daemon/watchdog.hpp"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

namespace portcullis {

Watchdog::Watchdog(std::vector<const WorkerPulse*> pulses, uint32_t stall_ms)
    : pulses_(std::move(pulses)),
      last_beats_(pulses_.size(), 0),
      last_moved_(pulses_.size(), Clock::now()),
      stall_(stall_ms) {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) interval_ = std::chrono::microseconds(usec);
    if (interval_.count())
        spdlog::info("systemd watchdog every {} ms; a worker stalled for {} ms stops its pings",
                     interval_.count() / 1000, stall_ms);
}

void Watchdog::ready(const std::string& status) {
    sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%lu", status.c_str(), static_cast<unsigned long>(getpid()));
}

void Watchdog::status(const std::string& text) {
    sd_notifyf(0, "STATUS=%s", text.c_str());
}

void Watchdog::stopping() {
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

int Watchdog::tick() {
    const auto now = Clock::now();
    int stalled = -1;
    for (size_t w = 0; w < pulses_.size(); ++w) {
        const uint64_t beats = pulses_[w]->beats.load(std::memory_order_relaxed);
        if (beats != last_beats_[w]) {
            last_beats_[w] = beats;
            last_moved_[w] = now;
        } else if (now - last_moved_[w] > stall_ && stalled < 0) {
            stalled = static_cast<int>(w);
        }
    }
    if (stalled != stalled_) {
        if (stalled >= 0) {
            spdlog::error("worker {} has made no progress for {} ms: {}", stalled, stall_.count(),
                          interval_.count() ? "watchdog pings stop, systemd restarts the gateway"
                                            : "no systemd watchdog to restart the gateway");
            sd_notifyf(0, "STATUS=worker %d stalled", stalled);
        } else {
            spdlog::warn("every worker makes progress again");
            sd_notify(0, "STATUS=forwarding");
        }
        stalled_ = stalled;
    }
    if (interval_.count() && stalled < 0 && now >= next_ping_) {
        sd_notify(0, "WATCHDOG=1");
        next_ping_ = now + interval_ / 2;
    }
    return stalled;
}

}  // namespace portcullis
