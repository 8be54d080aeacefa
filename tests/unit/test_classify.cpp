// Policy decision tests: who is refused on a blocked port, and everything that must pass untouched.
#include <gtest/gtest.h>
#include <random>

#include "control/config.hpp"
#include "control/policy/policy_builder.hpp"
#include "dataplane/classify.hpp"
#include "tests/unit/frames.hpp"

using namespace portcullis;
using namespace portcullis::test;

namespace {

std::unique_ptr<Policy> demo_policy(Action action = Action::Rst) {
    Config c;
    for (auto s : {"198.51.100.0/25", "2001:db8:100::/48"}) c.managed_prefixes.push_back(*parse_prefix(s));
    for (auto s : {"198.51.100.10", "198.51.100.64/28", "2001:db8:100::10"})
        c.approved.push_back(*parse_prefix(s));
    for (auto s : {"203.0.113.53", "2001:db8:25::53"}) c.relay_hosts.push_back(*parse_prefix(s));
    c.blocked_ports = {25};
    c.open_ports = {465, 587};
    c.action_unapproved = action;
    return build_policy(c, nullptr, 0).policy;
}

Decision decide(const FrameSpec& s, const Policy& pol) {
    const auto f = build_frame(s);
    return classify_outbound(parse_frame(f.data(), static_cast<uint32_t>(f.size())), pol);
}

FrameSpec syn(const char* src, const char* dst, uint16_t dport) {
    FrameSpec s;
    s.src = src;
    s.dst = dst;
    s.dport = dport;
    return s;
}

TEST(Classify, UnapprovedManagedSourceToPort25IsRefused) {
    const auto pol = demo_policy();
    const auto d = decide(syn("198.51.100.20", "203.0.113.25", 25), *pol);
    EXPECT_EQ(d.verdict, Verdict::Refuse);
    EXPECT_EQ(d.reason, Ctr::refused_unapproved);
}

TEST(Classify, DropActionDrops) {
    const auto pol = demo_policy(Action::Drop);
    EXPECT_EQ(decide(syn("198.51.100.20", "203.0.113.25", 25), *pol).verdict, Verdict::Drop);
}

TEST(Classify, SmtpActionAnswersRatherThanDrops) {
    const auto pol = demo_policy(Action::Smtp);
    EXPECT_EQ(decide(syn("198.51.100.20", "203.0.113.25", 25), *pol).verdict, Verdict::Refuse);
}

TEST(Classify, ApprovedAddressAndPrefixPass) {
    const auto pol = demo_policy();
    EXPECT_EQ(decide(syn("198.51.100.10", "203.0.113.25", 25), *pol).reason, Ctr::pass_approved);
    EXPECT_EQ(decide(syn("198.51.100.70", "203.0.113.25", 25), *pol).reason, Ctr::pass_approved);
    // Just outside the approved /28
    EXPECT_EQ(decide(syn("198.51.100.80", "203.0.113.25", 25), *pol).verdict, Verdict::Refuse);
}

TEST(Classify, SubmissionPortsAreOpen) {
    const auto pol = demo_policy();
    for (uint16_t port : {465, 587}) {
        const auto d = decide(syn("198.51.100.20", "203.0.113.25", port), *pol);
        EXPECT_EQ(d.verdict, Verdict::Track);  // passed, subject to the source's limits
        EXPECT_EQ(d.reason, Ctr::pass_open);
    }
}

TEST(Classify, UnmanagedSourcePasses) {
    const auto pol = demo_policy();
    EXPECT_EQ(decide(syn("198.51.100.200", "203.0.113.25", 25), *pol).reason, Ctr::pass_unmanaged);
    EXPECT_EQ(decide(syn("2001:db8:200::1", "2001:db8:25::25", 25), *pol).reason, Ctr::pass_unmanaged);
}

TEST(Classify, RelayIsReachableByEveryone) {
    const auto pol = demo_policy();
    EXPECT_EQ(decide(syn("198.51.100.20", "203.0.113.53", 25), *pol).reason, Ctr::pass_relay);
    EXPECT_EQ(decide(syn("2001:db8:100::20", "2001:db8:25::53", 25), *pol).reason, Ctr::pass_relay);
}

TEST(Classify, Ipv6SameRules) {
    const auto pol = demo_policy();
    EXPECT_EQ(decide(syn("2001:db8:100::20", "2001:db8:25::25", 25), *pol).verdict, Verdict::Refuse);
    EXPECT_EQ(decide(syn("2001:db8:100::10", "2001:db8:25::25", 25), *pol).verdict, Verdict::Track);
    EXPECT_EQ(decide(syn("2001:db8:100::20", "2001:db8:25::25", 587), *pol).verdict, Verdict::Track);
    EXPECT_EQ(decide(syn("2001:db8:100::20", "2001:db8:25::25", 443), *pol).verdict, Verdict::Forward);
}

TEST(Classify, VlanTaggedRefusedToo) {
    const auto pol = demo_policy();
    auto s = syn("198.51.100.20", "203.0.113.25", 25);
    s.tpids = {0x88a8, 0x8100};
    EXPECT_EQ(decide(s, *pol).verdict, Verdict::Refuse);
}

TEST(Classify, MidFlowSegmentsOfUnapprovedAreRefusedButClientResetsPass) {
    const auto pol = demo_policy();
    auto s = syn("198.51.100.20", "203.0.113.25", 25);
    s.flags = tcpflag::ACK | tcpflag::PSH;
    EXPECT_EQ(decide(s, *pol).verdict, Verdict::Refuse);
    s.flags = tcpflag::RST;
    EXPECT_EQ(decide(s, *pol).reason, Ctr::pass_client_rst);
}

TEST(Classify, InboundSmtpRepliesAreNotPoliced) {
    // A reply from a customer's own mail server (source port 25) is not outbound port 25.
    const auto pol = demo_policy();
    auto s = syn("198.51.100.20", "203.0.113.25", 40000);
    s.sport = 25;
    s.flags = tcpflag::SYN | tcpflag::ACK;
    EXPECT_EQ(decide(s, *pol).verdict, Verdict::Forward);
}

TEST(Classify, MalformedIsDroppedAndCountedByKind) {
    const auto pol = demo_policy();
    auto f = build_frame(syn("198.51.100.20", "203.0.113.25", 25));
    f[14] = 0x43;
    const auto d = classify_outbound(parse_frame(f.data(), static_cast<uint32_t>(f.size())), *pol);
    EXPECT_EQ(d.verdict, Verdict::Drop);
    EXPECT_EQ(d.reason, Ctr::malformed_ipv4_bad_ihl);
}

TEST(Classify, UdpToPort25Passes) {
    const auto pol = demo_policy();
    auto s = syn("198.51.100.20", "203.0.113.25", 25);
    s.l4_proto = 17;
    EXPECT_EQ(decide(s, *pol).verdict, Verdict::Forward);
}

// The red team's attack: a first fragment with RST (passed as a client's reset, were it whole) and an
// overlapping fragment at offset 8 bytes that rewrites the flags to SYN. Both are dropped.
FrameSpec first_fragment(const char* src, const char* dst, uint16_t dport, uint8_t flags) {
    auto s = syn(src, dst, dport);
    s.flags = flags;
    if (s.src.find(':') == std::string::npos)
        s.frag = 0x2000;  // MF, offset 0
    else
        s.ext6 = {{44, 0, 0, true}};
    return s;
}

FrameSpec later_fragment(const char* src, const char* dst, uint16_t offset) {
    auto s = syn(src, dst, 25);  // the bytes say SYN to 25; a later fragment's "TCP header" is just data
    if (s.src.find(':') == std::string::npos)
        s.frag = offset;
    else
        s.ext6 = {{44, 0, offset}};
    return s;
}

TEST(Classify, OverlappingFragmentAttackIsDroppedIpv4AndIpv6) {
    const auto pol = demo_policy();
    for (auto [src, dst] :
         {std::pair{"198.51.100.20", "203.0.113.25"}, {"2001:db8:100::20", "2001:db8:25::25"}}) {
        auto d = decide(first_fragment(src, dst, 25, tcpflag::RST), *pol);
        EXPECT_EQ(d.verdict, Verdict::Drop) << src;
        EXPECT_EQ(d.reason, Ctr::dropped_fragment_policed) << src;
        d = decide(later_fragment(src, dst, 1), *pol);
        EXPECT_EQ(d.verdict, Verdict::Drop) << src;
        EXPECT_EQ(d.reason, Ctr::malformed_fragment_offset_one) << src;
        // A later fragment further in cannot touch the header; without the first fragment it reassembles
        // into nothing, and a non-first fragment has no port to police: forwarded.
        d = decide(later_fragment(src, dst, 3), *pol);
        EXPECT_EQ(d.verdict, Verdict::Forward) << src;
        EXPECT_EQ(d.reason, Ctr::fwd_outbound) << src;
    }
}

TEST(Classify, FirstFragmentsToSmtpPortsFromManagedSourcesAreDroppedWhateverTheirFlags) {
    const auto pol = demo_policy();
    for (uint8_t flags : {tcpflag::SYN, tcpflag::RST, uint8_t(tcpflag::ACK | tcpflag::PSH), tcpflag::ACK}) {
        // unapproved; approved (address and prefix); to a relay host; to a submission port
        for (auto s : {first_fragment("198.51.100.20", "203.0.113.25", 25, flags),
                       first_fragment("198.51.100.10", "203.0.113.25", 25, flags),
                       first_fragment("198.51.100.70", "203.0.113.25", 25, flags),
                       first_fragment("198.51.100.20", "203.0.113.53", 25, flags),
                       first_fragment("198.51.100.20", "203.0.113.25", 587, flags),
                       first_fragment("2001:db8:100::10", "2001:db8:25::25", 25, flags),
                       first_fragment("2001:db8:100::20", "2001:db8:25::53", 25, flags)}) {
            const auto d = decide(s, *pol);
            EXPECT_EQ(d.verdict, Verdict::Drop) << s.src << " -> " << s.dst << ":" << s.dport;
            EXPECT_EQ(d.reason, Ctr::dropped_fragment_policed);
        }
    }
}

TEST(Classify, ApprovedSourcesDataInAFirstFragmentIsDropped) {
    const auto pol = demo_policy();
    auto s = first_fragment("198.51.100.10", "203.0.113.25", 25, tcpflag::ACK | tcpflag::PSH);
    s.payload = "MAIL FROM:<a@example.com>\r\n";
    EXPECT_EQ(decide(s, *pol).reason, Ctr::dropped_fragment_policed);
    s.frag = 0;  // the same segment whole is passed
    EXPECT_EQ(decide(s, *pol).reason, Ctr::pass_approved);
}

TEST(Classify, FragmentsToOtherPortsAreUntouched) {
    const auto pol = demo_policy();
    for (auto [src, dst] :
         {std::pair{"198.51.100.20", "203.0.113.25"}, {"2001:db8:100::20", "2001:db8:25::25"}}) {
        for (uint8_t flags : {tcpflag::SYN, tcpflag::RST}) {
            const auto d = decide(first_fragment(src, dst, 80, flags), *pol);
            EXPECT_EQ(d.verdict, Verdict::Forward) << src;
            EXPECT_EQ(d.reason, Ctr::fwd_outbound) << src;
        }
        EXPECT_EQ(decide(later_fragment(src, dst, 185), *pol).verdict, Verdict::Forward);
    }
    // A fragmented UDP datagram to port 25 (not TCP) is not SMTP.
    auto udp = first_fragment("198.51.100.20", "203.0.113.25", 25, 0);
    udp.l4_proto = 17;
    EXPECT_EQ(decide(udp, *pol).reason, Ctr::fwd_outbound);
}

TEST(Classify, FragmentsFromUnmanagedSourcesAreUntouched) {
    const auto pol = demo_policy();
    for (auto [src, dst] :
         {std::pair{"198.51.100.200", "203.0.113.25"}, {"2001:db8:200::1", "2001:db8:25::25"}}) {
        auto d = decide(first_fragment(src, dst, 25, tcpflag::RST), *pol);
        EXPECT_EQ(d.verdict, Verdict::Forward) << src;
        EXPECT_EQ(d.reason, Ctr::pass_unmanaged) << src;
        d = decide(later_fragment(src, dst, 185), *pol);
        EXPECT_EQ(d.verdict, Verdict::Forward) << src;
        EXPECT_EQ(d.reason, Ctr::fwd_outbound) << src;
    }
}

TEST(Classify, AtomicFragmentIsClassifiedAsAWholeSegment) {
    const auto pol = demo_policy();
    auto s = syn("2001:db8:100::20", "2001:db8:25::25", 25);
    s.ext6 = {{44, 0, 0, false}};
    EXPECT_EQ(decide(s, *pol).reason, Ctr::refused_unapproved);
    s.flags = tcpflag::RST;
    EXPECT_EQ(decide(s, *pol).reason, Ctr::pass_client_rst);
    s.src = "2001:db8:100::10";
    s.flags = tcpflag::SYN;
    EXPECT_EQ(decide(s, *pol).reason, Ctr::pass_approved);
}

TEST(Classify, TinyFirstFragmentsAreDroppedAsTruncatedTcp) {
    const auto pol = demo_policy();
    auto f = build_frame(first_fragment("198.51.100.20", "203.0.113.25", 25, tcpflag::RST));
    f.resize(14 + 20 + 8);
    f[17] = 28;  // IPv4 total length: 8 bytes of TCP
    auto d = classify_outbound(parse_frame(f.data(), static_cast<uint32_t>(f.size())), *pol);
    EXPECT_EQ(d.verdict, Verdict::Drop);
    EXPECT_EQ(d.reason, Ctr::malformed_tcp_truncated);
    auto g = build_frame(first_fragment("2001:db8:100::20", "2001:db8:25::25", 25, tcpflag::RST));
    g.resize(14 + 40 + 8 + 8);
    g[19] = 16;  // IPv6 payload length: the fragment header and 8 bytes of TCP
    d = classify_outbound(parse_frame(g.data(), static_cast<uint32_t>(g.size())), *pol);
    EXPECT_EQ(d.verdict, Verdict::Drop);
    EXPECT_EQ(d.reason, Ctr::malformed_tcp_truncated);
}

TEST(Counters, MalformedCounterMapping) {
    EXPECT_EQ(malformed_counter(Malformation::EthTruncated), Ctr::malformed_eth_truncated);
    EXPECT_EQ(malformed_counter(Malformation::Ipv6ExtTooMany), Ctr::malformed_ipv6_ext_too_many);
    EXPECT_EQ(malformed_counter(Malformation::TcpBadOffset), Ctr::malformed_tcp_bad_offset);
    EXPECT_EQ(malformed_counter(Malformation::FragmentOffsetOne), Ctr::malformed_fragment_offset_one);
}

}  // namespace

