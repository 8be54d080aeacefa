// The daemon's own options (after the EAL's, past "--"), from the command line and an INI config file
// (--config); the command line wins over the file. Every value is validated here, before the EAL starts,
// so bad configuration ends with one line naming the key and never with a half-started daemon.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/net_addr.hpp"
#include "dataplane/flow_timeouts.hpp"
#include "dataplane/policy.hpp"

namespace portcullis {

struct Config {
    uint16_t inside_port = 0;
    uint16_t outside_port = 1;
    std::vector<Prefix> managed_prefixes;
    std::vector<Prefix> relay_hosts;
    std::vector<Prefix> approved;
    std::vector<uint16_t> blocked_ports;
    std::vector<uint16_t> open_ports;
    Action action_unapproved = Action::Rst;
    Action action_limit = Action::Smtp;
    ReplyLines replies;                      // the SMTP reply line per ReplyReason, for action smtp
    Limits default_limits;                   // per managed source; an approval's own values win
    Limits relay_limits;                     // connections to relay hosts
    uint32_t max_flows = 262144;             // tracked SMTP connections per worker
    uint32_t max_sources = 262144;           // sources with limit state, shared by the workers
    uint8_t source_prefix_v6 = 64;           // an IPv6 source is its /64
    uint32_t max_flows_per_source = 1024;    // open connections a source without max_concurrent may hold
    uint32_t max_half_open_per_source = 64;  // per worker, while the flow table is under pressure
    FlowTimeouts timeouts;
    uint32_t bench_prefill_flows = 0;  // benchmarks only: synthetic flows per worker at start
    // Inspection of SMTP sessions.
    bool inspect = true;
    std::string rules_dir = "/etc/portcullis/rules";
    bool rules_dir_given = false;         // set explicitly: a missing directory is an error, not a warning
    uint32_t max_rules = 5000;            // rules in rules_dir at most (a compile of 5,000 takes about 5 s)
    uint32_t rules_compile_timeout = 60;  // seconds a compile may take before it is killed
    Action action_payload = Action::Smtp;
    std::array<Action, kUnreadableCauses> action_unreadable = make_unreadable_actions();
    bool ehlo_allow_literal = false;
    OtherPorts smtp_other_ports = OtherPorts::Limit;
    uint32_t inspect_bytes = 32768;
    uint32_t max_inspected = 16384;       // sessions read at once, per worker
    uint32_t inspect_stream_bytes = 512;  // Hyperscan stream state per inspected session
    CookieKey cookie_key;                 // not an option: drawn at random by the daemon at start
    bool monitor = false;  // the default; portcullisctl monitor on|off changes it live (and it is stored)
    unsigned stats_interval = 10;  // seconds between counter log lines; 0 turns them off
    std::string log_level = "info";
    std::string ready_file;  // written once the gateway forwards; removed at exit
    std::string control_socket = "/run/portcullis/portcullis.sock";
    std::string control_group;  // group given the socket (0660); empty: the daemon's own
    std::string state_dir = "/var/lib/portcullis";
    // The approval store: "local" (state_dir alone) or "etcd" (a fleet's shared set; state_dir keeps the
    // last revision applied, docs/fleet.md).
    std::string store = "local";
    std::vector<std::string> etcd_endpoints;  // http(s)://host:port
    std::string etcd_prefix = "/portcullis/";
    std::string gateway_name;  // default: the host name
    std::string etcd_ca, etcd_cert, etcd_key, etcd_user, etcd_password_file;
    uint32_t etcd_timeout_ms = 2000;
    uint32_t idle_sleep_us = 0;  // a worker with nothing to do sleeps this long (0: it spins)
    // The approval lifecycle (docs/workflow.md).
    uint32_t request_cooldown_days = 60;  // a denied request may be made again after this many days
    uint32_t complaints_ban = 3;          // this many abuse complaints within the window ban (0: never)
    uint32_t complaints_window_days = 30;
    uint32_t remote_refusals_suspend = 0;    // receivers' 5xx replies within the window that suspend (0: off)
    uint32_t remote_refusals_window = 3600;  // seconds
    // Forward-confirmed reverse DNS of an approval's host name (control/dns/fcrdns.hpp).
    bool dns_check = true;                 // on approve and request with a host name
    bool require_fcrdns = false;           // an approval whose check fails is refused
    std::vector<std::string> dns_servers;  // ADDR[:PORT]; empty: the system's resolvers
    uint32_t dns_timeout_ms = 3000;
    // Observability (docs/operations.md).
    std::string metrics_listen;       // ADDR:PORT for /metrics; empty: off
    std::string events_file;          // the event stream's file; empty: none
    bool events_syslog = false;       // the event stream to syslog too
    uint32_t events_rate = 10000;     // lines a second at most (0: no cap); the rest summed up once a second
    uint32_t worker_stall_ms = 5000;  // a worker's heartbeat still this long stops the systemd watchdog
    bool allow_test_hooks = false;    // test_stall_worker (tests only)
    // The HTTP API for the provider's portal (docs/api.md).
    std::string api_listen;                 // ADDR:PORT; empty: off
    std::string api_tls_cert, api_tls_key;  // PEM files: HTTPS (both or neither)
    bool api_plaintext = false;             // plain HTTP on an address other than loopback (explicitly)
    uint32_t api_rate = 20;                 // requests a second per token (bursts of twice that)
    uint32_t api_timeout_ms = 10000;        // for a client to send a whole request (and read the response)
    size_t api_max_body = 65536;            // bytes
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    uint32_t mbufs = 16383;
};

struct ConfigResult {
    enum class Status { Run, Exit, Error } status = Status::Error;
    std::string message;  // help/version text for Exit, the one-line error for Error
    Config config;
};

// args: the daemon's options only (what follows "--"), without argv[0].
ConfigResult parse_config(const std::vector<std::string>& args);

// "" or why a dns_servers entry is not ADDR, ADDR:PORT or [V6]:PORT.
std::string check_dns_server(const std::string& s);

// The --help text.
std::string config_help();

}  // namespace portcullis
