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
    EXPECT_EQ(p.fragment, Fragment::NonFirst);
    EXPECT_EQ(p.frag_offset, 185);
    EXPECT_EQ(p.l4_proto, 6);
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
    const auto p = parse(s);
    EXPECT_EQ(p.kind, L3Kind::IpOther);
    EXPECT_EQ(p.fragment, Fragment::NonFirst);
    EXPECT_EQ(p.frag_offset, 100);
    EXPECT_EQ(p.l4_proto, 6);
    s.frag = 0x2000 | 100;  // MF too: a middle fragment
    EXPECT_EQ(parse(s).fragment, Fragment::NonFirst);
}

TEST(Parse, WholeDatagramsAreNotFragments) {
    FrameSpec s;
    EXPECT_EQ(parse(s).fragment, Fragment::None);
    s.frag = 0x4000;  // DF, as every PMTU-discovering TCP sends
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.fragment, Fragment::None);
    EXPECT_EQ(p.frag_offset, 0);
}

TEST(Parse, Ipv4FirstFragmentIsParsedAndFlagged) {
    FrameSpec s;
    s.frag = 0x2000;  // MF, offset 0
    s.flags = tcpflag::RST;
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.fragment, Fragment::First);
    EXPECT_EQ(p.frag_offset, 0);
    EXPECT_EQ(p.dport, 25);
    EXPECT_EQ(p.tcp_flags, tcpflag::RST);
}

TEST(Parse, Ipv6FirstFragmentIsParsedAndFlagged) {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{0, 6}, {44, 0, 0, true}, {60, 6}};  // hop-by-hop, fragment, destination options (fragmentable)
    s.flags = tcpflag::RST;
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.fragment, Fragment::First);
    EXPECT_EQ(p.dport, 25);
    EXPECT_EQ(p.tcp_flags, tcpflag::RST);
    EXPECT_EQ(p.l4_off, 54 + 8 + 8 + 8);
}

TEST(Parse, Ipv6AtomicFragmentIsAWholePacket) {
    // RFC 6946: offset 0 and M clear; reassembly processes it on its own, so it is a whole packet.
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{44, 0, 0, false}};
    const auto p = parse(s);
    ASSERT_EQ(p.kind, L3Kind::Tcp);
    EXPECT_EQ(p.fragment, Fragment::None);
    EXPECT_EQ(p.dport, 25);
}

TEST(Parse, Ipv6NestedFragmentHeaderKeepsTheOuterOne) {
    // A first fragment carrying a later fragment of another packet: no L4 header to classify.
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{44, 0, 0, true}, {44, 0, 5}};
    const auto p = parse(s);
    EXPECT_EQ(p.kind, L3Kind::IpOther);
    EXPECT_EQ(p.fragment, Fragment::First);
}

// RFC 1858 / RFC 3128: 8 bytes into the TCP header, a fragment overwrites the data offset and the flags.
TEST(Parse, Ipv4TcpFragmentAtOffsetOneIsMalformed) {
    FrameSpec s;
    s.frag = 1;
    s.flags = tcpflag::SYN;
    auto p = parse(s);
    EXPECT_EQ(p.kind, L3Kind::Malformed);
    EXPECT_EQ(p.malformation, Malformation::FragmentOffsetOne);
    EXPECT_EQ(p.fragment, Fragment::NonFirst);
    s.frag = 0x2000 | 1;  // with MF as well
    EXPECT_EQ(parse(s).malformation, Malformation::FragmentOffsetOne);
    s.frag = 2;  // 16 bytes in: past the flags, an ordinary later fragment
    EXPECT_EQ(parse(s).kind, L3Kind::IpOther);
    // The protocol is part of IPv4's reassembly key: a UDP fragment cannot rewrite a TCP header.
    s.frag = 1;
    s.l4_proto = 17;
    p = parse(s);
    EXPECT_EQ(p.kind, L3Kind::IpOther);
    EXPECT_EQ(p.fragment, Fragment::NonFirst);
}

TEST(Parse, Ipv6FragmentAtOffsetOneIsMalformedWhateverItsNextHeader) {
    // IPv6 reassembly takes the next header from the first fragment: this one's says nothing.
    for (uint8_t proto : {6, 17, 59}) {
        FrameSpec s;
        s.src = "2001:db8:100::20";
        s.dst = "2001:db8:25::25";
        s.l4_proto = proto;
        s.ext6 = {{44, 0, 1, true}};
        const auto p = parse(s);
        EXPECT_EQ(p.kind, L3Kind::Malformed) << int(proto);
        EXPECT_EQ(p.malformation, Malformation::FragmentOffsetOne) << int(proto);
    }
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{44, 0, 2}};
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

TEST(Parse, Ipv4FirstFragmentCuttingTheTcpOptionsIsMalformed) {
    FrameSpec s;
    s.frag = 0x2000;
    s.tcp_options = 20;  // a 40-byte TCP header, of which the fragment holds 24 bytes
    auto f = build_frame(s);
    f.resize(14 + 20 + 24);
    f[16] = 0;
    f[17] = 44;
    EXPECT_EQ(parse(f).malformation, Malformation::TcpBadOffset);
}

// IPv6 first fragments that do not hold the whole header chain and TCP header (RFC 7112).
FrameSpec v6_first_fragment() {
    FrameSpec s;
    s.src = "2001:db8:100::20";
    s.dst = "2001:db8:25::25";
    s.ext6 = {{44, 0, 0, true}};
    return s;
}

// Cuts a built IPv6 frame (no VLAN tags) to `payload` bytes after the IPv6 header.
std::vector<uint8_t> v6_cut(std::vector<uint8_t> f, size_t payload) {
    f.resize(14 + 40 + payload);
    f[18] = static_cast<uint8_t>(payload >> 8);
    f[19] = static_cast<uint8_t>(payload);
    return f;
}

TEST(Parse, Ipv6TinyFirstFragmentIsMalformed) {
    // 8 bytes of TCP (ports and sequence number) after the fragment header.
    EXPECT_EQ(parse(v6_cut(build_frame(v6_first_fragment()), 8 + 8)).malformation,
              Malformation::TcpTruncated);
    // Nothing after the fragment header: the TCP header is all in a later fragment.
    EXPECT_EQ(parse(v6_cut(build_frame(v6_first_fragment()), 8)).malformation, Malformation::TcpTruncated);
}

TEST(Parse, Ipv6FirstFragmentEndingInsideTheHeaderChainIsMalformed) {
    auto s = v6_first_fragment();
    s.ext6.push_back({60, 14});  // 16 bytes of destination options after the fragment header
    const auto f = build_frame(s);
    ASSERT_EQ(parse(f).kind, L3Kind::Tcp);
    EXPECT_EQ(parse(v6_cut(f, 8 + 8)).malformation, Malformation::Ipv6ExtTruncated);
    EXPECT_EQ(parse(v6_cut(f, 8)).malformation, Malformation::Ipv6ExtTruncated);
    EXPECT_EQ(parse(v6_cut(f, 8 + 16 + 12)).malformation, Malformation::TcpTruncated);
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
