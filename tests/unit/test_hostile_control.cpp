// The control plane under hostile input and full disks: request lines that are not UTF-8, numbers out of
// range and deep nesting get one-line errors (and replies that always serialise); client slots cannot be
// exhausted by idle or flooding clients; a full disk never leaves an acknowledged change missing, a refused
// one present, or a store that cannot be opened; export lines always import back to the same records.
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "api/wire.hpp"
#include "control/commands/control_plane.hpp"
#include "control/socket/server.hpp"
#include "control/store/store.hpp"
#include "tests/support/control_plane.hpp"

using namespace portcullis;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/portcullis-hostile-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() {
        ::umount2(path.c_str(), MNT_DETACH);
        fs::remove_all(path);
    }
    // A small tmpfs over the directory: a disk that fills. False when this process may not mount.
    bool small_disk(size_t kib) {
        return geteuid() == 0 &&
               ::mount("tmpfs", path.c_str(), "tmpfs", 0, ("size=" + std::to_string(kib) + "k").c_str()) == 0;
    }
};

// Fills what is left of a file system with one file; returns its path (remove it to free the space).
fs::path fill(const fs::path& dir) {
    const auto f = dir / "filler";
    std::ofstream out(f, std::ios::binary);
    std::string block(4096, 'x');
    while (out.write(block.data(), static_cast<std::streamsize>(block.size()))) out.flush();
    return f;
}

Approval rec(uint32_t i, size_t reason_bytes = 16) {
    Approval a;
    a.prefix = Prefix{IpAddr::from_v4(0xC6336400u + i), 32};  // 198.51.100.0 + i
    a.hostname = "mail.example.com";
    a.reason = std::string(reason_bytes, 'r');
    return a;
}

class Hostile : public ::testing::Test, protected portcullis::testing::TestPlane {
  protected:
    void SetUp() override {
        cfg.managed_prefixes = {*parse_prefix("198.51.100.0/24"), *parse_prefix("2001:db8:100::/48")};
        cfg.blocked_ports = {25};
        reopen(dir.path, dir.path / "audit.log");
        peer.user = "mallory";
        peer.uid = 1000;
    }
    void reopen(const fs::path& state, const fs::path& audit_path) {
        ASSERT_EQ(open_plane(state, audit_path), "");
    }
    void TearDown() override { close_plane(); }
    json call(const json& req) { return plane->handle(req.dump(), peer, session); }
    std::string error(const json& reply) {
        EXPECT_EQ(reply["ok"], false) << reply_line(reply);
        return reply.value("error", "");
    }

    TempDir dir;
    Peer peer;
    Session session;
};

