// Test helper: builds Ethernet frames (VLAN tags, IPv4 with options, IPv6 with extension headers, TCP/UDP)
// so that parser, policy and responder tests can say what they send in one line.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/net_addr.hpp"

namespace portcullis::test {

struct Ext6 {
    uint8_t type;           // 0, 43, 60, 44, 51 ...
    size_t body_len;        // bytes after the 2-byte next/len for generic headers (total = body_len + 2)
    uint16_t frag_off = 0;  // for type 44: fragment offset in 8-byte units
    bool more = false;      // for type 44: the M flag (more fragments follow)
};

struct FrameSpec {
    std::vector<uint16_t> tpids;  // one per stacked tag, outermost first (0x8100 / 0x88a8)
    std::string src = "198.51.100.20";
    std::string dst = "203.0.113.25";
    uint8_t l4_proto = 6;
    uint16_t sport = 40000, dport = 25;
    uint8_t flags = 0x02;  // SYN
    uint32_t seq = 1000, ack = 0;
    size_t ip_options = 0;   // IPv4 option bytes (multiple of 4)
    size_t tcp_options = 0;  // TCP option bytes (multiple of 4)
    std::vector<Ext6> ext6;
    uint16_t frag = 0;  // IPv4 flags+offset field (0x2000 MF, 0x4000 DF, offset in 8-byte units)
    std::string payload;
    size_t pad = 0;                      // Ethernet trailer bytes after the IP packet
    std::vector<uint8_t> tcp_opt_bytes;  // TCP options, after the NOPs (padded with NOPs to 4 bytes)
    uint8_t ttl = 64;
    uint16_t window = 65535;
    bool bad_checksum = false;  // the TCP checksum is left wrong (by one)
};

// The TCP checksum of a segment (pseudo-header from the IP addresses).
inline uint16_t tcp_checksum(const IpAddr& src, const IpAddr& dst, const std::vector<uint8_t>& seg) {
    uint64_t acc = 0;
    const auto add = [&](const uint8_t* p, size_t n) {
        for (size_t i = 0; i + 1 < n; i += 2) acc += (uint32_t{p[i]} << 8) | p[i + 1];
        if (n % 2) acc += uint32_t{p[n - 1]} << 8;
    };
    if (src.v6) {
        const auto a = v6_to_bytes(src.v6addr), b = v6_to_bytes(dst.v6addr);
        add(a.data(), 16);
        add(b.data(), 16);
    } else {
        const uint8_t a[8] = {static_cast<uint8_t>(src.v4 >> 24), static_cast<uint8_t>(src.v4 >> 16),
                              static_cast<uint8_t>(src.v4 >> 8),  static_cast<uint8_t>(src.v4),
                              static_cast<uint8_t>(dst.v4 >> 24), static_cast<uint8_t>(dst.v4 >> 16),
                              static_cast<uint8_t>(dst.v4 >> 8),  static_cast<uint8_t>(dst.v4)};
        add(a, 8);
    }
    acc += 6 + seg.size();
    add(seg.data(), seg.size());
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return static_cast<uint16_t>(~acc);
}

inline void put16(std::vector<uint8_t>& v, uint16_t x) {
    v.push_back(static_cast<uint8_t>(x >> 8));
    v.push_back(static_cast<uint8_t>(x));
}
inline void put32(std::vector<uint8_t>& v, uint32_t x) {
    put16(v, static_cast<uint16_t>(x >> 16));
    put16(v, static_cast<uint16_t>(x));
}

inline std::vector<uint8_t> build_frame(const FrameSpec& s) {
    const auto src = *parse_addr(s.src);
    const auto dst = *parse_addr(s.dst);
    std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa};
    uint16_t vid = 100;
    for (auto tpid : s.tpids) {
        put16(f, tpid);
        put16(f, vid++);
    }
    put16(f, src.v6 ? 0x86dd : 0x0800);

