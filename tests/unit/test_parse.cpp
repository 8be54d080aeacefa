// Parser tests: well-formed frames of every shape we forward, and every malformation we count.
#include <gtest/gtest.h>

#include <random>

#include "dataplane/parse.hpp"
#include "tests/unit/frames.hpp"

using namespace portcullis;
using namespace portcullis::test;

namespace {

Parsed parse(const std::vector<uint8_t>& f) {
    return parse_frame(f.data(), static_cast<uint32_t>(f.size()));
}
Parsed parse(const FrameSpec& s) {
    return parse(build_frame(s));
}

TEST(Parse, Ipv4TcpSyn) {
    const auto p = parse(FrameSpec{});
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.ip_version, 4);
    EXPECT_EQ(p.src, *parse_addr("198.51.100.20"));
    EXPECT_EQ(p.dst, *parse_addr("203.0.113.25"));
    EXPECT_EQ(p.sport, 40000);
    EXPECT_EQ(p.dport, 25);
    EXPECT_EQ(p.tcp_flags, tcpflag::SYN);
    EXPECT_EQ(p.l3_off, 14);
    EXPECT_EQ(p.l4_off, 34);
    EXPECT_EQ(p.payload_len, 0);
}

TEST(Parse, Ipv4OptionsAndTcpOptionsAndPayload) {
    FrameSpec s;
    s.ip_options = 8;
    s.tcp_options = 12;
    s.payload = "EHLO mail.example.com\r\n";
    s.flags = tcpflag::ACK | tcpflag::PSH;
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.l4_off, 14 + 28);
    EXPECT_EQ(p.payload_off, 14 + 28 + 32);
    EXPECT_EQ(p.payload_len, s.payload.size());
}

TEST(Parse, EthernetPaddingIsNotPayload) {
    FrameSpec s;
    s.pad = 6;  // a 54-byte SYN padded to the 60-byte minimum
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.payload_len, 0);
}

TEST(Parse, StackedVlans) {
    FrameSpec s;
    s.tpids = {0x88a8, 0x8100};
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.vlan_tags, 2);
    EXPECT_EQ(p.l3_off, 22);
    EXPECT_EQ(p.dport, 25);
}

TEST(Parse, FourTagsParseFiveAreMalformed) {
    FrameSpec s;
    s.tpids = {0x88a8, 0x8100, 0x8100, 0x8100};
    EXPECT_EQ(parse(s).kind, L3Kind::Tcp);
    s.tpids.push_back(0x8100);
    const auto p = parse(s);
    EXPECT_EQ(p.kind, L3Kind::Malformed);
    EXPECT_EQ(p.malformation, Malformation::TooManyTags);
}

TEST(Parse, NonIpIsForwardedKind) {
    std::vector<uint8_t> arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    EXPECT_EQ(parse(arp).kind, L3Kind::NonIp);
}

TEST(Parse, Ipv6Tcp) {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.ip_version, 6);
    EXPECT_EQ(p.src, *parse_addr("2001:db8:100::20"));
    EXPECT_EQ(p.dport, 25);
    EXPECT_EQ(p.l4_off, 54);
}

TEST(Parse, Ipv6ExtensionHeaderChain) {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{0, 6}, {43, 14}, {51, 10}, {60, 6}, {44, 0, 0}};
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.l4_off, 54 + 8 + 16 + 12 + 8 + 8);
    EXPECT_EQ(p.dport, 25);
}

TEST(Parse, Ipv6NonFirstFragmentIsNotClassified) {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{44, 0, 185}};
    const auto p = parse(s);
    EXPECT_EQ(p.kind, L3Kind::IpOther);
}

TEST(Parse, Ipv6ChainTooLong) {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    for (int i = 0; i < 9; ++i) s.ext6.push_back({60, 6});
    EXPECT_EQ(parse(s).malformation, Malformation::Ipv6ExtTooMany);
}

TEST(Parse, Ipv6ExtensionPastPayload) {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{60, 6}};
    auto f = build_frame(s);
    f[14 + 40 + 1] = 200;  // hdr ext len: 1608 bytes
    EXPECT_EQ(parse(f).malformation, Malformation::Ipv6ExtTruncated);
}

TEST(Parse, UdpIsIpOther) {
    FrameSpec s;
    s.l4_proto = 17;
    s.dport = 53;
    EXPECT_EQ(parse(s).kind, L3Kind::IpOther);
}

TEST(Parse, Ipv4NonFirstFragmentIsIpOther) {
    FrameSpec s;
    s.frag = 100;  // offset 800 bytes
    EXPECT_EQ(parse(s).kind, L3Kind::IpOther);
}

TEST(Parse, TinyFirstFragmentIsMalformed) {
    FrameSpec s;
    s.frag = 0x2000;  // MF, offset 0
    auto f = build_frame(s);
    // Cut the packet to 8 bytes of TCP (ports and sequence only), as in RFC 1858's tiny fragment attack.
    f.resize(14 + 20 + 8);
    f[16] = 0;
    f[17] = 28;
    EXPECT_EQ(parse(f).malformation, Malformation::TcpTruncated);
}

struct Truncation {
    size_t keep;
    Malformation expect;
};

class ParseTruncated : public ::testing::TestWithParam<Truncation> {};

TEST_P(ParseTruncated, EveryCutIsCaught) {
    auto f = build_frame(FrameSpec{});
    f.resize(GetParam().keep);
    const auto p = parse(f);
    EXPECT_EQ(p.kind, L3Kind::Malformed);
    EXPECT_EQ(p.malformation, GetParam().expect);
}

