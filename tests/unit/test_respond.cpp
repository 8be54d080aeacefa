// RST construction tests: the reset a refused client receives must be one its TCP stack accepts.
#include <gtest/gtest.h>
#include <rte_ip.h>

#include "dataplane/respond.hpp"
#include "tests/unit/frames.hpp"

using namespace portcullis;
using namespace portcullis::test;

namespace {

// Recomputes the TCP checksum with the field zeroed and compares it with the one the responder wrote.
bool tcp_checksum_ok(std::vector<uint8_t> f, size_t l3, size_t l4, bool v6) {
    const uint16_t stored = static_cast<uint16_t>(f[l4 + 16] | (f[l4 + 17] << 8));
    f[l4 + 16] = f[l4 + 17] = 0;
    const uint16_t again =
        v6 ? rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(f.data() + l3), f.data() + l4)
           : rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(f.data() + l3), f.data() + l4);
    return stored == again && stored != 0;
}

std::vector<uint8_t> rst_for(const FrameSpec& s, Parsed* out = nullptr) {
    auto f = build_frame(s);
    const auto p = parse_frame(f.data(), static_cast<uint32_t>(f.size()));
    EXPECT_EQ(p.kind, L3Kind::Tcp);
    f.resize(make_rst_in_place(f.data(), p));
    if (out) *out = parse_frame(f.data(), static_cast<uint32_t>(f.size()));
    return f;
}

TEST(Respond, SynGetsRstAckAcknowledgingIt) {
    FrameSpec s;
    s.seq = 0xfffffffe;  // wraps
    s.ip_options = 8;
    s.tcp_options = 20;
    Parsed r;
    const auto f = rst_for(s, &r);
    ASSERT_EQ(r.kind, L3Kind::Tcp);
    EXPECT_EQ(r.src, *parse_addr("203.0.113.25"));
    EXPECT_EQ(r.dst, *parse_addr("198.51.100.20"));
    EXPECT_EQ(r.sport, 25);
    EXPECT_EQ(r.dport, 40000);
    EXPECT_EQ(r.tcp_flags, tcpflag::RST | tcpflag::ACK);
    EXPECT_EQ(load_be32(f.data() + r.l4_off + 8), 0xffffffffu);
    EXPECT_EQ(f.size(), 14u + 20 + 20);
    // MACs swapped
    EXPECT_EQ(f[5], 0xaa);
    EXPECT_EQ(f[11], 0xbb);
    // Checksums verify
    auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(f.data() + 14);
    EXPECT_EQ(rte_ipv4_cksum(ip), 0) << "IPv4 header checksum";
    EXPECT_EQ(tcp_checksum_ok(f, 14, 34, false), true) << "TCP checksum";
}

TEST(Respond, SegmentWithAckGetsRstWithThatSequence) {
    FrameSpec s;
    s.flags = tcpflag::ACK | tcpflag::PSH;
    s.seq = 5000;
    s.ack = 777777;
    s.payload = "MAIL FROM:<x@example.com>\r\n";
    Parsed r;
    const auto f = rst_for(s, &r);
    EXPECT_EQ(r.tcp_flags, tcpflag::RST);
    EXPECT_EQ(load_be32(f.data() + r.l4_off + 4), 777777u);
    EXPECT_EQ(r.payload_len, 0);
}

TEST(Respond, VlanTagsKeptIpv6ChecksumValid) {
    FrameSpec s;
    s.tpids = {0x88a8, 0x8100};
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{0, 6}};
    Parsed r;
    const auto f = rst_for(s, &r);
    ASSERT_EQ(r.kind, L3Kind::Tcp);
    EXPECT_EQ(r.vlan_tags, 2);
    EXPECT_EQ(f[12], 0x88);
    EXPECT_EQ(f[13], 0xa8);
    EXPECT_EQ(r.src, *parse_addr("2001:db8:25::25"));
    EXPECT_EQ(r.dst, *parse_addr("2001:db8:100::20"));
    EXPECT_EQ(f.size(), 22u + 40 + 20);
    EXPECT_TRUE(tcp_checksum_ok(f, 22, 62, true));
}

}  // namespace
