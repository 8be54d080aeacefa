// Option parsing and validation with Boost.Program_options (see config.hpp).
#include "control/config.hpp"

#include <unistd.h>

#include "api/approval.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

namespace po = boost::program_options;

namespace portcullis {

namespace {

constexpr const char* kDefaultReplyUnapproved =
    "550 5.7.1 Direct-to-MX mail (port 25) from this address is not approved by the provider; "
    "submit through your relay or port 587, or ask the provider to approve this server";
constexpr const char* kDefaultReplyConcurrent =
    "421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later";
constexpr const char* kDefaultReplyRate =
    "421 4.7.0 Too many new SMTP connections from this IP address in the last minute; please try again later";
constexpr const char* kDefaultReplyDaily =
    "421 4.7.0 This IP address has reached its daily sending limit; please try again tomorrow";
constexpr const char* kDefaultReplyBusy =
    "421 4.3.2 The provider's mail gateway is busy; please try again later";
constexpr const char* kDefaultReplyPayload =
    "550 5.7.1 This SMTP session breaks the provider's sending policy for this address";

// The config key of each ReplyReason's line, and its default.
constexpr std::array<std::pair<const char*, const char*>, kReplyReasons> kReplyKeys = {{
    {"reply_unapproved", kDefaultReplyUnapproved},
    {"reply_limit_concurrent", kDefaultReplyConcurrent},
    {"reply_limit_rate", kDefaultReplyRate},
    {"reply_limit_daily", kDefaultReplyDaily},
    {"reply_busy", kDefaultReplyBusy},
    {"reply_payload", kDefaultReplyPayload},
}};

struct ConfigError {
    std::string message;
};

po::options_description make_description() {
    po::options_description d("portcullis options (after the EAL options and \"--\")");
    // clang-format off
    d.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("config,c", po::value<std::string>(), "INI file with any of the options below (key = value); "
                                               "the command line overrides it")
        ("inside", po::value<unsigned>(), "DPDK port id facing the customer racks (required)")
        ("outside", po::value<unsigned>(), "DPDK port id facing the upstream (required)")
        ("managed_prefixes", po::value<std::vector<std::string>>(),
            "provider-owned IPv4/IPv6 CIDRs; the policy applies only to sources inside them "
            "(repeatable, or comma-separated; required)")
        ("blocked_ports", po::value<std::vector<std::string>>(),
            "outbound TCP ports refused to managed sources unless approved (default 25)")
        ("open_ports", po::value<std::vector<std::string>>(),
            "SMTP submission ports open to everyone (default 465,587)")
        ("relay_hosts", po::value<std::vector<std::string>>(),
            "the provider's relays/smarthosts (addresses or CIDRs): reachable on blocked ports by everyone")
        ("approved", po::value<std::vector<std::string>>(),
            "sources (addresses or CIDRs) approved to send on blocked ports")
        ("action_unapproved", po::value<std::string>()->default_value("rst"),
            "what a refused connection attempt gets: rst (TCP reset, the client fails at once), drop, or smtp "
            "(the gateway completes the handshake itself and answers with reply_unapproved, then closes)")
        ("action_limit", po::value<std::string>()->default_value("smtp"),
            "what a new SMTP connection over its source's limits (or with no room to track it) gets: "
            "smtp (a 421 reply the client's MTA logs and retries later), rst or drop")
        ("reply_unapproved", po::value<std::string>()->default_value(kDefaultReplyUnapproved),
            "the SMTP reply line for an unapproved port-25 attempt (action smtp): a 4xx or 5xx code, then text")
        ("reply_limit_concurrent", po::value<std::string>()->default_value(kDefaultReplyConcurrent),
            "the reply line for a connection over max_concurrent")
        ("reply_limit_rate", po::value<std::string>()->default_value(kDefaultReplyRate),
            "the reply line for a connection over the rate")
        ("reply_limit_daily", po::value<std::string>()->default_value(kDefaultReplyDaily),
            "the reply line for a connection over the daily volume")
        ("reply_busy", po::value<std::string>()->default_value(kDefaultReplyBusy),
            "the reply line for a connection the gateway has no room to track")
        ("reply_payload", po::value<std::string>()->default_value(kDefaultReplyPayload),
            "the reply line for a session whose commands break the policy (inspection)")
        ("max_concurrent", po::value<unsigned>()->default_value(10),
            "open SMTP connections per managed source at once (0: unlimited); an approval's own value wins")
        ("rate", po::value<std::string>()->default_value("60/min"),
            "new SMTP connections per managed source, e.g. 60/min or 600/h (0: unlimited); bursts of one "
            "minute's worth are allowed")
        ("daily", po::value<unsigned>()->default_value(0),
            "SMTP messages (connections, where the session cannot be read) per managed source per UTC day "
            "(0: unlimited)")
        ("relay_max_concurrent", po::value<unsigned>()->default_value(0),
            "max_concurrent for connections to relay hosts (0: unlimited)")
        ("relay_rate", po::value<std::string>()->default_value("0"), "rate for connections to relay hosts")
        ("relay_daily", po::value<unsigned>()->default_value(0), "daily for connections to relay hosts")
        ("max_flows", po::value<unsigned>()->default_value(262144),
            "SMTP connections each worker tracks at most (128 bytes each, table at most 3/4 full); a new "
            "connection finding the table full first pushes out the oldest unconfirmed one nearby (early drop), "
            "else gets action_limit with reply_busy")
        ("max_sources", po::value<unsigned>()->default_value(262144),
            "sources with limit state, shared by all workers (64 bytes each); a source gets one only once its "
            "handshake completes, and keeps it past its last connection only while a daily limit counts it")
        ("source_prefix_v6", po::value<unsigned>()->default_value(64),
            "IPv6 prefix length one source stands for in the limits (64: a customer's /64 is one sender)")
        ("max_flows_per_source", po::value<unsigned>()->default_value(1024),
            "connections one source may hold open where its limits set no max_concurrent (0: no cap)")
        ("max_half_open_per_source", po::value<unsigned>()->default_value(64),
            "half-open connections one source may hold per worker while the flow table is 3/4 full (0: no cap); "
            "more SYNs are dropped")
        ("flow_timeout_half_open", po::value<unsigned>()->default_value(30),
            "seconds a connection whose handshake has not completed is tracked (it holds no source slot)")
        ("flow_timeout_established", po::value<unsigned>()->default_value(1800),
            "seconds an idle open SMTP connection is tracked")
        ("flow_timeout_closing", po::value<unsigned>()->default_value(60),
            "seconds a half-closed connection is tracked, and a closed one lingers")
        ("inspect", po::value<bool>()->default_value(true),
            "read the client's SMTP commands (EHLO/HELO, MAIL FROM, the rules) and the server's replies, until the "
            "server accepts STARTTLS or implicit TLS; message bodies are skipped")
        ("rules_dir", po::value<std::string>()->default_value("/etc/portcullis/rules"),
            "directory of *.rules files (format: rules/README.md); 'portcullisctl rules reload' rereads it")
        ("max_rules", po::value<unsigned>()->default_value(5000),
            "rules in rules_dir at most: a larger set is refused, naming the file (Hyperscan's compile time grows "
            "faster than the number of rules: about 5 s for 5,000 on a small machine)")
        ("rules_compile_timeout", po::value<unsigned>()->default_value(60),
            "seconds a rule compile may take (in a child process, beside the control loop); a longer one is "
            "killed and the rules in force stay")
        ("action_payload", po::value<std::string>()->default_value("smtp"),
            "a session whose commands break the policy: smtp (a 550 5.7.1 line naming the reason, then the session "
            "is closed, the server reset), rst or drop")
        ("action_unreadable", po::value<std::string>()->default_value("smtp"),
            "a session that must be read but cannot be (see docs/security.md: budget, pool_full, gap, server_gap, "
            "desync, overlong, protocol, tls): smtp (the cause's reply line), rst or drop; "
            "action_unreadable_<cause> overrides it for one cause")
        ("ehlo_allow_literal", po::value<bool>()->default_value(false),
            "accept EHLO/HELO with an address literal ([192.0.2.1]) from direct-to-MX senders")
        ("smtp_other_ports", po::value<std::string>()->default_value("limit"),
            "SMTP found by its commands (EHLO, HELO, MAIL FROM) on a port that is not an SMTP port, from an "
            "unapproved managed source: allow (untouched), limit (tracked, limited, read, like 587) or refuse")
        ("inspect_bytes", po::value<unsigned>()->default_value(32768),
            "command bytes read at most per transaction (reset at each message's end); past it, a session that must "
            "be read (its approval names a host or domains, or rules are in force) is ended, others go unread")
        ("max_inspected", po::value<unsigned>()->default_value(16384),
            "sessions read at once per worker; with none free, a session that must be read is refused (421)")
        ("inspect_stream_bytes", po::value<unsigned>()->default_value(512),
            "Hyperscan stream state each read session may use; a rule set needing more is refused")
        ("bench_prefill_flows", po::value<unsigned>()->default_value(0),
            "benchmarks only (tools/bench): fill each worker's flow table with this many synthetic flows at start")
        ("monitor", po::value<bool>()->default_value(false),
            "true: count and report what would be refused, refuse nothing (a live 'portcullisctl monitor' wins)")
        ("stats_interval", po::value<unsigned>()->default_value(10),
            "seconds between counter log lines (0: only at exit)")
        ("log_level", po::value<std::string>()->default_value("info"), "trace, debug, info, warn, error")
        ("ready_file", po::value<std::string>(), "file written once the gateway forwards, removed at exit")
        ("control_socket", po::value<std::string>()->default_value("/run/portcullis/portcullis.sock"),
            "Unix socket portcullisctl talks to (mode 0660, directory 0750)")
        ("control_group", po::value<std::string>(), "group owning the control socket (default: the daemon's)")
        ("state_dir", po::value<std::string>()->default_value("/var/lib/portcullis"),
            "directory for approvals (snapshot + journal) and the audit log")
        ("store", po::value<std::string>()->default_value("local"),
            "local: approvals in state_dir alone; etcd: a fleet's shared set in etcd (state_dir keeps the last "
            "revision applied; docs/fleet.md)")
        ("etcd_endpoints", po::value<std::vector<std::string>>(),
            "store = etcd: the members' client URLs, comma-separated (http://host:2379 or https://...)")
        ("etcd_prefix", po::value<std::string>()->default_value("/portcullis/"), "store = etcd: the fleet's keys")
        ("gateway_name", po::value<std::string>(), "this gateway's name in the fleet and its audit (default: host name)")
        ("etcd_ca", po::value<std::string>(), "store = etcd: CA certificate (PEM) etcd's certificate is checked against")
        ("etcd_cert", po::value<std::string>(), "store = etcd: client certificate (PEM)")
        ("etcd_key", po::value<std::string>(), "store = etcd: the client certificate's key (PEM)")
        ("etcd_user", po::value<std::string>(), "store = etcd: user name (with etcd_password_file)")
        ("etcd_password_file", po::value<std::string>(), "store = etcd: a file holding the user's password")
        ("etcd_timeout_ms", po::value<unsigned>()->default_value(2000),
            "store = etcd: how long one request to etcd may take")
        ("idle_sleep_us", po::value<unsigned>()->default_value(0),
            "microseconds a worker sleeps after a pass with no packet (0: it polls without pause)")
        ("request_cooldown", po::value<unsigned>()->default_value(60),
            "days after a denial before the address may request port 25 again (staff may --force it)")
        ("complaints_ban", po::value<unsigned>()->default_value(3),
            "abuse complaints within complaints_window that ban an address automatically (0: never)")
        ("complaints_window", po::value<unsigned>()->default_value(30), "days complaints_ban counts back")
        ("remote_refusals_suspend", po::value<unsigned>()->default_value(0),
            "receivers' 5xx replies to a source's sessions within remote_refusals_window that suspend its approval "
            "(0: never)")
        ("remote_refusals_window", po::value<unsigned>()->default_value(3600),
            "seconds remote_refusals_suspend counts back")
        ("dns_check", po::value<bool>()->default_value(true),
            "check the PTR and A/AAAA of an approval's or a request's host name (forward-confirmed reverse DNS)")
        ("require_fcrdns", po::value<bool>()->default_value(false),
            "refuse an approval whose host name is not forward-confirmed (portcullisctl approve --require-fcrdns "
            "asks for one approval)")
        ("dns_servers", po::value<std::vector<std::string>>(),
            "resolvers for the DNS check: ADDR, ADDR:PORT or [V6]:PORT, comma-separated (default: the system's)")
        ("dns_timeout_ms", po::value<unsigned>()->default_value(3000), "how long the DNS check may take")
        ("metrics_listen", po::value<std::string>(),
            "ADDR:PORT ([V6]:PORT) serving Prometheus metrics at /metrics (default: off)")
        ("api_listen", po::value<std::string>(),
            "ADDR:PORT ([V6]:PORT) serving the HTTP API under /v1/ (default: off; docs/api.md)")
        ("api_tls_cert", po::value<std::string>(), "the API's TLS certificate chain (PEM); with api_tls_key: HTTPS")
        ("api_tls_key", po::value<std::string>(), "the API's TLS private key (PEM)")
        ("api_plaintext", po::value<bool>()->default_value(false),
            "allow the API without TLS on an address other than loopback (the tokens then cross in clear)")
        ("api_rate", po::value<unsigned>()->default_value(20),
            "API requests a second per token, in bursts of twice that; past it 429")
        ("api_timeout_ms", po::value<unsigned>()->default_value(10000),
            "how long an API client may take to send a whole request; a slower one is dropped")
        ("api_max_body", po::value<unsigned>()->default_value(65536), "the largest API request body, in bytes")
        ("events_file", po::value<std::string>(),
            "file the event stream (a JSON line per refusal) is appended to; reopened on SIGHUP (default: none)")
        ("events_syslog", po::value<bool>()->default_value(false), "the event stream to syslog (LOG_DAEMON) too")
        ("events_rate", po::value<unsigned>()->default_value(10000),
            "event lines a second at most (0: no cap); past it, one 'suppressed' line a second counts the rest")
        ("worker_stall_ms", po::value<unsigned>()->default_value(5000),
            "a worker making no progress this long stops the systemd watchdog's pings (systemd restarts the gateway)")
        ("allow_test_hooks", po::value<bool>()->default_value(false),
            "tests only: accept test_stall_worker on the control socket")
        ("rx_desc", po::value<unsigned>()->default_value(1024), "RX descriptors per queue")
        ("tx_desc", po::value<unsigned>()->default_value(1024), "TX descriptors per queue")
        ("mbufs", po::value<unsigned>()->default_value(16383), "packet buffers in the pool");
    // clang-format on
    for (size_t i = 0; i < kUnreadableCauses; ++i) {
        const std::string key =
            std::string("action_unreadable_") + unreadable_name(static_cast<Unreadable>(i));
        d.add_options()(key.c_str(), po::value<std::string>(), "action_unreadable for this cause alone");
    }
    return d;
}

// Values may be given as repeated keys and/or comma/space separated lists.
std::vector<std::string> split_list(const po::variables_map& vm, const char* key) {
    std::vector<std::string> out;
    if (!vm.count(key)) return out;
    for (const auto& v : vm[key].as<std::vector<std::string>>()) {
        std::string item;
        for (char ch : v + ",") {
            if (ch == ',' || ch == ' ' || ch == '\t') {
                if (!item.empty()) out.push_back(item);
                item.clear();
            } else {
                item += ch;
            }
        }
    }
    return out;
}

std::vector<Prefix> prefixes(const po::variables_map& vm, const char* key) {
    std::vector<Prefix> out;
    for (const auto& s : split_list(vm, key)) {
        std::string why;
        auto p = parse_prefix(s, &why);
        if (!p) throw ConfigError{std::string(key) + ": '" + s + "' " + why};
        out.push_back(*p);
    }
    return out;
}

std::vector<uint16_t> ports(const po::variables_map& vm, const char* key, std::vector<uint16_t> dflt) {
    if (!vm.count(key)) return dflt;
    std::vector<uint16_t> out;
    for (const auto& s : split_list(vm, key)) {
        unsigned v = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || end != s.data() + s.size() || v == 0 || v > 65535)
            throw ConfigError{std::string(key) + ": '" + s + "' is not a port number (1-65535)"};
        out.push_back(static_cast<uint16_t>(v));
    }
    return out;
}

}  // namespace