    std::vector<uint8_t> l4;
    if (s.l4_proto == 6) {
        put16(l4, s.sport);
        put16(l4, s.dport);
        put32(l4, s.seq);
        put32(l4, s.ack);
        std::vector<uint8_t> opts(s.tcp_options, 1);  // NOPs
        opts.insert(opts.end(), s.tcp_opt_bytes.begin(), s.tcp_opt_bytes.end());
        while (opts.size() % 4) opts.push_back(1);
        l4.push_back(static_cast<uint8_t>(((20 + opts.size()) / 4) << 4));
        l4.push_back(s.flags);
        put16(l4, s.window);
        put16(l4, 0);
        put16(l4, 0);
        l4.insert(l4.end(), opts.begin(), opts.end());
    } else {
        put16(l4, s.sport);
        put16(l4, s.dport);
        put16(l4, static_cast<uint16_t>(8 + s.payload.size()));
        put16(l4, 0);
    }
    l4.insert(l4.end(), s.payload.begin(), s.payload.end());
    if (s.l4_proto == 6) {
        const uint16_t sum = static_cast<uint16_t>(tcp_checksum(src, dst, l4) + (s.bad_checksum ? 1 : 0));
        l4[16] = static_cast<uint8_t>(sum >> 8);
        l4[17] = static_cast<uint8_t>(sum);
    }

    if (!src.v6) {
        const size_t ihl = 20 + s.ip_options;
        f.push_back(static_cast<uint8_t>(0x40 | (ihl / 4)));
        f.push_back(0);
        put16(f, static_cast<uint16_t>(ihl + l4.size()));
        put16(f, 1);
        put16(f, s.frag);
        f.push_back(s.ttl);
        f.push_back(s.l4_proto);
        put16(f, 0);
        put32(f, src.v4);
        put32(f, dst.v4);
        f.insert(f.end(), s.ip_options, 1);  // NOP options
        {                                    // the header checksum
            const size_t h = f.size() - ihl;
            uint32_t acc = 0;
            for (size_t i = 0; i < ihl; i += 2) acc += (uint32_t{f[h + i]} << 8) | f[h + i + 1];
            while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
            f[h + 10] = static_cast<uint8_t>(~acc >> 8);
            f[h + 11] = static_cast<uint8_t>(~acc);
        }
    } else {
        std::vector<uint8_t> ext;
        uint8_t first = s.ext6.empty() ? s.l4_proto : s.ext6[0].type;
        for (size_t i = 0; i < s.ext6.size(); ++i) {
            const uint8_t next = i + 1 < s.ext6.size() ? s.ext6[i + 1].type : s.l4_proto;
            const auto& e = s.ext6[i];
            ext.push_back(next);
            if (e.type == 44) {
                ext.push_back(0);
                put16(ext, static_cast<uint16_t>(e.frag_off << 3 | (e.more ? 1 : 0)));
                put32(ext, 1);
            } else if (e.type == 51) {
                const size_t total = e.body_len + 2;
                ext.push_back(static_cast<uint8_t>(total / 4 - 2));
                ext.insert(ext.end(), e.body_len, 0);
            } else {
                const size_t total = e.body_len + 2;
                ext.push_back(static_cast<uint8_t>(total / 8 - 1));
                ext.insert(ext.end(), e.body_len, 0);
            }
        }
        put32(f, 0x60000000);
        put16(f, static_cast<uint16_t>(ext.size() + l4.size()));
        f.push_back(first);
        f.push_back(s.ttl);
        auto sb = v6_to_bytes(src.v6addr);
        auto db = v6_to_bytes(dst.v6addr);
        f.insert(f.end(), sb.begin(), sb.end());
        f.insert(f.end(), db.begin(), db.end());
        f.insert(f.end(), ext.begin(), ext.end());
    }
    f.insert(f.end(), l4.begin(), l4.end());
    f.insert(f.end(), s.pad, 0);
    return f;
}

// Offset of the IP header in a frame built from `s`.
inline size_t l3_offset(const FrameSpec& s) {
    return 14 + 4 * s.tpids.size();
}

}  // namespace portcullis::test
