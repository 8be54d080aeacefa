// `portcullisctl top`'s frame (tools/portcullisctl/render.cpp) from two hand-made samples, without a daemon:
// rates from counter deltas, missing counters as 0, a counter gone backwards (a restart) as no rate, the
// sources refused most in the last minute, the tables' fill, and a plain frame of at most 80 columns.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "tools/portcullisctl/render.hpp"

using namespace portcullis;
using nlohmann::json;

namespace {

// The frame's line starting with `start` ("" when none), and its whitespace-separated fields.
std::string line(const std::string& frame, const std::string& start) {
    std::istringstream in(frame);
    for (std::string l; std::getline(in, l);)
        if (l.rfind(start, 0) == 0) return l;
    return "";
}

std::vector<std::string> fields(const std::string& frame, const std::string& start) {
    std::istringstream in(line(frame, start));
    std::vector<std::string> out;
    for (std::string f; in >> f;) out.push_back(f);
    return out;
}

ctl::TopSample sample(json counters, json extra_stats = json::object(), json status = json::object()) {
    ctl::TopSample s;
    s.stats = {{"ok", true}, {"counters", std::move(counters)}};
    for (auto& [k, v] : extra_stats.items()) s.stats[k] = v;
    s.status = {{"ok", true},
                {"version", "0.1.0"},
                {"uptime_s", 100},
                {"monitor", false},
                {"policy_generation", 7},
                {"flows",
                 {{"tracked", 250},
                  {"max", 1000},
                  {"inspected", 3},
                  {"inspected_max", 64},
                  {"sources", 12},
                  {"sources_max", 4096}}}};
    for (auto& [k, v] : status.items()) s.status[k] = v;
    s.at = 1'767'225'600;  // 2026-01-01T00:00:00Z
    return s;
}

TEST(TopRender, RatesAreDeltasOverTheInterval) {
    const auto before = sample({{"rx_inside", 1'000'000},
                                {"rx_outside", 500'000},
                                {"fwd_outbound", 900'000},
                                {"fwd_inbound", 400'000},
                                {"refusal_unapproved", 100},
                                {"refusal_rate", 10},
                                {"refusals", 110}});
    const auto after = sample({{"rx_inside", 5'000'000},
                               {"rx_outside", 1'500'000},
                               {"fwd_outbound", 4'500'000},
                               {"fwd_inbound", 1'400'000},
                               {"refusal_unapproved", 300},
                               {"refusal_rate", 40},
                               {"refusals", 340}},
                              json::object(), {{"uptime_s", 102}});
    const std::string f = ctl::render_top(before, after, 2.0);

    EXPECT_EQ(fields(f, "inside"), (std::vector<std::string>{"inside", "2.000", "1.800", "to", "outside"}))
        << f;
    EXPECT_EQ(fields(f, "outside"), (std::vector<std::string>{"outside", "0.500", "0.500", "to", "inside"}))
        << f;
    EXPECT_EQ(fields(f, "unapproved"), (std::vector<std::string>{"unapproved", "100.0", "300"})) << f;
    EXPECT_EQ(fields(f, "rate "), (std::vector<std::string>{"rate", "15.0", "40"})) << f;
    EXPECT_EQ(fields(f, "all"), (std::vector<std::string>{"all", "115.0", "340"})) << f;
    EXPECT_EQ(fields(f, "concurrency"), (std::vector<std::string>{"concurrency", "0.0", "0"})) << f;
    // The header: version, uptime, monitor, policy generation, when.
    const std::string head = line(f, "portcullis ");
    EXPECT_NE(head.find("0.1.0"), std::string::npos) << head;
    EXPECT_NE(head.find("up 00:01:42"), std::string::npos) << head;
    EXPECT_NE(head.find("monitor off"), std::string::npos) << head;
    EXPECT_NE(head.find("policy 7"), std::string::npos) << head;
    EXPECT_NE(head.find("2026-01-01T00:00:00Z"), std::string::npos) << head;
    EXPECT_EQ(line(f, "the daemon restarted"), "");
}

TEST(TopRender, MissingCountersCountAsZero) {
    // A daemon from before the refusal_* counters, and replies with no counters at all.
    const auto before = sample({{"rx_inside", 10}});
    const auto after = sample({{"rx_inside", 10}, {"refusal_busy", 7}});
    std::string f;
    ASSERT_NO_THROW(f = ctl::render_top(before, after, 1.0));
    EXPECT_EQ(fields(f, "unapproved"), (std::vector<std::string>{"unapproved", "0.0", "0"})) << f;
    EXPECT_EQ(fields(f, "all"), (std::vector<std::string>{"all", "0.0", "0"})) << f;
    EXPECT_EQ(fields(f, "busy"), (std::vector<std::string>{"busy", "7.0", "7"})) << f;
    EXPECT_EQ(fields(f, "outside"), (std::vector<std::string>{"outside", "0.000", "0.000", "to", "inside"}))
        << f;

    ctl::TopSample empty;  // no reply at all: nulls
    ASSERT_NO_THROW(f = ctl::render_top(empty, empty, 1.0));
    EXPECT_EQ(fields(f, "inside"), (std::vector<std::string>{"inside", "0.000", "0.000", "to", "outside"}));
    EXPECT_EQ(fields(f, "tracked flows"), (std::vector<std::string>{"tracked", "flows", "-"})) << f;

    // Odd values (null, text, negative) read as 0, never an exception.
    const auto odd = sample({{"rx_inside", nullptr}, {"refusals", "many"}, {"refusal_rate", -5}},
                            json::object(), {{"flows", nullptr}, {"monitor", nullptr}, {"uptime_s", "x"}});
    ASSERT_NO_THROW(f = ctl::render_top(odd, odd, 1.0));
    EXPECT_EQ(fields(f, "all"), (std::vector<std::string>{"all", "0.0", "0"})) << f;
    EXPECT_EQ(fields(f, "sources"), (std::vector<std::string>{"sources", "-"})) << f;
}

TEST(TopRender, ACounterThatWentBackwardsHasNoRate) {
    // The daemon restarted between the samples: its counters start again from 0.
    const auto before = sample({{"rx_inside", 9'000'000'000ull}, {"refusals", 5'000}, {"rx_outside", 10}},
                               json::object(), {{"uptime_s", 86'500}});
    const auto after = sample({{"rx_inside", 2'000}, {"refusals", 3}, {"rx_outside", 20}}, json::object(),
                              {{"uptime_s", 1}});
    std::string f = ctl::render_top(before, after, 1.0);
    EXPECT_EQ(fields(f, "inside"), (std::vector<std::string>{"inside", "0.000", "0.000", "to", "outside"}))
        << f;
    EXPECT_EQ(fields(f, "all"), (std::vector<std::string>{"all", "0.0", "3"})) << f;
    // rx_outside grew, but from a count of the process before: no rate either while uptime went back.
    EXPECT_EQ(fields(f, "outside")[1], "0.000") << f;
    EXPECT_NE(line(f, "the daemon restarted"), "") << f;

    // One counter backwards with no uptime to tell: that counter alone has no rate.
    const auto b2 = sample({{"rx_inside", 9'000'000'000ull}, {"rx_outside", 0}});
    const auto a2 = sample({{"rx_inside", 100}, {"rx_outside", 3'000'000}});
    f = ctl::render_top(b2, a2, 1.0);
    EXPECT_EQ(fields(f, "inside")[1], "0.000") << f;
    EXPECT_EQ(fields(f, "outside")[1], "3.000") << f;
    EXPECT_EQ(line(f, "the daemon restarted"), "") << f;
    // No interval: no rate rather than a division by zero.
    f = ctl::render_top(b2, a2, 0.0);
    EXPECT_EQ(fields(f, "outside")[1], "0.000") << f;
}

TEST(TopRender, TopSourcesOfTheLastMinute) {
    json top = json::array();
    for (int i = 0; i < 12; ++i)
        top.push_back({{"addr", "198.51.100." + std::to_string(i + 1)}, {"refusals", 1000 - i}});
    const auto before = sample(json::object());
    const auto after = sample(json::object(), {{"refused_last_minute", top}});
    const std::string f = ctl::render_top(before, after, 1.0);
    EXPECT_NE(line(f, "REFUSED MOST IN THE LAST MINUTE"), "") << f;
    EXPECT_EQ(fields(f, "198.51.100.1 "), (std::vector<std::string>{"198.51.100.1", "1000"})) << f;
    EXPECT_EQ(fields(f, "198.51.100.10 "), (std::vector<std::string>{"198.51.100.10", "991"})) << f;
    EXPECT_EQ(line(f, "198.51.100.11"), "") << "at most 10 sources\n" << f;
    // In the daemon's order, most first.
    EXPECT_LT(f.find("198.51.100.1 "), f.find("198.51.100.2 "));

    // Absent: no block at all. Empty: the block says none.
    EXPECT_EQ(line(ctl::render_top(before, before, 1.0), "REFUSED MOST"), "");
    const std::string none =
        ctl::render_top(before, sample(json::object(), {{"refused_last_minute", json::array()}}), 1.0);
    EXPECT_NE(line(none, "(none)"), "") << none;

    // What the daemon sends is shown, never obeyed: no control character reaches the terminal.
    const auto hostile =
        sample(json::object(),
               {{"refused_last_minute", {{{"addr", "\x1b[2J203.0.113.9"}, {"refusals", 5}}, 42, nullptr}}});
    const std::string h = ctl::render_top(before, hostile, 1.0);
    EXPECT_EQ(h.find('\x1b'), std::string::npos) << h;
    EXPECT_NE(h.find("203.0.113.9"), std::string::npos) << h;
}

TEST(TopRender, TablesEventsLostAndWidth) {
    const std::string v6 = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff";
    const auto before = sample({{"events_lost", 0}});
    const auto after = sample(
        {{"events_lost", 20}, {"rx_inside", 148'810'000ull}, {"refusals", 18'446'744'073'709'551'615ull}},
        {{"refused_last_minute", {{{"addr", v6}, {"refusals", 4'000'000'000ull}}}}},
        {{"monitor", true}, {"uptime_s", 3 * 86400 + 4 * 3600 + 5 * 60 + 6}, {"version", "0.1.0"}});
    const std::string f = ctl::render_top(before, after, 1.0);
    EXPECT_EQ(fields(f, "tracked flows"),
              (std::vector<std::string>{"tracked", "flows", "250", "/", "1000", "(25.0%)"}))
        << f;
    EXPECT_EQ(fields(f, "inspected sessions"),
              (std::vector<std::string>{"inspected", "sessions", "3", "/", "64", "(4.7%)"}))
        << f;
    EXPECT_EQ(fields(f, "sources"), (std::vector<std::string>{"sources", "12", "/", "4096", "(0.3%)"})) << f;
    EXPECT_EQ(fields(f, "events lost")[2], "20") << f;
    EXPECT_NE(line(f, "portcullis ").find("monitor ON"), std::string::npos) << f;
    EXPECT_NE(line(f, "portcullis ").find("up 3d 04:05:06"), std::string::npos) << f;
    EXPECT_EQ(line(f, v6 + " ").empty(), false) << f;
    EXPECT_EQ(f.find('\x1b'), std::string::npos) << "--once frames hold no terminal control codes";
    std::istringstream in(f);
    for (std::string l; std::getline(in, l);) EXPECT_LE(l.size(), 80u) << l;
    // No events lost: no line for them.
    EXPECT_EQ(line(ctl::render_top(before, before, 1.0), "events lost"), "");
}

}  // namespace
