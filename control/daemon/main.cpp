// portcullis: the daemon, as its start-up sequence. The main lcore parses options, loads the approval store,
// takes the control socket, brings the ports up, launches one worker per remaining lcore (control/workers.*),
// then serves the control socket and reports counters (control/control_loop.*) until SIGINT/SIGTERM, when it
// stops the workers and the ports. Nothing is forwarded before the stored approvals
// are loaded, the rules compiled (in a child process: control/policy/rules_compiler.hpp) and the tables'
// memory checked against what the machine has (control/daemon/memory_budget.hpp).
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

#include "control/api/desk.hpp"
#include "control/api/http_server.hpp"
#include "control/api/router.hpp"
#include "control/api/tokens.hpp"
#include "control/commands/control_plane.hpp"
#include "control/commands/request.hpp"
#include "control/config.hpp"
#include "control/daemon/control_loop.hpp"
#include "control/daemon/event_log.hpp"
#include "control/daemon/memory_budget.hpp"
#include "control/daemon/metrics.hpp"
#include "control/daemon/ports.hpp"
#include "control/daemon/source_stats.hpp"
#include "control/daemon/stats.hpp"
#include "control/daemon/telemetry.hpp"
#include "control/daemon/watchdog.hpp"
#include "control/daemon/workers.hpp"
#include "control/policy/policy_builder.hpp"
#include "control/policy/publisher.hpp"
#include "control/policy/rules.hpp"
#include "control/policy/rules_compiler.hpp"
#include "control/socket/control_socket.hpp"
#include "control/socket/server.hpp"
#include "control/store/audit.hpp"
#include "control/store/fleet.hpp"
#include "control/store/store.hpp"

namespace {

using namespace portcullis;

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reopen{false};

extern "C" void on_signal(int) {
    g_stop.store(true);
}

// SIGHUP (logrotate's postrotate): the events file is opened again at its path.
extern "C" void on_hangup(int) {
    g_reopen.store(true);
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

// EAL options come first, then "--", then ours. Without "--", --help/--version still answer.
struct Args {
    std::vector<char*> eal;
    std::vector<std::string> own;
};

Args split_args(int argc, char** argv) {
    int split = argc;
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--") {
            split = i;
            break;
        }
    Args a{std::vector<char*>(argv, argv + split), {}};
    if (split < argc) {
        a.own.assign(argv + split + 1, argv + argc);
    } else {
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg == "--help" || arg == "-h" || arg == "--version") a.own = {arg};
        }
    }
    return a;
}

// Handshake cookies for action smtp: unpredictable, per start.
CookieKey random_cookie_key() {
    std::random_device rd;
    auto word = [&] { return (uint64_t{rd()} << 32) | rd(); };
    return CookieKey{word(), word()};
}

// The rules in force at start: compiled in a child process (the same path as `rules reload`), started before
// the memory check and waited for after it. Empty result with *error set when they do not compile.
class StartupRules {
  public:
    StartupRules(const Config& cfg, unsigned workers, RulesCompiler& compiler) : compiler_(compiler) {
        if (cfg.inspect && !cfg.rules_dir_given && !std::filesystem::is_directory(cfg.rules_dir)) {
            spdlog::warn("no rules directory {}: SMTP sessions are held to the built-in checks only",
                         cfg.rules_dir);
            rules_ = compile_rules({}, workers, cfg.inspect_stream_bytes).db;
        } else if (cfg.inspect) {
            compiler_.start(rules_job(cfg, workers));
        }
    }
    std::shared_ptr<const InspectDb> wait(const Config& cfg, std::string* error) {
        if (!compiler_.busy()) return rules_;
        auto loaded = compiler_.wait();
        if (!loaded.db) {
            *error = loaded.error;
            return nullptr;
        }
        spdlog::info("{} inspection rule(s) from {} (compiled in {:.1f} s)", loaded.rules, cfg.rules_dir,
                     loaded.seconds);
        return rules_ = loaded.db;
    }

  private:
    RulesCompiler& compiler_;
    std::shared_ptr<const InspectDb> rules_;
};

void log_ready(const Config& cfg, unsigned workers, const ApprovalStore& store) {
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
}

