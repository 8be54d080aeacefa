// SipHash-2-4 (Aumasson and Bernstein's reference construction) and handshake cookies (see cookie.hpp).
#include "dataplane/cookie.hpp"

#include <cstring>

namespace portcullis {

namespace {

inline uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}

inline void sipround(uint64_t& v0, uint64_t& v1, uint64_t& v2, uint64_t& v3) {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
}

}  // namespace

uint64_t siphash24(const CookieKey& key, const uint8_t* data, size_t len) {
    uint64_t v0 = 0x736f6d6570736575ULL ^ key.k0, v1 = 0x646f72616e646f6dULL ^ key.k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ key.k0, v3 = 0x7465646279746573ULL ^ key.k1;
    const size_t full = len & ~size_t{7};
    for (size_t i = 0; i < full; i += 8) {
        uint64_t m;
        std::memcpy(&m, data + i, 8);  // little-endian words, as the reference
        v3 ^= m;
        sipround(v0, v1, v2, v3);
        sipround(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t b = static_cast<uint64_t>(len) << 56;
    for (size_t i = 0; i < (len & 7); ++i) b |= static_cast<uint64_t>(data[full + i]) << (8 * i);
    v3 ^= b;
    sipround(v0, v1, v2, v3);
    sipround(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    for (int i = 0; i < 4; ++i) sipround(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

uint32_t syn_cookie(const CookieKey& key, const Parsed& p, uint64_t slot, ReplyReason reason) {
    uint8_t buf[16 + 16 + 4 + 8 + 1];
    const auto put_addr = [](uint8_t* out, const IpAddr& a) {
        if (a.v6) {
            for (int i = 0; i < 16; ++i) out[i] = static_cast<uint8_t>(a.v6addr >> (8 * (15 - i)));
        } else {
            std::memset(out, 0, 12);
            for (int i = 0; i < 4; ++i) out[12 + i] = static_cast<uint8_t>(a.v4 >> (8 * (3 - i)));
        }
    };
    put_addr(buf, p.src);
    put_addr(buf + 16, p.dst);
    std::memcpy(buf + 32, &p.sport, 2);
    std::memcpy(buf + 34, &p.dport, 2);
    std::memcpy(buf + 36, &slot, 8);
    buf[44] = static_cast<uint8_t>(reason);  // hashed too: a cookie for one reason says nothing of another's
    const auto h = static_cast<uint32_t>(siphash24(key, buf, sizeof buf));
    return (h & ~kCookieReasonMask) | static_cast<uint32_t>(reason);
}

}  // namespace portcullis
