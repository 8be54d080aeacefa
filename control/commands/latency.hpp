// Control-command latency, per command, as a Prometheus histogram's buckets (portcullis_control_command_
// duration_seconds): how long the handler took, from the request's line to its reply, before the group
// commit; and how long each group commit's sync took. Control thread only.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace portcullis {

class LatencyHistogram {
  public:
    static constexpr std::array<double, 14> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                       0.025,  0.05,    0.1,    0.25,  0.5,    1.0,   2.5};
    void record(double seconds) {
        ++count_;
        sum_ += seconds;
        for (size_t i = 0; i < kBounds.size(); ++i)
            if (seconds <= kBounds[i]) ++buckets_[i];
    }
    uint64_t count() const { return count_; }
    double sum() const { return sum_; }
    uint64_t cumulative(size_t i) const { return buckets_[i]; }  // observations <= kBounds[i]

  private:
    std::array<uint64_t, kBounds.size()> buckets_{};
    uint64_t count_ = 0;
    double sum_ = 0;
};

struct ControlLatency {
    std::map<std::string, LatencyHistogram> by_command;  // known command names only, else "unknown"
    LatencyHistogram commit;                             // group commits that saved something
};

}  // namespace portcullis