std::string check_dns_server(const std::string& s) {
    std::string host = s;
    if (!s.empty() && s.front() == '[') {
        const auto close = s.find(']');
        if (close == std::string::npos) return "'" + s + "': no closing ']'";
        host = s.substr(1, close - 1);
        if (close + 1 < s.size()) {
            if (s[close + 1] != ':') return "'" + s + "' is not [V6ADDR]:PORT";
            const std::string port = s.substr(close + 2);
            if (port.empty() || port.size() > 5 ||
                port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) == 0 ||
                std::stoul(port) > 65535)
                return "'" + s + "': bad port";
        }
        const auto a = parse_addr(host);
        return a && a->v6 ? "" : "'" + s + "': not an IPv6 address";
    }
    if (const auto colon = s.find(':');
        colon != std::string::npos && s.find(':', colon + 1) == std::string::npos) {
        host = s.substr(0, colon);
        const std::string port = s.substr(colon + 1);
        if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
            std::stoul(port) == 0 || std::stoul(port) > 65535)
            return "'" + s + "': bad port";
    }
    return parse_addr(host) ? "" : "'" + s + "' is not an address (ADDR, ADDR:PORT or [V6]:PORT)";
}

namespace {

// Whether a valid_listen() address is loopback (127.0.0.0/8, ::1).
bool loopback_listen(const std::string& v) {
    std::string host = v.substr(0, v.rfind(':'));
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const auto a = parse_addr(host);
    if (!a) return false;
    return a->v6 ? Prefix{*a, 128} == *parse_prefix("::1/128") : parse_prefix("127.0.0.0/8")->contains(*a);
}

// "192.0.2.1:9464" or "[2001:db8::1]:9464": an address and a port (0: any free one).
bool valid_listen(const std::string& v) {
    const auto colon = v.rfind(':');
    if (colon == std::string::npos || colon + 1 >= v.size() || v.size() - colon - 1 > 5) return false;
    const std::string port = v.substr(colon + 1);
    if (port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) return false;
    std::string host = v.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        const auto a = parse_addr(host);
        return a && a->v6;
    }
    const auto a = parse_addr(host);
    return a && !a->v6;
}