// From the ports up to the stop: the workers launched on the policy, the control plane and its server, the
// control loop, then the workers stopped and the ports closed. Everything that lives in EAL memory (the RCU
// state, the rings) is gone when it returns, before rte_eal_cleanup().
// What the daemon serves and reports to besides its log and the control socket (each null when off): the
// event stream, /metrics, the HTTP API. Opened before the workers start, so that a path or an address it
// cannot use ends the start with one line. The API's parts go in this order and are stopped in the reverse:
// the server's thread first, then what it handed over.
struct Reporting {
    std::unique_ptr<EventLog> events;
    std::unique_ptr<MetricsEndpoint> metrics;
    std::unique_ptr<TokenStore> tokens;
    std::unique_ptr<ApiRouter> router;
    std::unique_ptr<ApiDesk> desk;
    std::unique_ptr<HttpServer> api;
    void stop_api() {
        if (api) api->stop();
        if (desk) desk->drop_all();
    }
    // Everything off, in the order that is safe (the server's connections go while its io_context lives).
    void reset() {
        stop_api();
        api.reset();
        desk.reset();
        router.reset();
        tokens.reset();
        metrics.reset();
        events.reset();
    }
    ~Reporting() { reset(); }
};

// The HTTP API (api_listen set): its tokens from state_dir, its server listening. "" or why not.
std::string start_api(const Config& cfg, AuditLog& audit, Reporting& r) {
    try {
        r.tokens = std::make_unique<TokenStore>(std::filesystem::path(cfg.state_dir) / "api_tokens.json");
        if (!r.tokens->broken().empty())
            spdlog::error("HTTP API: no tokens: {} (every API request is refused 401 until it is repaired)",
                          r.tokens->broken());
        r.router = std::make_unique<ApiRouter>(*r.tokens, audit, ApiRate{static_cast<double>(cfg.api_rate)});
        r.desk = std::make_unique<ApiDesk>(*r.router);
        HttpServerOptions o;
        o.listen = cfg.api_listen;
        o.tls_cert = cfg.api_tls_cert;
        o.tls_key = cfg.api_tls_key;
        o.max_body = cfg.api_max_body;
        o.request_timeout = std::chrono::milliseconds(cfg.api_timeout_ms);
        ApiDesk* desk = r.desk.get();
        r.api = std::make_unique<HttpServer>(o, [desk](HttpRequest req, HttpServer::Respond respond) {
            return desk->submit(std::move(req), std::move(respond));
        });
        spdlog::info("HTTP API at {}://{}/v1/ ({} token(s))", r.api->tls() ? "https" : "http", cfg.api_listen,
                     r.tokens->tokens().size());
        return {};
    } catch (const std::exception& e) {
        return e.what();
    }
}

void forward(const Config& cfg, unsigned count, ApprovalStore& store, AuditLog& audit, ControlSocket socket,
             RulesCompiler& rules_compiler, std::shared_ptr<const InspectDb> rules,
             std::unique_ptr<Policy> policy, Fleet* fleet, Reporting& reporting, const rte_mempool* pool) {
    PolicyPublisher publisher(count, std::move(policy));
    Workers workers(cfg, count, publisher, g_stop);
    workers.launch();
    register_telemetry([&] { return workers.totals(); });
    Watchdog watchdog(workers.pulses(), cfg.worker_stall_ms);

    SourceStats sources;
    Figures figures{[&] { return workers.totals(); },
                    DaemonInfo{cfg.inside_port, cfg.outside_port, count, now_s()}, &sources,
                    &workers.flow_view()};
    if (cfg.allow_test_hooks) {
        spdlog::warn("allow_test_hooks = true: test_stall_worker is accepted (never in production)");
        figures.stall_worker = [&](unsigned w, uint32_t ms) { return workers.stall(w, ms); };
    }
    ControlPlane plane(cfg, store, publisher, audit, std::move(figures));
    plane.set_rules(std::move(rules));
    plane.set_rules_compiler(&rules_compiler);
    plane.republish(now_s());  // arms the expiry timer
    if (fleet) {
        plane.set_fleet(fleet);
        fleet->start();
    }
    ControlServer server(
        std::move(socket),
        [&](const std::string& line, const Peer& peer, Session& session) {
            return plane.serve(line, peer, session);
        },
        ControlServer::Batch{[&] { plane.begin_batch(); }, [&] { return plane.end_batch(); },
                             [&] { return plane.take_changed(); }});
    if (fleet) server.add_wake_fd(fleet->wake_fd());
    if (reporting.desk) {
        server.add_wake_fd(reporting.desk->wake_fd());
        plane.set_tokens(reporting.tokens.get());
    }
    log_ready(cfg, count, store);
    watchdog.ready("forwarding, " + std::to_string(count) + " worker(s)");

    run_control_loop(
        cfg, server, plane, workers, sources,
        Observers{reporting.events.get(), reporting.metrics.get(), &watchdog, &store, pool, &g_reopen,
                  reporting.desk.get(), reporting.api ? &reporting.api->counters() : nullptr},
        g_stop);
    reporting.stop_api();  // before the control plane it hands requests to goes

    spdlog::info("stopping");
    watchdog.stopping();
    if (fleet) fleet->stop();
    unregister_telemetry();
    workers.stop();
    if (!cfg.ready_file.empty()) std::filesystem::remove(cfg.ready_file);
    for (auto port : {cfg.inside_port, cfg.outside_port}) port_stop(port);
    spdlog::info("final counters:\n{}", stats_table(workers.totals()));
}

