// The observability units on their own: an event's JSON line (field names, reasons, monitor mode, payload
// evidence), the events file (append, reopen after logrotate's move, a full disk), and the metric families
// (the refusals by reason sum to the total; promtool finds nothing wrong with the text).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "control/daemon/event_log.hpp"
#include "control/daemon/metric_families.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/policy.hpp"

using namespace portcullis;

namespace {

RefusalEvent event(const char* src, ReplyReason reason, uint8_t flags = 0) {
    RefusalEvent e{};
    const IpAddr a = *parse_addr(src);
    const IpAddr d = *parse_addr(a.v6 ? "2001:db8:ffff::25" : "203.0.113.25");
    e.v6 = a.v6;
    e.v4src = a.v4;
    e.v6src = a.v6addr;
    e.v4dst = d.v4;
    e.v6dst = d.v6addr;
    e.sport = 40000;
    e.dport = 25;
    e.syn = 1;
    e.reason = static_cast<uint8_t>(reason);
    e.action = static_cast<uint8_t>(Action::Smtp);
    e.flags = flags;
    return e;
}

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST(EventFormat, ARefusalCarriesEveFieldNames) {
    const auto j =
        format_event(event("198.51.100.20", ReplyReason::Unapproved), 1'796'580'000'123'456, {}, "gw1");
    EXPECT_EQ(j["timestamp"], "2026-12-06T18:00:00.123456Z");
    EXPECT_EQ(j["event_type"], "refusal");
    EXPECT_EQ(j["src_ip"], "198.51.100.20");
    EXPECT_EQ(j["src_port"], 40000);
    EXPECT_EQ(j["dest_ip"], "203.0.113.25");
    EXPECT_EQ(j["dest_port"], 25);
    EXPECT_EQ(j["proto"], "TCP");
    EXPECT_EQ(j["ip_version"], 4);
    EXPECT_EQ(j["reason"], "unapproved");
    EXPECT_EQ(j["action"], "blocked");
    EXPECT_EQ(j["answer"], "smtp");
    EXPECT_EQ(j["host"], "gw1");
    EXPECT_TRUE(j["approval"].is_null());
    EXPECT_FALSE(j.contains("smtp"));
    EXPECT_EQ(j.begin().key(), "timestamp") << "fields in a fixed order, the time first";
}

TEST(EventFormat, TheRecordThatAppliedNamesTheReason) {
    EventContext banned;
    banned.approval = {{"prefix", "198.51.100.0/24"}, {"state", "banned"}, {"ticket", "ABUSE-7"}};
    auto j = format_event(event("198.51.100.20", ReplyReason::Unapproved), 0, banned, "gw");
    EXPECT_EQ(j["reason"], "banned");
    EXPECT_EQ(j["approval"]["ticket"], "ABUSE-7");
    EventContext expired;
    expired.approval = {{"prefix", "198.51.100.20/32"}, {"state", "approved"}, {"ticket", ""}};
    EXPECT_EQ(format_event(event("198.51.100.20", ReplyReason::Unapproved), 0, expired, "gw")["reason"],
              "expired");
    // A limit refusal keeps its own reason; the approval is there for the ticket.
    j = format_event(event("198.51.100.20", ReplyReason::Concurrency), 0, expired, "gw");
    EXPECT_EQ(j["event_type"], "limit_refusal");
    EXPECT_EQ(j["reason"], "concurrency");
}

TEST(EventFormat, PayloadRefusalsCarryTheSessionAndTheRule) {
    RefusalEvent e = event("2001:db8:100::20", ReplyReason::Payload, kEventSession);
    e.syn = 0;
    e.rule = 1042;
    EventContext c;
    c.helo = "mail.example.net";
    c.mail_from = "example.org";
    c.signature = "550 5.7.1 spam run";
    const auto j = format_event(e, 0, c, "gw");
    EXPECT_TRUE(is_stream_event(e));
    EXPECT_EQ(j["event_type"], "payload_refusal");
    EXPECT_EQ(j["ip_version"], 6);
    EXPECT_EQ(j["dest_ip"], "2001:db8:ffff::25");
    EXPECT_EQ(j["stage"], "session");
    EXPECT_EQ(j["smtp"]["helo"], "mail.example.net");
    EXPECT_EQ(j["smtp"]["mail_from"], "example.org");
    EXPECT_EQ(j["alert"]["signature_id"], 1042);
    EXPECT_EQ(j["alert"]["signature"], "550 5.7.1 spam run");
}

TEST(EventFormat, MonitorModeSaysAllowed) {
    const auto j = format_event(event("198.51.100.20", ReplyReason::Rate, kEventMonitor), 0, {}, "gw");
    EXPECT_EQ(j["action"], "allowed");
    EXPECT_EQ(j["answer"], "none");
    RefusalEvent later = event("198.51.100.20", ReplyReason::Unapproved);
    later.syn = 0;
    EXPECT_FALSE(is_stream_event(later)) << "a refused connection's later segments are no new refusal";
}

TEST(EventLogFile, AppendsReopensAfterAMoveAndSurvivesAFullDisk) {
    const auto dir = std::filesystem::temp_directory_path() / ("pc_events_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const auto path = dir / "events.json";
    {
        EventLog log(path.string(), false, "gw");
        ASSERT_EQ(log.open(), "");
        log.add(event("198.51.100.20", ReplyReason::Unapproved), 0, {});
        log.add(event("198.51.100.21", ReplyReason::Daily), 0, {});
        log.flush(0);
        EXPECT_EQ(log.written(), 2u);
        std::filesystem::rename(path, dir / "events.json.1");  // logrotate's move
        log.reopen();
        log.add(event("198.51.100.22", ReplyReason::Busy), 0, {});
        log.flush(0);
        EXPECT_EQ(log.reopens(), 1u);
    }
    const std::string old = slurp(dir / "events.json.1"), fresh = slurp(path);
    EXPECT_EQ(std::count(old.begin(), old.end(), '\n'), 2);
    EXPECT_NE(old.find("198.51.100.21"), std::string::npos);
    EXPECT_EQ(std::count(fresh.begin(), fresh.end(), '\n'), 1);
    EXPECT_NE(fresh.find("198.51.100.22"), std::string::npos);
    for (const std::string& text : {old, fresh}) {
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);) EXPECT_TRUE(nlohmann::json::accept(line)) << line;
    }

    // A full disk: the lines are lost and counted, the daemon goes on.
    EventLog full("/dev/full", false, "gw");
    ASSERT_EQ(full.open(), "");
    for (int i = 0; i < 3; ++i) full.add(event("198.51.100.20", ReplyReason::Unapproved), 0, {});
    full.flush(0);
    EXPECT_EQ(full.lost(), 3u);
    EXPECT_EQ(full.written(), 0u);

    EventLog nowhere((dir / "no" / "such" / "dir" / "events.json").string(), false, "gw");
    EXPECT_NE(nowhere.open().find("events_file: cannot open"), std::string::npos);
    std::filesystem::remove_all(dir);
}

namespace {

MetricsInput sample_input(const ControlLatency& latency) {
    MetricsInput in;
    auto set = [&](Ctr c, uint64_t v) { in.totals[static_cast<size_t>(c)] = v; };
    set(Ctr::rx_inside, 1000);
    set(Ctr::rx_outside, 900);
    set(Ctr::refusal_unapproved, 7);
    set(Ctr::refusal_concurrency, 2);
    set(Ctr::refusal_payload, 1);
    set(Ctr::refusals, 10);
    set(Ctr::malformed_ipv4_bad_ihl, 3);
    set(Ctr::refusal_no_mbuf, 5);  // named like a reason, is none
    in.per_worker = {in.totals, Totals{}};
    in.ports = {PortFigures{"inside", 1000, 900, 64000, 57600, 4, 0, 0, 0}};
    in.flows = {{"tracked", 12}, {"max", 1024}, {"inspected", 3}, {"inspected_max", 64}};
    in.store = {{"store", "etcd"}, {"revision", 42}, {"stale_seconds", 0}, {"in_sync", true}};
    in.records_by_state = {{"approved", 5}, {"banned", 1}};
    in.policy_generation = 9;
    in.mbufs_in_use = 300;
    in.mbufs_total = 16383;
    in.events_enabled = true;
    in.events_written = 10;
    in.version = "0.1.0";
    in.latency = &latency;
    in.api_enabled = true;
    in.api_responses = {{200, 40}, {401, 3}, {403, 1}};
    in.api_dropped = {{"refused", 0}, {"timed_out", 2}, {"too_large", 1}, {"malformed", 0}, {"busy", 0}};
    in.api_connections = 12;
    return in;
}

}  // namespace

TEST(Metrics, RefusalsByReasonSumToTheTotalAndNoLabelIsAnAddress) {
    ControlLatency latency;
    latency.by_command["approve"].record(0.0004);
    latency.by_command["approve"].record(0.02);
    latency.commit.record(0.003);
    const auto families = build_metric_families(sample_input(latency));
    double by_reason = 0, total = -1;
    for (const auto& f : families) {
        EXPECT_TRUE(f.name.starts_with("portcullis_")) << f.name;
        EXPECT_FALSE(f.help.empty()) << f.name;
        if (f.type == prometheus::MetricType::Counter) {
            EXPECT_TRUE(f.name.ends_with("_total")) << f.name;
        }
        for (const auto& m : f.metric)
            for (const auto& l : m.label)
                EXPECT_EQ(parse_addr(l.value), std::nullopt) << f.name << " " << l.value;
        if (f.name == "portcullis_refusals_total")
            for (const auto& m : f.metric) {
                by_reason += m.counter.value;
                EXPECT_NE(m.label.at(0).value, "no_mbuf");
            }
        if (f.name == "portcullis_refusal_events_total") total = f.metric.at(0).counter.value;
    }
    EXPECT_EQ(by_reason, 10);
    EXPECT_EQ(total, 10);
    const std::string text = metrics_text(families);
    EXPECT_NE(text.find("portcullis_refusals_total{reason=\"unapproved\"} 7"), std::string::npos);
    EXPECT_NE(text.find("portcullis_malformed_frames_total{reason=\"ipv4_bad_ihl\"} 3"), std::string::npos);
    EXPECT_NE(text.find("portcullis_store_revision 42"), std::string::npos);
    EXPECT_NE(
        text.find("portcullis_control_command_duration_seconds_bucket{command=\"approve\",le=\"0.0005\"} 1"),
        std::string::npos)
        << text.substr(0, 2000);
}

TEST(Metrics, PromtoolFindsNothingWrong) {
    ControlLatency latency;
    latency.by_command["status"].record(0.0001);
    const std::string text = metrics_text(build_metric_families(sample_input(latency)));
    const auto path = std::filesystem::temp_directory_path() / ("pc_metrics_" + std::to_string(getpid()));
    std::ofstream(path) << text;
    const std::string cmd = "promtool check metrics < " + path.string() + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    const int rc = pclose(p);
    std::filesystem::remove(path);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out, "") << "promtool check metrics: " << out;
}