unsigned bounded(const po::variables_map& vm, const char* key, unsigned lo, unsigned hi) {
    const unsigned v = vm[key].as<unsigned>();
    if (v < lo || v > hi)
        throw ConfigError{std::string(key) + ": " + std::to_string(v) + " is out of range (" +
                          std::to_string(lo) + "-" + std::to_string(hi) + ")"};
    return v;
}

Action action_of(const po::variables_map& vm, const char* key) {
    const auto& action = vm[key].as<std::string>();
    if (action == "rst") return Action::Rst;
    if (action == "drop") return Action::Drop;
    if (action == "smtp") return Action::Smtp;
    throw ConfigError{std::string(key) + ": '" + action + "' is not one of rst, drop, smtp"};
}

uint32_t rate(const po::variables_map& vm, const char* key) {
    const auto& text = vm[key].as<std::string>();
    if (text == "0") return 0;
    const auto r = parse_rate(text);
    if (!r) throw ConfigError{std::string(key) + ": '" + text + "' is not a rate such as 60/min or 600/h"};
    return *r;
}

Config build(const po::variables_map& vm) {
    Config c;
    for (const char* key : {"inside", "outside"})
        if (!vm.count(key)) throw ConfigError{std::string(key) + ": required (a DPDK port id)"};
    c.inside_port = static_cast<uint16_t>(bounded(vm, "inside", 0, 1023));
    c.outside_port = static_cast<uint16_t>(bounded(vm, "outside", 0, 1023));
    if (c.inside_port == c.outside_port) throw ConfigError{"outside: must differ from inside"};
    c.managed_prefixes = prefixes(vm, "managed_prefixes");
    if (c.managed_prefixes.empty())
        throw ConfigError{"managed_prefixes: required (the provider's own prefixes the policy applies to)"};
    c.relay_hosts = prefixes(vm, "relay_hosts");
    c.approved = prefixes(vm, "approved");
    c.blocked_ports = ports(vm, "blocked_ports", {25});
    c.open_ports = ports(vm, "open_ports", {465, 587});
    for (auto b : c.blocked_ports)
        for (auto o : c.open_ports)
            if (b == o)
                throw ConfigError{"open_ports: port " + std::to_string(o) + " is also in blocked_ports"};
    c.action_unapproved = action_of(vm, "action_unapproved");
    c.action_limit = action_of(vm, "action_limit");
    for (unsigned i = 0; i < kReplyReasons; ++i) {
        const char* key = kReplyKeys[i].first;
        const auto& r = vm[key].as<std::string>();
        const bool code_ok = r.size() >= 4 && (r[0] == '4' || r[0] == '5') &&
                             std::isdigit(static_cast<unsigned char>(r[1])) &&
                             std::isdigit(static_cast<unsigned char>(r[2])) && r[3] == ' ';
        bool printable = r.size() <= 400;
        for (char ch : r) printable &= ch >= 0x20 && ch < 0x7f;
        if (!code_ok || !printable)
            throw ConfigError{std::string(key) +
                              ": must be one line of printable ASCII (at most 400 characters) "
                              "starting with a 4xx or 5xx code and a space, e.g. '421 4.7.0 ...'"};
        c.replies[i] = r;
    }
    c.default_limits = {bounded(vm, "max_concurrent", 0, 1'000'000), rate(vm, "rate"),
                        bounded(vm, "daily", 0, 1'000'000'000)};
    c.relay_limits = {bounded(vm, "relay_max_concurrent", 0, 1'000'000), rate(vm, "relay_rate"),
                      bounded(vm, "relay_daily", 0, 1'000'000'000)};
    // Hard bounds, past any deployment (64 Mi flows are 8 GiB a worker); whether the machine has the memory
    // for the values given is checked once the worker count is known (control/daemon/memory_budget.hpp).
    c.max_flows = bounded(vm, "max_flows", 16, 64u << 20);
    c.max_sources = bounded(vm, "max_sources", 64, 64u << 20);
    c.source_prefix_v6 = static_cast<uint8_t>(bounded(vm, "source_prefix_v6", 32, 128));
    c.max_flows_per_source = bounded(vm, "max_flows_per_source", 0, 64u << 20);
    c.max_half_open_per_source = bounded(vm, "max_half_open_per_source", 0, 65535);
    c.timeouts.half_open_ms = 1000 * bounded(vm, "flow_timeout_half_open", 1, 3600);
    c.timeouts.established_ms = 1000 * bounded(vm, "flow_timeout_established", 10, 7 * 86400);
    c.timeouts.closing_ms = 1000 * bounded(vm, "flow_timeout_closing", 1, 3600);
    c.bench_prefill_flows = bounded(vm, "bench_prefill_flows", 0, c.max_flows);
    c.inspect = vm["inspect"].as<bool>();
    c.rules_dir = vm["rules_dir"].as<std::string>();
    c.rules_dir_given = !vm["rules_dir"].defaulted();
    c.max_rules = bounded(vm, "max_rules", 1, 1'000'000);
    c.rules_compile_timeout = bounded(vm, "rules_compile_timeout", 1, 3600);
    c.action_payload = action_of(vm, "action_payload");
    {
        const Action all = action_of(vm, "action_unreadable");
        for (size_t i = 0; i < kUnreadableCauses; ++i) {
            const std::string key =
                std::string("action_unreadable_") + unreadable_name(static_cast<Unreadable>(i));
            c.action_unreadable[i] = vm.count(key) ? action_of(vm, key.c_str()) : all;
        }
    }
    c.ehlo_allow_literal = vm["ehlo_allow_literal"].as<bool>();
    {
        const auto& v = vm["smtp_other_ports"].as<std::string>();
        if (v == "allow")
            c.smtp_other_ports = OtherPorts::Allow;
        else if (v == "limit")
            c.smtp_other_ports = OtherPorts::Limit;
        else if (v == "refuse")
            c.smtp_other_ports = OtherPorts::Refuse;
        else
            throw ConfigError{"smtp_other_ports: '" + v + "' is not one of allow, limit, refuse"};
    }
    c.inspect_bytes = bounded(vm, "inspect_bytes", 64, 1u << 20);
    c.max_inspected = bounded(vm, "max_inspected", 16, 4u << 20);
    c.inspect_stream_bytes = bounded(vm, "inspect_stream_bytes", 64, 64u << 10);
    c.monitor = vm["monitor"].as<bool>();
    c.stats_interval = bounded(vm, "stats_interval", 0, 86400);
    c.log_level = vm["log_level"].as<std::string>();
    if (c.log_level != "trace" && c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
        c.log_level != "error")
        throw ConfigError{"log_level: '" + c.log_level + "' is not one of trace, debug, info, warn, error"};
    if (vm.count("ready_file")) c.ready_file = vm["ready_file"].as<std::string>();
    c.control_socket = vm["control_socket"].as<std::string>();
    if (c.control_socket.empty() || c.control_socket.size() > 100)
        throw ConfigError{"control_socket: must be a path of 1 to 100 characters"};
    if (vm.count("control_group")) c.control_group = vm["control_group"].as<std::string>();
    c.state_dir = vm["state_dir"].as<std::string>();
    if (c.state_dir.empty()) throw ConfigError{"state_dir: must not be empty"};
    c.store = vm["store"].as<std::string>();
    if (c.store != "local" && c.store != "etcd")
        throw ConfigError{"store: '" + c.store + "' is not one of local, etcd"};
    c.etcd_endpoints = split_list(vm, "etcd_endpoints");
    for (const auto& e : c.etcd_endpoints)
        if (!(e.starts_with("http://") || e.starts_with("https://")) || e.size() > 200 ||
            e.find_first_of(" \t\"'") != std::string::npos)
            throw ConfigError{"etcd_endpoints: '" + e.substr(0, 60) + "' is not an http:// or https:// URL"};
    if (c.store == "etcd" && c.etcd_endpoints.empty())
        throw ConfigError{"etcd_endpoints: store = etcd needs at least one endpoint"};
    c.etcd_prefix = vm["etcd_prefix"].as<std::string>();
    if (c.etcd_prefix.empty() || c.etcd_prefix.size() > 100 || c.etcd_prefix.back() != '/')
        throw ConfigError{"etcd_prefix: must be 1 to 100 characters ending in '/'"};
    if (vm.count("gateway_name")) {
        c.gateway_name = vm["gateway_name"].as<std::string>();
        if (c.gateway_name.empty() || c.gateway_name.size() > 64 ||
            c.gateway_name.find_first_not_of(
                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != std::string::npos)
            throw ConfigError{"gateway_name: 1 to 64 letters, digits, '.', '-' or '_'"};
    } else {
        char host[256] = {};
        c.gateway_name = ::gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "gateway";
    }
    for (auto [key, field] : {std::pair{"etcd_ca", &c.etcd_ca},
                              {"etcd_cert", &c.etcd_cert},
                              {"etcd_key", &c.etcd_key},
                              {"etcd_user", &c.etcd_user},
                              {"etcd_password_file", &c.etcd_password_file}})
        if (vm.count(key)) *field = vm[key].as<std::string>();
    if (c.etcd_cert.empty() != c.etcd_key.empty())
        throw ConfigError{"etcd_cert and etcd_key: give both or neither"};
    if (!c.etcd_user.empty() && c.etcd_password_file.empty())
        throw ConfigError{"etcd_user: needs etcd_password_file"};
    c.etcd_timeout_ms = bounded(vm, "etcd_timeout_ms", 100, 60000);
    c.idle_sleep_us = bounded(vm, "idle_sleep_us", 0, 100000);
    c.request_cooldown_days = bounded(vm, "request_cooldown", 0, 3650);
    c.complaints_ban = bounded(vm, "complaints_ban", 0, 1000);
    c.complaints_window_days = bounded(vm, "complaints_window", 1, 3650);
    c.remote_refusals_suspend = bounded(vm, "remote_refusals_suspend", 0, 100000);
    c.remote_refusals_window = bounded(vm, "remote_refusals_window", 1, 30 * 86400);
    c.dns_check = vm["dns_check"].as<bool>();
    c.require_fcrdns = vm["require_fcrdns"].as<bool>();
    c.dns_servers = split_list(vm, "dns_servers");
    for (const auto& s : c.dns_servers)
        if (auto err = check_dns_server(s); !err.empty()) throw ConfigError{"dns_servers: " + err};
    c.dns_timeout_ms = bounded(vm, "dns_timeout_ms", 100, 30000);
    if (vm.count("metrics_listen")) {
        c.metrics_listen = vm["metrics_listen"].as<std::string>();
        if (!valid_listen(c.metrics_listen))
            throw ConfigError{"metrics_listen: '" + c.metrics_listen.substr(0, 60) +
                              "' is not ADDR:PORT or [V6ADDR]:PORT"};
    }
    if (vm.count("api_listen")) {
        c.api_listen = vm["api_listen"].as<std::string>();
        if (!valid_listen(c.api_listen))
            throw ConfigError{"api_listen: '" + c.api_listen.substr(0, 60) +
                              "' is not ADDR:PORT or [V6ADDR]:PORT"};
    }
    for (auto [key, field] :
         {std::pair{"api_tls_cert", &c.api_tls_cert}, std::pair{"api_tls_key", &c.api_tls_key}})
        if (vm.count(key)) {
            *field = vm[key].as<std::string>();
            if (field->empty() || field->size() > 4000 || field->find('\0') != std::string::npos)
                throw ConfigError{std::string(key) + ": must be a path"};
        }
    if (c.api_tls_cert.empty() != c.api_tls_key.empty())
        throw ConfigError{"api_tls_cert and api_tls_key go together: set both for HTTPS, or neither"};
    c.api_plaintext = vm["api_plaintext"].as<bool>();
    if (!c.api_listen.empty() && c.api_tls_cert.empty() && !c.api_plaintext && !loopback_listen(c.api_listen))
        throw ConfigError{
            "api_listen: " + c.api_listen +
            " is not loopback and no api_tls_cert/api_tls_key is set: the tokens would cross in "
            "clear (set api_plaintext = true to accept that)"};
    c.api_rate = bounded(vm, "api_rate", 1, 100000);
    c.api_timeout_ms = bounded(vm, "api_timeout_ms", 100, 600000);
    c.api_max_body = bounded(vm, "api_max_body", 1024, 16 << 20);
    if (vm.count("events_file")) {
        c.events_file = vm["events_file"].as<std::string>();
        if (c.events_file.empty() || c.events_file.size() > 4000 ||
            c.events_file.find('\0') != std::string::npos)
            throw ConfigError{"events_file: must be a path"};
    }
    c.events_syslog = vm["events_syslog"].as<bool>();
    c.events_rate = bounded(vm, "events_rate", 0, 10'000'000);
    c.worker_stall_ms = bounded(vm, "worker_stall_ms", 100, 600000);
    c.allow_test_hooks = vm["allow_test_hooks"].as<bool>();
    c.rx_desc = static_cast<uint16_t>(bounded(vm, "rx_desc", 64, 16384));
    c.tx_desc = static_cast<uint16_t>(bounded(vm, "tx_desc", 64, 16384));
    c.mbufs = bounded(vm, "mbufs", 1023, 4u << 20);
    return c;
}

// Boost.Program_options fills its messages' %placeholders% by replacing each until none is left
// (error_with_option_name::replace_token), so an option name or value that holds a placeholder itself (a
// config line "x%original_token% = 1") makes what() loop for ever, growing the message. Such a message is
// rendered here instead, in one pass; every other keeps Boost's own text.
struct PoErrorAccess : po::error_with_option_name {
    static const std::map<std::string, std::string>& substitutions(const po::error_with_option_name& e) {
        return e.*(&PoErrorAccess::m_substitutions);
    }
};

std::string po_message(const po::error& e) {
    const auto* named = dynamic_cast<const po::error_with_option_name*>(&e);
    if (!named) return e.what();
    auto subs = PoErrorAccess::substitutions(*named);
    if (std::none_of(subs.begin(), subs.end(),
                     [](const auto& kv) { return kv.second.find('%') != std::string::npos; }))
        return e.what();
    subs["canonical_option"] = named->get_option_name();
    const std::string& tmpl = named->m_error_template;
    std::string out;
    for (size_t i = 0; i < tmpl.size();) {
        const size_t end = tmpl[i] == '%' ? tmpl.find('%', i + 1) : std::string::npos;
        if (end != std::string::npos)
            if (auto it = subs.find(tmpl.substr(i + 1, end - i - 1)); it != subs.end()) {
                out += it->second;
                i = end + 1;
                continue;
            }
        out += tmpl[i++];
    }
    return out;
}

}  // namespace

std::string config_help() {
    std::ostringstream os;
    os << "usage: portcullis [EAL options] -- [options]\n\n"
          "Inline gateway between customer racks (inside port) and the upstream (outside port). Forwards "
          "every\n"
          "frame unchanged, except outbound TCP to a blocked port (25) from a managed source that is not\n"
          "approved, which is refused.\n\n"
       << make_description();
    return os.str();
}

ConfigResult parse_config(const std::vector<std::string>& args) {
    ConfigResult r;
    const auto desc = make_description();
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(desc).run(), vm);
        if (vm.count("help")) return {ConfigResult::Status::Exit, config_help(), {}};
        if (vm.count("version"))
            return {ConfigResult::Status::Exit, "portcullis " PORTCULLIS_VERSION "\n", {}};
        if (vm.count("config")) {
            const auto& path = vm["config"].as<std::string>();
            std::ifstream in(path);
            if (!in) throw ConfigError{"config: cannot read '" + path + "'"};
            try {
                po::store(po::parse_config_file(in, desc, false), vm);
            } catch (const po::error& e) {
                throw ConfigError{path + ": " + po_message(e)};
            }
        }
        po::notify(vm);
        r.config = build(vm);
        r.status = ConfigResult::Status::Run;
    } catch (const ConfigError& e) {
        r.message = e.message;
    } catch (const po::error& e) {
        r.message = po_message(e);
    } catch (const std::exception& e) {  // anything else a value's parsing throws: still one line, no exit
        r.message = std::string("configuration: ") + e.what();
    }
    return r;
}

}  // namespace portcullis
