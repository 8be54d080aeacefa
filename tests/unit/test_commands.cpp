// Control protocol tests: malformed requests get one-line errors; each command changes the store, the audit
// log and the published snapshot as an operator expects.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <rte_ring_elem.h>

#include "control/commands/control_plane.hpp"
#include "dataplane/events.hpp"
#include "tests/support/command_fixture.hpp"

using namespace portcullis;
using nlohmann::json;

namespace {

using Commands = portcullis::testing::CommandFixture;

TEST_F(Commands, MalformedRequestsGetOneLineErrors) {
    EXPECT_NE(error(raw("{not json")).find("malformed JSON"), std::string::npos);
    EXPECT_EQ(error(raw("[1,2]")), "a request must be a JSON object");
    EXPECT_EQ(error(raw(R"({"cmd":"status"})")), "missing protocol version 'v'");
    EXPECT_NE(error(raw(R"({"v":2,"cmd":"status"})")).find("unsupported protocol version 2"),
              std::string::npos);
    EXPECT_EQ(error(raw(R"({"v":1})")), "missing 'cmd'");
    EXPECT_EQ(error(raw(R"({"v":1,"cmd":7})")), "'cmd' must be a string");
    EXPECT_EQ(error(raw(R"({"v":1,"cmd":"frobnicate"})")), "unknown command 'frobnicate'");
    EXPECT_EQ(error(call({{"v", 1}, {"cmd", "approve"}})), "missing 'addr'");
    EXPECT_EQ(error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7/33"}})),
              "'198.51.100.7/33': prefix length over 32");
    EXPECT_EQ(error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}, {"daily", "lots"}})),
              "'daily' must be an integer");
    EXPECT_NE(error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}, {"hostname", "localhost"}}))
                  .find("not a fully qualified domain name"),
              std::string::npos);
    EXPECT_NE(
        error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}, {"expires", 5}})).find("past"),
        std::string::npos);
    EXPECT_TRUE(store->records().empty());
}

TEST_F(Commands, ApproveSuspendResumeRevokeBan) {
    EXPECT_FALSE(approved_now("198.51.100.7"));
    auto r = call({{"v", 1},
                   {"cmd", "approve"},
                   {"addr", "198.51.100.7"},
                   {"hostname", "mail.example.com"},
                   {"domains", {"example.com"}},
                   {"max_concurrent", 3},
                   {"ticket", "T-9"}});
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["record"]["operator"], "alice");
    EXPECT_TRUE(approved_now("198.51.100.7"));

    EXPECT_EQ(error(call({{"v", 1}, {"cmd", "resume"}, {"addr", "198.51.100.7"}})),
              "198.51.100.7 is approved, not suspended");
    ASSERT_EQ(call({{"v", 1}, {"cmd", "suspend"}, {"addr", "198.51.100.7"}})["ok"], true);
    EXPECT_FALSE(approved_now("198.51.100.7"));
    ASSERT_EQ(call({{"v", 1}, {"cmd", "resume"}, {"addr", "198.51.100.7"}})["ok"], true);
    EXPECT_TRUE(approved_now("198.51.100.7"));

    ASSERT_EQ(call({{"v", 1},
                    {"cmd", "revoke"},
                    {"addr", "198.51.100.7"},
                    {"ban", true},
                    {"reason", "abuse"}})["ok"],
              true);
    EXPECT_FALSE(approved_now("198.51.100.7"));
    const auto why = error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}}));
    EXPECT_NE(why.find("is banned since"), std::string::npos) << why;
    EXPECT_NE(why.find("abuse"), std::string::npos) << why;
    EXPECT_NE(why.find("cannot be approved again"), std::string::npos) << why;
    EXPECT_EQ(error(call({{"v", 1}, {"cmd", "revoke"}, {"addr", "198.51.100.7"}})),
              "198.51.100.7 is already banned");
    // The record keeps its ticket and hostname through every change.
    EXPECT_EQ(store->find(*parse_prefix("198.51.100.7"))->hostname, "mail.example.com");
}

TEST_F(Commands, RevokeCarvesAnAddressOutOfAConfiguredPrefix) {
    EXPECT_TRUE(approved_now("198.51.100.70"));
    ASSERT_EQ(call({{"v", 1}, {"cmd", "revoke"}, {"addr", "198.51.100.70"}})["ok"], true);
    EXPECT_FALSE(approved_now("198.51.100.70"));
    EXPECT_TRUE(approved_now("198.51.100.71"));
    const auto show = call({{"v", 1}, {"cmd", "show"}, {"addr", "198.51.100.71"}});
    EXPECT_EQ(show["record"]["source"], "configuration");
    EXPECT_EQ(show["verdict"], "may send on blocked ports");
    EXPECT_NE(
        error(call({{"v", 1}, {"cmd", "suspend"}, {"addr", "198.51.100.71"}})).find("has no approval record"),
        std::string::npos);
}

TEST_F(Commands, BannedPrefixRefusesApprovalsInsideIt) {
    ASSERT_EQ(call({{"v", 1}, {"cmd", "revoke"}, {"addr", "2001:db8:100:bad::/64"}, {"ban", true}})["ok"],
              true);
    const auto why = error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "2001:db8:100:bad::25"}}));
    EXPECT_NE(why.find("is inside 2001:db8:100:bad::/64"), std::string::npos) << why;
}

