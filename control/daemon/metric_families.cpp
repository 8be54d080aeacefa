// The gateway's Prometheus metrics (see metric_families.hpp).
#include "control/daemon/metric_families.hpp"

#include <prometheus/text_serializer.h>

#include <cstring>
#include <map>
#include <sstream>

#include "control/daemon/source_stats.hpp"

namespace portcullis {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric counter(double v, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    m.counter.value = v;
    return m;
}

ClientMetric gauge(double v, std::vector<ClientMetric::Label> labels = {}) {
    ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = v;
    return m;
}

// Counters of the catalogue that form one family with a label: the counter's name is the prefix and the
// label's value. Matched in this order; the rest become portcullis_<name>_total each.
struct Group {
    const char* prefix;
    const char* metric;
    const char* label;
    const char* help;
};
constexpr Group kGroups[] = {
    {"rx_", "portcullis_frames_received_total", "port", "Frames received, by port (inside: the racks)"},
    {"fwd_", "portcullis_frames_forwarded_total", "direction",
     "Frames forwarded, by direction (outbound: inside -> outside)"},
    {"tx_full_", "portcullis_tx_full_drops_total", "port", "Frames dropped: the port's TX queue was full"},
    {"malformed_", "portcullis_malformed_frames_total", "reason",
     "Malformed frames dropped, by what was wrong"},
    {"inspect_unreadable_", "portcullis_inspect_unreadable_total", "cause",
     "SMTP sessions found unreadable, by cause"},
    {"flows_expired_", "portcullis_flows_expired_total", "state",
     "Tracked SMTP connections released by a timeout, by the state they were in"},
};

bool is_refusal_reason(const std::string& name, std::string* reason) {
    for (unsigned r = 0; r < kReplyReasons; ++r)
        if (name == std::string("refusal_") + reason_name(static_cast<ReplyReason>(r))) {
            *reason = reason_name(static_cast<ReplyReason>(r));
            return true;
        }
    return false;
}

void packet_counters(const MetricsInput& in, std::vector<MetricFamily>& out) {
    std::map<std::string, MetricFamily> grouped;
    MetricFamily refusals{"portcullis_refusals_total",
                          "Refusals by reason (in monitor mode, would-be refusals): a connection attempt "
                          "refused or a session ended; they sum to portcullis_refusal_events_total",
                          MetricType::Counter,
                          {}};
    std::vector<MetricFamily> single;
    for (size_t i = 0; i < kCounterCount; ++i) {
        const std::string name = kCounterInfo[i].name;
        const double v = static_cast<double>(in.totals[i]);
        std::string reason;
        if (is_refusal_reason(name, &reason)) {
            refusals.metric.push_back(counter(v, {{"reason", reason}}));
            continue;
        }
        const Group* g = nullptr;
        for (const auto& candidate : kGroups)
            if (name.starts_with(candidate.prefix)) {
                g = &candidate;
                break;
            }
        if (g) {
            auto [it, fresh] = grouped.try_emplace(g->metric);
            if (fresh) it->second = MetricFamily{g->metric, g->help, MetricType::Counter, {}};
            it->second.metric.push_back(counter(v, {{g->label, name.substr(std::strlen(g->prefix))}}));
            continue;
        }
        const std::string metric =
            name == "refusals" ? "portcullis_refusal_events_total" : "portcullis_" + name + "_total";
        single.push_back(MetricFamily{metric, kCounterInfo[i].help, MetricType::Counter, {counter(v)}});
    }
    out.push_back(std::move(refusals));
    for (auto& [k, f] : grouped) out.push_back(std::move(f));
    for (auto& f : single) out.push_back(std::move(f));

    MetricFamily per_worker{"portcullis_worker_frames_received_total",
                            "Frames received, by worker and port (how evenly RSS spreads the load)",
                            MetricType::Counter,
                            {}};
    for (size_t w = 0; w < in.per_worker.size(); ++w)
        for (auto [port, c] : {std::pair{"inside", Ctr::rx_inside}, std::pair{"outside", Ctr::rx_outside}})
            per_worker.metric.push_back(counter(static_cast<double>(in.per_worker[w][static_cast<size_t>(c)]),
                                                {{"port", port}, {"worker", std::to_string(w)}}));
    out.push_back(std::move(per_worker));
}

void port_counters(const MetricsInput& in, std::vector<MetricFamily>& out) {
    MetricFamily packets{"portcullis_port_packets_total",
                         "Packets through the port's driver, by direction",
                         MetricType::Counter,
                         {}};
    MetricFamily bytes{"portcullis_port_bytes_total",
                       "Bytes through the port's driver, by direction",
                       MetricType::Counter,
                       {}};
    MetricFamily missed{"portcullis_port_missed_total",
                        "Packets the port dropped for want of a free RX descriptor (the workers fell behind)",
                        MetricType::Counter,
                        {}};
    MetricFamily errors{"portcullis_port_errors_total",
                        "Packets the port's driver counted in error",
                        MetricType::Counter,
                        {}};
    MetricFamily nombuf{"portcullis_port_rx_nombuf_total",
                        "RX failures for want of a packet buffer",
                        MetricType::Counter,
                        {}};
    for (const auto& p : in.ports) {
        packets.metric.push_back(
            counter(static_cast<double>(p.ipackets), {{"direction", "rx"}, {"port", p.name}}));
        packets.metric.push_back(
            counter(static_cast<double>(p.opackets), {{"direction", "tx"}, {"port", p.name}}));
        bytes.metric.push_back(
            counter(static_cast<double>(p.ibytes), {{"direction", "rx"}, {"port", p.name}}));
        bytes.metric.push_back(
            counter(static_cast<double>(p.obytes), {{"direction", "tx"}, {"port", p.name}}));
        missed.metric.push_back(counter(static_cast<double>(p.imissed), {{"port", p.name}}));
        errors.metric.push_back(
            counter(static_cast<double>(p.ierrors), {{"direction", "rx"}, {"port", p.name}}));
        errors.metric.push_back(
            counter(static_cast<double>(p.oerrors), {{"direction", "tx"}, {"port", p.name}}));
        nombuf.metric.push_back(counter(static_cast<double>(p.rx_nombuf), {{"port", p.name}}));
    }
    for (auto* f : {&packets, &bytes, &missed, &errors, &nombuf})
        if (!f->metric.empty()) out.push_back(std::move(*f));
}

double number(const nlohmann::json& j, const char* key) {
    if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
    return j[key].get<double>();
}

void gauges(const MetricsInput& in, std::vector<MetricFamily>& out) {
    auto one = [&](const char* name, const char* help, double v) {
        out.push_back(MetricFamily{name, help, MetricType::Gauge, {gauge(v)}});
    };
    one("portcullis_flows_tracked", "SMTP connections tracked now, all workers", number(in.flows, "tracked"));
    one("portcullis_flows_capacity", "SMTP connections the workers' flow tables hold at most",
        number(in.flows, "max"));
    one("portcullis_inspected_sessions", "SMTP sessions being read now", number(in.flows, "inspected"));
    one("portcullis_inspected_sessions_capacity", "SMTP sessions the workers can read at once",
        number(in.flows, "inspected_max"));
    one("portcullis_sources_tracked", "Sources with limit state now (open connections, rate, daily count)",
        number(in.flows, "sources"));
    one("portcullis_sources_capacity", "Sources the limit table holds at most",
        number(in.flows, "sources_max"));
    one("portcullis_policy_generation", "The policy snapshot in force: its generation",
        static_cast<double>(in.policy_generation));
    one("portcullis_policy_age_seconds", "Seconds since the policy snapshot in force was published",
        in.policy_age_seconds);
    one("portcullis_mbufs_in_use", "Packet buffers in use (in rings, queues and caches)",
        static_cast<double>(in.mbufs_in_use));
    one("portcullis_mbufs_capacity", "Packet buffers in the pool", static_cast<double>(in.mbufs_total));
    one("portcullis_monitor_mode", "1: monitor mode, refusals are counted and reported, not enforced",
        in.monitor ? 1 : 0);
    one("portcullis_start_time_seconds", "When the daemon started, unix seconds", in.start_time_seconds);
    out.push_back(MetricFamily{"portcullis_build_info",
                               "The daemon's version",
                               MetricType::Gauge,
                               {gauge(1, {{"version", in.version}})}});
    MetricFamily records{
        "portcullis_records", "Approval records in the store, by state", MetricType::Gauge, {}};
    for (const auto& [state, n] : in.records_by_state)
        records.metric.push_back(gauge(static_cast<double>(n), {{"state", state}}));
    out.push_back(std::move(records));
    if (in.store.is_object() && in.store.value("store", std::string("local")) == "etcd") {
        one("portcullis_store_revision", "store = etcd: the fleet's revision this gateway has applied",
            number(in.store, "revision"));
        one("portcullis_store_stale_seconds",
            "store = etcd: seconds since the gateway last knew itself in step with etcd (0: in step)",
            number(in.store, "stale_seconds"));
        one("portcullis_store_in_sync", "store = etcd: 1 when the replica follows etcd's watch",
            in.store.value("in_sync", false) ? 1 : 0);
    }
}

void events(const MetricsInput& in, std::vector<MetricFamily>& out) {
    if (!in.events_enabled) return;
    out.push_back(MetricFamily{"portcullis_events_written_total",
                               "Event stream lines written",
                               MetricType::Counter,
                               {counter(static_cast<double>(in.events_written))}});
    out.push_back(MetricFamily{"portcullis_events_write_lost_total",
                               "Event stream lines lost to a failed write (a full disk)",
                               MetricType::Counter,
                               {counter(static_cast<double>(in.events_write_lost))}});
    out.push_back(MetricFamily{"portcullis_events_suppressed_total",
                               "Events over events_rate, counted in the stream's once-a-second summary lines",
                               MetricType::Counter,
                               {counter(static_cast<double>(in.events_suppressed))}});
    out.push_back(MetricFamily{"portcullis_events_file_reopens_total",
                               "events_file reopened (SIGHUP)",
                               MetricType::Counter,
                               {counter(static_cast<double>(in.event_reopens))}});
}

void api(const MetricsInput& in, std::vector<MetricFamily>& out) {
    if (!in.api_enabled) return;
    MetricFamily responses{
        "portcullis_api_responses_total", "HTTP API responses by status", MetricType::Counter, {}};
    for (const auto& [code, n] : in.api_responses)
        responses.metric.push_back(counter(static_cast<double>(n), {{"code", std::to_string(code)}}));
    out.push_back(std::move(responses));
    MetricFamily dropped{"portcullis_api_dropped_total",
                         "HTTP API connections or requests the server refused or dropped, by why",
                         MetricType::Counter,
                         {}};
    for (const auto& [why, n] : in.api_dropped)
        dropped.metric.push_back(counter(static_cast<double>(n), {{"reason", why}}));
    out.push_back(std::move(dropped));
    out.push_back(MetricFamily{"portcullis_api_connections_total",
                               "HTTP API connections accepted",
                               MetricType::Counter,
                               {counter(static_cast<double>(in.api_connections))}});
}

ClientMetric histogram(const LatencyHistogram& h, std::vector<ClientMetric::Label> labels) {
    ClientMetric m;
    m.label = std::move(labels);
    m.histogram.sample_count = h.count();
    m.histogram.sample_sum = h.sum();
    for (size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i)
        m.histogram.bucket.push_back({h.cumulative(i), LatencyHistogram::kBounds[i]});
    m.histogram.bucket.push_back({h.count(), std::numeric_limits<double>::infinity()});
    return m;
}

void latency(const MetricsInput& in, std::vector<MetricFamily>& out) {
    if (!in.latency) return;
    MetricFamily cmds{"portcullis_control_command_duration_seconds",
                      "Control commands: the handler's time, by command (before the group commit)",
                      MetricType::Histogram,
                      {}};
    for (const auto& [cmd, h] : in.latency->by_command)
        cmds.metric.push_back(histogram(h, {{"command", cmd}}));
    out.push_back(std::move(cmds));
    out.push_back(MetricFamily{"portcullis_control_commit_duration_seconds",
                               "Group commits of control changes: the time to make them durable",
                               MetricType::Histogram,
                               {histogram(in.latency->commit, {})}});
}

}  // namespace

std::vector<MetricFamily> build_metric_families(const MetricsInput& in) {
    std::vector<MetricFamily> out;
    packet_counters(in, out);
    port_counters(in, out);
    gauges(in, out);
    events(in, out);
    api(in, out);
    latency(in, out);
    // A family with no sample is left out (promtool and scrapers want none empty).
    std::erase_if(out, [](const MetricFamily& f) { return f.metric.empty(); });
    return out;
}

std::string metrics_text(const std::vector<MetricFamily>& families) {
    std::ostringstream os;
    prometheus::TextSerializer().Serialize(os, families);
    return os.str();
}

}  // namespace portcullis
