// Burst processing on real mbufs and real (ring-backed) DPDK ports: what leaves on which port, byte for byte,
// what is counted, and that every mbuf goes back to its pool whatever the verdict or a full TX queue.
#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "control/policy/policy_builder.hpp"
#include "dataplane/events.hpp"
#include "dataplane/source_table.hpp"
#include "dataplane/worker.hpp"
#include "tests/unit/frames.hpp"

using namespace portcullis;
using namespace portcullis::test;

namespace {

rte_mempool* g_pool = nullptr;

class EalEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        const std::string prefix = "--file-prefix=pcunit" + std::to_string(getpid());
        std::vector<std::string> args = {
            "unit_tests", "-l",  "0",           "--no-huge", "--no-pci",
            "-m",         "128", "--no-shconf", prefix,      "--log-level=error"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        ASSERT_GE(rte_eal_init(static_cast<int>(argv.size()), argv.data()), 0);
        g_pool = rte_pktmbuf_pool_create("unit_pool", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        ASSERT_NE(g_pool, nullptr);
    }
    void TearDown() override {
        rte_eal_cleanup();
        std::filesystem::remove_all("/var/run/dpdk/pcunit" + std::to_string(getpid()));
    }
};

[[maybe_unused]] auto* const g_env = ::testing::AddGlobalTestEnvironment(new EalEnvironment);

// A port whose RX and TX queues are rte_rings the test reads and writes.
struct RingPort {
    uint16_t id = 0;
    rte_ring* rx = nullptr;
    rte_ring* tx = nullptr;

    RingPort(const std::string& name, unsigned tx_size) {
        rx = rte_ring_create((name + "_rx").c_str(), 1024, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        tx = rte_ring_create((name + "_tx").c_str(), tx_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
        const int port = rte_eth_from_rings(name.c_str(), &rx, 1, &tx, 1, SOCKET_ID_ANY);
        EXPECT_GE(port, 0);
        id = static_cast<uint16_t>(port);
        rte_eth_conf conf{};
        EXPECT_EQ(rte_eth_dev_configure(id, 1, 1, &conf), 0);
        EXPECT_EQ(rte_eth_rx_queue_setup(id, 0, 64, SOCKET_ID_ANY, nullptr, g_pool), 0);
        EXPECT_EQ(rte_eth_tx_queue_setup(id, 0, 64, SOCKET_ID_ANY, nullptr), 0);
        EXPECT_EQ(rte_eth_dev_start(id), 0);
    }
    ~RingPort() {
        drain();
        rte_eth_dev_stop(id);
        rte_eth_dev_close(id);
        rte_ring_free(rx);
        rte_ring_free(tx);
    }
    // Frames the worker transmitted on this port, freed after copying.
    std::vector<std::vector<uint8_t>> drain() {
        std::vector<std::vector<uint8_t>> out;
        void* obj;
        while (rte_ring_dequeue(tx, &obj) == 0) {
            auto* m = static_cast<rte_mbuf*>(obj);
            const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
            out.emplace_back(d, d + rte_pktmbuf_data_len(m));
            rte_pktmbuf_free(m);
        }
        return out;
    }
};

rte_mbuf* mbuf_of(const std::vector<uint8_t>& frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
    auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())));
    std::memcpy(d, frame.data(), frame.size());
    return m;
}

std::unique_ptr<Policy> lab_policy(Action action) {
    Config c;
    c.managed_prefixes = {*parse_prefix("198.51.100.0/25"), *parse_prefix("2001:db8:100::/48")};
    c.approved = {*parse_prefix("198.51.100.10")};
    c.blocked_ports = {25};
    c.open_ports = {587};
    c.action_unapproved = action;
    return build_policy(c, nullptr, 0).policy;
}

