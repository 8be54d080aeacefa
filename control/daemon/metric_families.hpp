// The gateway's Prometheus metrics, built from what the control side holds (docs/operations.md, "Metrics"):
// every packet counter as portcullis_*_total (families of related counters share one name with a label:
// refusals by reason, malformed frames by reason, frames by port), per-worker frame counts, the tables'
// gauges, the policy snapshot's generation and age, the fleet's revision and staleness, the mbuf pool, the
// event stream's figures and the control commands' latency. No label carries an address: per-address detail
// is the event stream's and `show`'s. A pure function of its input, so a test checks the text with promtool.
#pragma once

#include <prometheus/metric_family.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "control/commands/latency.hpp"
#include "control/daemon/stats.hpp"

namespace portcullis {

struct PortFigures {
    std::string name;  // "inside", "outside"
    uint64_t ipackets = 0, opackets = 0, ibytes = 0, obytes = 0, imissed = 0, ierrors = 0, oerrors = 0,
             rx_nombuf = 0;
};

struct MetricsInput {
    Totals totals{};
    std::vector<Totals> per_worker;
    std::vector<PortFigures> ports;
    nlohmann::json
        flows;  // the status reply's "flows" (tracked, max, inspected, inspected_max, sources, ...)
    nlohmann::json store;  // the status reply's "store" ({"store": "local"} or the fleet's status)
    std::vector<std::pair<std::string, uint64_t>> records_by_state;
    uint64_t policy_generation = 0;
    double policy_age_seconds = 0;
    uint64_t mbufs_in_use = 0, mbufs_total = 0;
    uint64_t events_written = 0, events_write_lost = 0, event_reopens = 0, events_suppressed = 0;
    bool events_enabled = false;
    double start_time_seconds = 0;
    std::string version;
    bool monitor = false;
    const ControlLatency* latency = nullptr;
    // The HTTP API (api_listen set): responses by status, and what its server dropped by why.
    bool api_enabled = false;
    std::vector<std::pair<int, uint64_t>> api_responses;
    std::vector<std::pair<std::string, uint64_t>>
        api_dropped;  // refused, timed_out, too_large, malformed, busy
    uint64_t api_connections = 0;
};

std::vector<prometheus::MetricFamily> build_metric_families(const MetricsInput& in);

// The families in Prometheus' text format (what /metrics serves).
std::string metrics_text(const std::vector<prometheus::MetricFamily>& families);

}  // namespace portcullis
