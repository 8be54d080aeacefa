// Policy decision tests: who is refused on a blocked port, and everything that must pass untouched.
#include <gtest/gtest.h>

#include "control/config.hpp"
#include "control/policy_builder.hpp"
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

TEST(Counters, MalformedCounterMapping) {
    EXPECT_EQ(malformed_counter(Malformation::EthTruncated), Ctr::malformed_eth_truncated);
    EXPECT_EQ(malformed_counter(Malformation::Ipv6ExtTooMany), Ctr::malformed_ipv6_ext_too_many);
    EXPECT_EQ(malformed_counter(Malformation::TcpBadOffset), Ctr::malformed_tcp_bad_offset);
}

}  // namespace