class Worker : public ::testing::Test {
  protected:
    void SetUp() override {
        static int n = 0;
        ++n;
        inside = std::make_unique<RingPort>("in" + std::to_string(n), 1024);
        outside = std::make_unique<RingPort>("out" + std::to_string(n), out_ring_size);
        ctx = WorkerContext{};
        ctx.inside_port = inside->id;
        ctx.outside_port = outside->id;
        ctx.counters = &counters;
        available = rte_mempool_avail_count(g_pool);
    }
    void TearDown() override {
        inside->drain();
        outside->drain();
        EXPECT_EQ(rte_mempool_avail_count(g_pool), available) << "an mbuf leaked";
        inside.reset();
        outside.reset();
    }
    void outbound(const std::vector<std::vector<uint8_t>>& frames, const Policy& pol) {
        std::vector<rte_mbuf*> pkts;
        for (const auto& f : frames) pkts.push_back(mbuf_of(f));
        LazyNow at(now);
        process_outbound(ctx, pol, pkts.data(), static_cast<uint16_t>(pkts.size()), at);
    }
    void inbound(const std::vector<std::vector<uint8_t>>& frames, const Policy& pol) {
        std::vector<rte_mbuf*> pkts;
        for (const auto& f : frames) pkts.push_back(mbuf_of(f));
        LazyNow at(now);
        process_inbound(ctx, pol, pkts.data(), static_cast<uint16_t>(pkts.size()), at);
    }

    unsigned out_ring_size = 1024;
    std::unique_ptr<RingPort> inside, outside;
    Counters counters;
    WorkerContext ctx;
    Now now;
    unsigned available = 0;
};

TEST_F(Worker, ForwardsRefusesAndDropsOneBurst) {
    const auto pol = lab_policy(Action::Rst);
    FrameSpec web;
    web.dport = 80;
    FrameSpec qinq_submission;  // 802.1ad + 802.1Q, byte for byte
    qinq_submission.tpids = {0x88a8, 0x8100};
    qinq_submission.dport = 587;
    FrameSpec approved;
    approved.src = "198.51.100.10";
    FrameSpec refused;  // unapproved SYN to 25, double tagged
    refused.tpids = {0x88a8, 0x8100};
    auto malformed = build_frame(FrameSpec{});
    malformed[14] = 0x41;

    const std::vector<std::vector<uint8_t>> in = {build_frame(web), build_frame(refused), malformed,
                                                  build_frame(qinq_submission), build_frame(approved)};
    outbound(in, *pol);

    EXPECT_EQ(outside->drain(), (std::vector<std::vector<uint8_t>>{in[0], in[3], in[4]}));
    const auto back = inside->drain();
    ASSERT_EQ(back.size(), 1u);
    const auto p = parse_frame(back[0].data(), static_cast<uint32_t>(back[0].size()));
    EXPECT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.vlan_tags, 2);
    EXPECT_EQ(back[0][12], 0x88);  // the 802.1ad TPID survives
    EXPECT_EQ(back[0][13], 0xa8);
    EXPECT_EQ(p.tcp_flags, tcpflag::RST | tcpflag::ACK);
    EXPECT_EQ(counters.get(Ctr::rx_inside), 5u);
    EXPECT_EQ(counters.get(Ctr::fwd_outbound), 3u);
    EXPECT_EQ(counters.get(Ctr::refused_unapproved), 1u);
    EXPECT_EQ(counters.get(Ctr::refused_unapproved_syn), 1u);
    EXPECT_EQ(counters.get(Ctr::rst_sent), 1u);
    EXPECT_EQ(counters.get(Ctr::pass_approved), 1u);
    EXPECT_EQ(counters.get(Ctr::malformed_ipv4_bad_ihl), 1u);
}

TEST_F(Worker, DropActionFreesTheSegment) {
    const auto pol = lab_policy(Action::Drop);
    outbound({build_frame(FrameSpec{})}, *pol);
    EXPECT_TRUE(inside->drain().empty());
    EXPECT_TRUE(outside->drain().empty());
    EXPECT_EQ(counters.get(Ctr::dropped_refused), 1u);
    EXPECT_EQ(counters.get(Ctr::rst_sent), 0u);
}

