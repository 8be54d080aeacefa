// Address, prefix and IPv6 prefix-set tests.
#include <gtest/gtest.h>

#include "common/net_addr.hpp"
#include "dataplane/prefix6_set.hpp"

using namespace portcullis;

namespace {

TEST(NetAddr, ParsesAndFormats) {
    EXPECT_EQ(to_string(*parse_prefix("192.0.2.0/24")), "192.0.2.0/24");
    EXPECT_EQ(to_string(*parse_prefix("192.0.2.7")), "192.0.2.7");
    EXPECT_EQ(to_string(*parse_prefix("2001:DB8::/32")), "2001:db8::/32");
    EXPECT_EQ(to_string(*parse_prefix("::/0")), "::/0");
    EXPECT_EQ(parse_prefix("0.0.0.0/0")->len, 0);
}

TEST(NetAddr, RejectsBadInputWithReason) {
    std::string why;
    EXPECT_FALSE(parse_prefix("192.0.2.0/33", &why));
    EXPECT_EQ(why, "prefix length over 32");
    EXPECT_FALSE(parse_prefix("2001:db8::/129", &why));
    EXPECT_FALSE(parse_prefix("192.0.2.10/24", &why));
    EXPECT_EQ(why, "host bits set past the prefix length");
    EXPECT_FALSE(parse_prefix("192.0.2/24", &why));
    EXPECT_FALSE(parse_prefix("example.com", &why));
    EXPECT_EQ(why, "not an IPv4 or IPv6 address");
    EXPECT_FALSE(parse_prefix("192.0.2.0/", &why));
    EXPECT_FALSE(parse_prefix("192.0.2.0/2x", &why));
    EXPECT_FALSE(parse_prefix("", &why));
    EXPECT_FALSE(parse_prefix(std::string(200, '1'), &why));
}

TEST(NetAddr, PrefixContains) {
    const auto p = *parse_prefix("198.51.100.0/25");
    EXPECT_TRUE(p.contains(*parse_addr("198.51.100.127")));
    EXPECT_FALSE(p.contains(*parse_addr("198.51.100.128")));
    EXPECT_FALSE(p.contains(*parse_addr("2001:db8::1")));
}

TEST(Prefix6Set, MembershipAcrossOverlapsAndEdges) {
    Prefix6Set s;
    for (auto t : {"2001:db8:100::/48", "2001:db8:100:5::/64", "2001:db8:200::7", "ffff::/16"})
        s.add(*parse_prefix(t));
    s.seal();
    EXPECT_EQ(s.interval_count(), 3u);  // the /64 merges into the /48
    auto in = [&](const char* a) { return s.contains(parse_addr(a)->v6addr); };
    EXPECT_TRUE(in("2001:db8:100::"));
    EXPECT_TRUE(in("2001:db8:100:ffff:ffff:ffff:ffff:ffff"));
    EXPECT_FALSE(in("2001:db8:101::"));
    EXPECT_FALSE(in("2001:db8:ff:ffff:ffff:ffff:ffff:ffff"));
    EXPECT_TRUE(in("2001:db8:200::7"));
    EXPECT_FALSE(in("2001:db8:200::6"));
    EXPECT_FALSE(in("2001:db8:200::8"));
    EXPECT_TRUE(in("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    EXPECT_FALSE(in("::"));
}

TEST(Prefix6Set, AdjacentPrefixesMerge) {
    Prefix6Set s;
    s.add(*parse_prefix("2001:db8::/33"));
    s.add(*parse_prefix("2001:db8:8000::/33"));
    s.seal();
    EXPECT_EQ(s.interval_count(), 1u);
    EXPECT_TRUE(s.empty() == false);
}

}  // namespace
