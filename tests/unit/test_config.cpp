// Configuration tests: what operators write, and the one-line errors for what they get wrong.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <tuple>

#include "control/config.hpp"

using namespace portcullis;

namespace {

ConfigResult parse(std::vector<std::string> args) {
    return parse_config(args);
}

std::vector<std::string> minimal() {
    return {"--inside", "0", "--outside", "1", "--managed_prefixes", "198.51.100.0/24"};
}

std::string error_of(std::vector<std::string> args) {
    const auto r = parse(std::move(args));
    EXPECT_EQ(r.status, ConfigResult::Status::Error);
    return r.message;
}

struct TempFile {
    std::string path;
    explicit TempFile(const std::string& text) {
        char tmpl[] = "/tmp/portcullis-test-XXXXXX";
        const int fd = mkstemp(tmpl);
        path = tmpl;
        ::close(fd);
        std::ofstream(path) << text;
    }
    ~TempFile() { std::remove(path.c_str()); }
};

TEST(Config, Defaults) {
    const auto r = parse(minimal());
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_EQ(r.config.blocked_ports, std::vector<uint16_t>{25});
    EXPECT_EQ(r.config.open_ports, (std::vector<uint16_t>{465, 587}));
    EXPECT_EQ(r.config.action_unapproved, Action::Rst);
}

TEST(Config, FileWithRepeatedAndCommaListsAndCommandLineOverride) {
    TempFile f(
        "# demo\n"
        "inside = 0\noutside = 1\n"
        "managed_prefixes = 198.51.100.0/25\nmanaged_prefixes = 2001:db8:100::/48\n"
        "approved = 198.51.100.10, 2001:db8:100::10\n"
        "blocked_ports = 25\nblocked_ports = 2525\n"
        "action_unapproved = drop\n");
    auto r = parse({"--config", f.path});
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_EQ(r.config.managed_prefixes.size(), 2u);
    EXPECT_EQ(r.config.approved.size(), 2u);
    EXPECT_EQ(r.config.blocked_ports, (std::vector<uint16_t>{25, 2525}));
    EXPECT_EQ(r.config.action_unapproved, Action::Drop);

    r = parse({"--config", f.path, "--action_unapproved", "rst", "--approved", "198.51.100.11"});
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_EQ(r.config.action_unapproved, Action::Rst);
    ASSERT_EQ(r.config.approved.size(), 1u);  // the command line replaces the file's list
    EXPECT_EQ(to_string(r.config.approved[0]), "198.51.100.11");
}

TEST(Config, UnknownKeyInFileNamesIt) {
    TempFile f("inside = 0\noutside = 1\nmanaged_prefixes = 198.51.100.0/24\napprove = 198.51.100.1\n");
    const auto msg = error_of({"--config", f.path});
    EXPECT_NE(msg.find("approve"), std::string::npos) << msg;
    EXPECT_NE(msg.find(f.path), std::string::npos) << msg;
}

TEST(Config, UnknownCommandLineOption) {
    auto args = minimal();
    args.push_back("--frobnicate");
    EXPECT_NE(error_of(args).find("frobnicate"), std::string::npos);
}

TEST(Config, BadCidrNamesKeyAndValue) {
    auto args = minimal();
    args.insert(args.end(), {"--approved", "198.51.100.10/33"});
    EXPECT_EQ(error_of(args), "approved: '198.51.100.10/33' prefix length over 32");
    args = minimal();
    args.insert(args.end(), {"--relay_hosts", "mail.example.com"});
    EXPECT_EQ(error_of(args), "relay_hosts: 'mail.example.com' not an IPv4 or IPv6 address");
}

TEST(Config, MissingRequired) {
    EXPECT_EQ(error_of({"--outside", "1", "--managed_prefixes", "198.51.100.0/24"}),
              "inside: required (a DPDK port id)");
    EXPECT_NE(error_of({"--inside", "0", "--outside", "1"}).find("managed_prefixes: required"),
              std::string::npos);
}

TEST(Config, BadPortsAndActions) {
    auto args = minimal();
    args.insert(args.end(), {"--blocked_ports", "25,70000"});
    EXPECT_EQ(error_of(args), "blocked_ports: '70000' is not a port number (1-65535)");
    args = minimal();
    args.insert(args.end(), {"--open_ports", "25"});
    EXPECT_EQ(error_of(args), "open_ports: port 25 is also in blocked_ports");
    args = minimal();
    args.insert(args.end(), {"--action_unapproved", "reject"});
    EXPECT_EQ(error_of(args), "action_unapproved: 'reject' is not one of rst, drop, smtp");
    EXPECT_EQ(error_of({"--inside", "0", "--outside", "0", "--managed_prefixes", "198.51.100.0/24"}),
              "outside: must differ from inside");
    args = minimal();
    args.insert(args.end(), {"--inside", "x"});
    EXPECT_FALSE(error_of(args).empty());
}

TEST(Config, LimitsTimeoutsAndReplies) {
    auto r = parse(minimal());
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_EQ(r.config.default_limits, (Limits{10, 60, 0})) << "the smarthost seed's 10 concurrent";
    EXPECT_EQ(r.config.relay_limits, Limits{});
    EXPECT_EQ(r.config.action_limit, Action::Smtp);
    EXPECT_EQ(r.config.replies[static_cast<size_t>(ReplyReason::Concurrency)],
              "421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later");
    auto args = minimal();
    args.insert(args.end(), {"--max_concurrent", "3", "--rate", "600/h", "--daily", "2000", "--action_limit",
                             "rst", "--flow_timeout_half_open", "5", "--max_flows", "1000"});
    r = parse(args);
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_EQ(r.config.default_limits, (Limits{3, 10, 2000}));
    EXPECT_EQ(r.config.action_limit, Action::Rst);
    EXPECT_EQ(r.config.timeouts.half_open_ms, 5000u);
    EXPECT_EQ(r.config.max_flows, 1000u);

    args = minimal();
    args.insert(args.end(), {"--rate", "lots"});
    EXPECT_EQ(error_of(args), "rate: 'lots' is not a rate such as 60/min or 600/h");
    args = minimal();
    args.insert(args.end(), {"--reply_limit_concurrent", "too many"});
    EXPECT_EQ(error_of(args).rfind("reply_limit_concurrent: must be one line", 0), 0u);
    args = minimal();
    args.insert(args.end(), {"--flow_timeout_half_open", "0"});
    EXPECT_EQ(error_of(args), "flow_timeout_half_open: 0 is out of range (1-3600)");
    args = minimal();
    args.insert(args.end(), {"--bench_prefill_flows", "300000"});
    EXPECT_EQ(error_of(args), "bench_prefill_flows: 300000 is out of range (0-262144)");
}

TEST(Config, InspectionKeys) {
    auto r = parse(minimal());
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_TRUE(r.config.inspect);
    EXPECT_EQ(r.config.action_payload, Action::Smtp);
    EXPECT_FALSE(r.config.rules_dir_given) << "a missing default directory is only a warning";
    auto args = minimal();
    args.insert(args.end(),
                {"--rules_dir", "/srv/rules", "--action_payload", "rst", "--inspect_bytes", "1024"});
    r = parse(args);
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_TRUE(r.config.rules_dir_given);
    EXPECT_EQ(r.config.action_payload, Action::Rst);
    EXPECT_EQ(r.config.inspect_bytes, 1024u);
    args = minimal();
    args.insert(args.end(), {"--action_payload", "quarantine"});
    EXPECT_EQ(error_of(args), "action_payload: 'quarantine' is not one of rst, drop, smtp");
    args = minimal();
    args.insert(args.end(), {"--inspect_bytes", "10"});
    EXPECT_EQ(error_of(args), "inspect_bytes: 10 is out of range (64-1048576)");
}

TEST(Config, RulesLimitsAndTableBounds) {
    auto r = parse(minimal());
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_EQ(r.config.max_rules, 5000u);
    EXPECT_EQ(r.config.rules_compile_timeout, 60u);
    auto args = minimal();
    args.insert(args.end(), {"--max_rules", "20000", "--rules_compile_timeout", "5"});
    r = parse(args);
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_EQ(r.config.max_rules, 20000u);
    EXPECT_EQ(r.config.rules_compile_timeout, 5u);
    for (auto [key, value, why] : {
             std::tuple{"--max_rules", "0", "max_rules: 0 is out of range (1-1000000)"},
             std::tuple{"--rules_compile_timeout", "0", "rules_compile_timeout: 0 is out of range (1-3600)"},
             std::tuple{"--max_flows", "4000000000", "max_flows: 4000000000 is out of range (16-67108864)"},
             std::tuple{"--max_sources", "100000000", "max_sources: 100000000 is out of range (64-67108864)"},
             std::tuple{"--max_inspected", "16777216",
                        "max_inspected: 16777216 is out of range (16-4194304)"},
             std::tuple{"--inspect_stream_bytes", "1048576",
                        "inspect_stream_bytes: 1048576 is out of range (64-65536)"},
         }) {
        args = minimal();
        args.insert(args.end(), {key, value});
        EXPECT_EQ(error_of(args), why);
    }
}

TEST(Config, ShippedExampleParses) {
    const auto r =
        parse({"--config", std::string(PORTCULLIS_SOURCE_DIR) + "/configs/portcullis.conf.example"});
    EXPECT_EQ(r.status, ConfigResult::Status::Run) << r.message;
}

TEST(Config, MissingFile) {
    EXPECT_EQ(error_of({"--config", "/nonexistent/portcullis.conf"}),
              "config: cannot read '/nonexistent/portcullis.conf'");
}

// Boost.Program_options on its own never finishes these messages: it replaces %placeholders% until none is
// left, and these names and values hold one (found by the fuzz target tests/fuzz/config.cpp).
TEST(Config, NamesAndValuesThatLookLikePlaceholdersEndTheirMessage) {
    const std::string base = "inside = 0\noutside = 1\nmanaged_prefixes = 198.51.100.0/24\n";
    TempFile name(base + "b%original_token%e = 1\n");
    EXPECT_EQ(error_of({"--config", name.path}), name.path + ": unrecognised option 'b%original_token%e'");
    TempFile value(base + "max_flows = 1%value%\n");
    EXPECT_EQ(error_of({"--config", value.path}),
              value.path + ": the argument ('1%value%') for option 'max_flows' is invalid");
    EXPECT_EQ(error_of({"--inside", "%canonical_option%", "--outside", "1"}),
              "the argument ('%canonical_option%') for option '--inside' is invalid");
    // Without a placeholder, Boost's own text.
    TempFile plain(base + "max_flows = 1%\n");
    EXPECT_EQ(error_of({"--config", plain.path}),
              plain.path + ": the argument ('1%') for option 'max_flows' is invalid");
}

TEST(Config, HelpListsEveryOption) {
    const auto r = parse({"--help"});
    ASSERT_EQ(r.status, ConfigResult::Status::Exit);
    for (auto key : {"inside", "outside", "managed_prefixes", "blocked_ports", "open_ports", "relay_hosts",
                     "approved", "action_unapproved", "stats_interval", "ready_file"})
        EXPECT_NE(r.message.find(key), std::string::npos) << key;
}

}  // namespace