TEST_F(Hostile, EveryRequestLineGetsAnErrorThatSerialises) {
    const std::string deep_array(200000, '['), deep_in_v = R"({"v":)" + std::string(100000, '[');
    std::string deep_obj;
    for (int i = 0; i < 50000; ++i) deep_obj += R"({"a":)";
    const std::vector<std::string> lines = {
        "\xff\xfe",
        "{\"v\":1,\"cmd\":\"\xff\"}",
        "{\"v\":1,\"cmd\":\"approve\",\"addr\":\"\xc3\x28\"}",
        "{\"v\":1,\"cmd\":\"st\xe2\x82",
        "{\"v\":1,\"cmd\":\"approve\",\"addr\":\"198.51.100.7\",\"reason\":\"\xed\xa0\x80\"}",
        R"({"v":1e999,"cmd":"status"})",
        R"({"v":18446744073709551616,"cmd":"status"})",
        R"({"v":-9223372036854775809,"cmd":"status"})",
        R"({"v":1,"cmd":"approve","addr":"198.51.100.7","expires":1e300})",
        R"({"v":1,"cmd":"approve","addr":"198.51.100.7","expires":9223372036854775807})",
        R"({"v":1,"cmd":"approve","addr":"198.51.100.7","max_concurrent":18446744073709551615})",
        R"({"v":1,"cmd":"approve","addr":"198.51.100.7","daily":-1})",
        R"({"v":1,"cmd":"import_chunk","first_line":18446744073709551615,"lines":[]})",
        R"({"v":1,"cmd":"limits","max_concurrent":1e10})",
        deep_array,
        deep_in_v,
        deep_obj,
        R"({"v":1,"cmd":"approve","addr":"198.51.100.7","domains":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]})",
        R"({"v":1,"cmd":"approve","addr":"198.51.100.7","domains":[")" + std::string(100000, 'd') + R"("]})",
        R"({"v":1,"cmd":")" + std::string(100000, 'c') + R"("})",
        R"({"v":1,"cmd":"approve","addr":")" + std::string(100000, '1') + R"("})",
        R"({"v":1,"cmd":"approve","addr":"198.51.100.7","ticket":")" + std::string(5000, 't') + R"("})",
        R"({"v":1,"cmd":"rules","action":{"x":1}})",
        R"({"v":1,"cmd":"managed","action":"add","prefix":null})",
        R"({"v":1,"cmd":"monitor","enable":"yes"})",
        "{\"v\":1,\"cmd\":\"approve\",\"addr\":\"198.51.100.7\",\"hostname\":\"a\\u0000.example.com\"}",
        "null",
        "",
        "\"just a string\"",
    };
    for (const auto& line : lines) {
        plane->begin_batch();
        Reply r;
        ASSERT_NO_THROW(r = plane->serve(line, peer, session)) << printable(line);
        plane->end_batch();
        const std::string out = reply_line(r.body);
        ASSERT_EQ(out.back(), '\n');
        ASSERT_EQ(out.find('\n'), out.size() - 1) << "one line";
        json back;
        ASSERT_NO_THROW(back = json::parse(out)) << out;
        EXPECT_EQ(back["ok"], false) << printable(line) << " -> " << out;
        EXPECT_LT(out.size(), 600u) << "errors quote at most a bounded excerpt: " << out.substr(0, 200);
        EXPECT_FALSE(r.changed);
    }
    EXPECT_TRUE(store->records().empty());
    // The daemon still answers.
    EXPECT_EQ(call({{"v", 1}, {"cmd", "status"}})["ok"], true);
}

TEST_F(Hostile, RepliesWithInvalidBytesStillSerialise) {
    const json reply = {{"v", 1}, {"ok", false}, {"error", std::string("bad \xff\xfe bytes")}};
    const auto out = reply_line(reply);
    json back;
    EXPECT_NO_THROW(back = json::parse(out));
    EXPECT_EQ(printable("a\nb\x1b[31m\xff", 80), "a?b?[31m?");
    EXPECT_EQ(printable(std::string(100, 'x'), 10), "xxxxxxxxxx...");
}

TEST_F(Hostile, WideApprovalsAndBansNeedForce) {
    auto err = error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "0.0.0.0/0"}}));
    EXPECT_NE(err.find("covers the whole managed prefix 198.51.100.0/24"), std::string::npos) << err;
    EXPECT_NE(err.find("--force"), std::string::npos) << err;
    err = error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.0.0/16"}}));
    EXPECT_NE(err.find("wider than /24"), std::string::npos) << err;
    err = error(call({{"v", 1}, {"cmd", "revoke"}, {"addr", "::/0"}, {"ban", true}}));
    EXPECT_NE(err.find("--force"), std::string::npos) << err;
    EXPECT_TRUE(store->records().empty());
    // A /24 that is exactly a managed prefix covers all of it: force too.
    EXPECT_NE(error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.0/24"}})).find("whole managed"),
              std::string::npos);
    auto r = call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.0/24"}, {"force", true}});
    EXPECT_EQ(r["ok"], true) << r.dump();
    EXPECT_FALSE(r.contains("note")) << r.dump();
    // Outside managed space: a note, and one that checks overlap, not the base address.
    r = call({{"v", 1}, {"cmd", "approve"}, {"addr", "203.0.113.9"}});
    EXPECT_NE(r.value("note", "").find("outside managed_prefixes"), std::string::npos) << r.dump();
    r = call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.0.0/16"}, {"force", true}});
    EXPECT_NE(r.value("note", "").find("only partly inside"), std::string::npos) << r.dump();
}