TEST_F(Worker, MonitorModeForwardsWhatItWouldRefuseAndCountsIt) {
    auto pol = lab_policy(Action::Rst);
    pol->monitor = true;
    const auto syn = build_frame(FrameSpec{});  // unapproved, managed, port 25
    outbound({syn}, *pol);
    EXPECT_EQ(outside->drain(), std::vector<std::vector<uint8_t>>{syn});
    EXPECT_TRUE(inside->drain().empty());
    EXPECT_EQ(counters.get(Ctr::refused_unapproved_syn), 1u);
    EXPECT_EQ(counters.get(Ctr::monitor_passed), 1u);
    EXPECT_EQ(counters.get(Ctr::rst_sent), 0u);
}

// The overlapping-fragment attack (RST first fragment, SYN-writing fragment at offset 8 bytes) leaves no
// fragment of it on the wire, also in monitor mode (the drop is no refusal); other fragments pass unchanged.
TEST_F(Worker, OverlappingFragmentAttackLeavesNothingOtherFragmentsPass) {
    auto pol = lab_policy(Action::Rst);
    pol->monitor = true;
    FrameSpec rst_first;
    rst_first.frag = 0x2000;
    rst_first.flags = tcpflag::RST;
    FrameSpec syn_overlap;
    syn_overlap.frag = 1;
    FrameSpec web_first = rst_first;
    web_first.dport = 80;
    web_first.flags = tcpflag::ACK | tcpflag::PSH;
    web_first.payload = "GET / HTTP/1.1\r\n";
    FrameSpec web_later;
    web_later.frag = 3;
    FrameSpec v6_first;
    v6_first.src = "2001:db8:100::20";
    v6_first.dst = "2001:db8:25::25";
    v6_first.flags = tcpflag::RST;
    v6_first.ext6 = {{44, 0, 0, true}};
    FrameSpec v6_overlap = v6_first;
    v6_overlap.ext6 = {{44, 0, 1}};
    const std::vector<std::vector<uint8_t>> in = {build_frame(rst_first), build_frame(syn_overlap),
                                                  build_frame(web_first), build_frame(web_later),
                                                  build_frame(v6_first),  build_frame(v6_overlap)};
    outbound(in, *pol);
    EXPECT_EQ(outside->drain(), (std::vector<std::vector<uint8_t>>{in[2], in[3]}));
    EXPECT_TRUE(inside->drain().empty());
    EXPECT_EQ(counters.get(Ctr::dropped_fragment_policed), 2u);
    EXPECT_EQ(counters.get(Ctr::malformed_fragment_offset_one), 2u);
    EXPECT_EQ(counters.get(Ctr::fwd_outbound), 2u);
    EXPECT_EQ(counters.get(Ctr::pass_client_rst), 0u);
    EXPECT_EQ(counters.get(Ctr::monitor_passed), 0u);
}

TEST_F(Worker, InboundPort25IsForwardedUntouched) {
    FrameSpec s;  // from the internet to an unapproved rack address, port 25: inbound mail
    s.src = "203.0.113.25";
    s.dst = "198.51.100.20";
    const auto f = build_frame(s);
    inbound({f}, *lab_policy(Action::Rst));
    EXPECT_EQ(inside->drain(), std::vector<std::vector<uint8_t>>{f});
    EXPECT_EQ(counters.get(Ctr::fwd_inbound), 1u);
}

class WorkerFullTx : public Worker {
  protected:
    void SetUp() override {
        out_ring_size = 4;  // room for 3
        Worker::SetUp();
    }
};

TEST_F(WorkerFullTx, FullTxQueueDropsAndCountsWithoutLeaking) {
    const auto pol = lab_policy(Action::Rst);
    FrameSpec web;
    web.dport = 443;
    outbound(std::vector<std::vector<uint8_t>>(8, build_frame(web)), *pol);
    EXPECT_EQ(outside->drain().size(), 3u);
    EXPECT_EQ(counters.get(Ctr::fwd_outbound), 3u);
    EXPECT_EQ(counters.get(Ctr::tx_full_outside), 5u);
}

