// The approval lifecycle (docs/workflow.md) through the control protocol: a request is pending and refused,
// approve takes its terms, deny sets a cooldown that refuses an early request (staff may force it, audited),
// complaints within the window ban an address (and only it), and the stored and exported forms carry every
// new field while records without them load as they were.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "api/approval.hpp"
#include "control/commands/control_plane.hpp"
#include "control/commands/request.hpp"
#include "tests/support/command_fixture.hpp"

using namespace portcullis;
using nlohmann::json;

namespace {

constexpr int64_t kDay = 86400;

class Lifecycle : public portcullis::testing::CommandFixture {
  protected:
    json call(json req) {
        req["v"] = 1;
        return CommandFixture::call(req);
    }
    json request_10() {
        return call(
            {{"cmd", "request"},
             {"addr", "198.51.100.10"},
             {"hostname", "mail.customer.example"},
             {"domains", {"customer.example"}},
             {"ticket", "T-77"},
             {"facts",
              {{"service_id", "SRV-1001"}, {"volume_daily", "500"}, {"mail_type", "transactional"}}}});
    }
    std::vector<json> audit_lines() {
        std::ifstream in(std::filesystem::path(dir) / "audit.log");
        std::vector<json> lines;
        for (std::string l; std::getline(in, l);) lines.push_back(json::parse(l));
        return lines;
    }
};

TEST_F(Lifecycle, ARequestIsPendingRefusedAndListed) {
    const json r = request_10();
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["record"]["state"], "pending");
    EXPECT_EQ(r["record"]["facts"]["service_id"], "SRV-1001");
    EXPECT_GT(r["record"]["requested"].get<int64_t>(), 0);
    EXPECT_FALSE(approved_now("198.51.100.10")) << "a pending address is still refused";
    const json show = call({{"cmd", "show"}, {"addr", "198.51.100.10"}});
    EXPECT_EQ(show["verdict"].get<std::string>().rfind("refused on blocked ports: request pending since ", 0),
              0u)
        << show.dump();
    call({{"cmd", "request"}, {"addr", "198.51.100.11"}});
    const json list = call({{"cmd", "requests"}});
    ASSERT_EQ(list["requests"].size(), 2u);
    EXPECT_EQ(list["requests"][0]["prefix"], "198.51.100.10") << "oldest first";
    EXPECT_NE(error(request_10()).find("has a request pending since"), std::string::npos);
    EXPECT_NE(
        error(call({{"cmd", "request"}, {"addr", "198.51.100.12"}, {"facts", {{"volume_daily", "lots"}}}}))
            .find("volume_daily"),
        std::string::npos);
    EXPECT_NE(error(call({{"cmd", "request"}, {"addr", "198.51.100.12"}, {"facts", {{"colour", "blue"}}}}))
                  .find("unknown request fact 'colour'"),
              std::string::npos);
}

TEST_F(Lifecycle, ApproveTakesTheRequestsHostNameDomainsAndVolume) {
    ASSERT_EQ(request_10()["ok"], true);
    const json r = call({{"cmd", "approve"}, {"addr", "198.51.100.10"}});
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["record"]["state"], "approved");
    EXPECT_EQ(r["record"]["hostname"], "mail.customer.example");
    EXPECT_EQ(r["record"]["domains"], json({"customer.example"}));
    EXPECT_EQ(r["record"]["daily"], 500) << "the requested daily volume is the daily limit";
    EXPECT_TRUE(r.contains("from_request"));
    EXPECT_TRUE(approved_now("198.51.100.10"));
    EXPECT_NE(error(request_10()).find("is approved already"), std::string::npos);
    // Approved by the configuration's /28: a request would carve it out of that, so it is refused.
    EXPECT_NE(error(call({{"cmd", "request"}, {"addr", "198.51.100.66"}}))
                  .find("is approved already (198.51.100.64/28, from the configuration)"),
              std::string::npos);
    EXPECT_TRUE(approved_now("198.51.100.66"));
    // Options given to approve win over the request's.
    call({{"cmd", "request"},
          {"addr", "198.51.100.13"},
          {"hostname", "a.customer.example"},
          {"facts", {{"volume_daily", "900"}}}});
    const json o = call(
        {{"cmd", "approve"}, {"addr", "198.51.100.13"}, {"hostname", "b.customer.example"}, {"daily", 100}});
    EXPECT_EQ(o["record"]["hostname"], "b.customer.example");
    EXPECT_EQ(o["record"]["daily"], 100);
}