TEST(Config, ObservabilityOptions) {
    auto args = minimal();
    const auto off = parse(args);
    ASSERT_EQ(off.status, ConfigResult::Status::Run);
    EXPECT_EQ(off.config.metrics_listen, "") << "metrics are off by default";
    EXPECT_EQ(off.config.events_file, "");
    EXPECT_FALSE(off.config.allow_test_hooks);
    EXPECT_EQ(off.config.worker_stall_ms, 5000u);
    for (const char* good : {"127.0.0.1:9464", "[::1]:9464", "192.0.2.1:0", "[2001:db8::1]:65535"}) {
        auto a = minimal();
        a.insert(a.end(), {"--metrics_listen", good});
        const auto r = parse(a);
        EXPECT_EQ(r.status, ConfigResult::Status::Run) << good << ": " << r.message;
        EXPECT_EQ(r.config.metrics_listen, good);
    }
    for (const char* bad : {"9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:65536", "::1:9464", "[::1]",
                            "[192.0.2.1]:80", "127.0.0.1:94x4", "127.0.0.1:1234567"}) {
        auto a = minimal();
        a.insert(a.end(), {"--metrics_listen", bad});
        EXPECT_EQ(error_of(a).rfind("metrics_listen: '", 0), 0u) << bad;
    }
    auto a = minimal();
    a.insert(a.end(), {"--worker_stall_ms", "10"});
    EXPECT_NE(error_of(a).find("worker_stall_ms"), std::string::npos);
    a = minimal();
    a.insert(a.end(), {"--events_syslog", "perhaps"});
    EXPECT_NE(error_of(a).find("events_syslog"), std::string::npos);
}

