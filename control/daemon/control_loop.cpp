// The control loop (see control_loop.hpp).
#include "control/daemon/control_loop.hpp"

#include "control/api/desk.hpp"
#include "control/api/http_server.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mempool.h>
#include <rte_ring_elem.h>

#include <map>

#include "api/approval.hpp"
#include "control/commands/request.hpp"
#include "control/daemon/event_log.hpp"
#include "control/daemon/metric_families.hpp"
#include "control/daemon/metrics.hpp"
#include "control/daemon/stats.hpp"
#include "control/daemon/telemetry.hpp"
#include "control/daemon/watchdog.hpp"
#include "control/store/store.hpp"
#include "dataplane/flow_tracker.hpp"

namespace portcullis {

namespace {

// A rate-limited warning (at most one every 10 s) when new connections were refused for want of room to
// track them: the workers only count it.
class FullTableWarning {
  public:
    void check(const Totals& t, const Config& cfg) {
        const auto now = std::chrono::steady_clock::now();
        if (now < next_) return;
        next_ = now + std::chrono::seconds(10);
        const uint64_t flows = t[static_cast<size_t>(Ctr::flow_table_full)];
        const uint64_t srcs = t[static_cast<size_t>(Ctr::source_table_full)];
        if (flows > flows_)
            spdlog::warn(
                "{} new SMTP connection(s) refused in the last 10 s: flow table full (max_flows = {} "
                "per worker); raise max_flows or lower flow_timeout_half_open",
                flows - flows_, cfg.max_flows);
        if (srcs > srcs_)
            spdlog::warn(
                "{} new SMTP connection(s) refused in the last 10 s: no per-source slot free "
                "(max_sources = {}); raise max_sources",
                srcs - srcs_, cfg.max_sources);
        flows_ = flows;
        srcs_ = srcs;
    }

  private:
    std::chrono::steady_clock::time_point next_{};
    uint64_t flows_ = 0, srcs_ = 0;
};

// The status DPDK telemetry serves (/portcullis/status): the headline of `portcullisctl status`, flat.
nlohmann::json telemetry_status(ControlPlane& plane) {
    static Session session;
    const nlohmann::json s = plane.handle(R"({"v":1,"cmd":"status"})", Peer{0, 0, 0, "telemetry"}, session);
    nlohmann::json out = nlohmann::json::object();
    for (const char* k :
         {"ready", "version", "uptime_s", "workers", "records", "policy_generation", "monitor"})
        if (s.contains(k)) out[k] = s[k];
    if (s.contains("store") && s["store"].is_object()) {
        const auto& st = s["store"];
        out["store"] = st.value("store", std::string("local"));
        for (const char* k : {"in_sync", "revision", "stale_seconds"})
            if (st.contains(k)) out[std::string("store_") + k] = st[k];
    }
    return out;
}

// The workers' events: observations first (a payload refusal's EHLO name is read before its event), then
// refusals, into the per-source figures and the event stream. At most one ring's worth a ring per pass, so a
// flood never holds the control socket up.
class EventDrain {
  public:
    EventDrain(const Config& cfg, const Workers& workers, SourceStats& sources, ControlPlane& plane,
               EventLog* log)
        : cfg_(cfg), workers_(workers), sources_(sources), plane_(plane), log_(log) {}

    void pass() {
        const int64_t wall_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
        const uint64_t clock_us = workers_.clock().at(rte_rdtsc()).us;
        const int64_t now = wall_us / 1'000'000;
        for (const auto& r : sources_.drain_observations(workers_.observation_rings(), now))
            remote(r, now, wall_us);
        RefusalEvent ev[64];
        for (auto* ring : workers_.event_rings()) {
            unsigned n, taken = 0;
            while (taken < kEventRingSize &&
                   (n = rte_ring_dequeue_burst_elem(ring, ev, sizeof(RefusalEvent), 64, nullptr)) > 0) {
                taken += n;
                for (unsigned i = 0; i < n; ++i) {
                    sources_.record(ev[i], now);
                    if (!log_ || !log_->enabled() || !is_stream_event(ev[i])) continue;
                    const int64_t at =
                        wall_us - static_cast<int64_t>(clock_us - std::min(clock_us, ev[i].us));
                    log_->add(ev[i], at, log_->wants(at) ? context(ev[i]) : EventContext{});
                }
            }
        }
        if (log_) log_->flush(wall_us);
    }