// Two workers (two RX queues' worth of state) sharing the per-source limits, with the SMTP refusal action.
class TrackedWorkers : public Worker {
  protected:
    void SetUp() override {
        Worker::SetUp();
        pol = lab_policy(Action::Smtp);
        pol->default_limits = {2, 0, 0};
        pol->action_limit = Action::Smtp;
        pol->replies[static_cast<size_t>(ReplyReason::Concurrency)] = "421 4.7.0 Too many concurrent";
        for (auto& t : trackers)
            t = std::make_unique<FlowTracker>(64, CookieKey{1, 2}, &sources, FlowTimeouts{});
        ctx.flows = trackers[0].get();
    }
    void on_worker(int w) { ctx.flows = trackers[w].get(); }
    // A whole handshake through the current worker (the server's ISN 777000): the connection is admitted at
    // the client's ACK. The frames it forwards are left in the queues; the SYN-ACK to the rack is drained.
    void connect(FrameSpec s) {
        s.flags = tcpflag::SYN;
        s.seq = 1000;
        s.ack = 0;
        outbound({build_frame(s)}, *pol);
        FrameSpec sa = s;
        std::swap(sa.src, sa.dst);
        std::swap(sa.sport, sa.dport);
        sa.flags = tcpflag::SYN | tcpflag::ACK;
        sa.seq = 777000;
        sa.ack = 1001;
        inbound({build_frame(sa)}, *pol);
        inside->drain();
        s.flags = tcpflag::ACK;
        s.seq = 1001;
        s.ack = 777001;
        outbound({build_frame(s)}, *pol);
    }

    SourceTable sources{1024, CookieKey{5, 6}};
    std::unique_ptr<FlowTracker> trackers[2];
    std::unique_ptr<Policy> pol;
};

FrameSpec approved_syn(uint16_t sport) {
    FrameSpec s;
    s.src = "198.51.100.10";  // approved in lab_policy
    s.sport = sport;
    return s;
}

TEST_F(TrackedWorkers, LimitHoldsAcrossWorkersAndTheRefusalIsA421) {
    on_worker(0);
    connect(approved_syn(1001));
    on_worker(1);
    connect(approved_syn(1002));
    EXPECT_EQ(outside->drain().size(), 4u) << "SYN and ACK of each";
    EXPECT_EQ(counters.get(Ctr::flows_opened), 2u);

    outbound({build_frame(approved_syn(1003))}, *pol);  // the third, on either worker: over the limit of 2
    EXPECT_TRUE(outside->drain().empty()) << "nothing reaches the server";
    EXPECT_EQ(counters.get(Ctr::refused_concurrency), 1u);
    auto back = inside->drain();
    ASSERT_EQ(back.size(), 1u);
    auto r = parse_frame(back[0].data(), static_cast<uint32_t>(back[0].size()));
    ASSERT_EQ(r.tcp_flags, tcpflag::SYN | tcpflag::ACK) << "the gateway answers the SYN itself";
    const uint32_t cookie = load_be32(back[0].data() + r.l4_off + 4);

    // The client completes the handshake: no flow knows it, the cookie does; it gets the 421 line.
    FrameSpec ack = approved_syn(1003);
    ack.flags = tcpflag::ACK;
    ack.seq = 1001;
    ack.ack = cookie + 1;
    on_worker(0);
    outbound({build_frame(ack)}, *pol);
    back = inside->drain();
    ASSERT_EQ(back.size(), 1u);
    r = parse_frame(back[0].data(), static_cast<uint32_t>(back[0].size()));
    EXPECT_EQ(std::string(back[0].begin() + r.payload_off, back[0].end()),
              "421 4.7.0 Too many concurrent\r\n");
    EXPECT_TRUE(outside->drain().empty());
    EXPECT_EQ(counters.get(Ctr::flows_unknown_reset), 0u) << "a refusal's ACK is no unknown connection";

    // Worker 1's connection ends (server RST on the inbound path): the next attempt passes on worker 0.
    FrameSpec rst = approved_syn(1002);
    std::swap(rst.src, rst.dst);
    std::swap(rst.sport, rst.dport);
    rst.flags = tcpflag::RST | tcpflag::ACK;
    rst.seq = 777001;
    on_worker(1);
    inbound({build_frame(rst)}, *pol);
    EXPECT_EQ(inside->drain().size(), 1u);
    on_worker(0);
    outbound({build_frame(approved_syn(1004))}, *pol);
    EXPECT_EQ(outside->drain().size(), 1u);
}

