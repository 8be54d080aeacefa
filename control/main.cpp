// portcullis: the daemon. The main lcore parses options, loads the approval store, brings the ports up,
// launches one worker per remaining lcore, then serves the control socket and reports counters until
// SIGINT/SIGTERM, when it stops the workers and the ports. Nothing is forwarded before the stored approvals
// are loaded, the rules compiled (in a child process: control/rules_compiler.hpp) and the tables' memory
// checked against what the machine has (control/memory_budget.hpp).
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <spdlog/async.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "control/audit.hpp"
#include "control/commands/control_plane.hpp"
#include "control/config.hpp"
#include "control/memory_budget.hpp"
#include "control/policy_builder.hpp"
#include "control/ports.hpp"
#include "control/publisher.hpp"
#include "control/rules.hpp"
#include "control/rules_compiler.hpp"
#include "control/server.hpp"
#include "control/source_stats.hpp"
#include "control/stats.hpp"
#include "control/store.hpp"
#include "dataplane/events.hpp"
#include "dataplane/worker.hpp"

#include <rte_ring_elem.h>

namespace {

using namespace portcullis;

std::atomic<bool> g_stop{false};

extern "C" void on_signal(int) {
    g_stop.store(true);
}

int die(const std::string& msg, int code = 1) {
    std::fprintf(stderr, "portcullis: error: %s\n", msg.c_str());
    return code;
}

void setup_logging(const std::string& level) {
    spdlog::init_thread_pool(8192, 1);
    auto log = spdlog::create_async<spdlog::sinks::stdout_color_sink_mt>("portcullis");
    log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    log->set_level(spdlog::level::from_str(level));
    log->flush_on(spdlog::level::info);
    spdlog::set_default_logger(log);
}

bool write_ready_file(const std::string& path) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        out << "ready pid=" << getpid() << "\n";
        if (!out.flush()) return false;
    }
    return std::rename(tmp.c_str(), path.c_str()) == 0;
}

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

