// Frame parser: Ethernet, up to four 802.1Q/802.1ad tags, IPv4 (with options), IPv6 (with extension headers),
// TCP. Reads only within [data, data+len): every field is bounds-checked before it is touched. It never
// writes. What the parser finds wrong with a frame is returned as a Malformation, which the worker counts.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/net_addr.hpp"

namespace portcullis {

enum class L3Kind : uint8_t {
    NonIp,      // ARP, LLDP, anything that is not IPv4/IPv6: forwarded untouched
    IpOther,    // IP, but not TCP we can classify: UDP, ICMP, ESP, non-first fragments ...
    Tcp,        // IP + a complete TCP header: src/dst/ports/flags are valid (also in a first fragment)
    Malformed,  // see Parsed::malformation
};

enum class Malformation : uint8_t {
    None,
    EthTruncated,      // shorter than an Ethernet header
    VlanTruncated,     // a VLAN tag cut short
    TooManyTags,       // more than kMaxVlanTags stacked tags
    Ipv4Truncated,     // fewer than 20 bytes after the Ethernet header(s)
    Ipv4BadVersion,    // ethertype says IPv4, the version nibble does not
    Ipv4BadIhl,        // IHL < 5, or IHL past the frame
    Ipv4BadLength,     // total length < IHL*4 or past the end of the frame
    Ipv6Truncated,     // fewer than 40 bytes
    Ipv6BadVersion,    // ethertype says IPv6, the version nibble does not
    Ipv6BadLength,     // payload length past the end of the frame (or a zero-length jumbogram)
    Ipv6ExtTruncated,  // an extension header runs past the payload
    Ipv6ExtTooMany,    // a chain longer than kMaxIpv6Ext
    TcpTruncated,  // fewer than 20 bytes of TCP header (also the first fragment of a tiny-fragment attack)
    TcpBadOffset,  // data offset < 5 or past the end of the IP payload
    // A non-first fragment at offset 1 (8 bytes), IPv4 TCP or IPv6 any next header: it can only be there to
    // overwrite a TCP header's flags (RFC 1858/3128). IPv6 reassembly does not key on the next header.
    FragmentOffsetOne,
    Count
};

inline constexpr int kMaxVlanTags = 4;
inline constexpr int kMaxIpv6Ext = 8;

namespace tcpflag {
inline constexpr uint8_t FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10;
}

// Where a packet stands in IP fragmentation. An IPv4 datagram with MF clear and offset 0, and an IPv6 atomic
// fragment (a fragment header with offset 0 and M clear, RFC 6946), are not fragmented.
enum class Fragment : uint8_t {
    None,      // a whole datagram
    First,     // offset 0, more fragments follow: L4 is parsed as usual (a TCP header must be whole)
    NonFirst,  // offset > 0: no L4 header, kind is IpOther (l4_proto as the header says)
};

struct Parsed {
    L3Kind kind = L3Kind::NonIp;
    Malformation malformation = Malformation::None;
    uint8_t vlan_tags = 0;
    uint8_t ip_version = 0;  // 4 or 6 when kind is IpOther/Tcp
    uint8_t l4_proto = 0;
    uint8_t tcp_flags = 0;
    Fragment fragment = Fragment::None;
    uint16_t l3_off = 0;       // offset of the IP header
    uint16_t l4_off = 0;       // offset of the TCP header
    uint16_t payload_off = 0;  // offset of the TCP payload
    uint16_t payload_len = 0;  // TCP payload bytes (IP length, not frame length: Ethernet padding excluded)
    uint16_t sport = 0, dport = 0;
    uint16_t frag_offset = 0;  // fragment offset in 8-byte units (NonFirst; 0 otherwise)
    IpAddr src, dst;
};

Parsed parse_frame(const uint8_t* data, uint32_t len);

// Big-endian loads from possibly unaligned packet bytes.
inline uint16_t load_be16(const uint8_t* p) {
    uint16_t v;
    std::memcpy(&v, p, 2);
    return __builtin_bswap16(v);
}
inline uint32_t load_be32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return __builtin_bswap32(v);
}

}  // namespace portcullis