TEST_F(Lifecycle, ADenialHoldsOffANewRequestUntilItsCooldownUnlessStaffForceIt) {
    ASSERT_EQ(request_10()["ok"], true);
    EXPECT_NE(error(call({{"cmd", "deny"}, {"addr", "198.51.100.10"}})).find("needs a reason"),
              std::string::npos);
    EXPECT_NE(
        error(call({{"cmd", "deny"}, {"addr", "198.51.100.99"}, {"reason", "x"}})).find("no pending request"),
        std::string::npos);
    const int64_t before = now_s();
    const json d = call({{"cmd", "deny"}, {"addr", "198.51.100.10"}, {"reason", "no SPF, no rDNS"}});
    ASSERT_EQ(d["ok"], true) << d.dump();
    EXPECT_EQ(d["record"]["state"], "denied");
    const int64_t retry = d["record"]["retry_after"];
    EXPECT_GE(retry, before + 60 * kDay);
    EXPECT_LE(retry, now_s() + 60 * kDay);
    EXPECT_FALSE(approved_now("198.51.100.10"));
    const std::string why = error(request_10());
    EXPECT_NE(why.find("a new request is allowed from " + format_time(retry)), std::string::npos) << why;
    EXPECT_NE(why.find("no SPF, no rDNS"), std::string::npos) << why;
    EXPECT_NE(call({{"cmd", "show"}, {"addr", "198.51.100.10"}})["verdict"].get<std::string>().find(
                  "a new request is allowed from"),
              std::string::npos);
    const json forced =
        call({{"cmd", "request"}, {"addr", "198.51.100.10"}, {"force", true}, {"ticket", "T-78"}});
    ASSERT_EQ(forced["ok"], true) << forced.dump();
    EXPECT_EQ(forced["record"]["state"], "pending");
    EXPECT_EQ(forced["record"]["retry_after"], 0);
    const auto lines = audit_lines();
    ASSERT_GE(lines.size(), 3u);
    EXPECT_EQ(lines.back()["cmd"], "request");
    EXPECT_EQ(lines.back()["args"]["force"], true) << "staff's override is in the audit log";
    EXPECT_EQ(lines.back()["before"]["state"], "denied");
    // A banned address cannot even ask.
    call({{"cmd", "revoke"}, {"addr", "198.51.100.20"}, {"ban", true}, {"reason", "spam"}});
    EXPECT_NE(error(call({{"cmd", "request"}, {"addr", "198.51.100.20"}})).find("cannot be requested again"),
              std::string::npos);
}

TEST_F(Lifecycle, ComplaintsWithinTheWindowBanTheAddressAndOnlyIt) {
    // .66 is inside the configuration's approved /28: its complaints go on a record of its own, which keeps
    // the approval until the third.
    ASSERT_TRUE(approved_now("198.51.100.66"));
    for (const char* ref : {"ABUSE-1", "FBL-2"}) {
        const json r =
            call({{"cmd", "complaint"}, {"addr", "198.51.100.66"}, {"ref", ref}, {"reason", "spam"}});
        ASSERT_EQ(r["ok"], true) << r.dump();
        EXPECT_FALSE(r.contains("note"));
    }
    EXPECT_TRUE(approved_now("198.51.100.66")) << "two complaints do not ban";
    EXPECT_NE(error(call({{"cmd", "complaint"}, {"addr", "198.51.100.66"}, {"ref", "FBL-2"}}))
                  .find("recorded already"),
              std::string::npos);
    EXPECT_NE(
        error(call({{"cmd", "complaint"}, {"addr", "198.51.100.66"}, {"ref", "has space"}})).find("--ref"),
        std::string::npos);
    const json third = call({{"cmd", "complaint"}, {"addr", "198.51.100.66"}, {"ref", "ABUSE-3"}});
    ASSERT_EQ(third["ok"], true);
    EXPECT_EQ(third["record"]["state"], "banned");
    EXPECT_EQ(third["record"]["reason"], "3 abuse complaints within 30 days: ABUSE-1, FBL-2, ABUSE-3");
    EXPECT_EQ(third["complaints_in_window"], 3);
    EXPECT_FALSE(approved_now("198.51.100.66"));
    EXPECT_TRUE(approved_now("198.51.100.67")) << "its neighbours keep their approval";
    const json show = call({{"cmd", "show"}, {"addr", "198.51.100.66"}});
    EXPECT_EQ(show["record"]["complaints"].size(), 3u);
    EXPECT_EQ(show["record"]["complaints"][0]["operator"], "alice");
    EXPECT_NE(error(call({{"cmd", "approve"}, {"addr", "198.51.100.66"}})).find("banned"), std::string::npos);
}