TEST_F(Hostile, LiftingThePolicyOrAWideRelayNeedsForce) {
    auto err = error(call({{"v", 1}, {"cmd", "managed"}, {"action", "del"}, {"prefix", "198.51.100.0/24"}}));
    EXPECT_NE(err.find("lifts the policy from all of it: that needs --force"), std::string::npos) << err;
    err = error(call({{"v", 1}, {"cmd", "relay"}, {"action", "add"}, {"prefix", "0.0.0.0/0"}}));
    EXPECT_NE(err.find("that needs --force"), std::string::npos) << err;
    EXPECT_EQ(call({{"v", 1}, {"cmd", "relay"}, {"action", "add"}, {"prefix", "203.0.113.53"}})["ok"], true);
    // Deleting what is not listed lifts nothing.
    EXPECT_EQ(call({{"v", 1}, {"cmd", "managed"}, {"action", "del"}, {"prefix", "192.0.2.0/24"}})["ok"],
              true);
    EXPECT_EQ(call({{"v", 1},
                    {"cmd", "managed"},
                    {"action", "del"},
                    {"prefix", "198.51.100.0/24"},
                    {"force", true}})["ok"],
              true);
}

TEST_F(Hostile, AnUnbanIsExplicitAuditedAndLeavesTheRecordRevoked) {
    ASSERT_EQ(call({{"v", 1}, {"cmd", "revoke"}, {"addr", "::/0"}, {"ban", true}, {"force", true}})["ok"],
              true);
    EXPECT_NE(error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "2001:db8:100::7"}})).find("banned"),
              std::string::npos);
    EXPECT_NE(error(call({{"v", 1}, {"cmd", "unban"}, {"addr", "::/0"}})).find("needs a reason"),
              std::string::npos);
    EXPECT_NE(error(call({{"v", 1}, {"cmd", "unban"}, {"addr", "2001:db8:100::7"}, {"reason", "x"}}))
                  .find("inside the ban of ::/0"),
              std::string::npos);
    auto r = call({{"v", 1}, {"cmd", "unban"}, {"addr", "::/0"}, {"reason", "banned the world by mistake"}});
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(r["record"]["state"], "revoked");
    EXPECT_EQ(call({{"v", 1}, {"cmd", "approve"}, {"addr", "2001:db8:100::7"}})["ok"], true);
    EXPECT_NE(
        error(call({{"v", 1}, {"cmd", "unban"}, {"addr", "::/0"}, {"reason", "again"}})).find("not banned"),
        std::string::npos);
    std::ifstream in(dir.path / "audit.log");
    std::string line, last_unban;
    while (std::getline(in, line))
        if (line.find("\"cmd\":\"unban\"") != std::string::npos &&
            line.find("\"result\":\"ok\"") != std::string::npos)
            last_unban = line;
    EXPECT_NE(last_unban.find("banned the world by mistake"), std::string::npos) << last_unban;
    EXPECT_NE(last_unban.find("mallory"), std::string::npos) << last_unban;
}

TEST_F(Hostile, FieldsAreBounded) {
    EXPECT_NE(error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}, {"expires", kMaxTime + 1}}))
                  .find("'expires' must be between"),
              std::string::npos);
    EXPECT_NE(
        error(
            call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}, {"ticket", std::string(129, 't')}}))
            .find("ticket: 129 bytes, at most 128"),
        std::string::npos);
    EXPECT_NE(
        error(
            call(
                {{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}, {"reason", std::string(1025, 'r')}}))
            .find("reason: 1025 bytes"),
        std::string::npos);
    json doms = json::array();
    for (int i = 0; i < 65; ++i) doms.push_back("d" + std::to_string(i) + ".example.com");
    EXPECT_NE(error(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}, {"domains", doms}}))
                  .find("more than 64"),
              std::string::npos);
    // The last second of year 9999 is accepted and prints as a date that reads back.
    auto r = call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}, {"expires", kMaxTime}});
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(format_time(kMaxTime), "9999-12-31T23:59:59Z");
    std::string why;
    auto back = parse_line(to_line(*store->find(*parse_prefix("198.51.100.7"))), &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back->expires, kMaxTime);
    // Import lines are held to the store's bounds: nothing that would stop the next start gets in.
    EXPECT_FALSE(parse_line("198.51.100.8 max_concurrent=4000000000", &why));
    EXPECT_NE(why.find("is over"), std::string::npos) << why;
    EXPECT_FALSE(parse_line("198.51.100.8 expires=2026-02-30", &why));
    EXPECT_FALSE(parse_line("198.51.100.8 expires=1969-12-31", &why));
    EXPECT_NE(why.find("after 1970"), std::string::npos) << why;
    // 4294967295/h rounds up to 71582789 a minute; it used to wrap to 0 (unlimited).
    EXPECT_EQ(parse_rate("4294967295/h"), 71582789u);
}

