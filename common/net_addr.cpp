// Parsing and formatting of addresses and CIDR prefixes (inet_pton/inet_ntop underneath).
#include "common/net_addr.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace portcullis {

std::array<uint8_t, 16> v6_to_bytes(u128 v) {
    std::array<uint8_t, 16> out{};
    for (int i = 15; i >= 0; --i) {
        out[i] = static_cast<uint8_t>(v & 0xff);
        v >>= 8;
    }
    return out;
}

static u128 mask6(uint8_t len) {
    return len == 0 ? 0 : ~u128{0} << (128 - len);
}
static uint32_t mask4(uint8_t len) {
    return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}

uint32_t Prefix::first4() const {
    return addr.v4 & mask4(len);
}
uint32_t Prefix::last4() const {
    return first4() | ~mask4(len);
}
u128 Prefix::first6() const {
    return addr.v6addr & mask6(len);
}
u128 Prefix::last6() const {
    return first6() | ~mask6(len);
}

Prefix Prefix::widened(uint8_t shorter) const {
    Prefix q{addr, shorter};
    if (q.addr.v6)
        q.addr.v6addr = q.first6();
    else
        q.addr.v4 = q.first4();
    return q;
}

bool Prefix::contains(const IpAddr& a) const {
    if (a.v6 != addr.v6) return false;
    if (a.v6) return (a.v6addr & mask6(len)) == first6();
    return (a.v4 & mask4(len)) == first4();
}

std::optional<IpAddr> parse_addr(std::string_view text) {
    if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
    char buf[INET6_ADDRSTRLEN + 1];
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    if (text.find(':') != std::string_view::npos) {
        uint8_t b[16];
        if (inet_pton(AF_INET6, buf, b) != 1) return std::nullopt;
        return IpAddr::from_v6_bytes(b);
    }
    in_addr a4{};
    if (inet_pton(AF_INET, buf, &a4) != 1) return std::nullopt;
    return IpAddr::from_v4(ntohl(a4.s_addr));
}

std::optional<Prefix> parse_prefix(std::string_view text, std::string* why) {
    auto fail = [&](const char* msg) -> std::optional<Prefix> {
        if (why) *why = msg;
        return std::nullopt;
    };
    const auto slash = text.find('/');
    auto addr = parse_addr(text.substr(0, slash));
    if (!addr) return fail("not an IPv4 or IPv6 address");
    Prefix p{*addr, static_cast<uint8_t>(addr->v6 ? 128 : 32)};
    if (slash != std::string_view::npos) {
        const auto lentext = text.substr(slash + 1);
        unsigned len = 0;
        auto [end, ec] = std::from_chars(lentext.data(), lentext.data() + lentext.size(), len);
        if (lentext.empty() || ec != std::errc{} || end != lentext.data() + lentext.size())
            return fail("prefix length is not a number");
        if (len > p.max_len()) return fail(addr->v6 ? "prefix length over 128" : "prefix length over 32");
        p.len = static_cast<uint8_t>(len);
    }
    const bool host_bits = addr->v6 ? (p.first6() != addr->v6addr) : (p.first4() != addr->v4);
    if (host_bits) return fail("host bits set past the prefix length");
    return p;
}

std::string to_string(const IpAddr& a) {
    char buf[INET6_ADDRSTRLEN];
    if (a.v6) {
        auto b = v6_to_bytes(a.v6addr);
        inet_ntop(AF_INET6, b.data(), buf, sizeof buf);
    } else {
        in_addr a4{htonl(a.v4)};
        inet_ntop(AF_INET, &a4, buf, sizeof buf);
    }
    return buf;
}

std::string to_string(const Prefix& p) {
    std::string s = to_string(p.addr);
    if (p.len != p.max_len()) {
        s.push_back('/');
        s.append(std::to_string(p.len));
    }
    return s;
}

}  // namespace portcullis