int run(int argc, char** argv) {
    // The daemon spawns itself to compile rules: that child does nothing else.
    if (argc > 1 && std::string(argv[1]) == kRulesCompilerArg) return rules_compiler_main(argc, argv);
    // EAL options come first, then "--", then ours. Without "--", --help/--version still answer.
    int split = argc;
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--") {
            split = i;
            break;
        }
    std::vector<std::string> own;
    if (split < argc) {
        own.assign(argv + split + 1, argv + argc);
    } else {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--help" || a == "-h" || a == "--version") own = {a};
        }
    }
    auto parsed = parse_config(own);
    if (parsed.status == ConfigResult::Status::Exit) {
        std::fputs(parsed.message.c_str(), stdout);
        return 0;
    }
    if (parsed.status == ConfigResult::Status::Error) return die(parsed.message, 2);
    parsed.config.cookie_key = [] {  // handshake cookies for action smtp: unpredictable, per start
        std::random_device rd;
        auto word = [&] { return (uint64_t{rd()} << 32) | rd(); };
        return CookieKey{word(), word()};
    }();
    const Config cfg = std::move(parsed.config);

    setup_logging(cfg.log_level);

    // State first: a daemon that cannot read its approvals or take its socket must not start forwarding.
    ApprovalStore store(cfg.state_dir);
    std::vector<std::string> warnings;
    if (auto err = store.open(warnings); !err.empty()) return die(err);
    for (const auto& w : warnings) spdlog::warn("{}", w);
    AuditLog audit(std::filesystem::path(cfg.state_dir) / "audit.log");
    if (auto err = audit.open(); !err.empty()) return die(err);
    ControlPlane* control = nullptr;
    ControlServer server(
        cfg.control_socket, cfg.control_group,
        [&](const std::string& line, const Peer& peer, Session& session) {
            return control->serve(line, peer, session);
        },
        ControlServer::Batch{[&] { control->begin_batch(); }, [&] { return control->end_batch(); }});
    if (auto err = server.listen(); !err.empty()) return die(err);
    const auto now_s = [] {
        return std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    };

    std::vector<char*> eal_args(argv, argv + split);
    if (rte_eal_init(static_cast<int>(eal_args.size()), eal_args.data()) < 0)
        return die(std::string("EAL initialisation failed: ") + rte_strerror(rte_errno));

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    const unsigned workers = rte_lcore_count() - 1;
    auto fail = [&](const std::string& msg) {
        rte_eal_cleanup();
        return die(msg);
    };
    if (workers == 0) return fail("no worker lcore: give the EAL at least two lcores (e.g. -l 0-1)");
    // The rules compile in a child process (the same path as `rules reload`) while the rest starts.
    RulesCompiler rules_compiler;
    std::shared_ptr<const InspectDb> rules;
    if (cfg.inspect && !cfg.rules_dir_given && !std::filesystem::is_directory(cfg.rules_dir)) {
        spdlog::warn("no rules directory {}: SMTP sessions are held to the built-in checks only",
                     cfg.rules_dir);
        rules = compile_rules({}, workers, cfg.inspect_stream_bytes).db;
    } else if (cfg.inspect) {
        rules_compiler.start(rules_job(cfg, workers));
    }
    // The tables must fit before anything is allocated or a port comes up: a daemon killed for want of memory
    // once it forwards says nothing.
    {
        const auto need = memory_needed(cfg, workers, mbuf_object_bytes());
        if (auto err = check_memory(need, memory_available(eal_free_bytes(), rte_eal_has_hugepages()));
            !err.empty()) {
            rules_compiler.cancel();
            rte_eal_cleanup();
            return die(err, 2);
        }
    }
    if (rules_compiler.busy()) {
        auto loaded = rules_compiler.wait();
        if (!loaded.db) {
            rte_eal_cleanup();
            return die(loaded.error, 2);
        }
        spdlog::info("{} inspection rule(s) from {} (compiled in {:.1f} s)", loaded.rules, cfg.rules_dir,
                     loaded.seconds);
        rules = loaded.db;
    }
    auto built = build_policy(cfg, &store, now_s(), rules);
    for (auto [key, port] : {std::pair{"inside", cfg.inside_port}, std::pair{"outside", cfg.outside_port}})
        if (!rte_eth_dev_is_valid_port(port))
            return fail(std::string(key) + ": port " + std::to_string(port) +
                        " does not exist; ports: " + describe_ports());

    rte_mempool* pool = rte_pktmbuf_pool_create("portcullis_mbufs", cfg.mbufs, 256, 0,
                                                RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
    if (!pool)
        return fail("mbufs: cannot create the pool of " + std::to_string(cfg.mbufs) +
                    " packet buffers: " + rte_strerror(rte_errno));
    for (auto port : {cfg.inside_port, cfg.outside_port}) {
        const auto err = port_start(port, static_cast<uint16_t>(workers), cfg.rx_desc, cfg.tx_desc, pool);
        if (!err.empty()) return fail(err);
    }

    {
        // Everything that lives in EAL memory (the RCU state) is destroyed at the end of this block, before
        // rte_eal_cleanup().
        PolicyPublisher publisher(workers, std::move(built.policy));
        std::vector<std::unique_ptr<Counters>> counters;
        std::vector<WorkerContext> contexts(workers);
        std::vector<const Counters*> counter_view;
        std::vector<rte_ring*> event_rings, observation_rings;
        SourceStats sources;
        // Connection tracking: one flow table per worker, one per-source limit table shared by all.
        const auto unix_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
        FlowView flow_view;
        flow_view.clock = Clock::make(rte_rdtsc(), rte_get_tsc_hz(), unix_us);
        SourceTable limit_table(cfg.max_sources, cfg.cookie_key, cfg.source_prefix_v6,
                                cfg.max_flows_per_source);
        flow_view.sources = &limit_table;
        std::vector<std::unique_ptr<FlowTracker>> trackers;
        std::vector<std::unique_ptr<Inspector>> inspectors;
        for (unsigned w = 0; w < workers; ++w) {
            const CookieKey flow_key{cfg.cookie_key.k0 ^ (0x9e3779b97f4a7c15ull * (w + 1)),
                                     cfg.cookie_key.k1 + w + 1};
            inspectors.push_back(
                cfg.inspect ? std::make_unique<Inspector>(cfg.max_inspected, cfg.inspect_stream_bytes)
                            : nullptr);
            flow_view.inspectors.push_back(inspectors.back().get());
            trackers.push_back(std::make_unique<FlowTracker>(
                cfg.max_flows, flow_key, &limit_table, cfg.timeouts, inspectors.back().get(),
                static_cast<uint16_t>(w), cfg.max_half_open_per_source));
            flow_view.trackers.push_back(trackers.back().get());
            if (cfg.bench_prefill_flows)
                trackers.back()->prefill(cfg.bench_prefill_flows, flow_view.clock.at(rte_rdtsc()));
        }
        unsigned q = 0, lcore;
        RTE_LCORE_FOREACH_WORKER(lcore) {
            counters.push_back(std::make_unique<Counters>());
            counter_view.push_back(counters.back().get());
            const std::string ring_name = "portcullis_ev" + std::to_string(q);
            rte_ring* ring =
                rte_ring_create_elem(ring_name.c_str(), sizeof(RefusalEvent), kEventRingSize,
                                     static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (!ring) spdlog::warn("no refusal event ring for worker {}: per-source figures are off", q);
            if (ring) event_rings.push_back(ring);
            const std::string obs_name = "portcullis_ob" + std::to_string(q);
            rte_ring* obs =
                rte_ring_create_elem(obs_name.c_str(), sizeof(ObservationEvent), kEventRingSize,
                                     static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (obs) observation_rings.push_back(obs);
            if (inspectors[q]) inspectors[q]->set_observations(obs);
            contexts[q] = WorkerContext{
                cfg.inside_port, cfg.outside_port,      static_cast<uint16_t>(q), &publisher.current(),
                &g_stop,         counters.back().get(), publisher.qsbr(),         ring,
                flow_view.clock, trackers[q].get()};
            publisher.register_worker(q);
            rte_eal_remote_launch(worker_main, &contexts[q], lcore);
            ++q;
        }

        ControlPlane plane(
            cfg, store, publisher, audit, [&] { return sum_counters(counter_view); },
            DaemonInfo{cfg.inside_port, cfg.outside_port, workers, now_s()}, &sources, &flow_view);
        control = &plane;
        plane.set_rules(rules);
        plane.set_rules_compiler(&rules_compiler);
        plane.republish(now_s());  // arms the expiry timer

        spdlog::info(
            "portcullis {} ready: inside port {} <-> outside port {}, {} worker(s); {} managed prefix(es), "
            "{} approved in the config, {} stored record(s), {} relay(s); refused attempts get {}; "
            "control socket {}",
            PORTCULLIS_VERSION, cfg.inside_port, cfg.outside_port, workers, cfg.managed_prefixes.size(),
            cfg.approved.size(), store.records().size(), cfg.relay_hosts.size(),
            cfg.action_unapproved == Action::Rst    ? "a TCP reset"
            : cfg.action_unapproved == Action::Smtp ? "an SMTP reply"
                                                    : "dropped",
            cfg.control_socket);
        if (!cfg.ready_file.empty() && !write_ready_file(cfg.ready_file))
            spdlog::warn("cannot write ready_file {}", cfg.ready_file);

        auto next_report = std::chrono::steady_clock::now() + std::chrono::seconds(cfg.stats_interval);
        FullTableWarning full_warning;
        while (!g_stop.load()) {
            // The daemon is the racks' uplink: nothing the control side meets may end it.
            try {
                server.poll_once(100);
                sources.drain(event_rings, now_s());
                sources.drain_observations(observation_rings);
                plane.tick(now_s());
            } catch (const std::exception& e) {
                spdlog::error("control loop: {} (carrying on)", e.what());
            } catch (...) {
                spdlog::error("control loop: unknown exception (carrying on)");
            }
            full_warning.check(sum_counters(counter_view), cfg);
            if (cfg.stats_interval && std::chrono::steady_clock::now() >= next_report) {
                spdlog::info("counters: {}", stats_line(sum_counters(counter_view)));
                next_report += std::chrono::seconds(cfg.stats_interval);
            }
        }

        spdlog::info("stopping");
        rte_eal_mp_wait_lcore();
        for (unsigned w = 0; w < workers; ++w) publisher.unregister_worker(w);
        if (!cfg.ready_file.empty()) std::filesystem::remove(cfg.ready_file);
        for (auto port : {cfg.inside_port, cfg.outside_port}) port_stop(port);
        spdlog::info("final counters:\n{}", stats_table(sum_counters(counter_view)));
        for (auto* ring : event_rings) rte_ring_free(ring);
        for (auto* ring : observation_rings) rte_ring_free(ring);
        control = nullptr;
    }
    spdlog::shutdown();
    rte_mempool_free(pool);
    rte_eal_cleanup();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    // Nothing escapes as std::terminate: an unexpected exception during start-up or shutdown is one line and
    // an exit code (the control loop catches its own and carries on).
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        return die(std::string("unexpected: ") + e.what());
    } catch (...) {
        return die("unexpected exception");
    }
}