TEST_F(Hostile, ImportsAreCappedInBytesAndInNumber) {
    Session a, b, c;
    ASSERT_EQ(plane->handle(R"({"v":1,"cmd":"import_begin"})", peer, a)["ok"], true);
    ASSERT_EQ(plane->handle(R"({"v":1,"cmd":"import_begin"})", peer, b)["ok"], true);
    const auto err = error(plane->handle(R"({"v":1,"cmd":"import_begin"})", peer, c));
    EXPECT_NE(err.find("import(s) in progress"), std::string::npos) << err;
    b = Session{};  // a client that goes away gives its slot back
    ASSERT_EQ(plane->handle(R"({"v":1,"cmd":"import_begin"})", peer, c)["ok"], true);
    // Bytes: 64 MiB of lines in 1 MiB requests ends the import, and frees its memory.
    const std::string comment = "#" + std::string(1000, 'x');
    json chunk = {{"v", 1}, {"cmd", "import_chunk"}, {"lines", json::array()}};
    for (int i = 0; i < 1000; ++i) chunk["lines"].push_back(comment);
    const std::string line = chunk.dump();
    json last;
    for (int i = 0; i < 70 && (last = plane->handle(line, peer, a))["ok"] == true; ++i) {
    }
    EXPECT_NE(last.value("error", "").find("import larger than 64 MiB"), std::string::npos) << last.dump();
    EXPECT_FALSE(a.importing);
    EXPECT_TRUE(a.pending.empty());
}

TEST_F(Hostile, ImportOfWideRecordsNeedsForce) {
    Session s;
    ASSERT_EQ(plane->handle(R"({"v":1,"cmd":"import_begin"})", peer, s)["ok"], true);
    ASSERT_EQ(
        call(
            {{"v", 1}, {"cmd", "import_chunk"}, {"lines", {"198.51.100.9", "0.0.0.0/0 state=banned"}}})["ok"],
        false);  // no import on this test's own session
    ASSERT_EQ(
        plane->handle(
            json{{"v", 1}, {"cmd", "import_chunk"}, {"lines", {"198.51.100.9", "0.0.0.0/0 state=banned"}}}
                .dump(),
            peer, s)["ok"],
        true);
    const auto err = error(plane->handle(R"({"v":1,"cmd":"import_commit"})", peer, s));
    EXPECT_NE(err.find("line 2: 0.0.0.0/0 is wider than /24"), std::string::npos) << err;
    EXPECT_TRUE(store->records().empty());
}

// A ticket or reason with a newline, quotes, backslashes or any other byte exports as one line that imports
// back to the same record; so does every record the validators accept.
TEST(ExportImport, RandomRecordsRoundTrip) {
    std::mt19937_64 rng(20261125);
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    const std::string alphabet = std::string("abc XYZ=#,\"\\'\t\n\r\x01\x7f/;:") + "\xc3\xa9\xe2\x82\xac";
    auto text = [&](size_t max) {
        std::string s;
        for (size_t i = 0, n = pick(max + 1); i < n; ++i) s += alphabet[pick(alphabet.size())];
        return s.substr(0, max);
    };
    for (int i = 0; i < 20000; ++i) {
        Approval a;
        const bool v6 = pick(2);
        const uint8_t len = static_cast<uint8_t>(pick(v6 ? 129 : 33));
        a.prefix = Prefix{v6 ? IpAddr::from_v6((u128{rng()} << 64) | rng())
                             : IpAddr::from_v4(static_cast<uint32_t>(rng())),
                          static_cast<uint8_t>(v6 ? 128 : 32)}
                       .widened(len);
        a.state = static_cast<ApprovalState>(pick(4));
        if (pick(2)) a.hostname = "mail" + std::to_string(pick(100)) + ".example.com";
        for (size_t d = 0, n = pick(4); d < n; ++d)
            a.domains.push_back("d" + std::to_string(pick(9)) + ".example.org");
        a.max_concurrent = static_cast<uint32_t>(pick(kMaxConcurrent + 1));
        a.rate_per_min = static_cast<uint32_t>(pick(kMaxRatePerMin + 1));
        a.daily = static_cast<uint32_t>(pick(kMaxDaily + 1));
        a.expires = pick(3) ? 0 : static_cast<int64_t>(pick(static_cast<size_t>(kMaxTime)) + 1);
        a.ticket = text(kMaxTicket);
        a.reason = text(kMaxReason);
        const std::string line = to_line(a);
        ASSERT_EQ(line.find('\n'), std::string::npos) << line;
        std::string why;
        auto back = parse_line(line, &why);
        ASSERT_TRUE(back) << line << ": " << why;
        EXPECT_EQ(*back, a) << line;
        if (HasFailure()) break;
    }
}

