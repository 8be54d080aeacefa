// TCP segment fields, options and checksums (see tcp_segment.hpp).
#include "dataplane/tcp_segment.hpp"

#include <rte_ip.h>

namespace portcullis {

namespace {

constexpr uint8_t kProtoTcp = 6;

}  // namespace

TcpSegment read_tcp_segment(const uint8_t* frame, const Parsed& p) {
    TcpSegment s;
    const uint8_t* t = frame + p.l4_off;
    s.seq = load_be32(t + 4);
    s.ack = load_be32(t + 8);
    s.window = load_be16(t + 14);
    const uint8_t* ip = frame + p.l3_off;
    s.ttl = p.ip_version == 4 ? ip[8] : ip[7];
    // Options: between the fixed header and the payload (parse_frame checked the data offset).
    const uint8_t* o = t + 20;
    const uint8_t* end = frame + p.payload_off;
    while (o < end) {
        const uint8_t kind = o[0];
        if (kind == 0) break;  // end of option list
        if (kind == 1) {       // no-operation
            ++o;
            continue;
        }
        if (end - o < 2 || o[1] < 2 || o[1] > end - o) {
            s.opt.malformed = true;
            break;
        }
        const uint8_t len = o[1];
        switch (kind) {
            case 3:  // window scale
                if (len == 3) {
                    s.opt.has_ws = true;
                    s.opt.ws = o[2] > 14 ? 14 : o[2];
                } else {
                    s.opt.malformed = true;
                }
                break;
            case 8:  // timestamps
                if (len == 10) {
                    s.opt.has_ts = true;
                    s.opt.tsval = load_be32(o + 2);
                    s.opt.tsecr = load_be32(o + 6);
                } else {
                    s.opt.malformed = true;
                }
                break;
            case 19:  // MD5 signature
            case 29:  // TCP-AO
                s.opt.signed_ = true;
                break;
            case 34:  // TCP Fast Open cookie
                s.opt.fast_open = true;
                break;
            default:
                break;
        }
        o += len;
    }
    return s;
}

bool tcp_checksums_ok(const uint8_t* frame, const Parsed& p) {
    // One's-complement sums do not depend on byte order: DPDK's raw sum (native 16-bit words, unrolled) over
    // the bytes as they are, with the pseudo-header's protocol and length added in network order, folds to
    // 0xffff exactly when the checksum is right.
    const uint8_t* ip = frame + p.l3_off;
    const uint32_t tcp_len = uint32_t{p.payload_off} - p.l4_off + p.payload_len;
    uint32_t sum;
    if (p.ip_version == 4) {
        if (rte_raw_cksum(ip, (ip[0] & 0x0f) * 4u) != 0xffff) return false;
        sum = __rte_raw_cksum(ip + 12, 8, 0);  // source and destination
    } else {
        sum = __rte_raw_cksum(ip + 8, 32, 0);
    }
    sum +=
        rte_cpu_to_be_16(static_cast<uint16_t>(kProtoTcp)) + rte_cpu_to_be_16(static_cast<uint16_t>(tcp_len));
    sum = __rte_raw_cksum(frame + p.l4_off, tcp_len, sum);
    return __rte_raw_cksum_reduce(sum) == 0xffff;
}

}  // namespace portcullis