TEST(EventLogFile, PastTheRateAFloodIsSummedUpOnceASecond) {
    const auto dir = std::filesystem::temp_directory_path() / ("pc_events_rate_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const auto path = dir / "events.json";
    {
        EventLog log(path.string(), false, "gw", 3);
        ASSERT_EQ(log.open(), "");
        const int64_t t = 1'796'580'000'000'000;
        EXPECT_TRUE(log.wants(t));
        for (int i = 0; i < 5; ++i) log.add(event("198.51.100.20", ReplyReason::Unapproved), t + i, {});
        for (int i = 0; i < 4; ++i) log.add(event("198.51.100.21", ReplyReason::Busy), t + 10 + i, {});
        EXPECT_FALSE(log.wants(t + 20)) << "the second's budget is spent";
        log.flush(t + 500'000);  // the same second: no summary yet
        EXPECT_EQ(log.suppressed(), 6u);
        log.flush(t + 1'000'000);  // the next: the summary of the last
        log.add(event("198.51.100.22", ReplyReason::Rate), t + 1'000'001, {});
        log.flush(t + 1'000'002);
        EXPECT_EQ(log.written(), 5u) << "3 events, 1 summary, 1 event";
    }
    std::vector<nlohmann::json> lines;
    std::istringstream in(slurp(path));
    for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
    ASSERT_EQ(lines.size(), 5u);
    EXPECT_EQ(lines[3]["event_type"], "suppressed");
    EXPECT_EQ(lines[3]["count"], 6);
    EXPECT_EQ(lines[3]["by_reason"]["unapproved"], 2);
    EXPECT_EQ(lines[3]["by_reason"]["busy"], 4);
    EXPECT_EQ(lines[3]["timestamp"], "2026-12-06T18:00:01.000000Z");
    EXPECT_EQ(lines[4]["src_ip"], "198.51.100.22");
    std::filesystem::remove_all(dir);
}