// ---- the store on a disk that fills ----

TEST(StoreDiskFull, AcknowledgedChangesSurviveAndRefusedOnesAreAbsent) {
    TempDir d;
    if (!d.small_disk(128)) GTEST_SKIP() << "needs root to mount a tmpfs";
    const auto state = d.path / "state";
    std::map<Prefix, Approval, PrefixLess> acked;
    std::set<uint32_t> refused;
    {
        ApprovalStore s(state);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        for (uint32_t i = 0; i < 250 && refused.size() < 40; ++i) {
            const Approval a = rec(i, 300 + (i * 37) % 900);
            if (s.put(a).empty())
                acked[a.prefix] = a;
            else
                refused.insert(i);
        }
        ASSERT_FALSE(refused.empty()) << "the disk never filled";
        // A change to an acknowledged record that fails keeps the old one, in memory too.
        Approval change = acked.begin()->second;
        change.reason = std::string(4000, 'n');
        EXPECT_NE(s.put(change), "");
        EXPECT_EQ(*s.find(change.prefix), acked.begin()->second);
        // In a batch, a change is kept only when it and the batch's commit were both written.
        s.begin_batch();
        std::vector<bool> put_ok;
        for (uint32_t i = 300; i < 305; ++i) put_ok.push_back(s.put(rec(i, 100)).empty());
        const bool committed = s.end_batch().empty();
        for (uint32_t i = 300; i < 305; ++i) {
            const bool kept = committed && put_ok[i - 300];
            EXPECT_EQ(s.find(rec(i).prefix) != nullptr, kept) << i;
            if (kept)
                acked[rec(i).prefix] = rec(i, 100);
            else
                refused.insert(i);
        }
    }
    ApprovalStore s(state);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "") << "the store opens after the disk filled";
    EXPECT_EQ(s.records().size(), acked.size());
    for (const auto& [p, a] : acked) {
        ASSERT_NE(s.find(p), nullptr) << to_string(p);
        EXPECT_EQ(*s.find(p), a);
    }
    for (uint32_t i : refused) EXPECT_EQ(s.find(rec(i).prefix), nullptr) << i;
}

TEST(StoreDiskFull, AFullDiskAtOpenDoesNotStopTheStart) {
    TempDir d;
    if (!d.small_disk(64)) GTEST_SKIP() << "needs root to mount a tmpfs";
    const auto state = d.path / "state";
    {
        ApprovalStore s(state);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        ASSERT_EQ(s.put(rec(1)), "");
    }
    const auto filler = fill(d.path);
    {
        ApprovalStore s(state);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        EXPECT_EQ(s.records().size(), 1u);
        EXPECT_NE(s.put(rec(2, 8000)), "");
    }
    fs::remove(filler);
    ApprovalStore s(state);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    EXPECT_EQ(s.records().size(), 1u);
    EXPECT_EQ(s.put(rec(2)), "");
}

TEST_F(Hostile, AChangeWhoseAuditLineCannotBeWrittenIsNotMade) {
    TempDir audit_disk;
    if (!audit_disk.small_disk(64)) GTEST_SKIP() << "needs root to mount a tmpfs";
    reopen(dir.path / "state", audit_disk.path / "audit.log");
    ASSERT_EQ(call({{"v", 1}, {"cmd", "approve"}, {"addr", "198.51.100.7"}})["ok"], true);
    const auto filler = fill(audit_disk.path);
    // The audit log's last page may still hold a line or two: approve until its disk refuses one.
    std::string err, refused;
    std::vector<std::string> acked = {"198.51.100.7"};
    for (int i = 8; i < 100 && err.empty(); ++i) {
        const std::string addr = "198.51.100." + std::to_string(i);
        const auto r =
            call({{"v", 1}, {"cmd", "approve"}, {"addr", addr}, {"reason", std::string(500, 'r')}});
        if (r["ok"] == true) {
            acked.push_back(addr);
        } else {
            err = r.value("error", "");
            refused = addr;
        }
    }
    EXPECT_NE(err.find("not saved: audit log"), std::string::npos) << err;
    EXPECT_EQ(store->find(*parse_prefix(refused)), nullptr);
    EXPECT_FALSE(publisher->current().load()->approved(*parse_addr(refused)));
    fs::remove(filler);
    reopen(dir.path / "state", audit_disk.path / "audit.log");  // as after a restart
    for (const auto& a : acked) EXPECT_NE(store->find(*parse_prefix(a)), nullptr) << a;
    EXPECT_EQ(store->find(*parse_prefix(refused)), nullptr);
}

