// The control loop (see control_loop.hpp).
#include "control/daemon/control_loop.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

#include "control/commands/request.hpp"
#include "control/daemon/stats.hpp"
#include "control/daemon/telemetry.hpp"

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

}  // namespace

void run_control_loop(const Config& cfg, ControlServer& server, ControlPlane& plane, const Workers& workers,
                      SourceStats& sources, const std::atomic<bool>& stop) {
    auto next_report = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.stats_interval);
    FullTableWarning full_warning;
    auto next_status = std::chrono::steady_clock::now();
    while (!stop.load()) {
        try {
            server.poll_once(100);
            sources.drain(workers.event_rings(), now_s());
            sources.drain_observations(workers.observation_rings());
            plane.pump_fleet();
            plane.tick(now_s());
        } catch (const std::exception& e) {
            spdlog::error("control loop: {} (carrying on)", e.what());
        } catch (...) {
            spdlog::error("control loop: unknown exception (carrying on)");
        }
        full_warning.check(workers.totals(), cfg);
        if (std::chrono::steady_clock::now() >= next_status) {
            next_status += std::chrono::seconds(1);
            try {
                publish_telemetry_status(telemetry_status(plane));
            } catch (const std::exception& e) {
                spdlog::error("telemetry status: {}", e.what());
            }
        }
        if (cfg.stats_interval && std::chrono::steady_clock::now() >= next_report) {
            spdlog::info("counters: {}", stats_line(workers.totals()));
            next_report += std::chrono::seconds(cfg.stats_interval);
        }
    }
}

}  // namespace portcullis