// The HTTP API: off by default; plain HTTP only on loopback unless the operator says so; TLS's two files
// together; its bounds within range.
TEST(Config, ApiOptions) {
    const auto off = parse(minimal());
    ASSERT_EQ(off.status, ConfigResult::Status::Run);
    EXPECT_EQ(off.config.api_listen, "") << "the API is off by default";
    EXPECT_EQ(off.config.api_rate, 20u);
    auto with = [](std::vector<std::string> extra) {
        auto a = minimal();
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    for (const char* loopback : {"127.0.0.1:8443", "127.9.9.9:1", "[::1]:8443", "[0:0:0:0:0:0:0:1]:8443"})
        EXPECT_EQ(parse(with({"--api_listen", loopback})).status, ConfigResult::Status::Run) << loopback;
    for (const char* outside : {"192.0.2.1:8443", "0.0.0.0:8443", "[::]:8443", "[2001:db8::1]:8443"}) {
        EXPECT_NE(error_of(with({"--api_listen", outside})).find("tokens would cross in clear"),
                  std::string::npos)
            << outside;
        EXPECT_EQ(parse(with({"--api_listen", outside, "--api_plaintext", "true"})).status,
                  ConfigResult::Status::Run);
        EXPECT_EQ(
            parse(with({"--api_listen", outside, "--api_tls_cert", "/c.pem", "--api_tls_key", "/k.pem"}))
                .status,
            ConfigResult::Status::Run);
    }
    EXPECT_NE(
        error_of(with({"--api_listen", "127.0.0.1:8443", "--api_tls_cert", "/c.pem"})).find("go together"),
        std::string::npos);
    EXPECT_EQ(error_of(with({"--api_listen", "localhost:8443"})).rfind("api_listen: '", 0), 0u);
    EXPECT_NE(error_of(with({"--api_rate", "0"})).find("api_rate"), std::string::npos);
    EXPECT_NE(error_of(with({"--api_timeout_ms", "1"})).find("api_timeout_ms"), std::string::npos);
    EXPECT_NE(error_of(with({"--api_max_body", "10"})).find("api_max_body"), std::string::npos);
    EXPECT_NE(error_of(with({"--api_tls_key", ""})).find("api_tls_key"), std::string::npos);
}

TEST(Config, LifecycleAndDnsOptions) {
    const auto d = parse(minimal());
    ASSERT_EQ(d.status, ConfigResult::Status::Run);
    EXPECT_EQ(d.config.request_cooldown_days, 60u);
    EXPECT_EQ(d.config.complaints_ban, 3u);
    EXPECT_EQ(d.config.complaints_window_days, 30u);
    EXPECT_TRUE(d.config.dns_check);
    EXPECT_FALSE(d.config.require_fcrdns);
    auto a = minimal();
    a.insert(a.end(), {"--dns_servers", "127.0.0.1:5353, 192.0.2.53", "--dns_servers", "[2001:db8::53]:53"});
    const auto r = parse(a);
    ASSERT_EQ(r.status, ConfigResult::Status::Run) << r.message;
    EXPECT_EQ(r.config.dns_servers,
              (std::vector<std::string>{"127.0.0.1:5353", "192.0.2.53", "[2001:db8::53]:53"}));
    for (const char* bad : {"ns1.example", "127.0.0.1:0", "127.0.0.1:99999", "[2001:db8::53",
                            "[192.0.2.1]:53", "2001:db8::53:53x"}) {
        a = minimal();
        a.insert(a.end(), {"--dns_servers", bad});
        EXPECT_EQ(error_of(a).rfind("dns_servers: ", 0), 0u) << bad;
    }
    a = minimal();
    a.insert(a.end(), {"--complaints_window", "0"});
    EXPECT_NE(error_of(a).find("complaints_window"), std::string::npos);
    a = minimal();
    a.insert(a.end(), {"--dns_timeout_ms", "5"});
    EXPECT_NE(error_of(a).find("dns_timeout_ms"), std::string::npos);
}