// ---- the journal's commit groups ----

TEST(StoreCommits, AnUncommittedTailIsDroppedAndDamageBeforeACommitStopsTheStart) {
    TempDir d;
    {
        ApprovalStore s(d.path);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        ASSERT_EQ(s.put(rec(1)), "");
    }
    const auto journal = d.path / "journal.jsonl";
    const auto committed = fs::file_size(journal);
    // Complete entries whose commit line never made it: written, never acknowledged.
    std::ofstream(journal, std::ios::app)
        << json{{"seq", 2}, {"op", "put"}, {"record", to_json(rec(2))}}.dump() << "\n"
        << json{{"seq", 3}, {"op", "put"}, {"record", to_json(rec(3))}}.dump() << "\n{\"seq\":4,\"op\":\"pu";
    {
        ApprovalStore s(d.path);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        ASSERT_EQ(w.size(), 1u);
        EXPECT_NE(w[0].find("2 uncommitted change(s) (never acknowledged)"), std::string::npos) << w[0];
        EXPECT_EQ(s.records().size(), 1u);
        EXPECT_EQ(fs::file_size(journal), committed);
    }
    // Garbage followed by a commit line is not a torn tail: it is damage, and it is named.
    std::ofstream(journal, std::ios::app) << "garbage\n"
                                          << R"({"op":"commit","seq":1})"
                                          << "\n";
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    const auto err = s.open(w);
    EXPECT_NE(err.find("journal.jsonl:4"), std::string::npos) << err;
    EXPECT_NE(err.find("damaged"), std::string::npos) << err;
}

TEST(StoreCommits, StaleTemporariesAreRemovedAndOldJournalsConverted) {
    TempDir d;
    std::ofstream(d.path / "approvals.json.tmp") << std::string(100000, 'x');
    // A 0.1 journal: no header, no commit lines.
    std::ofstream(d.path / "journal.jsonl")
        << json{{"seq", 1}, {"op", "put"}, {"record", to_json(rec(1))}}.dump() << "\n";
    {
        ApprovalStore s(d.path);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        EXPECT_FALSE(fs::exists(d.path / "approvals.json.tmp"));
        EXPECT_EQ(s.records().size(), 1u);
        ASSERT_EQ(w.size(), 2u);
        EXPECT_NE(w[0].find("stale"), std::string::npos);
        EXPECT_NE(w[1].find("converted"), std::string::npos);
        ASSERT_EQ(s.put(rec(2)), "");
    }
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    EXPECT_TRUE(w.empty());
    EXPECT_EQ(s.records().size(), 2u);
}

TEST(StoreCommits, AbortedBatchLeavesNothing) {
    TempDir d;
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    ASSERT_EQ(s.put(rec(1)), "");
    const auto size = fs::file_size(d.path / "journal.jsonl");
    s.begin_batch();
    ASSERT_EQ(s.put(rec(2)), "");
    ASSERT_EQ(s.set_setting("monitor", true), "");
    ASSERT_EQ(s.change_overlay("managed", true, *parse_prefix("203.0.113.0/24"), {}), "");
    Approval changed = rec(1);
    changed.state = ApprovalState::Banned;
    ASSERT_EQ(s.put(changed), "");
    s.abort_batch();
    EXPECT_EQ(s.records().size(), 1u);
    EXPECT_EQ(s.find(rec(1).prefix)->state, ApprovalState::Approved);
    EXPECT_FALSE(s.settings().contains("monitor"));
    EXPECT_TRUE(s.managed().added.empty());
    EXPECT_EQ(fs::file_size(d.path / "journal.jsonl"), size);
}