TEST_F(Lifecycle, ComplaintsOlderThanTheWindowDoNotCount) {
    const std::string old1 = format_time(now_s() - 40 * kDay), old2 = format_time(now_s() - 31 * kDay);
    ASSERT_EQ(call({{"cmd", "import_begin"}})["ok"], true);
    ASSERT_EQ(call({{"cmd", "import_chunk"},
                    {"first_line", 1},
                    {"lines",
                     {"198.51.100.30 complaint=OLD-1," + old1 + ",spam complaint=OLD-2," + old2 +
                      ",\"spam, again\""}}})["ok"],
              true);
    ASSERT_EQ(call({{"cmd", "import_commit"}})["ok"], true);
    ASSERT_TRUE(approved_now("198.51.100.30"));
    const json r = call({{"cmd", "complaint"}, {"addr", "198.51.100.30"}, {"ref", "NEW-1"}});
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["complaints_in_window"], 1);
    EXPECT_EQ(r["record"]["state"], "approved");
    EXPECT_EQ(r["record"]["complaints"].size(), 3u);
    EXPECT_EQ(r["record"]["complaints"][1]["reason"], "spam, again");
}

TEST(LifecycleRecord, NewFieldsRoundTripAndOldRecordsLoad) {
    Approval a;
    a.prefix = *parse_prefix("198.51.100.10/32");
    a.state = ApprovalState::Denied;
    a.hostname = "mail.customer.example";
    a.facts = {
        {"service_id", "SRV 1001"}, {"volume_monthly", "15000"}, {"use_case", "invoices \"and\" more"}};
    a.requested = 1'796'000'000;
    a.retry_after = 1'801'184'000;
    a.complaints = {Complaint{"FBL-9", 1'796'100'000, "spam, twice", "bob"}};
    a.reason = "no rDNS";
    std::string why;
    const auto back = parse_line(to_line(a), &why);
    ASSERT_TRUE(back) << why << ": " << to_line(a);
    Approval expect = a;
    expect.complaints[0].operator_name.clear();  // the line keeps who by the audit log, not the record
    EXPECT_EQ(*back, expect) << to_line(a);
    EXPECT_EQ(approval_from_json(to_json(a)), a);
    // A record as 0.1 stored it.
    const Approval old = approval_from_json(json::parse(
        R"({"prefix":"198.51.100.9/32","state":"approved","hostname":"","domains":[],"ticket":"T"})"));
    EXPECT_EQ(old.state, ApprovalState::Approved);
    EXPECT_TRUE(old.facts.empty() && old.complaints.empty() && old.requested == 0);
    EXPECT_THROW(approval_from_json(json::parse(R"({"prefix":"198.51.100.9/32","facts":{"x":"y"}})")),
                 std::runtime_error);
    EXPECT_FALSE(parse_line("198.51.100.9 complaint=nocomma", &why));
    EXPECT_FALSE(parse_line("198.51.100.9 req.volume_daily=many", &why));
    EXPECT_EQ(why, "volume_daily: 'many' is not a whole number of messages");
    // A date before 1970 (which the store could not keep) is refused, found by the import_line fuzz target.
    EXPECT_FALSE(parse_line("198.51.100.9 requested=1013-12-01T10:00:00Z", &why));
    EXPECT_FALSE(parse_line("198.51.100.9 complaint=A-1,1013-12-01T10:00:00Z,x", &why));
    EXPECT_EQ(*parse_state("pending"), ApprovalState::Pending);
}

}  // namespace