namespace {

TEST(V4Summary, AgreesWithTheBitmapEverywhere) {
    ::Roaring set;
    set.addRange(0x0a000000u, 0x0b000000u);        // 10.0.0.0/8: whole /16s
    set.addRange(0xc6336400u, 0xc6336480u);        // 198.51.100.0/25: part of a /16
    set.add(0xcb007119u);                          // 203.0.113.25
    set.addRange(0xfffffff0u, uint64_t{1} << 32);  // the very end of the space
    portcullis::V4Summary sum;
    EXPECT_TRUE(sum.contains(set, 0x0a010203u)) << "unbuilt: the bitmap answers";
    sum.build(set);
    std::mt19937 rng(5);
    for (int i = 0; i < 200000; ++i) {
        const uint32_t a = i < 100000 ? static_cast<uint32_t>(rng()) : (0xc6330000u | (rng() & 0xffffu));
        ASSERT_EQ(sum.contains(set, a), set.contains(a)) << a;
    }
    for (uint32_t a : {0x0a000000u, 0x0affffffu, 0x09ffffffu, 0x0b000000u, 0xc633647fu, 0xc6336480u,
                       0xcb007119u, 0xcb00711au, 0xffffffffu, 0xffffffefu})
        EXPECT_EQ(sum.contains(set, a), set.contains(a)) << a;
}

}  // namespace
