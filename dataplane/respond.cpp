// In-place TCP answers: RST and the stateless SMTP refusal (see respond.hpp).
#include "dataplane/respond.hpp"

#include <rte_ip.h>
#include <rte_tcp.h>

#include <array>

namespace portcullis {

namespace {

void store_be16(uint8_t* p, uint16_t v) {
    v = __builtin_bswap16(v);
    std::memcpy(p, &v, 2);
}
void store_be32(uint8_t* p, uint32_t v) {
    v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
}

struct Reply {
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t window;
    std::string_view payload;
    bool crlf;  // append "\r\n" to the payload
};

uint32_t reply_length(const Parsed& p, const Reply& r) {
    return p.l3_off + (p.ip_version == 4 ? 20u : 40u) + 20u + static_cast<uint32_t>(r.payload.size()) +
           (r.crlf ? 2u : 0u);
}

// Turns the segment into a reply from its destination to its source.
uint32_t write_reply(uint8_t* data, const Parsed& p, const Reply& r) {
    std::array<uint8_t, 16> src{}, dst{};
    const uint8_t* ip = data + p.l3_off;
    const size_t alen = p.ip_version == 4 ? 4 : 16;
    std::memcpy(src.data(), ip + (p.ip_version == 4 ? 12 : 8), alen);
    std::memcpy(dst.data(), ip + (p.ip_version == 4 ? 16 : 24), alen);

    uint8_t mac[6];
    std::memcpy(mac, data, 6);
    std::memmove(data, data + 6, 6);
    std::memcpy(data + 6, mac, 6);

    const uint16_t plen = static_cast<uint16_t>(r.payload.size() + (r.crlf ? 2 : 0));
    uint8_t* l3 = data + p.l3_off;
    const uint32_t l3len = p.ip_version == 4 ? 20 : 40;
    uint8_t* t = l3 + l3len;
    if (p.ip_version == 4) {
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(l3);
        std::memset(l3, 0, 20);
        h->version_ihl = 0x45;
        h->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(40 + plen));
        h->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
        h->time_to_live = 64;
        h->next_proto_id = IPPROTO_TCP;
        std::memcpy(&h->src_addr, dst.data(), 4);
        std::memcpy(&h->dst_addr, src.data(), 4);
    } else {
        auto* h = reinterpret_cast<rte_ipv6_hdr*>(l3);
        std::memset(l3, 0, 40);
        h->vtc_flow = rte_cpu_to_be_32(6u << 28);
        h->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(20 + plen));
        h->proto = IPPROTO_TCP;
        h->hop_limits = 64;
        std::memcpy(h->src_addr, dst.data(), 16);
        std::memcpy(h->dst_addr, src.data(), 16);
    }
    std::memset(t, 0, 20);
    store_be16(t, p.dport);
    store_be16(t + 2, p.sport);
    store_be32(t + 4, r.seq);
    store_be32(t + 8, r.ack);
    t[12] = 5 << 4;
    t[13] = r.flags;
    store_be16(t + 14, r.window);
    if (!r.payload.empty()) std::memcpy(t + 20, r.payload.data(), r.payload.size());
    if (r.crlf) std::memcpy(t + 20 + r.payload.size(), "\r\n", 2);

    auto* th = reinterpret_cast<rte_tcp_hdr*>(t);
    if (p.ip_version == 4) {
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(l3);
        h->hdr_checksum = rte_ipv4_cksum(h);
        th->cksum = rte_ipv4_udptcp_cksum(h, t);
    } else {
        th->cksum = rte_ipv6_udptcp_cksum(reinterpret_cast<rte_ipv6_hdr*>(l3), t);
    }
    return p.l3_off + l3len + 20 + plen;
}

}  // namespace

uint32_t make_rst_in_place(uint8_t* data, const Parsed& p) {
    const uint8_t* tcp = data + p.l4_off;
    const uint32_t seq = load_be32(tcp + 4);
    const uint32_t ack = load_be32(tcp + 8);
    if (p.tcp_flags & tcpflag::ACK)  // it acknowledged something: the reset takes its sequence from that ACK
        return write_reply(data, p, {ack, 0, tcpflag::RST, 0, {}, false});
    // A SYN (or a bare segment): acknowledge exactly what it occupied so the client accepts the reset.
    const uint32_t occupied =
        p.payload_len + ((p.tcp_flags & tcpflag::SYN) ? 1 : 0) + ((p.tcp_flags & tcpflag::FIN) ? 1 : 0);
    return write_reply(data, p, {0, seq + occupied, tcpflag::RST | tcpflag::ACK, 0, {}, false});
}

uint32_t smtp_close_in_place(uint8_t* data, uint32_t capacity, const Parsed& p, std::string_view line) {
    const uint8_t* tcp = data + p.l4_off;
    const Reply r{load_be32(tcp + 8),
                  load_be32(tcp + 4) + p.payload_len,
                  tcpflag::PSH | tcpflag::ACK | tcpflag::FIN,
                  65535,
                  line,
                  true};
    if (reply_length(p, r) > capacity) return 0;
    return write_reply(data, p, r);
}

uint32_t ack_fin_in_place(uint8_t* data, const Parsed& p) {
    const uint8_t* tcp = data + p.l4_off;
    return write_reply(
        data, p,
        {load_be32(tcp + 8), load_be32(tcp + 4) + p.payload_len + 1, tcpflag::ACK, 65535, {}, false});
}