// ---- the socket's client slots ----

// A client connection to the control socket at `path`.
int connect_unix(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    return fd;
}

class Slots : public ::testing::Test {
  protected:
    void SetUp() override {
        path = (dir.path / "ctl.sock").string();
        ::chmod(dir.path.c_str(), 0711);  // another user (the nobody of a test below) may reach the socket
        ControlServer::Limits l;
        l.max_clients = 8;
        l.reserved_for_root = 2;
        l.max_per_uid = 3;
        l.idle_timeout = std::chrono::milliseconds(400);
        l.evict_idle = std::chrono::milliseconds(200);
        ControlSocket socket(path, "nogroup");
        ASSERT_EQ(socket.listen(), "");
        server = std::make_unique<ControlServer>(
            std::move(socket),
            [](const std::string& line, const Peer& p, Session&) {
                return Reply{{{"v", 1}, {"ok", true}, {"uid", p.uid}, {"echo", line.size()}}, false, nullptr};
            },
            ControlServer::Batch{[] {}, [] { return std::string(); }}, l);
    }
    int connect_one() { return connect_unix(path); }
    void serve_for(std::chrono::milliseconds t) {
        const auto end = std::chrono::steady_clock::now() + t;
        while (std::chrono::steady_clock::now() < end) server->poll_once(5);
    }
    // What the server said on fd within `t` (serving meanwhile); "" if nothing.
    std::string said(int fd, std::chrono::milliseconds t = std::chrono::milliseconds(300)) {
        std::string got;
        const auto end = std::chrono::steady_clock::now() + t;
        while (std::chrono::steady_clock::now() < end && got.find('\n') == std::string::npos) {
            server->poll_once(5);
            char buf[4096];
            const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n > 0) got.append(buf, static_cast<size_t>(n));
            if (n == 0) break;
        }
        return got;
    }
    TempDir dir;
    std::string path;
    std::unique_ptr<ControlServer> server;
};

TEST_F(Slots, IdleClientsCannotLockTheOperatorOut) {
    std::vector<int> fds;
    for (int i = 0; i < 8; ++i) fds.push_back(connect_one());
    serve_for(std::chrono::milliseconds(50));
    EXPECT_EQ(server->clients(), 8u);
    // Full, and nobody idle long enough: as root, the newcomer still gets in (the longest idle is dropped).
    const int op = connect_one();
    ASSERT_EQ(::send(op, "{}\n", 3, MSG_NOSIGNAL), 3);
    EXPECT_NE(said(op).find("\"ok\":true"), std::string::npos);
    EXPECT_NE(said(fds[0]).find("to make room"), std::string::npos);
    for (int fd : fds) ::close(fd);
    ::close(op);
}

TEST_F(Slots, EmptyLinesDoNotKeepASlot) {
    const int fd = connect_one();
    std::string got;
    for (int i = 0; i < 20 && got.empty(); ++i) {
        ::send(fd, "\n", 1, MSG_NOSIGNAL);
        got = said(fd, std::chrono::milliseconds(50));
    }
    EXPECT_NE(got.find("no complete request in time"), std::string::npos) << got;
    serve_for(std::chrono::milliseconds(20));
    EXPECT_EQ(server->clients(), 0u);
    ::close(fd);
}

TEST_F(Slots, OneUserCannotTakeEverySlot) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
    int pipefd[2];
    ASSERT_EQ(::pipe(pipefd), 0);
    const pid_t child = ::fork();
    if (child == 0) {  // as nobody: six connections, each asks once
        if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
            ::setresuid(65534, 65534, 65534) != 0)
            _exit(2);
        std::vector<int> fds;
        for (int i = 0; i < 6; ++i) fds.push_back(connect_one());
        int answered = 0, refused = 0;
        for (int fd : fds) {
            ::send(fd, "{}\n", 3, MSG_NOSIGNAL);
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 2000) <= 0) continue;
            char buf[512];
            const ssize_t n = ::recv(fd, buf, sizeof buf - 1, 0);
            if (n <= 0) continue;
            buf[n] = 0;
            if (std::strstr(buf, "too many control clients"))
                ++refused;
            else if (std::strstr(buf, "\"ok\":true"))
                ++answered;
        }
        const char out[2] = {static_cast<char>(answered), static_cast<char>(refused)};
        [[maybe_unused]] auto w = ::write(pipefd[1], out, 2);
        _exit(0);
    }
    int status = 0;
    while (::waitpid(child, &status, WNOHANG) == 0) server->poll_once(5);
    char res[2] = {0, 0};
    ASSERT_EQ(::read(pipefd[0], res, 2), 2);
    EXPECT_EQ(res[0], 3) << "answered";
    EXPECT_EQ(res[1], 3) << "refused past max_per_uid";
    ::close(pipefd[0]);
    ::close(pipefd[1]);
}

}  // namespace