  private:
    // A receiver refused a source's session: the stream's line, and past remote_refusals_suspend within the
    // window, the source's approval suspended (once: it grants nothing after).
    void remote(const SourceStats::RemoteRefusal& r, int64_t now, int64_t wall_us) {
        if (log_ && log_->enabled())
            log_->add_remote(r.source, r.reply, wall_us, plane_.record_for(r.source));
        const uint32_t n = cfg_.remote_refusals_suspend;
        if (!n || sources_.remote_since(r.source, now - cfg_.remote_refusals_window) < n) return;
        const std::string done =
            plane_.auto_suspend(r.source, std::to_string(n) + " receiver refusals within " +
                                              std::to_string(cfg_.remote_refusals_window) +
                                              " s: " + sources_.remote_replies(r.source, 3));
        if (!done.empty()) spdlog::warn("remote_refusals_suspend: {}", done);
    }

    EventContext context(const RefusalEvent& e) {
        EventContext c;
        const IpAddr src = e.source();
        c.approval = plane_.record_for(src);
        if (e.reason == static_cast<uint8_t>(ReplyReason::Payload)) {
            const auto seen = sources_.seen(src);
            if (!seen["ehlo"].empty()) c.helo = seen["ehlo"][0];
            if (!seen["mail_from_domains"].empty()) c.mail_from = seen["mail_from_domains"][0];
            if (e.rule) {
                if (e.rule != rule_id_) {
                    rule_id_ = e.rule;
                    rule_text_ = plane_.rule_text(e.rule);
                }
                c.signature = rule_text_;
            }
        }
        return c;
    }

    const Config& cfg_;
    const Workers& workers_;
    SourceStats& sources_;
    ControlPlane& plane_;
    EventLog* log_;
    uint32_t rule_id_ = 0;
    std::string rule_text_;
};

// The metrics' input, gathered on the control thread once a second.
MetricsInput metrics_input(const Config& cfg, ControlPlane& plane, const Workers& workers,
                           const Observers& obs, double policy_age) {
    static Session session;
    const nlohmann::json st = plane.handle(R"({"v":1,"cmd":"status"})", Peer{0, 0, 0, "metrics"}, session);
    MetricsInput in;
    in.totals = workers.totals();
    for (unsigned w = 0; w < workers.count(); ++w) in.per_worker.push_back(workers.worker_totals(w));
    for (auto [name, port] : {std::pair{"inside", cfg.inside_port}, std::pair{"outside", cfg.outside_port}}) {
        rte_eth_stats s{};
        if (rte_eth_stats_get(port, &s) != 0) continue;
        in.ports.push_back(PortFigures{name, s.ipackets, s.opackets, s.ibytes, s.obytes, s.imissed, s.ierrors,
                                       s.oerrors, s.rx_nombuf});
    }
    in.flows = st.value("flows", nlohmann::json(nullptr));
    in.store = st.value("store", nlohmann::json(nullptr));
    in.policy_generation = st.value("policy_generation", uint64_t{0});
    in.policy_age_seconds = policy_age;
    in.monitor = st.value("monitor", false);
    in.version = PORTCULLIS_VERSION;
    in.start_time_seconds = static_cast<double>(now_s() - st.value("uptime_s", int64_t{0}));
    if (obs.store) {
        std::map<std::string, uint64_t> by_state;
        for (int st = 0; st < kStates; ++st) by_state[state_name(static_cast<ApprovalState>(st))] = 0;
        for (const auto& [p, a] : obs.store->records()) ++by_state[state_name(a.state)];
        in.records_by_state.assign(by_state.begin(), by_state.end());
    }
    if (obs.pool) {
        in.mbufs_total = obs.pool->size;
        in.mbufs_in_use = rte_mempool_in_use_count(obs.pool);
    }
    if (obs.events && obs.events->enabled()) {
        in.events_enabled = true;
        in.events_written = obs.events->written();
        in.events_write_lost = obs.events->lost();
        in.event_reopens = obs.events->reopens();
        in.events_suppressed = obs.events->suppressed();
    }
    in.latency = &plane.latency();
    if (obs.api) {
        in.api_enabled = true;
        in.api_responses.assign(obs.api->responses().begin(), obs.api->responses().end());
    }
    if (const auto* c = obs.api_server) {
        in.api_connections = c->connections.load();
        in.api_dropped = {{"refused", c->refused.load()},
                          {"timed_out", c->timed_out.load()},
                          {"too_large", c->too_large.load()},
                          {"malformed", c->malformed.load()},
                          {"busy", c->busy.load()}};
    }
    return in;
}

// systemd's STATUS= line while all is well (systemctl status shows it): the headline figures.
std::string status_line(const Workers& workers) {
    const Totals t = workers.totals();
    uint64_t tracked = 0;
    for (const auto* f : workers.flow_view().trackers) tracked += f->table().size();
    return "forwarding: " + std::to_string(t[static_cast<size_t>(Ctr::fwd_outbound)]) + " frames out, " +
           std::to_string(t[static_cast<size_t>(Ctr::refusals)]) + " refusals, " + std::to_string(tracked) +
           " SMTP connections tracked";
}

// Guards one once-a-second duty: an exception is logged, the loop goes on.
template <typename F>
void guarded(const char* what, F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        spdlog::error("{}: {}", what, e.what());
    }
}

}  // namespace

