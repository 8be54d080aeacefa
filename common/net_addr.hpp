// IPv4/IPv6 addresses and prefixes as the policy sees them: parsing operator text ("192.0.2.7",
// "2001:db8::/48"), formatting, and the integer forms the lookup structures key on.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

__extension__ typedef unsigned __int128 u128;

struct IpAddr {
    bool v6 = false;
    uint32_t v4 = 0;  // host byte order, valid when !v6
    u128 v6addr = 0;  // host byte order (most significant byte first on the wire), valid when v6

    static IpAddr from_v4(uint32_t host_order) { return IpAddr{false, host_order, 0}; }
    static IpAddr from_v6(u128 host_order) { return IpAddr{true, 0, host_order}; }
    static IpAddr from_v6_bytes(const uint8_t* wire16);  // defined below v6_from_bytes

    bool operator==(const IpAddr&) const = default;
};

// A CIDR prefix; the address is normalised (host bits cleared).
struct Prefix {
    IpAddr addr;
    uint8_t len = 0;  // 0..32 or 0..128

    uint8_t max_len() const { return addr.v6 ? 128 : 32; }
    // First and last address covered, in the family's integer form.
    uint32_t first4() const;
    uint32_t last4() const;
    u128 first6() const;
    u128 last6() const;
    bool contains(const IpAddr& a) const;
    // The prefix of length `shorter` (<= len) containing this one, normalised.
    Prefix widened(uint8_t shorter) const;

    bool operator==(const Prefix&) const = default;
};

std::optional<IpAddr> parse_addr(std::string_view text);
// Accepts "ADDR" (a host prefix) or "ADDR/LEN". Host bits set below LEN are an error, so a typo such as
// 192.0.2.10/24 (meant: one host) is caught rather than silently approving a whole /24.
std::optional<Prefix> parse_prefix(std::string_view text, std::string* why = nullptr);

std::string to_string(const IpAddr& a);
std::string to_string(const Prefix& p);

// Per-packet: two big-endian 64-bit loads.
inline u128 v6_from_bytes(const uint8_t* wire16) {
    uint64_t hi, lo;
    __builtin_memcpy(&hi, wire16, 8);
    __builtin_memcpy(&lo, wire16 + 8, 8);
    return (u128{__builtin_bswap64(hi)} << 64) | __builtin_bswap64(lo);
}
std::array<uint8_t, 16> v6_to_bytes(u128 v);

inline IpAddr IpAddr::from_v6_bytes(const uint8_t* wire16) {
    return from_v6(v6_from_bytes(wire16));
}

}  // namespace portcullis