INSTANTIATE_TEST_SUITE_P(Cuts, ParseTruncated,
                         ::testing::Values(Truncation{0, Malformation::EthTruncated},
                                           Truncation{13, Malformation::EthTruncated},
                                           Truncation{14, Malformation::Ipv4Truncated},
                                           Truncation{33, Malformation::Ipv4Truncated},
                                           // IP header whole, total length now points past the frame
                                           Truncation{34, Malformation::Ipv4BadLength},
                                           Truncation{53, Malformation::Ipv4BadLength}));

TEST(Parse, TruncatedVlanTag) {
    FrameSpec s;
    s.tpids = {0x8100};
    auto f = build_frame(s);
    f.resize(16);
    EXPECT_EQ(parse(f).malformation, Malformation::VlanTruncated);
}

TEST(Parse, Ipv4IhlBelowFive) {
    auto f = build_frame(FrameSpec{});
    f[14] = 0x44;
    EXPECT_EQ(parse(f).malformation, Malformation::Ipv4BadIhl);
}

TEST(Parse, Ipv4IhlPastFrame) {
    auto f = build_frame(FrameSpec{});
    f.resize(14 + 30);
    f[14] = 0x4f;  // 60-byte header
    EXPECT_EQ(parse(f).malformation, Malformation::Ipv4BadIhl);
}

TEST(Parse, Ipv4WrongVersion) {
    auto f = build_frame(FrameSpec{});
    f[14] = 0x65;
    EXPECT_EQ(parse(f).malformation, Malformation::Ipv4BadVersion);
}

TEST(Parse, Ipv4TotalLengthShorterThanHeader) {
    auto f = build_frame(FrameSpec{});
    f[16] = 0;
    f[17] = 19;
    EXPECT_EQ(parse(f).malformation, Malformation::Ipv4BadLength);
}

TEST(Parse, TcpDataOffsetPastSegment) {
    auto f = build_frame(FrameSpec{});
    f[34 + 12] = 0xf0;  // 60-byte TCP header in a 20-byte segment
    EXPECT_EQ(parse(f).malformation, Malformation::TcpBadOffset);
}

TEST(Parse, TcpDataOffsetBelowFive) {
    auto f = build_frame(FrameSpec{});
    f[34 + 12] = 0x40;
    EXPECT_EQ(parse(f).malformation, Malformation::TcpBadOffset);
}

TEST(Parse, TcpHeaderCutShort) {
    auto f = build_frame(FrameSpec{});
    f.resize(34 + 10);
    f[16] = 0;
    f[17] = 30;
    EXPECT_EQ(parse(f).malformation, Malformation::TcpTruncated);
}

TEST(Parse, Ipv6PayloadLengthPastFrame) {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    auto f = build_frame(s);
    f[18] = 0x05;  // payload length 1280+
    EXPECT_EQ(parse(f).malformation, Malformation::Ipv6BadLength);
}

TEST(Parse, Ipv6Truncated) {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    auto f = build_frame(s);
    f.resize(14 + 39);
    EXPECT_EQ(parse(f).malformation, Malformation::Ipv6Truncated);
}

// Every prefix of a long, tag-heavy, option-heavy frame: the parser must never read past what it was given.
// Run under ASan/valgrind this is the bounds check; here it also checks each cut yields a definite answer.
TEST(Parse, EveryPrefixOfAFrameIsSafe) {
    for (bool v6 : {false, true}) {
        FrameSpec s;
        s.tpids = {0x88a8, 0x8100};
        if (v6) {
            s.src = "2001:db8:100::20";
            s.dst = "2001:db8:25::25";
            s.ext6 = {{0, 6}, {60, 14}};
        } else {
            s.ip_options = 12;
        }
        s.tcp_options = 8;
        s.payload = "MAIL FROM:<a@example.com>\r\n";
        const auto full = build_frame(s);
        for (size_t n = 0; n < full.size(); ++n) {
            std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<long>(n));
            const auto p = parse(cut);
            EXPECT_EQ(p.kind, L3Kind::Malformed) << "v6=" << v6 << " len=" << n;
        }
        EXPECT_EQ(parse(full).kind, L3Kind::Tcp);
    }
}

}  // namespace

namespace {

// Random corruption of valid frames: whatever the bytes, the parser answers within the frame's bounds.
TEST(Parse, RandomCorruptionStaysInBounds) {
    std::mt19937 rng(12345);
    std::vector<FrameSpec> seeds(4);
    seeds[1].tpids = {0x88a8, 0x8100};
    seeds[1].ip_options = 8;
    seeds[2].src = "2001:db8:100::20";
    seeds[2].dst = "2001:db8:25::25";
    seeds[2].ext6 = {{0, 6}, {60, 14}, {44, 0, 0}};
    seeds[3].payload = "EHLO mail.example.com\r\n";
    seeds[3].tcp_options = 12;
    for (int round = 0; round < 200000; ++round) {
        auto f = build_frame(seeds[round % seeds.size()]);
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int i = 0; i < flips; ++i) f[rng() % f.size()] = static_cast<uint8_t>(rng());
        if (rng() % 3 == 0) f.resize(rng() % (f.size() + 1));
        const auto p = parse_frame(f.data(), static_cast<uint32_t>(f.size()));
        if (p.kind == L3Kind::Tcp) {
            ASSERT_LE(p.l4_off + 20u, f.size());
            ASSERT_LE(static_cast<size_t>(p.payload_off) + p.payload_len, f.size());
            ASSERT_GE(p.payload_off, p.l4_off + 20u);
        }
        if (p.kind == L3Kind::Malformed) {
            ASSERT_NE(p.malformation, Malformation::None);
        }
    }
}

}  // namespace