int run(int argc, char** argv) {
    // The daemon spawns itself to compile rules: that child does nothing else.
    if (argc > 1 && std::string(argv[1]) == kRulesCompilerArg) return rules_compiler_main(argc, argv);
    Args args = split_args(argc, argv);
    auto parsed = parse_config(args.own);
    if (parsed.status == ConfigResult::Status::Exit) {
        std::fputs(parsed.message.c_str(), stdout);
        return 0;
    }
    if (parsed.status == ConfigResult::Status::Error) return die(parsed.message, 2);
    parsed.config.cookie_key = random_cookie_key();
    const Config cfg = std::move(parsed.config);
    setup_logging(cfg.log_level);

    // State first: a daemon that cannot read its approvals or take its socket must not start forwarding.
    ApprovalStore store(cfg.state_dir);
    std::vector<std::string> warnings;
    if (auto err = store.open(warnings); !err.empty()) return die(err);
    for (const auto& w : warnings) spdlog::warn("{}", w);
    AuditLog audit(std::filesystem::path(cfg.state_dir) / "audit.log");
    if (auto err = audit.open(); !err.empty()) return die(err);
    // store = etcd: the local store is the replica of the fleet's last revision applied, enforced from the
    // start (etcd may be away); changes go up to etcd first.
    std::unique_ptr<Fleet> fleet;
    if (cfg.store == "etcd") {
        std::string err;
        fleet = std::make_unique<Fleet>(cfg, store, &err);
        if (!err.empty()) return die(err, 2);
        store.set_upstream(fleet.get());
        spdlog::info("store: etcd at {} (prefix {}), as gateway {}; the replica holds revision {}",
                     cfg.etcd_endpoints.front(), cfg.etcd_prefix, cfg.gateway_name, store.fleet_revision());
    }
    ControlSocket socket(cfg.control_socket, cfg.control_group);
    if (auto err = socket.listen(); !err.empty()) return die(err);

    if (rte_eal_init(static_cast<int>(args.eal.size()), args.eal.data()) < 0)
        return die(std::string("EAL initialisation failed: ") + rte_strerror(rte_errno));
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGHUP, on_hangup);
    const auto fail = [&](const std::string& msg, int code = 1) {
        rte_eal_cleanup();
        return die(msg, code);
    };
    const unsigned workers = rte_lcore_count() - 1;
    if (workers == 0) return fail("no worker lcore: give the EAL at least two lcores (e.g. -l 0-1)");

    RulesCompiler rules_compiler;
    StartupRules startup_rules(cfg, workers, rules_compiler);
    // The tables must fit before anything is allocated or a port comes up: a daemon killed for want of memory
    // once it forwards says nothing.
    const auto need = memory_needed(cfg, workers, mbuf_object_bytes());
    if (auto err = check_memory(need, memory_available(eal_free_bytes(), rte_eal_has_hugepages()));
        !err.empty()) {
        rules_compiler.cancel();
        return fail(err, 2);
    }
    std::string rules_error;
    auto rules = startup_rules.wait(cfg, &rules_error);
    if (!rules_error.empty()) return fail(rules_error, 2);
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
    // After the EAL: the exposer's threads inherit the main lcore's core, never a worker's.
    Reporting reporting;
    reporting.events =
        std::make_unique<EventLog>(cfg.events_file, cfg.events_syslog, cfg.gateway_name, cfg.events_rate);
    if (auto err = reporting.events->open(); !err.empty()) return fail(err, 2);
    if (!cfg.metrics_listen.empty()) {
        try {
            reporting.metrics = std::make_unique<MetricsEndpoint>(cfg.metrics_listen);
            spdlog::info("metrics at http://{}/metrics", cfg.metrics_listen);
        } catch (const std::exception& e) {
            return fail(e.what(), 2);
        }
    }
    if (!cfg.api_listen.empty())
        if (auto err = start_api(cfg, audit, reporting); !err.empty()) return fail(err, 2);
    for (auto port : {cfg.inside_port, cfg.outside_port})
        if (const auto err = port_start(port, static_cast<uint16_t>(workers), cfg.rx_desc, cfg.tx_desc, pool);
            !err.empty())
            return fail(err);

    forward(cfg, workers, store, audit, std::move(socket), rules_compiler, std::move(rules),
            std::move(built.policy), fleet.get(), reporting, pool);
    reporting.reset();
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