namespace {

// A reply worked out later (a rules compile) keeps the client's replies in order and does not hold up others.
TEST(SlowReplies, ComeInOrderAndBlockNobodyElse) {
    TempDir dir;
    const std::string path = (dir.path / "ctl.sock").string();
    int polls_left = 20;
    ControlSocket socket(path, "");
    ASSERT_EQ(socket.listen(), "");
    ControlServer server(
        std::move(socket),
        [&](const std::string& line, const Peer&, Session&) {
            Reply r{{{"v", 1}, {"ok", true}, {"line", line}}, false, nullptr};
            if (line == "slow")
                r.later = [&]() -> std::optional<json> {
                    if (--polls_left > 0) return std::nullopt;
                    return json{{"v", 1}, {"ok", true}, {"line", "slow, done"}};
                };
            return r;
        },
        ControlServer::Batch{[] {}, [] { return std::string(); }});
    auto connect_one = [&] { return connect_unix(path); };
    auto read_lines = [&](int fd, size_t n) {
        std::string got;
        for (int i = 0; i < 400 && static_cast<size_t>(std::count(got.begin(), got.end(), '\n')) < n; ++i) {
            server.poll_once(5);
            char buf[4096];
            const ssize_t k = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (k > 0) got.append(buf, static_cast<size_t>(k));
        }
        return got;
    };
    const int a = connect_one(), b = connect_one();
    ASSERT_EQ(::send(a, "slow\nfast\n", 10, MSG_NOSIGNAL), 10);
    server.poll_once(5);
    ASSERT_EQ(::send(b, "other\n", 6, MSG_NOSIGNAL), 6);
    const auto got_b = read_lines(b, 1);
    EXPECT_NE(got_b.find("\"other\""), std::string::npos);
    EXPECT_GT(polls_left, 0) << "b was answered while a's reply was still being worked out";
    const auto got_a = read_lines(a, 2);
    const auto slow = got_a.find("slow, done"), fast = got_a.find("\"fast\"");
    ASSERT_NE(slow, std::string::npos) << got_a;
    ASSERT_NE(fast, std::string::npos) << got_a;
    EXPECT_LT(slow, fast);
    ::close(a);
    ::close(b);
}

}  // namespace

namespace {

// A client that hangs up while its reply is worked out must not make the loop spin on its POLLHUP; the work
// still finishes (a reload's rules still come into force).
TEST(SlowReplies, AHangUpDuringTheWorkNeitherSpinsNorLosesIt) {
    TempDir dir;
    const std::string path = (dir.path / "ctl.sock").string();
    bool ready = false, finished = false;
    ControlSocket socket(path, "");
    ASSERT_EQ(socket.listen(), "");
    ControlServer server(
        std::move(socket),
        [&](const std::string&, const Peer&, Session&) {
            Reply r{{{"v", 1}, {"ok", true}}, false, nullptr};
            r.later = [&]() -> std::optional<json> {
                if (!ready) return std::nullopt;
                finished = true;
                return json{{"v", 1}, {"ok", true}};
            };
            return r;
        },
        ControlServer::Batch{[] {}, [] { return std::string(); }});
    const int fd = connect_unix(path);
    ASSERT_EQ(::send(fd, "slow\n", 5, MSG_NOSIGNAL), 5);
    server.poll_once(5);
    ::close(fd);
    server.poll_once(5);  // sees the hang-up
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 5; ++i) server.poll_once(20);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(90)) << "poll() spun";
    EXPECT_EQ(server.clients(), 1u) << "kept until its work is done";
    ready = true;
    server.poll_once(5);
    server.poll_once(5);
    EXPECT_TRUE(finished);
    EXPECT_EQ(server.clients(), 0u);
}

}  // namespace
