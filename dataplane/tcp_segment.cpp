// TCP segment fields, options and checksums (see tcp_segment.hpp).
#include "dataplane/tcp_segment.hpp"

namespace portcullis {

namespace {

// One's-complement sum of 16-bit big-endian words (an odd last byte padded with zero), not yet folded.
uint64_t sum16(const uint8_t* p, uint32_t len, uint64_t acc) {
    while (len >= 8) {
        acc += load_be16(p) + uint64_t{load_be16(p + 2)} + load_be16(p + 4) + load_be16(p + 6);
        p += 8;
        len -= 8;
    }
    while (len >= 2) {
        acc += load_be16(p);
        p += 2;
        len -= 2;
    }
    if (len) acc += uint64_t{p[0]} << 8;
    return acc;
}

uint16_t fold(uint64_t acc) {
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(acc);
}

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
    const uint8_t* ip = frame + p.l3_off;
    const uint32_t tcp_len = uint32_t{p.payload_off} - p.l4_off + p.payload_len;
    uint64_t acc = 0;
    if (p.ip_version == 4) {
        const uint32_t ihl = (ip[0] & 0x0f) * 4u;
        if (fold(sum16(ip, ihl, 0)) != 0xffff) return false;
        acc = sum16(ip + 12, 8, acc);  // source and destination
    } else {
        acc = sum16(ip + 8, 32, acc);
    }
    acc += kProtoTcp + uint64_t{tcp_len};
    acc = sum16(frame + p.l4_off, tcp_len, acc);
    return fold(acc) == 0xffff;
}

}  // namespace portcullis
