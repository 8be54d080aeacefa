// Option parsing and validation with Boost.Program_options (see config.hpp).
#include "control/config.hpp"

#include <boost/program_options.hpp>

#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

namespace po = boost::program_options;

namespace portcullis {

namespace {

constexpr const char* kDefaultReplyUnapproved =
    "550 5.7.1 Direct-to-MX mail (port 25) from this address is not approved by the provider; "
    "submit through your relay or port 587, or ask the provider to approve this server";

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
        ("reply_unapproved", po::value<std::string>()->default_value(kDefaultReplyUnapproved),
            "the SMTP reply line for action smtp: a 5xx or 4xx code, then text")
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
        ("rx_desc", po::value<unsigned>()->default_value(1024), "RX descriptors per queue")
        ("tx_desc", po::value<unsigned>()->default_value(1024), "TX descriptors per queue")
        ("mbufs", po::value<unsigned>()->default_value(16383), "packet buffers in the pool");
    // clang-format on
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

unsigned bounded(const po::variables_map& vm, const char* key, unsigned lo, unsigned hi) {
    const unsigned v = vm[key].as<unsigned>();
    if (v < lo || v > hi)
        throw ConfigError{std::string(key) + ": " + std::to_string(v) + " is out of range (" +
                          std::to_string(lo) + "-" + std::to_string(hi) + ")"};
    return v;
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
    const auto& action = vm["action_unapproved"].as<std::string>();
    if (action == "rst")
        c.action_unapproved = Action::Rst;
    else if (action == "drop")
        c.action_unapproved = Action::Drop;
    else if (action == "smtp")
        c.action_unapproved = Action::Smtp;
    else
        throw ConfigError{"action_unapproved: '" + action + "' is not one of rst, drop, smtp"};
    c.reply_unapproved = vm["reply_unapproved"].as<std::string>();
    const auto& r = c.reply_unapproved;
    const bool code_ok = r.size() >= 4 && (r[0] == '4' || r[0] == '5') &&
                         std::isdigit(static_cast<unsigned char>(r[1])) &&
                         std::isdigit(static_cast<unsigned char>(r[2])) && r[3] == ' ';
    bool printable = r.size() <= 400;
    for (char ch : r) printable &= ch >= 0x20 && ch < 0x7f;
    if (!code_ok || !printable)
        throw ConfigError{
            "reply_unapproved: must be one line of printable ASCII (at most 400 characters) "
            "starting with a 4xx or 5xx code and a space, e.g. '550 5.7.1 ...'"};
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
    c.rx_desc = static_cast<uint16_t>(bounded(vm, "rx_desc", 64, 16384));
    c.tx_desc = static_cast<uint16_t>(bounded(vm, "tx_desc", 64, 16384));
    c.mbufs = bounded(vm, "mbufs", 1023, 4u << 20);
    return c;
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
                throw ConfigError{path + ": " + e.what()};
            }
        }
        po::notify(vm);
        r.config = build(vm);
        r.status = ConfigResult::Status::Run;
    } catch (const ConfigError& e) {
        r.message = e.message;
    } catch (const po::error& e) {
        r.message = e.what();
    }
    return r;
}

}  // namespace portcullis