uint32_t make_forward_rst(const uint8_t* data, const Parsed& p, uint8_t* out, uint32_t out_capacity) {
    const uint32_t len = p.l4_off + 20u;
    if (len > out_capacity) return 0;
    std::memcpy(out, data, len);
    uint8_t* l3 = out + p.l3_off;
    uint8_t* t = out + p.l4_off;
    if (p.ip_version == 4) {
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(l3);
        h->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(p.l4_off - p.l3_off + 20));
        h->hdr_checksum = 0;
        h->hdr_checksum = rte_ipv4_cksum(h);
    } else {
        auto* h = reinterpret_cast<rte_ipv6_hdr*>(l3);
        h->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(p.l4_off - p.l3_off - 40 + 20));
    }
    t[12] = 5 << 4;
    t[13] = tcpflag::RST | tcpflag::ACK;
    store_be16(t + 14, 0);
    store_be16(t + 18, 0);
    auto* th = reinterpret_cast<rte_tcp_hdr*>(t);
    th->cksum = 0;
    if (p.ip_version == 4)
        th->cksum = rte_ipv4_udptcp_cksum(reinterpret_cast<rte_ipv4_hdr*>(l3), t);
    else
        th->cksum = rte_ipv6_udptcp_cksum(reinterpret_cast<rte_ipv6_hdr*>(l3), t);
    return len;
}

uint32_t strip_payload_in_place(uint8_t* data, const Parsed& p) {
    uint8_t* l3 = data + p.l3_off;
    uint8_t* t = data + p.l4_off;
    const uint32_t len = p.payload_off;  // everything up to the payload
    if (p.ip_version == 4) {
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(l3);
        h->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(p.payload_off - p.l3_off));
        h->hdr_checksum = 0;
        h->hdr_checksum = rte_ipv4_cksum(h);
    } else {
        auto* h = reinterpret_cast<rte_ipv6_hdr*>(l3);
        h->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(p.payload_off - p.l3_off - 40));
    }
    // The TCP checksum over the pseudo-header, header and options (extension headers between IPv6 and TCP
    // are not in the pseudo-header, so it is summed here rather than by rte_ipv6_udptcp_cksum).
    const uint32_t tcp_len = p.payload_off - p.l4_off;
    auto* th = reinterpret_cast<rte_tcp_hdr*>(t);
    th->cksum = 0;
    uint32_t sum = rte_raw_cksum(t, tcp_len);
    if (p.ip_version == 4) {
        sum += rte_raw_cksum(l3 + 12, 8);
    } else {
        sum += rte_raw_cksum(l3 + 8, 32);
    }
    sum += rte_cpu_to_be_16(static_cast<uint16_t>(6)) + rte_cpu_to_be_16(static_cast<uint16_t>(tcp_len));
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    th->cksum = static_cast<uint16_t>(~sum & 0xffff);
    if (th->cksum == 0) th->cksum = 0xffff;
    return len;
}

SmtpAnswer smtp_answer_in_place(uint8_t* data, uint32_t capacity, const Parsed& p, const CookieKey& key,
                                uint64_t slot, ReplyReason reason, const ReplyLines& lines) {
    const uint8_t* tcp = data + p.l4_off;
    const uint32_t seq = load_be32(tcp + 4);
    const uint32_t ack = load_be32(tcp + 8);
    const uint8_t f = p.tcp_flags;
    const auto send = [&](SmtpStep step, const Reply& r) -> SmtpAnswer {
        if (reply_length(p, r) > capacity) return {SmtpStep::NoRoom, 0};
        return {step, write_reply(data, p, r)};
    };
    if ((f & tcpflag::SYN) && !(f & tcpflag::ACK)) {
        const uint32_t cookie = syn_cookie(key, p, slot, reason);
        return send(SmtpStep::SynAck, {cookie, seq + 1, tcpflag::SYN | tcpflag::ACK, 65535, {}, false});
    }
    if (!(f & tcpflag::ACK) || (f & (tcpflag::SYN | tcpflag::RST))) return {SmtpStep::Forged, 0};
    // Which cookie could this acknowledge? The handshake's ACK carries cookie + 1; later ones also count our
    // reply line (whose length depends on the reason in the cookie's low bits) and our FIN.
    const auto valid = [&](uint32_t cookie) {
        const auto r = static_cast<ReplyReason>(cookie & kCookieReasonMask);
        if (static_cast<unsigned>(r) >= kReplyReasons) return false;
        return syn_cookie(key, p, slot, r) == cookie || syn_cookie(key, p, slot - 1, r) == cookie;
    };
    if (valid(ack - 1)) {
        // The handshake's ACK (maybe with early client data): the reply line, then FIN.
        const uint32_t cookie = ack - 1;
        const std::string& line = lines[cookie & kCookieReasonMask];
        return send(SmtpStep::Reply, {ack, seq + p.payload_len, tcpflag::PSH | tcpflag::ACK | tcpflag::FIN,
                                      65535, line, true});
    }
    for (unsigned r = 0; r < kReplyReasons; ++r) {
        const auto reply_len = static_cast<uint32_t>(lines[r].size()) + 2;
        const uint32_t both = ack - 1 - reply_len - 1;  // it has seen our reply and our FIN
        if ((both & kCookieReasonMask) == r && valid(both)) {
            if (p.payload_len > 0) return send(SmtpStep::Reset, {ack, 0, tcpflag::RST, 0, {}, false});
            if (f & tcpflag::FIN)
                return send(SmtpStep::FinAck, {ack, seq + 1, tcpflag::ACK, 65535, {}, false});
            return {SmtpStep::Quiet, 0};
        }
        const uint32_t reply_only = ack - 1 - reply_len;  // acknowledged the reply but not yet our FIN
        if ((reply_only & kCookieReasonMask) == r && valid(reply_only)) {
            if (f & tcpflag::FIN)
                return send(SmtpStep::FinAck, {ack + 1, seq + 1, tcpflag::ACK, 65535, {}, false});
            return {SmtpStep::Quiet, 0};
        }
    }
    return {SmtpStep::Forged, 0};
}

}  // namespace portcullis
