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

namespace {

// The stateless SMTP refusal, step by step, as a client's TCP stack would drive it.
class SmtpAnswerTest : public ::testing::Test {
  protected:
    CookieKey key{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
    const std::string line = "550 5.7.1 not approved";
    const ReplyLines lines = {line,       "421 4.7.0 Too many concurrent SMTP connections",
                              "421 rate", "421 daily",
                              "421 busy", "550 payload"};
    ReplyReason reason = ReplyReason::Unapproved;
    static constexpr uint64_t kSlot = 1000;

    // Sends `s` and returns the answer; the answer frame is parsed into *out.
    SmtpAnswer answer(const FrameSpec& s, Parsed* out = nullptr, std::vector<uint8_t>* frame = nullptr,
                      uint64_t slot = kSlot) {
        auto f = build_frame(s);
        const auto p = parse_frame(f.data(), static_cast<uint32_t>(f.size()));
        f.resize(2048);
        const auto a = smtp_answer_in_place(f.data(), 2048, p, key, slot, reason, lines);
        f.resize(a.len);
        if (out && a.len) *out = parse_frame(f.data(), a.len);
        if (frame) *frame = f;
        return a;
    }
    uint32_t cookie_from_synack() {
        FrameSpec syn;
        syn.seq = 5000;
        Parsed r;
        std::vector<uint8_t> f;
        EXPECT_EQ(answer(syn, &r, &f).step, SmtpStep::SynAck);
        return load_be32(f.data() + r.l4_off + 4);
    }
};

TEST_F(SmtpAnswerTest, HandshakeThenReplyThenClose) {
    FrameSpec syn;
    syn.seq = 5000;
    Parsed r;
    std::vector<uint8_t> f;
    ASSERT_EQ(answer(syn, &r, &f).step, SmtpStep::SynAck);
    EXPECT_EQ(r.tcp_flags, tcpflag::SYN | tcpflag::ACK);
    EXPECT_EQ(load_be32(f.data() + r.l4_off + 8), 5001u);
    EXPECT_TRUE(tcp_checksum_ok(f, 14, 34, false));
    const uint32_t cookie = load_be32(f.data() + r.l4_off + 4);

    FrameSpec ack;
    ack.flags = tcpflag::ACK;
    ack.seq = 5001;
    ack.ack = cookie + 1;
    ASSERT_EQ(answer(ack, &r, &f).step, SmtpStep::Reply);
    EXPECT_EQ(r.tcp_flags, tcpflag::PSH | tcpflag::ACK | tcpflag::FIN);
    EXPECT_EQ(std::string(f.begin() + r.payload_off, f.end()), line + "\r\n");
    EXPECT_EQ(load_be32(f.data() + r.l4_off + 4), cookie + 1);
    EXPECT_TRUE(tcp_checksum_ok(f, 14, 34, false));

    const uint32_t after_fin = cookie + 1 + static_cast<uint32_t>(line.size()) + 2 + 1;
    FrameSpec fin;
    fin.flags = tcpflag::ACK | tcpflag::FIN;
    fin.seq = 5001;
    fin.ack = after_fin;
    ASSERT_EQ(answer(fin, &r, &f).step, SmtpStep::FinAck);
    EXPECT_EQ(r.tcp_flags, tcpflag::ACK);
    EXPECT_EQ(load_be32(f.data() + r.l4_off + 8), 5002u);

    FrameSpec quiet = fin;
    quiet.flags = tcpflag::ACK;
    EXPECT_EQ(answer(quiet).step, SmtpStep::Quiet);

    FrameSpec data = quiet;
    data.payload = "QUIT\r\n";
    ASSERT_EQ(answer(data, &r).step, SmtpStep::Reset);
    EXPECT_EQ(r.tcp_flags, tcpflag::RST);
}

TEST_F(SmtpAnswerTest, ForgedOrStaleAcksGetNothing) {
    const uint32_t cookie = cookie_from_synack();
    FrameSpec ack;
    ack.flags = tcpflag::ACK;
    ack.seq = 5001;
    for (uint32_t wrong : {cookie, cookie + 2, cookie ^ 0x80000000u, 0u}) {
        ack.ack = wrong;
        EXPECT_EQ(answer(ack).step, SmtpStep::Forged) << wrong;
    }
    ack.ack = cookie + 1;
    EXPECT_EQ(answer(ack, nullptr, nullptr, kSlot + 1).step, SmtpStep::Reply) << "one slot later still valid";
    EXPECT_EQ(answer(ack, nullptr, nullptr, kSlot + 2).step, SmtpStep::Forged) << "two slots later: stale";
    ack.src = "198.51.100.21";  // the same numbers from another address
    EXPECT_EQ(answer(ack).step, SmtpStep::Forged);
}

TEST_F(SmtpAnswerTest, Ipv6AndVlan) {
    FrameSpec syn;
    syn.tpids = {0x8100};
    syn.src = "2001:db8:100::20";
    syn.dst = "2001:db8:25::25";
    Parsed r;
    std::vector<uint8_t> f;
    ASSERT_EQ(answer(syn, &r, &f).step, SmtpStep::SynAck);
    EXPECT_EQ(r.vlan_tags, 1);
    EXPECT_TRUE(tcp_checksum_ok(f, 18, 58, true));
}

TEST(Cookie, SipHashReferenceVector) {
    // SipHash-2-4 test vector from the reference implementation: key 00..0f, message 00..0e (15 bytes).
    CookieKey k{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    uint8_t msg[15];
    for (int i = 0; i < 15; ++i) msg[i] = static_cast<uint8_t>(i);
    EXPECT_EQ(siphash24(k, msg, 15), 0xa129ca6149be45e5ULL);
}

}  // namespace
