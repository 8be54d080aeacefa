// systemd's service protocol (Type=notify, sd_notify(3) from libsystemd): READY=1 once the gateway forwards,
// STATUS= lines, STOPPING=1 at the end, and WATCHDOG=1 pings from the control loop while every worker makes
// progress. A worker whose heartbeat (WorkerPulse::beats, one per pass of its loop) has not moved for
// worker_stall_ms stops the pings: systemd (WatchdogSec=) then kills and restarts the gateway. Without
// NOTIFY_SOCKET (not under systemd) every call does nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/worker.hpp"

namespace portcullis {

class Watchdog {
  public:
    Watchdog(std::vector<const WorkerPulse*> pulses, uint32_t stall_ms);

    void ready(const std::string& status);
    void status(const std::string& text);
    void stopping();
    // Once per pass of the control loop: reads the heartbeats; pings when they all moved recently enough
    // and the watchdog's interval is half gone. Returns the index of a stalled worker, or -1.
    int tick();

  private:
    using Clock = std::chrono::steady_clock;
    std::vector<const WorkerPulse*> pulses_;
    std::vector<uint64_t> last_beats_;
    std::vector<Clock::time_point> last_moved_;
    std::chrono::milliseconds stall_;
    std::chrono::microseconds interval_{0};  // systemd's WATCHDOG_USEC; 0: no watchdog
    Clock::time_point next_ping_{};
    int stalled_ = -1;
};

}  // namespace portcullis
