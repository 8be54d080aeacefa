// The protocol library on its own (api/): the approval record's text forms and validators, and the wire
// envelope. Built in the CLI-only configuration too: nothing here needs DPDK.
#include <gtest/gtest.h>

#include "api/approval.hpp"
#include "api/protocol.hpp"
#include "api/wire.hpp"

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

TEST(Wire, EveryReplyCarriesTheEnvelope) {
    const auto ok = ok_reply({{"records", 3}});
    EXPECT_EQ(ok[key::kVersion], kProtocolVersion);
    EXPECT_EQ(ok[key::kOk], true);
    EXPECT_EQ(ok["records"], 3);
    const auto err = error_reply("'x': not an address");
    EXPECT_EQ(err[key::kVersion], kProtocolVersion);
    EXPECT_EQ(err[key::kOk], false);
    EXPECT_EQ(err[key::kError], "'x': not an address");
    EXPECT_EQ(reply_line(err).back(), '\n');
}

TEST(Wire, RequestsAreBoundedAndErrorsQuoteNoRawBytes) {
    std::string why;
    EXPECT_TRUE(parse_request(R"({"v":1,"cmd":"status"})", &why)) << why;
    EXPECT_FALSE(
        parse_request(std::string(kMaxRequestDepth + 1, '[') + std::string(kMaxRequestDepth + 1, ']'), &why));
    EXPECT_FALSE(why.empty());
    EXPECT_FALSE(parse_request("{\"cmd\":\"\xff\x01", &why));
    EXPECT_TRUE(valid_utf8(why)) << "the reason is one printable line";
    EXPECT_EQ(why.find('\x01'), std::string::npos);
    EXPECT_EQ(printable("a\nb\xff"), "a?b?");
}

}  // namespace