TEST_F(Commands, ImportIsAllOrNothingAndNamesTheBadLine) {
    ASSERT_EQ(call({{"v", 1}, {"cmd", "import_begin"}})["ok"], true);
    auto r = call({{"v", 1},
                   {"cmd", "import_chunk"},
                   {"first_line", 1},
                   {"lines", {"# header", "198.51.100.1 hostname=a.example.com", "198.51.100.2 daily=x"}}});
    EXPECT_EQ(error(r), "line 3: daily: 'x' is not a whole number (nothing imported)");
    EXPECT_NE(error(call({{"v", 1}, {"cmd", "import_commit"}})).find("no import in progress"),
              std::string::npos);
    EXPECT_TRUE(store->records().empty());

    ASSERT_EQ(call({{"v", 1}, {"cmd", "import_begin"}})["ok"], true);
    ASSERT_EQ(
        call({{"v", 1},
              {"cmd", "import_chunk"},
              {"first_line", 1},
              {"lines", {"198.51.100.1 hostname=a.example.com", "2001:db8:100::1 state=suspended"}}})["ok"],
        true);
    r = call({{"v", 1}, {"cmd", "import_commit"}});
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["applied"], 2);
    EXPECT_TRUE(approved_now("198.51.100.1"));
    EXPECT_FALSE(approved_now("2001:db8:100::1"));
}

TEST_F(Commands, EveryChangeIsAudited) {
    call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.9"}});
    call({{"v", 1}, {"cmd", "revoke"}, {"addr", "198.51.100.9"}, {"ban", true}});
    call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.9"}});  // refused
    std::ifstream in(std::filesystem::path(dir) / "audit.log");
    std::vector<json> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(json::parse(l));
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0]["user"], "alice");
    EXPECT_TRUE(lines[0]["before"].is_null());
    EXPECT_EQ(lines[1]["before"]["state"], "approved");
    EXPECT_EQ(lines[1]["after"]["state"], "banned");
    EXPECT_NE(lines[2]["result"].get<std::string>().find("refused"), std::string::npos);
}

TEST_F(Commands, MonitorModeIsLiveAndStored) {
    EXPECT_EQ(call({{"v", 1}, {"cmd", "monitor"}})["monitor"], false);
    ASSERT_EQ(call({{"v", 1}, {"cmd", "monitor"}, {"enable", true}})["ok"], true);
    EXPECT_TRUE(publisher->current().load()->monitor);
    EXPECT_EQ(error(call({{"v", 1}, {"cmd", "monitor"}, {"enable", "yes"}})),
              "'enable' must be true or false");
    ApprovalStore again(dir);
    std::vector<std::string> w;
    ASSERT_EQ(again.open(w), "");
    EXPECT_EQ(again.settings()["monitor"], true);
}

TEST(SourceStatsTest, CountsPerSourceAndTheLastMinute) {
    auto event = [](const char* addr, uint8_t syn) {
        RefusalEvent e{};
        const IpAddr a = *parse_addr(addr);
        e.v6 = a.v6;
        e.v4src = a.v4;
        e.v6src = a.v6addr;
        e.dport = 25;
        e.syn = syn;
        return e;
    };
    SourceStats stats;
    for (const auto& e : {event("198.51.100.20", 1), event("198.51.100.20", 0), event("2001:db8:100::20", 1)})
        stats.record(e, 1000);
    EXPECT_EQ(stats.of(*parse_addr("198.51.100.20"))["refused"], 2);
    EXPECT_EQ(stats.of(*parse_addr("198.51.100.20"))["attempts"], 1);
    EXPECT_EQ(stats.of(*parse_addr("198.51.100.20"))["last"], 1000);
    EXPECT_EQ(stats.of(*parse_addr("2001:db8:100::20"))["attempts"], 1);
    EXPECT_EQ(stats.of(*parse_addr("198.51.100.21"))["refused"], 0);
    EXPECT_EQ(stats.top(1)[0]["addr"], "198.51.100.20");
    // The last minute counts attempts (not later segments): three more from the v6 source a little later.
    for (int i = 0; i < 3; ++i) stats.record(event("2001:db8:100::20", 1), 1030);
    auto recent = stats.top_recent(10, 1030);
    ASSERT_EQ(recent.size(), 2u);
    EXPECT_EQ(recent[0]["addr"], "2001:db8:100::20");
    EXPECT_EQ(recent[0]["refusals"], 4);
    EXPECT_EQ(recent[1]["refusals"], 1);
    // A minute on, the first second has left the window.
    recent = stats.top_recent(10, 1065);
    ASSERT_EQ(recent.size(), 1u);
    EXPECT_EQ(recent[0]["refusals"], 3);
    EXPECT_TRUE(stats.top_recent(10, 2000).empty());
}

TEST_F(Commands, ManagedPrefixesChangeLive) {
    EXPECT_FALSE(publisher->current().load()->managed(*parse_addr("203.0.113.9")));
    ASSERT_EQ(call({{"v", 1}, {"cmd", "managed"}, {"action", "add"}, {"prefix", "203.0.113.0/24"}})["ok"],
              true);
    EXPECT_TRUE(publisher->current().load()->managed(*parse_addr("203.0.113.9")));
    EXPECT_EQ(error(call({{"v", 1}, {"cmd", "managed"}, {"action", "frob"}})),
              "action: 'frob' is not one of add, del, list");
}

}  // namespace
