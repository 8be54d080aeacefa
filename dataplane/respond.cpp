// In-place TCP RST construction (see respond.hpp).
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

}  // namespace

uint32_t make_rst_in_place(uint8_t* data, const Parsed& p) {
    // Everything needed from the segment, read before the headers are overwritten.
    const uint8_t* tcp = data + p.l4_off;
    const uint32_t seq = load_be32(tcp + 4);
    const uint32_t ack = load_be32(tcp + 8);
    const uint8_t flags = p.tcp_flags;
    const uint16_t sport = p.sport, dport = p.dport;
    std::array<uint8_t, 16> src{}, dst{};
    const uint8_t* ip = data + p.l3_off;
    const size_t alen = p.ip_version == 4 ? 4 : 16;
    std::memcpy(src.data(), ip + (p.ip_version == 4 ? 12 : 8), alen);
    std::memcpy(dst.data(), ip + (p.ip_version == 4 ? 16 : 24), alen);

    // Ethernet: back to where it came from. VLAN tags between MACs and L3 stay as they are.
    uint8_t mac[6];
    std::memcpy(mac, data, 6);
    std::memmove(data, data + 6, 6);
    std::memcpy(data + 6, mac, 6);

    uint8_t* l3 = data + p.l3_off;
    const uint32_t l3len = p.ip_version == 4 ? 20 : 40;
    uint8_t* t = l3 + l3len;
    if (p.ip_version == 4) {
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(l3);
        std::memset(l3, 0, 20);
        h->version_ihl = 0x45;
        h->total_length = rte_cpu_to_be_16(40);
        h->time_to_live = 64;
        h->next_proto_id = IPPROTO_TCP;
        std::memcpy(&h->src_addr, dst.data(), 4);
        std::memcpy(&h->dst_addr, src.data(), 4);
    } else {
        auto* h = reinterpret_cast<rte_ipv6_hdr*>(l3);
        std::memset(l3, 0, 40);
        h->vtc_flow = rte_cpu_to_be_32(6u << 28);
        h->payload_len = rte_cpu_to_be_16(20);
        h->proto = IPPROTO_TCP;
        h->hop_limits = 64;
        std::memcpy(h->src_addr, dst.data(), 16);
        std::memcpy(h->dst_addr, src.data(), 16);
    }

    std::memset(t, 0, 20);
    store_be16(t, dport);
    store_be16(t + 2, sport);
    if (flags & tcpflag::ACK) {
        // The segment acknowledged something: the reset takes its sequence number from that ACK.
        store_be32(t + 4, ack);
        t[13] = tcpflag::RST;
    } else {
        // A SYN (or a bare segment): acknowledge exactly what it occupied so the client accepts the reset.
        const uint32_t occupied =
            p.payload_len + ((flags & tcpflag::SYN) ? 1 : 0) + ((flags & tcpflag::FIN) ? 1 : 0);
        store_be32(t + 8, seq + occupied);
        t[13] = tcpflag::RST | tcpflag::ACK;
    }
    t[12] = 5 << 4;

    auto* th = reinterpret_cast<rte_tcp_hdr*>(t);
    if (p.ip_version == 4) {
        auto* h = reinterpret_cast<rte_ipv4_hdr*>(l3);
        h->hdr_checksum = rte_ipv4_cksum(h);
        th->cksum = rte_ipv4_udptcp_cksum(h, t);
    } else {
        th->cksum = rte_ipv6_udptcp_cksum(reinterpret_cast<rte_ipv6_hdr*>(l3), t);
    }
    return p.l3_off + l3len + 20;
}

}  // namespace portcullis
