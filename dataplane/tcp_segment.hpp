// What a receiving TCP stack would make of one segment, read from the frame: sequence and acknowledgement
// numbers, window, the TTL or hop limit it arrived with, the options that change acceptance (window scale,
// timestamps, MD5/TCP-AO signatures), and whether its IPv4 header and TCP checksums are right. The flow
// tracker uses this to keep the gateway's reading of a session identical to the server's: a segment the
// server would discard (bad checksum, PAWS, signature it cannot check) is not read and not forwarded either.
// Pure functions over bytes parse_frame already bounded; no allocation, no system call.
#pragma once

#include <cstdint>

#include "dataplane/parse.hpp"

namespace portcullis {

struct TcpOptions {
    bool malformed = false;  // an option runs past the header, or a length is impossible
    bool has_ws = false;     // window scale (only meaningful on SYN and SYN-ACK)
    uint8_t ws = 0;          // the shift, capped at 14 (RFC 7323 2.3)
    bool has_ts = false;     // timestamps
    uint32_t tsval = 0, tsecr = 0;
    bool signed_ = false;    // TCP MD5 (RFC 2385) or TCP-AO (RFC 5925): a receiver without the key drops it
    bool fast_open = false;  // TCP Fast Open cookie option (RFC 7413)
};

struct TcpSegment {
    uint32_t seq = 0, ack = 0;
    uint16_t window = 0;  // unscaled
    uint8_t ttl = 0;      // IPv4 TTL or IPv6 hop limit
    TcpOptions opt;
    // Sequence space the segment occupies: payload, plus one each for SYN and FIN.
    uint32_t span(const Parsed& p) const {
        return p.payload_len + ((p.tcp_flags & tcpflag::SYN) ? 1u : 0u) +
               ((p.tcp_flags & tcpflag::FIN) ? 1u : 0u);
    }
};

// Reads the segment's fields and options (p.kind must be Tcp).
TcpSegment read_tcp_segment(const uint8_t* frame, const Parsed& p);

// The IPv4 header checksum (IPv4 only; IPv6 has none) and the TCP checksum over the pseudo-header, header and
// payload. False when either is wrong.
bool tcp_checksums_ok(const uint8_t* frame, const Parsed& p);

// Sequence comparison modulo 2^32 (RFC 9293 3.4).
inline bool seq_lt(uint32_t a, uint32_t b) {
    return static_cast<int32_t>(a - b) < 0;
}
inline bool seq_le(uint32_t a, uint32_t b) {
    return static_cast<int32_t>(a - b) <= 0;
}

}  // namespace portcullis
