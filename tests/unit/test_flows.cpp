// Connection tracking without ports: the flow table (insert, find, backward-shift erase, sweep), the TCP
// state machine, the shared per-source limits (concurrency, GCRA rate, daily volume, slot reuse) and the
// tracker that ties them together with timeouts.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>
#include <vector>

#include "dataplane/flow_tracker.hpp"
#include "tests/unit/frames.hpp"

using namespace portcullis;
using namespace portcullis::test;

namespace {

const CookieKey kKey{0x1111, 0x2222};

std::vector<uint8_t> g_frame;  // the last frame parsed() built, for the calls that read its payload

Parsed parsed(const FrameSpec& s) {
    g_frame = build_frame(s);
    return parse_frame(g_frame.data(), static_cast<uint32_t>(g_frame.size()));
}

FlowKey key_for_port(uint16_t port) {
    FrameSpec s;
    s.sport = port;
    return flow_key(parsed(s), true);
}

// ---- the table

TEST(FlowTable, InsertFindEraseKeepsEveryOtherEntryReachable) {
    FlowTable t(1000, kKey);
    EXPECT_GE(t.slots() * 3, 1000u * 4);  // at most 3/4 full
    std::vector<FlowKey> keys;
    for (uint16_t p = 1; p <= 1000; ++p) {
        keys.push_back(key_for_port(p));
        Flow* f = t.insert(keys.back(), t.hash(keys.back()));
        ASSERT_NE(f, nullptr);
        f->state = FlowState::Established;
        f->expire_ms = p;
    }
    EXPECT_EQ(t.size(), 1000u);
    EXPECT_EQ(t.insert(key_for_port(2000), t.hash(key_for_port(2000))), nullptr) << "max_flows is a hard cap";
    // Erase every third, in random order; the rest must still be found (backward shift, no tombstones).
    std::vector<size_t> order;
    for (size_t i = 0; i < keys.size(); i += 3) order.push_back(i);
    std::shuffle(order.begin(), order.end(), std::mt19937(7));
    for (size_t i : order) t.erase(t.find(keys[i], t.hash(keys[i])));
    for (size_t i = 0; i < keys.size(); ++i) {
        Flow* f = t.find(keys[i], t.hash(keys[i]));
        if (i % 3 == 0) {
            EXPECT_EQ(f, nullptr) << i;
        } else {
            ASSERT_NE(f, nullptr) << i;
            EXPECT_EQ(f->expire_ms, i + 1);
        }
    }
    EXPECT_EQ(t.size(), 1000u - order.size());
}

TEST(FlowTable, SweepRemovesOnlyExpiredEntriesAndWrapsSafely) {
    FlowTable t(100, kKey);
    const uint32_t now = 0xfffffff0u;  // just before the millisecond counter wraps
    for (uint16_t p = 1; p <= 100; ++p) {
        const auto k = key_for_port(p);
        Flow* f = t.insert(k, t.hash(k));
        f->state = FlowState::Established;
        f->expire_ms = p % 2 ? now - 1 : now + 100;  // odd ones: past; even ones: after the wrap
    }
    std::set<uint16_t> expired;
    for (int round = 0; round < 4; ++round)  // an entry moved into a swept slot is seen on the next round
        t.sweep(now, t.slots(), [&](Flow& f) { expired.insert(f.key.cport); });
    EXPECT_EQ(expired.size(), 50u);
    for (auto p : expired) EXPECT_EQ(p % 2, 1);
    EXPECT_EQ(t.size(), 50u);
}

TEST(FlowTable, HashIsKeyedPerStart) {
    FlowTable a(16, kKey), b(16, CookieKey{3, 4});
    const auto k = key_for_port(1);
    EXPECT_NE(a.hash(k), b.hash(k));
}

// ---- the state machine

struct Step {
    bool out;
    uint8_t flags;
    uint16_t payload;
    FlowState expect;
};

void walk(const std::vector<Step>& steps) {
    FlowState s = FlowState::SynSent;
    uint8_t fins = 0;
    int i = 0;
    for (const auto& st : steps) {
        s = next_flow_state(s, fins, st.out, st.flags, st.payload);
        EXPECT_EQ(s, st.expect) << "step " << i << ": got " << flow_state_name(s);
        ++i;
    }
}

using namespace tcpflag;

TEST(FlowState, HandshakeDataAndCloseFromEitherSide) {
    walk({{false, SYN | ACK, 0, FlowState::SynRecv},
          {true, ACK, 0, FlowState::Established},
          {false, ACK | PSH, 30, FlowState::Established},  // the 220 greeting
          {true, ACK | FIN, 0, FlowState::Closing},
          {false, ACK, 0, FlowState::Closing},
          {false, ACK | FIN, 0, FlowState::Closed},
          {true, ACK, 0, FlowState::Closed}});
    walk({{false, SYN | ACK, 0, FlowState::SynRecv},
          {true, ACK, 0, FlowState::Established},
          {false, FIN | ACK, 0, FlowState::Closing},
          {false, FIN | ACK, 0, FlowState::Closing},  // a retransmitted FIN is still one side
          {true, FIN | ACK, 0, FlowState::Closed}});
}

TEST(FlowState, ResetFromEitherSideClosesAtOnce) {
    walk({{false, RST | ACK, 0, FlowState::Closed}});  // the server refused the connection
    walk({{false, SYN | ACK, 0, FlowState::SynRecv}, {true, RST, 0, FlowState::Closed}});
}

TEST(FlowState, DataWithoutAHandshakeSeenIsEstablished) {
    walk({{true, ACK | PSH, 20, FlowState::Established}});
    walk({{true, SYN, 0, FlowState::SynSent}, {true, SYN, 0, FlowState::SynSent}});  // SYN retransmitted
}

// ---- the shared source table

constexpr uint32_t kDay = 20000;

TEST(SourceTable, ConcurrencyLimitCountsAndReleases) {
    SourceTable t(64, kKey);
    const auto a = *parse_addr("198.51.100.10");
    const uint64_t id = t.id_of(a);
    const uint32_t slot = t.acquire(id, 0, kDay);
    ASSERT_NE(slot, SourceTable::kNone);
    const Limits l{3, 0, 0};
    for (int i = 0; i < 3; ++i) EXPECT_EQ(t.admit(slot, id, l, 0, kDay, true), Admit::Ok);
    EXPECT_EQ(t.admit(slot, id, l, 0, kDay, true), Admit::Concurrency);
    EXPECT_EQ(t.view(a, l, 0, kDay).concurrent, 3u);
    t.release(slot);
    EXPECT_EQ(t.admit(slot, id, l, 0, kDay, true), Admit::Ok);
    for (int i = 0; i < 10; ++i) t.release(slot);  // more releases than holds never go below zero
    EXPECT_EQ(t.view(a, l, 0, kDay).concurrent, 0u);
}

TEST(SourceTable, RateIsATokenBucketOfOneMinute) {
    SourceTable t(64, kKey);
    const auto a = *parse_addr("198.51.100.10");
    const uint64_t id = t.id_of(a);
    const uint32_t slot = t.acquire(id, 0, kDay);
    const Limits l{0, 6, 0};  // 6 per minute: a burst of 6, then one every 10 s
    uint64_t now = 1'000'000;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(t.admit(slot, id, l, now, kDay, true), Admit::Ok) << i;
    EXPECT_EQ(t.admit(slot, id, l, now, kDay, true), Admit::Rate);
    EXPECT_EQ(t.view(a, l, now, kDay).rate_used, 6u);
    EXPECT_EQ(t.admit(slot, id, l, now + 9'999'999, kDay, true), Admit::Rate);
    EXPECT_EQ(t.admit(slot, id, l, now + 10'000'000, kDay, true), Admit::Ok) << "one token back after 10 s";
    EXPECT_EQ(t.admit(slot, id, l, now + 10'000'000, kDay, true), Admit::Rate);
    now += 120'000'000;  // two idle minutes: the bucket is full again, not fuller
    for (int i = 0; i < 6; ++i) EXPECT_EQ(t.admit(slot, id, l, now, kDay, true), Admit::Ok) << i;
    EXPECT_EQ(t.admit(slot, id, l, now, kDay, true), Admit::Rate);
    EXPECT_EQ(gcra_interval_us(6), 10'000'000u);
}

TEST(SourceTable, DailyVolumeResetsWithTheDay) {
    SourceTable t(64, kKey);
    const auto a = *parse_addr("2001:db8:100::10");
    const uint64_t id = t.id_of(a);
    const uint32_t slot = t.acquire(id, 0, kDay);
    const Limits l{0, 0, 2};
    EXPECT_EQ(t.admit(slot, id, l, 0, kDay, true), Admit::Ok);
    EXPECT_EQ(t.admit(slot, id, l, 0, kDay, true), Admit::Ok);
    EXPECT_EQ(t.admit(slot, id, l, 0, kDay, true), Admit::Daily);
    EXPECT_EQ(t.view(a, l, 0, kDay).daily, 2u);
    EXPECT_EQ(t.admit(slot, id, l, 0, kDay + 1, true), Admit::Ok) << "a new UTC day";
    EXPECT_EQ(t.view(a, l, 0, kDay + 1).daily, 1u);
    EXPECT_FALSE(t.count_message(slot, 1, kDay + 1)) << "messages count against the same volume";
}

TEST(SourceTable, MonitorCountsEverythingAndNamesTheLimit) {
    SourceTable t(64, kKey);
    const auto a = *parse_addr("198.51.100.10");
    const uint64_t id = t.id_of(a);
    const uint32_t slot = t.acquire(id, 0, kDay);
    const Limits l{1, 0, 0};
    EXPECT_EQ(t.admit(slot, id, l, 0, kDay, false), Admit::Ok);
    EXPECT_EQ(t.admit(slot, id, l, 0, kDay, false), Admit::Concurrency);
    EXPECT_EQ(t.view(a, l, 0, kDay).concurrent, 2u) << "held although over the limit";
}

TEST(SourceTable, FullGroupReusesOnlyIdleSlots) {
    SourceTable t(8, kKey);  // one group of 8 ways
    const Limits l{5, 0, 0};
    std::vector<uint32_t> slots;
    for (int i = 0; i < 8; ++i) {
        const auto a = IpAddr::from_v4(0xc6336400u + static_cast<uint32_t>(i));
        const uint64_t id = t.id_of(a);
        slots.push_back(t.acquire(id, 0, kDay));
        ASSERT_NE(slots.back(), SourceTable::kNone);
        EXPECT_EQ(t.admit(slots.back(), id, l, 0, kDay, true), Admit::Ok);
    }
    EXPECT_EQ(t.in_use(), 8u);
    const auto newcomer = IpAddr::from_v4(0xc6336464u);
    EXPECT_EQ(t.acquire(t.id_of(newcomer), 0, kDay), SourceTable::kNone) << "every way holds a connection";
    t.release(slots[3]);
    EXPECT_EQ(t.acquire(t.id_of(newcomer), 0, kDay), SourceTable::kNone) << "it still counted today";
    const uint32_t s = t.acquire(t.id_of(newcomer), 0, kDay + 1);
    EXPECT_EQ(s, slots[3]) << "idle and counted yesterday: reused";
    EXPECT_EQ(t.view(newcomer, l, 0, kDay + 1).daily, 0u);
}

TEST(SourceTable, ConcurrentAdmissionsNeverExceedTheLimit) {
    // Two threads (two workers) admitting for the same source: the shared counter holds the line exactly.
    SourceTable t(1024, kKey);
    const auto a = *parse_addr("198.51.100.10");
    const uint64_t id = t.id_of(a);
    const Limits l{10, 0, 0};
    std::atomic<int> admitted{0};
    auto run = [&] {
        for (int i = 0; i < 50'000; ++i) {
            const uint32_t slot = t.acquire(id, 0, kDay);
            if (t.admit(slot, id, l, 0, kDay, true) == Admit::Ok) {
                const int now_open = ++admitted;
                EXPECT_LE(now_open, 10);
                --admitted;
                t.release(slot);
            }
        }
    };
    std::thread x(run), y(run);
    x.join();
    y.join();
    EXPECT_EQ(t.view(a, l, 0, kDay).concurrent, 0u);
}

// ---- the tracker

class Tracker : public ::testing::Test {
  protected:
    Tracker() : sources(1024, kKey), tracker(100, kKey, &sources, FlowTimeouts{3000, 60000, 5000}) {
        pol.default_limits = {2, 0, 0};
        pol.relay_limits = {};
    }
    TrackResult out(const FrameSpec& s, uint64_t ms) {
        return tracker.outbound(parsed(s), g_frame.data(), pol, false, clock.after_us(ms * 1000), c);
    }
    void in(FrameSpec s, uint64_t ms) {
        std::swap(s.src, s.dst);
        std::swap(s.sport, s.dport);
        const Parsed p = parsed(s);
        tracker.inbound(p, g_frame.data(), pol, clock.after_us(ms * 1000), c);
    }
    uint32_t open() {
        return sources.view(*parse_addr("198.51.100.20"), pol.default_limits, 0, 0).concurrent;
    }