void run_control_loop(const Config& cfg, ControlServer& server, ControlPlane& plane, const Workers& workers,
                      SourceStats& sources, const Observers& obs, const std::atomic<bool>& stop) {
    using Steady = std::chrono::steady_clock;
    auto next_report = Steady::now() + std::chrono::seconds(cfg.stats_interval);
    FullTableWarning full_warning;
    EventDrain drain(cfg, workers, sources, plane, obs.events);
    auto next_second = Steady::now();
    uint64_t generation = UINT64_MAX, seconds = 0;
    auto published = Steady::now();
    while (!stop.load()) {
        try {
            // 10 ms at most between passes: the event rings (kEventRingSize a worker) are drained at least
            // a hundred times a second.
            server.poll_once(10);
            if (obs.api) obs.api->pump(plane);
            if (obs.reopen && obs.reopen->exchange(false) && obs.events) obs.events->reopen();
            drain.pass();
            plane.pump_fleet();
            plane.tick(now_s());
        } catch (const std::exception& e) {
            spdlog::error("control loop: {} (carrying on)", e.what());
        } catch (...) {
            spdlog::error("control loop: unknown exception (carrying on)");
        }
        const int stalled = obs.watchdog ? obs.watchdog->tick() : -1;
        full_warning.check(workers.totals(), cfg);
        if (Steady::now() >= next_second) {
            next_second += std::chrono::seconds(1);
            if (Steady::now() > next_second) next_second = Steady::now() + std::chrono::seconds(1);
            guarded("telemetry status", [&] { publish_telemetry_status(telemetry_status(plane)); });
            if (const uint64_t g = plane.policy_generation(); g != generation) {
                generation = g;
                published = Steady::now();
            }
            if (obs.watchdog && stalled < 0 && ++seconds % 10 == 0)
                guarded("systemd status", [&] { obs.watchdog->status(status_line(workers)); });
            if (obs.metrics)
                guarded("metrics", [&] {
                    const double age = std::chrono::duration<double>(Steady::now() - published).count();
                    obs.metrics->publish(build_metric_families(metrics_input(cfg, plane, workers, obs, age)));
                });
        }
        if (cfg.stats_interval && Steady::now() >= next_report) {
            spdlog::info("counters: {}", stats_line(workers.totals()));
            next_report += std::chrono::seconds(cfg.stats_interval);
        }
    }
}

}  // namespace portcullis
