// Most-specific-wins flattening, and the policy built from stored records.
#include <gtest/gtest.h>

#include "api/approval.hpp"
#include "control/config.hpp"
#include "control/policy/policy_builder.hpp"
#include "control/policy/prefix_flatten.hpp"

using namespace portcullis;

namespace {

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
