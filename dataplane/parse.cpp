// Frame parser (see parse.hpp). Every read is preceded by a length check against the bytes that remain.
#include "dataplane/parse.hpp"

namespace portcullis {

namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86DD;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthQinQ = 0x88A8;
constexpr uint16_t kEthQinQOld = 0x9100;
constexpr uint8_t kProtoTcp = 6;

Parsed malformed(Parsed p, Malformation m) {
    p.kind = L3Kind::Malformed;
    p.malformation = m;
    return p;
}

// Parses the TCP header at [l4, l4 + l4_len): l4_len is what the IP header says the segment holds.
Parsed parse_tcp(Parsed p, const uint8_t* data, uint32_t l4_off, uint32_t l4_len) {
    if (l4_len < 20) return malformed(p, Malformation::TcpTruncated);
    const uint8_t* t = data + l4_off;
    const uint32_t doff = (t[12] >> 4) * 4u;
    if (doff < 20 || doff > l4_len) return malformed(p, Malformation::TcpBadOffset);
    p.kind = L3Kind::Tcp;
    p.l4_off = static_cast<uint16_t>(l4_off);
    p.sport = load_be16(t);
    p.dport = load_be16(t + 2);
    p.tcp_flags = t[13];
    p.payload_off = static_cast<uint16_t>(l4_off + doff);
    p.payload_len = static_cast<uint16_t>(l4_len - doff);
    return p;
}

Parsed parse_ipv4(Parsed p, const uint8_t* data, uint32_t len) {
    const uint32_t off = p.l3_off;
    if (len - off < 20) return malformed(p, Malformation::Ipv4Truncated);
    const uint8_t* ip = data + off;
    if ((ip[0] >> 4) != 4) return malformed(p, Malformation::Ipv4BadVersion);
    const uint32_t ihl = (ip[0] & 0x0f) * 4u;
    if (ihl < 20 || ihl > len - off) return malformed(p, Malformation::Ipv4BadIhl);
    const uint32_t total = load_be16(ip + 2);
    if (total < ihl || total > len - off) return malformed(p, Malformation::Ipv4BadLength);
    p.ip_version = 4;
    p.l4_proto = ip[9];
    p.src = IpAddr::from_v4(load_be32(ip + 12));
    p.dst = IpAddr::from_v4(load_be32(ip + 16));
    p.kind = L3Kind::IpOther;
    const uint16_t frag = load_be16(ip + 6);
    const uint16_t frag_offset = frag & 0x1fff;
    if (frag_offset != 0) {  // non-first fragment: no L4 header to classify
        p.fragment = Fragment::NonFirst;
        p.frag_offset = frag_offset;
        // The protocol is part of IPv4's reassembly key: only a TCP fragment can rewrite a TCP header.
        if (frag_offset == 1 && p.l4_proto == kProtoTcp) return malformed(p, Malformation::FragmentOffsetOne);
        return p;
    }
    if (frag & 0x2000) p.fragment = Fragment::First;  // MF
    if (p.l4_proto != kProtoTcp) return p;
    return parse_tcp(p, data, off + ihl, total - ihl);
}

Parsed parse_ipv6(Parsed p, const uint8_t* data, uint32_t len) {
    const uint32_t off = p.l3_off;
    if (len - off < 40) return malformed(p, Malformation::Ipv6Truncated);
    const uint8_t* ip = data + off;
    if ((ip[0] >> 4) != 6) return malformed(p, Malformation::Ipv6BadVersion);
    const uint32_t plen = load_be16(ip + 4);
    // A zero payload length announces a jumbogram (RFC 2675); none can fit a frame we receive.
    if (plen == 0 && ip[6] == 0) return malformed(p, Malformation::Ipv6BadLength);
    if (plen > len - off - 40) return malformed(p, Malformation::Ipv6BadLength);
    p.ip_version = 6;
    p.src = IpAddr::from_v6_bytes(ip + 8);
    p.dst = IpAddr::from_v6_bytes(ip + 24);
    p.kind = L3Kind::IpOther;

    uint8_t next = ip[6];
    uint32_t cur = off + 40;          // start of the next header
    const uint32_t end = cur + plen;  // end of the IPv6 payload
    for (int n = 0;; ++n) {
        switch (next) {
            case 0:      // hop-by-hop options
            case 43:     // routing
            case 60:     // destination options
            case 135:    // mobility
            case 139:    // HIP
            case 140: {  // shim6
                if (n >= kMaxIpv6Ext) return malformed(p, Malformation::Ipv6ExtTooMany);
                if (end - cur < 8) return malformed(p, Malformation::Ipv6ExtTruncated);
                const uint32_t hl = (data[cur + 1] + 1u) * 8u;
                if (hl > end - cur) return malformed(p, Malformation::Ipv6ExtTruncated);
                next = data[cur];
                cur += hl;
                break;
            }
            case 51: {  // authentication header: length in 4-byte units, minus 2
                if (n >= kMaxIpv6Ext) return malformed(p, Malformation::Ipv6ExtTooMany);
                if (end - cur < 8) return malformed(p, Malformation::Ipv6ExtTruncated);
                const uint32_t hl = (data[cur + 1] + 2u) * 4u;
                if (hl > end - cur) return malformed(p, Malformation::Ipv6ExtTruncated);
                next = data[cur];
                cur += hl;
                break;
            }
            case 44: {  // fragment
                if (n >= kMaxIpv6Ext) return malformed(p, Malformation::Ipv6ExtTooMany);
                if (end - cur < 8) return malformed(p, Malformation::Ipv6ExtTruncated);
                // The first fragment header met decides (a nested one is a fragment of what it carries).
                const uint16_t offlg = load_be16(data + cur + 2);
                const uint16_t frag_offset = offlg >> 3;
                next = data[cur];
                cur += 8;
                if (frag_offset != 0) {  // non-first fragment
                    if (p.fragment == Fragment::None) {
                        p.fragment = Fragment::NonFirst;
                        p.frag_offset = frag_offset;
                    }
                    p.l4_proto = next;
                    // Reassembly takes the next header from the first fragment, whatever this one says: at
                    // 8 bytes any fragment can overwrite a TCP header's flags, and none is honest (RFC 8200
                    // fragments fill the path MTU, 1280 bytes or more).
                    if (frag_offset == 1) return malformed(p, Malformation::FragmentOffsetOne);
                    return p;
                }
                // Offset 0 with M clear is an atomic fragment (RFC 6946): a whole packet.
                if ((offlg & 1) && p.fragment == Fragment::None) p.fragment = Fragment::First;
                break;
            }
            default:  // upper layer, ESP (50) or no next header (59)
                p.l4_proto = next;
                if (next != kProtoTcp) return p;
                // A first fragment must hold the whole header chain and the TCP header (RFC 7112): one that
                // ends before them is malformed (Ipv6ExtTruncated above, TcpTruncated/TcpBadOffset here).
                return parse_tcp(p, data, cur, end - cur);
        }
    }
}

}  // namespace

Parsed parse_frame(const uint8_t* data, uint32_t len) {
    Parsed p;
    if (len < 14) return malformed(p, Malformation::EthTruncated);
    uint32_t off = 12;
    uint16_t type = load_be16(data + off);
    while (type == kEthVlan || type == kEthQinQ || type == kEthQinQOld) {
        if (p.vlan_tags == kMaxVlanTags) return malformed(p, Malformation::TooManyTags);
        if (len - off < 6) return malformed(p, Malformation::VlanTruncated);
        ++p.vlan_tags;
        off += 4;
        type = load_be16(data + off);
    }
    p.l3_off = static_cast<uint16_t>(off + 2);
    if (type == kEthIpv4) return parse_ipv4(p, data, len);
    if (type == kEthIpv6) return parse_ipv6(p, data, len);
    return p;  // NonIp
}

}  // namespace portcullis