TEST_F(TrackedWorkers, ASegmentOfNoKnownConnectionIsResetBothWays) {
    FrameSpec ack = approved_syn(1005);
    ack.flags = tcpflag::ACK | tcpflag::PSH;
    ack.seq = 1001;
    ack.ack = 12345;  // acknowledges no cookie: a connection nobody saw open (or a forgery)
    ack.payload = "MAIL FROM:<spam@evil.example>\r\n";
    outbound({build_frame(ack)}, *pol);
    const auto out = outside->drain();
    ASSERT_EQ(out.size(), 1u);
    const auto to_server = parse_frame(out[0].data(), static_cast<uint32_t>(out[0].size()));
    EXPECT_EQ(to_server.tcp_flags, tcpflag::RST | tcpflag::ACK);
    EXPECT_EQ(to_server.payload_len, 0) << "its bytes never reach the server";
    const auto back = inside->drain();
    ASSERT_EQ(back.size(), 1u);
    EXPECT_TRUE(parse_frame(back[0].data(), static_cast<uint32_t>(back[0].size())).tcp_flags & tcpflag::RST);
    EXPECT_EQ(counters.get(Ctr::flows_unknown_reset), 1u);
    EXPECT_EQ(trackers[0]->table().size(), 0u);
}

TEST_F(TrackedWorkers, SessionSayingWhatThePolicyRefusesIsEndedOnBothSides) {
    Inspector inspector(16, 2048);
    FlowTracker tracker(64, CookieKey{1, 2}, &sources, FlowTimeouts{}, &inspector, 0);
    ctx.flows = &tracker;
    connect(approved_syn(2001));
    EXPECT_EQ(outside->drain().size(), 2u);

    FrameSpec ehlo = approved_syn(2001);
    ehlo.flags = tcpflag::ACK | tcpflag::PSH;
    ehlo.seq = 1001;
    ehlo.ack = 777001;
    ehlo.payload = "EHLO localhost\r\n";
    outbound({build_frame(ehlo)}, *pol);
    EXPECT_EQ(counters.get(Ctr::refused_payload), 1u);

    // The server: a RST with the sequence number it expects (it never got the EHLO), no payload.
    const auto out = outside->drain();
    ASSERT_EQ(out.size(), 1u);
    const auto rst = parse_frame(out[0].data(), static_cast<uint32_t>(out[0].size()));
    EXPECT_EQ(rst.tcp_flags, tcpflag::RST | tcpflag::ACK);
    EXPECT_EQ(rst.dst, *parse_addr("203.0.113.25"));
    EXPECT_EQ(load_be32(out[0].data() + rst.l4_off + 4), 1001u);
    EXPECT_EQ(rst.payload_len, 0);

    // The client: the reason as an SMTP reply, from the server's side, then FIN.
    auto back = inside->drain();
    ASSERT_EQ(back.size(), 1u);
    auto r = parse_frame(back[0].data(), static_cast<uint32_t>(back[0].size()));
    EXPECT_EQ(r.tcp_flags, tcpflag::PSH | tcpflag::ACK | tcpflag::FIN);
    EXPECT_EQ(load_be32(back[0].data() + r.l4_off + 4), 777001u);
    EXPECT_EQ(load_be32(back[0].data() + r.l4_off + 8), 1001u + 16);
    EXPECT_EQ(std::string(back[0].begin() + r.payload_off, back[0].end()).substr(0, 10), "550 5.7.1 ");

    // The client's FIN afterwards is acknowledged by the gateway; nothing more reaches the server.
    FrameSpec fin = ehlo;
    fin.payload.clear();
    fin.seq = 1017;
    fin.flags = tcpflag::FIN | tcpflag::ACK;
    outbound({build_frame(fin)}, *pol);
    EXPECT_TRUE(outside->drain().empty());
    back = inside->drain();
    ASSERT_EQ(back.size(), 1u);
    r = parse_frame(back[0].data(), static_cast<uint32_t>(back[0].size()));
    EXPECT_EQ(r.tcp_flags, tcpflag::ACK);
    EXPECT_EQ(load_be32(back[0].data() + r.l4_off + 8), 1018u);
    EXPECT_EQ(inspector.in_use(), 0u) << "the inspection slot went back to the pool";
    EXPECT_EQ(sources.view(*parse_addr("198.51.100.10"), Limits{}, 0, 0).concurrent, 0u)
        << "an ended session no longer counts against its source";
}