    Policy pol;
    Clock clock;
    SourceTable sources;
    FlowTracker tracker;
    Counters c;
};

FrameSpec syn_from(uint16_t sport) {
    FrameSpec s;
    s.sport = sport;
    return s;
}

TEST_F(Tracker, ConcurrencyHeldUntilCloseThenFreed) {
    EXPECT_EQ(out(syn_from(1001), 0).verdict, TrackVerdict::Forward);
    EXPECT_EQ(out(syn_from(1002), 0).verdict, TrackVerdict::Forward);
    const auto third = out(syn_from(1003), 0);
    EXPECT_EQ(third.verdict, TrackVerdict::Refuse);
    EXPECT_EQ(third.reason, ReplyReason::Concurrency);
    EXPECT_EQ(c.get(Ctr::refused_concurrency), 1u);
    EXPECT_EQ(out(syn_from(1001), 10).verdict, TrackVerdict::Forward)
        << "a retransmitted SYN is no new connection";
    EXPECT_EQ(open(), 2u);

    // Connection 1001 completes and closes: FIN both ways.
    FrameSpec s = syn_from(1001);
    s.flags = SYN | ACK;
    in(s, 20);
    s.flags = ACK;
    out(s, 21);
    s.flags = FIN | ACK;
    out(s, 30);
    EXPECT_EQ(open(), 2u) << "half-closed still counts";
    in(s, 31);
    EXPECT_EQ(open(), 1u);
    EXPECT_EQ(c.get(Ctr::flows_closed), 1u);
    EXPECT_EQ(out(syn_from(1003), 40).verdict, TrackVerdict::Forward);
}

TEST_F(Tracker, HalfOpenFlowsAreReleasedByTheirTimeout) {
    out(syn_from(1001), 0);
    out(syn_from(1002), 0);
    EXPECT_EQ(out(syn_from(1003), 0).verdict, TrackVerdict::Refuse);
    tracker.sweep(clock.after_us(2'999'000), 1024, c);
    EXPECT_EQ(open(), 2u) << "not yet";
    tracker.sweep(clock.after_us(3'000'000), 1024, c);
    EXPECT_EQ(open(), 0u);
    EXPECT_EQ(c.get(Ctr::flows_expired_half_open), 2u);
    EXPECT_EQ(tracker.table().size(), 0u);
    EXPECT_EQ(out(syn_from(1003), 3001).verdict, TrackVerdict::Forward);
}

TEST_F(Tracker, EstablishedFlowsUseTheIdleTimeoutAndActivityRenewsIt) {
    out(syn_from(1001), 0);
    FrameSpec s = syn_from(1001);
    s.flags = SYN | ACK;
    in(s, 1);
    s.flags = ACK;
    out(s, 2);
    tracker.sweep(clock.after_us(50'000'000), 1024, c);
    s.payload = "NOOP\r\n";
    out(s, 50'000);  // activity at 50 s
    tracker.sweep(clock.after_us(100'000'000), 1024, c);
    EXPECT_EQ(open(), 1u) << "idle for 50 s of 60";
    tracker.sweep(clock.after_us(110'000'000), 1024, c);
    EXPECT_EQ(open(), 0u);
    EXPECT_EQ(c.get(Ctr::flows_expired_established), 1u);
}

TEST_F(Tracker, ReusedPortsAfterCloseAreANewConnection) {
    out(syn_from(1001), 0);
    FrameSpec s = syn_from(1001);
    s.flags = RST | ACK;
    in(s, 1);  // the server refused
    EXPECT_EQ(open(), 0u);
    EXPECT_EQ(out(syn_from(1001), 2).verdict, TrackVerdict::Forward);
    EXPECT_EQ(open(), 1u);
    EXPECT_EQ(tracker.table().size(), 1u);
}

TEST_F(Tracker, UnknownSegmentsArePickedUpNeverRefused) {
    FrameSpec s = syn_from(1001);
    s.flags = ACK | PSH;
    s.payload = "MAIL FROM:<a@example.com>\r\n";
    EXPECT_EQ(out(s, 0).verdict, TrackVerdict::Untracked);
    tracker.pick_up(parsed(s), clock.after_us(0), c);
    EXPECT_EQ(c.get(Ctr::flows_picked_up), 1u);
    EXPECT_EQ(open(), 1u);
    EXPECT_EQ(out(s, 1).verdict, TrackVerdict::Forward) << "tracked from now on";
    s.flags = RST;
    EXPECT_EQ(out(s, 2).verdict, TrackVerdict::Forward);
    EXPECT_EQ(open(), 0u);
}

TEST_F(Tracker, FullTableRefusesNewConnectionsKeepsOpenOnesAndRecovers) {
    pol.default_limits = {};
    FlowTracker small(4, kKey, &sources, FlowTimeouts{1000, 60000, 1000});
    const auto now = clock.after_us(0);
    for (uint16_t p = 1; p <= 4; ++p)
        EXPECT_EQ(small.outbound(parsed(syn_from(p)), g_frame.data(), pol, false, now, c).verdict,
                  TrackVerdict::Forward);
    const auto r = small.outbound(parsed(syn_from(5)), g_frame.data(), pol, false, now, c);
    EXPECT_EQ(r.verdict, TrackVerdict::Refuse);
    EXPECT_EQ(r.reason, ReplyReason::Busy);
    EXPECT_EQ(c.get(Ctr::flow_table_full), 1u);
    FrameSpec data = syn_from(2);
    data.flags = ACK | PSH;
    data.payload = "DATA\r\n";
    EXPECT_EQ(small.outbound(parsed(data), g_frame.data(), pol, false, now, c).verdict, TrackVerdict::Forward)
        << "an open connection is never refused";
    small.sweep(clock.after_us(1'000'000), 64, c);
    EXPECT_EQ(
        small.outbound(parsed(syn_from(5)), g_frame.data(), pol, false, clock.after_us(1'000'000), c).verdict,
        TrackVerdict::Forward);
}

TEST_F(Tracker, MonitorModeForwardsAndCountsWhatItWouldRefuse) {
    pol.monitor = true;
    for (uint16_t p = 1; p <= 3; ++p) EXPECT_EQ(out(syn_from(p), 0).verdict, TrackVerdict::Forward);
    EXPECT_EQ(c.get(Ctr::refused_concurrency), 1u);
    EXPECT_EQ(c.get(Ctr::monitor_passed), 1u);
    EXPECT_EQ(open(), 3u);
}

TEST_F(Tracker, PerApprovalOverridesAndRelayLimitsApply) {
    pol.limit_overrides.assign(false, {{u128{0xc6336414u}, u128{0xc6336414u}, Limits{1, 0, 0}}});  // .20
    EXPECT_EQ(out(syn_from(1), 0).verdict, TrackVerdict::Forward);
    EXPECT_EQ(out(syn_from(2), 0).verdict, TrackVerdict::Refuse);
    // To a relay: the relay limits (unlimited here), same source counters.
    EXPECT_EQ(tracker.outbound(parsed(syn_from(3)), g_frame.data(), pol, true, clock.after_us(0), c).verdict,
              TrackVerdict::Forward);
}

}  // namespace
