// Approval record formats and validators, and most-specific-wins flattening.
#include <gtest/gtest.h>

#include "control/approval.hpp"
#include "control/config.hpp"
#include "control/policy_builder.hpp"
#include "control/prefix_flatten.hpp"

using namespace portcullis;

namespace {

TEST(ApprovalLine, RoundTrips) {
    Approval a;
    a.prefix = *parse_prefix("2001:db8:100:7::/64");
    a.state = ApprovalState::Suspended;
    a.hostname = "mail.example.com";
    a.domains = {"example.com", "example.org"};
    a.max_concurrent = 5;
    a.rate_per_min = 30;
    a.daily = 2000;
    a.expires = 1798675200;
    a.ticket = "T-1042";
    a.reason = "invoices from the \"billing\" panel";
    std::string why;
    auto back = parse_line(to_line(a), &why);
    ASSERT_TRUE(back) << why << " in " << to_line(a);
    EXPECT_EQ(*back, a);
}

TEST(ApprovalLine, CommentsBlanksAndErrors) {
    std::string why;
    EXPECT_FALSE(parse_line("# a comment", &why));
    EXPECT_TRUE(why.empty());
    EXPECT_FALSE(parse_line("   ", &why));
    EXPECT_TRUE(why.empty());
    EXPECT_FALSE(parse_line("198.51.100.7/33", &why));
    EXPECT_EQ(why, "'198.51.100.7/33': prefix length over 32");
    EXPECT_FALSE(parse_line("198.51.100.7 hostname=localhost", &why));
    EXPECT_EQ(why, "hostname: 'localhost' is not a fully qualified domain name");
    EXPECT_FALSE(parse_line("198.51.100.7 colour=blue", &why));
    EXPECT_EQ(why, "unknown key 'colour'");
    EXPECT_FALSE(parse_line("198.51.100.7 reason=\"unterminated", &why));
    EXPECT_EQ(why, "unterminated quote");
    EXPECT_FALSE(parse_line("198.51.100.7 rate=fast", &why));
    EXPECT_FALSE(parse_line("198.51.100.7 daily", &why));
}

TEST(ApprovalJson, RejectsWrongTypes) {
    EXPECT_THROW(approval_from_json(nlohmann::json::array()), std::runtime_error);
    EXPECT_THROW(approval_from_json({{"prefix", 7}}), std::runtime_error);
    EXPECT_THROW(approval_from_json({{"prefix", "198.51.100.7"}, {"state", "maybe"}}), std::runtime_error);
    EXPECT_THROW(approval_from_json({{"prefix", "198.51.100.7"}, {"daily", "many"}}), std::runtime_error);
    EXPECT_NO_THROW(approval_from_json({{"prefix", "198.51.100.7"}}));
}

TEST(Validators, HostnamesRatesTimes) {
    EXPECT_TRUE(valid_hostname("mail.example.com"));
    EXPECT_TRUE(valid_hostname("mail.example.com."));
    EXPECT_FALSE(valid_hostname("localhost"));
    EXPECT_FALSE(valid_hostname("-bad.example.com"));
    EXPECT_FALSE(valid_hostname("a..example.com"));
    EXPECT_FALSE(valid_hostname("mail_1.example.com"));
    EXPECT_EQ(parse_rate("30/min"), 30u);
    EXPECT_EQ(parse_rate("600/h"), 10u);
    EXPECT_EQ(parse_rate("7"), 7u);
    EXPECT_FALSE(parse_rate("x/min"));
    EXPECT_EQ(parse_time("2026-12-31", 0), 1798675200);
    EXPECT_EQ(parse_time("2026-12-31T01:02:03Z", 0), 1798675200 + 3723);
    EXPECT_EQ(parse_time("+2d", 100), 100 + 2 * 86400);
    EXPECT_FALSE(parse_time("31/12/2026", 0));
    EXPECT_FALSE(parse_time("2026-13-01", 0));
    EXPECT_EQ(format_time(1798675200), "2026-12-31T00:00:00Z");
}

TEST(Flatten, InnermostWins) {
    // 0..255 granted, 64..79 not, 70 granted again, 300..301 granted
    const std::vector<PrefixSpan> spans = {{0, 255, true}, {64, 79, false}, {70, 70, true}, {300, 301, true}};
    const auto out = flatten_innermost(spans);
    ASSERT_EQ(out.size(), 4u);
    EXPECT_EQ((std::pair{out[0].first, out[0].last}), (std::pair<u128, u128>{0, 63}));
    EXPECT_EQ((std::pair{out[1].first, out[1].last}), (std::pair<u128, u128>{70, 70}));
    EXPECT_EQ((std::pair{out[2].first, out[2].last}), (std::pair<u128, u128>{80, 255}));
    EXPECT_EQ((std::pair{out[3].first, out[3].last}), (std::pair<u128, u128>{300, 301}));
}

TEST(Flatten, WholeSpaceAndTopEdge) {
    const u128 top = ~u128{0};
    const auto out = flatten_innermost({{0, top, true}, {top, top, false}});
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].last, top - 1);
}

TEST(PolicyFromStore, SuspendedInsideApprovedPrefixAndExpiry) {
    char tmpl[] = "/tmp/portcullis-pol-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    {
        ApprovalStore s(dir);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        Config c;
        c.managed_prefixes = {*parse_prefix("198.51.100.0/24")};
        c.approved = {*parse_prefix("198.51.100.64/28")};  // baseline
        Approval sus;
        sus.prefix = *parse_prefix("198.51.100.70");
        sus.state = ApprovalState::Suspended;
        ASSERT_EQ(s.put(sus), "");
        Approval timed;
        timed.prefix = *parse_prefix("2001:db8:100::10");
        timed.expires = 1000;
        ASSERT_EQ(s.put(timed), "");

        auto before = build_policy(c, &s, 999);
        EXPECT_TRUE(before.policy->approved(*parse_addr("198.51.100.69")));
        EXPECT_FALSE(before.policy->approved(*parse_addr("198.51.100.70")));
        EXPECT_TRUE(before.policy->approved(*parse_addr("2001:db8:100::10")));
        EXPECT_EQ(before.next_expiry, 1000);
        auto after = build_policy(c, &s, 1000);
        EXPECT_FALSE(after.policy->approved(*parse_addr("2001:db8:100::10")));
        EXPECT_EQ(after.next_expiry, 0);
    }
    std::filesystem::remove_all(dir);
}

}  // namespace