TEST_F(TrackedWorkers, EveryMessageOfACleartextSessionCountsAgainstTheDailyVolume) {
    Inspector inspector(16, 2048);
    FlowTracker tracker(64, CookieKey{1, 2}, &sources, FlowTimeouts{}, &inspector, 0);
    ctx.flows = &tracker;
    pol->default_limits = {0, 0, 2};  // two messages a day
    pol->replies[static_cast<size_t>(ReplyReason::Daily)] = "421 4.7.0 daily";
    connect(approved_syn(3001));  // the connection: the first message
    outside->drain();
    FrameSpec s = approved_syn(3001);
    s.flags = tcpflag::ACK | tcpflag::PSH;
    s.seq = 1001;
    s.ack = 777001;
    s.payload =
        "EHLO mail.customer.example\r\nMAIL FROM:<a@customer.example>\r\nRSET\r\n"
        "MAIL FROM:<b@customer.example>\r\n";
    outbound({build_frame(s)}, *pol);  // the second MAIL FROM: the second message
    EXPECT_EQ(outside->drain().size(), 1u);
    s.seq += static_cast<uint32_t>(s.payload.size());
    s.payload = "RSET\r\nMAIL FROM:<c@customer.example>\r\n";  // the third: over
    outbound({build_frame(s)}, *pol);
    EXPECT_EQ(counters.get(Ctr::refused_daily), 1u);
    const auto back = inside->drain();
    ASSERT_EQ(back.size(), 1u);
    const auto r = parse_frame(back[0].data(), static_cast<uint32_t>(back[0].size()));
    EXPECT_EQ(std::string(back[0].begin() + r.payload_off, back[0].end()), "421 4.7.0 daily\r\n");
    EXPECT_EQ(outside->drain().size(), 1u) << "the server's RST";
    EXPECT_EQ(sources.view(*parse_addr("198.51.100.10"), Limits{}, 0, 0).daily, 3u);
}

TEST_F(TrackedWorkers, SubmissionPortIsLimitedToo) {
    pol->default_limits = {1, 0, 0};
    pol->action_limit = Action::Rst;
    FrameSpec s;  // unapproved source, port 587: open, but limited
    s.dport = 587;
    connect(s);
    s.sport = 40001;
    s.flags = tcpflag::SYN;
    outbound({build_frame(s)}, *pol);
    EXPECT_EQ(outside->drain().size(), 2u) << "the first connection's SYN and ACK";
    const auto back = inside->drain();
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(parse_frame(back[0].data(), static_cast<uint32_t>(back[0].size())).tcp_flags,
              tcpflag::RST | tcpflag::ACK);
    EXPECT_EQ(counters.get(Ctr::pass_open), 3u);
}

}  // namespace

namespace {

TEST_F(TrackedWorkers, TheNormaliserDropsWhatTheServerWouldDiscardButMonitorModeRefusesNothing) {
    connect(approved_syn(4001));
    outside->drain();
    FrameSpec bad = approved_syn(4001);
    bad.flags = tcpflag::ACK | tcpflag::PSH;
    bad.seq = 1001;
    bad.ack = 777001;
    bad.payload = "EHLO good.example\r\n";
    bad.bad_checksum = true;
    outbound({build_frame(bad)}, *pol);
    EXPECT_TRUE(outside->drain().empty()) << "a segment the server would drop is not forwarded, nor read";
    EXPECT_EQ(counters.get(Ctr::tcp_bad_checksum), 1u);
    pol->monitor = true;
    outbound({build_frame(bad)}, *pol);
    EXPECT_EQ(outside->drain().size(), 1u) << "monitor mode: counted, forwarded";
    EXPECT_EQ(counters.get(Ctr::tcp_bad_checksum), 2u);
    EXPECT_EQ(counters.get(Ctr::monitor_passed), 1u);
}

}  // namespace

