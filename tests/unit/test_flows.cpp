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

using namespace tcpflag;

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
    const Limits l{5, 0, 100};
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
    bool reclaimed = false;
    EXPECT_EQ(t.acquire(t.id_of(newcomer), 0, kDay, &reclaimed), slots[3])
        << "only a daily count left: reclaimed rather than refuse a sender who is here now";
    EXPECT_TRUE(reclaimed);
    t.release(slots[3]);
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

// A client (198.51.100.20) talking to a server (203.0.113.25:25) through the tracker, with real sequence
// numbers: the client's ISN 1000, the server's 5000.
class Tracker : public ::testing::Test {
  protected:
    Tracker() : sources(1024, kKey), tracker(100, kKey, &sources, FlowTimeouts{3000, 60000, 5000}) {
        pol.smtp_ports.set(25);
        pol.blocked_ports.set(25);
        pol.managed4.addRange(0xc6336400u, 0xc6336500u);  // 198.51.100.0/24, approved
        pol.approved4.addRange(0xc6336400u, 0xc6336500u);
        pol.default_limits = {2, 0, 0};
        pol.relay_limits = {};
    }
    Outcome out(const FrameSpec& s, uint64_t ms, bool to_relay = false) {
        const Parsed p = parsed(s);  // before g_frame.data() is taken
        return tracker.outbound(p, g_frame.data(), pol, to_relay, clock.after_us(ms * 1000), c);
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
    // A client segment of connection `port` at client sequence `seq` (ACKing the server's `ack`).
    static FrameSpec seg(uint16_t port, uint8_t flags, uint32_t seq, uint32_t ack, std::string payload = {}) {
        FrameSpec s;
        s.sport = port;
        s.flags = flags;
        s.seq = seq;
        s.ack = ack;
        s.payload = std::move(payload);
        return s;
    }
    // The server's segment of connection `port` (as seen on the wire: in() swaps the ends).
    static FrameSpec from_server(uint16_t port, uint8_t flags, uint32_t seq, uint32_t ack) {
        return seg(port, flags, seq, ack);
    }
    // SYN, SYN-ACK, ACK: the client's next sequence number is 1001, the server's 5001.
    Outcome handshake(uint16_t port, uint64_t ms = 0) {
        EXPECT_EQ(out(seg(port, SYN, 1000, 0), ms).verdict, Verdict::Forward);
        in(from_server(port, SYN | ACK, 5000, 1001), ms);
        return out(seg(port, ACK, 1001, 5001), ms);
    }

    Policy pol;
    Clock clock;
    SourceTable sources;
    FlowTracker tracker;
    Counters c;
};

TEST_F(Tracker, ConcurrencyIsCountedAtTheHandshakeAndHeldUntilClose) {
    EXPECT_EQ(handshake(1001).verdict, Verdict::Forward);
    EXPECT_EQ(handshake(1002).verdict, Verdict::Forward);
    EXPECT_EQ(open(), 2u);
    const auto third = out(seg(1003, SYN, 1000, 0), 0);
    EXPECT_EQ(third.verdict, Verdict::Refuse) << "the source's slot is full: refused at its SYN";
    EXPECT_EQ(third.reason, ReplyReason::Concurrency);
    EXPECT_EQ(out(seg(1001, SYN, 1000, 0), 10).verdict, Verdict::Forward) << "inside the connection";

    // Connection 1001 closes: FIN both ways, each at its next sequence number.
    EXPECT_EQ(out(seg(1001, FIN | ACK, 1001, 5001), 30).verdict, Verdict::Forward);
    EXPECT_EQ(open(), 2u) << "half-closed still counts";
    in(from_server(1001, FIN | ACK, 5001, 1002), 31);
    EXPECT_EQ(open(), 1u);
    EXPECT_EQ(c.get(Ctr::flows_closed), 1u);
    EXPECT_EQ(handshake(1003, 40).verdict, Verdict::Forward);
}

TEST_F(Tracker, SynsThatNeverCompleteAHandshakeClaimNoSourceState) {
    // A flood of spoofed SYNs: none is answered by the server's SYN-ACK acknowledged by the client.
    for (uint16_t p = 1; p <= 90; ++p) {
        FrameSpec s = seg(p, SYN, 1000, 0);
        s.src = "198.51.100." + std::to_string(p);
        EXPECT_EQ(out(s, 0).verdict, Verdict::Forward);
    }
    EXPECT_EQ(sources.in_use(), 0u);
    EXPECT_EQ(c.get(Ctr::flows_half_open), 75u) << "up to 3/4 of the table";
    EXPECT_EQ(c.get(Ctr::syn_stateless), 15u) << "then SYNs keep nothing (their entry waits for a SYN-ACK)";
    EXPECT_EQ(c.get(Ctr::flows_opened), 0u);
    // A forged ACK without the server's SYN-ACK (the attacker cannot know its sequence number) is dropped.
    FrameSpec forged = seg(5, ACK, 1001, 777);
    forged.src = "198.51.100.5";
    EXPECT_EQ(out(forged, 1).verdict, Verdict::Unacceptable);
    EXPECT_EQ(sources.in_use(), 0u);
}

TEST_F(Tracker, UnderPressureSynsKeepNothingAndTheServersAnswerMakesRoom) {
    FlowTracker small(8, kKey, &sources, FlowTimeouts{30000, 60000, 5000});
    const auto go = [&](FrameSpec s, bool outbound, uint64_t ms) {
        if (!outbound) {
            std::swap(s.src, s.dst);
            std::swap(s.sport, s.dport);
        }
        const Parsed p = parsed(s);
        if (outbound)
            return small.outbound(p, g_frame.data(), pol, false, clock.after_us(ms * 1000), c).verdict;
        small.inbound(p, g_frame.data(), pol, clock.after_us(ms * 1000), c);
        return Verdict::Forward;
    };
    // A flood from spoofed sources that nobody answers: entries up to 3/4 of the table, then none.
    for (uint16_t p = 1; p <= 20; ++p) {
        FrameSpec syn = seg(p, SYN, 1000, 0);
        syn.src = "198.51.100.1";
        EXPECT_EQ(go(syn, true, p), Verdict::Forward);
    }
    EXPECT_EQ(small.table().size(), 6u);
    EXPECT_EQ(c.get(Ctr::syn_stateless), 14u);
    // Three honest clients: their SYNs keep nothing, the servers' SYN-ACKs make their entries; the third
    // finds the table full and pushes out the oldest entry whose server never answered.
    for (uint16_t p = 4001; p <= 4003; ++p) {
        EXPECT_EQ(go(seg(p, SYN, 1000, 0), true, 100), Verdict::Forward);
        go(from_server(p, SYN | ACK, 5000, 1001), false, 101);
    }
    EXPECT_EQ(c.get(Ctr::flows_half_open_at_synack), 3u);
    EXPECT_EQ(c.get(Ctr::flows_early_dropped), 1u);
    for (uint16_t p = 4001; p <= 4002; ++p)
        EXPECT_EQ(go(seg(p, ACK, 1001, 5001), true, 102), Verdict::Forward);
    EXPECT_EQ(open(), 2u) << "admitted at their handshakes";
    EXPECT_EQ(go(seg(4003, ACK, 1001, 5001), true, 102), Verdict::RefuseSession) << "the limit of 2";
}

TEST_F(Tracker, UnderPressureABareSynGoesOnUnchangedAndACorruptSynWithDataGoesNowhere) {
    for (uint16_t p = 1; p <= 75; ++p) {  // fill the table to 3/4: SYNs keep nothing from here on
        FrameSpec syn = seg(p, SYN, 1000, 0);
        syn.src = "198.51.100.7";
        out(syn, 0);
    }
    FrameSpec bare = seg(4001, SYN, 1000, 0);
    bare.bad_checksum = true;
    const auto r = out(bare, 1);
    EXPECT_EQ(r.verdict, Verdict::Forward) << "unchanged: the server discards it, as without the gateway";
    EXPECT_FALSE(r.strip_payload);
    FrameSpec tfo = seg(4002, SYN, 1000, 0, "EHLO a.example\r\n");
    tfo.bad_checksum = true;
    EXPECT_EQ(out(tfo, 1).verdict, Verdict::Unacceptable) << "stripping it would write a valid checksum";
    EXPECT_EQ(c.get(Ctr::tcp_bad_checksum), 1u);
    FrameSpec good = seg(4003, SYN, 1000, 0, "EHLO a.example\r\n");
    const auto g = out(good, 1);
    EXPECT_EQ(g.verdict, Verdict::Forward);
    EXPECT_TRUE(g.strip_payload);
    EXPECT_EQ(c.get(Ctr::syn_stateless), 3u);
    EXPECT_EQ(tracker.table().size(), 75u) << "none of them made an entry";
}

TEST_F(Tracker, AnEntryMadeAtTheSynAckLearnsTheClientsTimestampFromItsAck) {
    // Linux starts each connection's timestamps at a random offset: often past 2^31.
    for (uint16_t p = 1; p <= 75; ++p) {  // fill the table to 3/4: SYNs keep nothing from here on
        FrameSpec syn = seg(p, SYN, 1000, 0);
        syn.src = "198.51.100.7";
        out(syn, 0);
    }
    const auto ts = [](uint32_t v) {
        return std::vector<uint8_t>{8,
                                    10,
                                    static_cast<uint8_t>(v >> 24),
                                    static_cast<uint8_t>(v >> 16),
                                    static_cast<uint8_t>(v >> 8),
                                    static_cast<uint8_t>(v),
                                    0,
                                    0,
                                    0,
                                    1};
    };
    FrameSpec syn = seg(4001, SYN, 1000, 0);
    syn.tcp_opt_bytes = ts(0x90000000u);
    out(syn, 1);
    EXPECT_EQ(c.get(Ctr::syn_stateless), 1u);
    FrameSpec sa = from_server(4001, SYN | ACK, 5000, 1001);
    sa.tcp_opt_bytes = ts(77);
    in(sa, 1);
    FrameSpec ack = seg(4001, ACK, 1001, 5001);
    ack.tcp_opt_bytes = ts(0x90000001u);
    EXPECT_EQ(out(ack, 2).verdict, Verdict::Forward);
    FrameSpec data = seg(4001, ACK | PSH, 1001, 5001, "EHLO a.example\r\n");
    data.tcp_opt_bytes = ts(0x90000002u);
    EXPECT_EQ(out(data, 3).verdict, Verdict::Forward) << "not mistaken for an old timestamp";
    data.tcp_opt_bytes = ts(0x80000000u);
    data.seq += 16;
    EXPECT_EQ(out(data, 3).verdict, Verdict::Unacceptable) << "an older one is";
}

TEST_F(Tracker, ARstOutsideTheWindowKeepsTheConnectionAndItsUnit) {
    handshake(1001);
    out(seg(1001, ACK | PSH, 1001, 5001, "EHLO a.example\r\n"), 1);
    // RFC 5961: only a RST at exactly the next sequence number (1017) resets the server's connection.
    EXPECT_EQ(out(seg(1001, RST, 1001 + 100000, 0), 2).verdict, Verdict::Forward);
    EXPECT_EQ(out(seg(1001, RST, 1016, 0), 2).verdict, Verdict::Forward);
    EXPECT_EQ(c.get(Ctr::tcp_rst_ignored), 2u);
    EXPECT_EQ(open(), 1u) << "the session lives on at the server: its unit stays";
    out(seg(1001, RST, 1017, 0), 3);
    EXPECT_EQ(open(), 0u);
}

TEST_F(Tracker, SegmentsTheServerWouldDiscardAreDroppedNotRead) {
    handshake(1001);
    FrameSpec bad = seg(1001, ACK | PSH, 1001, 5001, "EHLO good.example\r\n");
    bad.bad_checksum = true;
    EXPECT_EQ(out(bad, 1).verdict, Verdict::Unacceptable);
    EXPECT_EQ(c.get(Ctr::tcp_bad_checksum), 1u);
    FrameSpec low = seg(1001, ACK | PSH, 1001, 5001, "EHLO good.example\r\n");
    low.ttl = 3;  // might expire between the gateway and the server
    EXPECT_EQ(out(low, 1).verdict, Verdict::Unacceptable);
    EXPECT_EQ(c.get(Ctr::tcp_ttl_low), 1u);
    FrameSpec md5 = seg(1001, ACK | PSH, 1001, 5001, "EHLO good.example\r\n");
    md5.tcp_opt_bytes = {19, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ(out(md5, 1).verdict, Verdict::Unacceptable);
    EXPECT_EQ(c.get(Ctr::tcp_signed), 1u);
    // Ahead of the next in-order byte: dropped; the client sends it again in order.
    EXPECT_EQ(out(seg(1001, ACK | PSH, 1001 + 100000, 5001, "NOOP\r\n"), 1).verdict, Verdict::Unacceptable);
    EXPECT_EQ(c.get(Ctr::tcp_out_of_order), 1u);
    // Past the server's window (65535 from its SYN-ACK).
    EXPECT_EQ(out(seg(1001, ACK | PSH, 1001 + 65530, 5001, "NOOP\r\n"), 1).verdict, Verdict::Unacceptable);
    // In order: forwarded.
    EXPECT_EQ(out(seg(1001, ACK | PSH, 1001, 5001, "NOOP\r\n"), 1).verdict, Verdict::Forward);
}

TEST_F(Tracker, AnOldTimestampIsDroppedAsTheServersPawsCheckWould) {
    const std::vector<uint8_t> ts100 = {8, 10, 0, 0, 0, 100, 0, 0, 0, 0};
    FrameSpec syn = seg(1001, SYN, 1000, 0);
    syn.tcp_opt_bytes = ts100;
    out(syn, 0);
    FrameSpec sa = from_server(1001, SYN | ACK, 5000, 1001);
    sa.tcp_opt_bytes = {8, 10, 0, 0, 0, 9, 0, 0, 0, 100};
    in(sa, 0);
    FrameSpec ack = seg(1001, ACK, 1001, 5001);
    ack.tcp_opt_bytes = ts100;
    out(ack, 0);
    FrameSpec old = seg(1001, ACK | PSH, 1001, 5001, "EHLO good.example\r\n");
    old.tcp_opt_bytes = {8, 10, 0, 0, 0, 50, 0, 0, 0, 9};
    EXPECT_EQ(out(old, 1).verdict, Verdict::Unacceptable);
    EXPECT_EQ(c.get(Ctr::tcp_paws), 1u);
}

TEST_F(Tracker, DataOnASynIsStripped) {
    const auto r = out(seg(1001, SYN, 1000, 0, "EHLO evil.example\r\n"), 0);
    EXPECT_EQ(r.verdict, Verdict::Forward);
    EXPECT_TRUE(r.strip_payload);
    EXPECT_EQ(c.get(Ctr::tcp_syn_data_stripped), 1u);
    // The server acknowledges the SYN alone; the client's data comes again at 1001, in order.
    in(from_server(1001, SYN | ACK, 5000, 1001), 0);
    EXPECT_EQ(out(seg(1001, ACK | PSH, 1001, 5001, "EHLO evil.example\r\n"), 1).verdict, Verdict::Forward);
}

TEST_F(Tracker, HalfOpenFlowsExpireAndHoldNothing) {
    out(seg(1001, SYN, 1000, 0), 0);
    out(seg(1002, SYN, 1000, 0), 0);
    EXPECT_EQ(out(seg(1003, SYN, 1000, 0), 0).verdict, Verdict::Forward) << "SYNs hold no unit";
    tracker.sweep(clock.after_us(3'000'000), 1024, c);
    EXPECT_EQ(c.get(Ctr::flows_expired_half_open), 3u);
    EXPECT_EQ(tracker.table().size(), 0u);
}

TEST_F(Tracker, ConnectionsOverTheLimitAtTheHandshakeAreEndedThere) {
    // Three SYNs at once: none finds anything against it, but the third handshake is one too many.
    for (uint16_t p = 1; p <= 3; ++p) out(seg(p, SYN, 1000, 0), 0);
    for (uint16_t p = 1; p <= 3; ++p) in(from_server(p, SYN | ACK, 5000, 1001), 0);
    EXPECT_EQ(out(seg(1, ACK, 1001, 5001), 0).verdict, Verdict::Forward);
    EXPECT_EQ(out(seg(2, ACK, 1001, 5001), 0).verdict, Verdict::Forward);
    const auto r = out(seg(3, ACK, 1001, 5001), 0);
    EXPECT_EQ(r.verdict, Verdict::RefuseSession);
    EXPECT_EQ(r.reason, ReplyReason::Concurrency);
    EXPECT_EQ(c.get(Ctr::refused_at_handshake), 1u);
    EXPECT_EQ(open(), 2u);
}

TEST_F(Tracker, EstablishedFlowsUseTheIdleTimeoutAndActivityRenewsIt) {
    handshake(1001);
    tracker.sweep(clock.after_us(50'000'000), 1024, c);
    out(seg(1001, ACK | PSH, 1001, 5001, "NOOP\r\n"), 50'000);  // activity at 50 s
    tracker.sweep(clock.after_us(100'000'000), 1024, c);
    EXPECT_EQ(open(), 1u) << "idle for 50 s of 60";
    tracker.sweep(clock.after_us(110'000'000), 1024, c);
    EXPECT_EQ(open(), 0u);
    EXPECT_EQ(c.get(Ctr::flows_expired_established), 1u);
}

TEST_F(Tracker, ReusedPortsAfterCloseAreANewConnection) {
    out(seg(1001, SYN, 1000, 0), 0);
    in(from_server(1001, RST | ACK, 0, 1001), 1);  // the server refused
    EXPECT_EQ(tracker.table().size(), 1u);
    EXPECT_EQ(handshake(1001, 2).verdict, Verdict::Forward);
    EXPECT_EQ(open(), 1u);
    EXPECT_EQ(tracker.table().size(), 1u);
}

TEST_F(Tracker, UnknownSegmentsAreResetNotPickedUp) {
    const FrameSpec s = seg(1001, ACK | PSH, 1001, 5001, "MAIL FROM:<a@example.com>\r\n");
    EXPECT_EQ(out(s, 0).verdict, Verdict::Untracked);
    const auto r = tracker.unknown(parsed(s), pol, c);
    EXPECT_EQ(r.verdict, Verdict::RefuseSession);
    EXPECT_EQ(r.action, Action::Rst);
    EXPECT_EQ(c.get(Ctr::flows_unknown_reset), 1u);
    EXPECT_EQ(tracker.table().size(), 0u) << "no state for what nobody vouched for";
    EXPECT_EQ(sources.in_use(), 0u);
    pol.monitor = true;
    EXPECT_EQ(tracker.unknown(parsed(s), pol, c).verdict, Verdict::Forward);
}

TEST_F(Tracker, AFullTableOfConfirmedFlowsKeepsThemAndResetsNewOnesUntilRoomComes) {
    pol.default_limits = {};
    FlowTracker small(4, kKey, &sources, FlowTimeouts{1000, 60000, 1000});
    const auto go = [&](const FrameSpec& s, bool outbound, uint64_t ms) {
        FrameSpec w = s;
        if (!outbound) {
            std::swap(w.src, w.dst);
            std::swap(w.sport, w.dport);
        }
        const Parsed p = parsed(w);
        const Now now = clock.after_us(ms * 1000);
        if (outbound) return small.outbound(p, g_frame.data(), pol, false, now, c).verdict;
        small.inbound(p, g_frame.data(), pol, now, c);
        return Verdict::Forward;
    };
    for (uint16_t p = 1; p <= 5; ++p) {
        EXPECT_EQ(go(seg(p, SYN, 1000, 0), true, 0), Verdict::Forward) << "a SYN is never refused for room";
        go(from_server(p, SYN | ACK, 5000, 1001), false, 0);
        if (p < 5) {
            EXPECT_EQ(go(seg(p, ACK, 1001, 5001), true, 0), Verdict::Forward);
        }
    }
    EXPECT_EQ(c.get(Ctr::flow_table_full), 1u) << "the fifth server's answer found no room";
    EXPECT_EQ(go(seg(5, ACK, 1001, 5001), true, 0), Verdict::Untracked) << "no record: the worker resets it";
    EXPECT_EQ(go(seg(2, ACK | PSH, 1001, 5001, "NOOP\r\n"), true, 0), Verdict::Forward)
        << "an open connection is never refused";
    small.sweep(clock.after_us(60'000'000), 64, c);
    EXPECT_EQ(small.table().size(), 0u);
    EXPECT_EQ(go(seg(5, SYN, 1000, 0), true, 60'000), Verdict::Forward);
    EXPECT_EQ(small.table().size(), 1u);
}

TEST_F(Tracker, MonitorModeForwardsAndCountsWhatItWouldRefuse) {
    pol.monitor = true;
    for (uint16_t p = 1; p <= 2; ++p) EXPECT_EQ(handshake(p).verdict, Verdict::Forward);
    // The third is over the concurrency limit: forwarded all the same, as a would-be refusal the worker
    // reports (the event stream's monitor events).
    const Outcome third = handshake(3);
    EXPECT_EQ(third.verdict, Verdict::Monitored);
    EXPECT_EQ(third.reason, ReplyReason::Concurrency);
    EXPECT_EQ(c.get(Ctr::refused_concurrency), 1u);
    EXPECT_EQ(c.get(Ctr::monitor_passed), 1u);
    EXPECT_EQ(open(), 3u);
}

TEST_F(Tracker, PerApprovalOverridesAndRelayLimitsApply) {
    pol.limit_overrides.assign(false, {{u128{0xc6336414u}, u128{0xc6336414u}, Limits{1, 0, 0}}});  // .20
    EXPECT_EQ(handshake(1).verdict, Verdict::Forward);
    EXPECT_EQ(out(seg(2, SYN, 1000, 0), 0).verdict, Verdict::Refuse);
    // To a relay: the relay limits (unlimited here), same source counters.
    EXPECT_EQ(out(seg(3, SYN, 1000, 0), 0, true).verdict, Verdict::Forward);
}

TEST(SourceTable, AnIpv6SourceIsItsSlash64) {
    SourceTable t(1024, kKey, 64);
    EXPECT_EQ(t.id_of(*parse_addr("2001:db8:1:2::1")), t.id_of(*parse_addr("2001:db8:1:2:ffff::9")));
    EXPECT_NE(t.id_of(*parse_addr("2001:db8:1:2::1")), t.id_of(*parse_addr("2001:db8:1:3::1")));
    SourceTable each(1024, kKey, 128);
    EXPECT_NE(each.id_of(*parse_addr("2001:db8:1:2::1")), each.id_of(*parse_addr("2001:db8:1:2::2")));
}

TEST(SourceTable, NoDailyLimitKeepsNoDailyStateAndIdleSlotsAreReused) {
    SourceTable t(8, kKey);  // one group of 8 ways
    const Limits none{};
    for (uint32_t i = 1; i <= 8; ++i) {
        const uint64_t id = t.id_of(IpAddr::from_v4(i));
        const uint32_t slot = t.acquire(id, 0, kDay);
        ASSERT_NE(slot, SourceTable::kNone);
        EXPECT_EQ(t.admit(slot, id, none, 0, kDay, true), Admit::Ok);
        t.release(slot);
    }
    // Each connected and closed today: with no daily limit, none keeps the slot.
    const uint64_t fresh = t.id_of(IpAddr::from_v4(100));
    EXPECT_NE(t.acquire(fresh, 1, kDay), SourceTable::kNone);
}

TEST(SourceTable, ASlotHoldingOnlyADailyCountIsReclaimedWhenTheGroupIsFull) {
    SourceTable t(8, kKey);
    const Limits daily{0, 0, 100};
    for (uint32_t i = 1; i <= 8; ++i) {
        const uint64_t id = t.id_of(IpAddr::from_v4(i));
        const uint32_t slot = t.acquire(id, i, kDay);
        EXPECT_EQ(t.admit(slot, id, daily, i, kDay, true), Admit::Ok);
        t.release(slot);
    }
    bool reclaimed = false;
    EXPECT_NE(t.acquire(t.id_of(IpAddr::from_v4(100)), 50, kDay, &reclaimed), SourceTable::kNone);
    EXPECT_TRUE(reclaimed);
    EXPECT_FALSE(t.view(IpAddr::from_v4(1), daily, 50, kDay).found) << "the one idle longest went";
}

TEST(SourceTable, WithoutAConcurrencyLimitTheFlowCapHolds) {
    SourceTable t(64, kKey, 64, 3);
    const uint64_t id = t.id_of(IpAddr::from_v4(7));
    const uint32_t slot = t.acquire(id, 0, kDay);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(t.admit(slot, id, Limits{}, 0, kDay, true), Admit::Ok);
    EXPECT_EQ(t.admit(slot, id, Limits{}, 0, kDay, true), Admit::Concurrency);
    EXPECT_EQ(t.peek(id, Limits{}, 0, kDay), Admit::Concurrency);
}

}  // namespace