// Every refusal reaches the control side as one event with what the stream needs (both addresses and
// ports, the reason, the answer, the time), and counts once by reason; the later segments of a refused
// connection make events (per-source figures) but no new refusal.
TEST_F(Worker, ARefusalIsOneEventAndOneCountByReason) {
    rte_ring* ring = rte_ring_create_elem("worker_events", sizeof(RefusalEvent), 64, SOCKET_ID_ANY,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(ring, nullptr);
    ctx.events = ring;
    now.us = 123'456;
    const auto pol = lab_policy(Action::Rst);
    FrameSpec ack;
    ack.flags = 0x10;
    ack.sport = 40001;
    outbound({build_frame(FrameSpec{}), build_frame(ack)}, *pol);
    RefusalEvent ev[4];
    ASSERT_EQ(rte_ring_dequeue_burst_elem(ring, ev, sizeof(RefusalEvent), 4, nullptr), 2u);
    EXPECT_EQ(to_string(ev[0].source()), "198.51.100.20");
    EXPECT_EQ(to_string(ev[0].destination()), "203.0.113.25");
    EXPECT_EQ(ev[0].sport, 40000);
    EXPECT_EQ(ev[0].dport, 25);
    EXPECT_EQ(ev[0].syn, 1);
    EXPECT_EQ(ev[0].us, 123'456u);
    EXPECT_EQ(ev[0].reason, static_cast<uint8_t>(ReplyReason::Unapproved));
    EXPECT_EQ(ev[0].action, static_cast<uint8_t>(Action::Rst));
    EXPECT_EQ(ev[0].flags, 0);
    EXPECT_EQ(ev[1].syn, 0) << "the stray ACK is refused (reset) but is no connection attempt";
    EXPECT_EQ(counters.get(Ctr::refusals), 1u);
    EXPECT_EQ(counters.get(Ctr::refusal_unapproved), 1u);

    // Monitor mode: the same SYN is forwarded, and its event says it would have been refused.
    auto monitor = lab_policy(Action::Rst);
    monitor->monitor = true;
    outbound({build_frame(FrameSpec{})}, *monitor);
    ASSERT_EQ(rte_ring_dequeue_burst_elem(ring, ev, sizeof(RefusalEvent), 4, nullptr), 1u);
    EXPECT_EQ(ev[0].flags & kEventMonitor, kEventMonitor);
    EXPECT_EQ(counters.get(Ctr::refusals), 2u);
    rte_ring_free(ring);
}

// A full event ring loses events, counted, and never a frame: the refusals still count.
TEST_F(Worker, AFullEventRingLosesEventsNotFrames) {
    rte_ring* ring = rte_ring_create_elem("worker_events_full", sizeof(RefusalEvent), 4, SOCKET_ID_ANY,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
    ASSERT_NE(ring, nullptr);
    ctx.events = ring;
    const auto pol = lab_policy(Action::Rst);
    std::vector<std::vector<uint8_t>> syns;
    for (uint16_t i = 0; i < 10; ++i) {
        FrameSpec f;
        f.sport = static_cast<uint16_t>(41000 + i);
        syns.push_back(build_frame(f));
    }
    outbound(syns, *pol);
    EXPECT_EQ(inside->drain().size(), 10u) << "every SYN answered with its RST";
    EXPECT_EQ(rte_ring_count(ring), 4u);
    EXPECT_EQ(counters.get(Ctr::events_lost), 6u);
    EXPECT_EQ(counters.get(Ctr::refusals), 10u);
    EXPECT_EQ(counters.get(Ctr::refusal_unapproved), 10u);
    rte_ring_free(ring);
}
