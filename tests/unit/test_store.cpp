// Approval store tests: durability across reopen, torn journal lines, compaction, atomic imports.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "control/store/store.hpp"

using namespace portcullis;
namespace fs = std::filesystem;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/portcullis-store-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

Approval rec(const char* prefix, ApprovalState st = ApprovalState::Approved) {
    Approval a;
    a.prefix = *parse_prefix(prefix);
    a.state = st;
    a.hostname = "mail.example.com";
    a.domains = {"example.com"};
    a.ticket = "T-1";
    a.reason = "invoices \"quoted\"";
    return a;
}

TEST(Store, ChangesSurviveReopen) {
    TempDir d;
    {
        ApprovalStore s(d.path);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        ASSERT_EQ(s.put(rec("198.51.100.10")), "");
        ASSERT_EQ(s.put(rec("2001:db8:100::/64", ApprovalState::Banned)), "");
        ASSERT_EQ(s.change_overlay("managed", true, *parse_prefix("203.0.113.0/24"), {}), "");
    }
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    EXPECT_TRUE(w.empty());
    ASSERT_EQ(s.records().size(), 2u);
    EXPECT_EQ(*s.find(*parse_prefix("198.51.100.10")), rec("198.51.100.10"));
    EXPECT_EQ(s.find(*parse_prefix("2001:db8:100::/64"))->state, ApprovalState::Banned);
    EXPECT_EQ(s.managed().added.size(), 1u);
}

TEST(Store, TornLastJournalLineIsDroppedWithAWarning) {
    TempDir d;
    {
        ApprovalStore s(d.path);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        ASSERT_EQ(s.put(rec("198.51.100.10")), "");
    }
    // A crash in the middle of writing the next entry.
    std::ofstream(d.path / "journal.jsonl", std::ios::app)
        << R"({"seq":2,"op":"put","record":{"prefix":"198.5)";
    {
        ApprovalStore s(d.path);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        ASSERT_EQ(w.size(), 1u);
        EXPECT_NE(w[0].find("torn"), std::string::npos);
        EXPECT_EQ(s.records().size(), 1u);
        ASSERT_EQ(s.put(rec("198.51.100.11")), "");  // appends after the cut, not after the garbage
    }
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    EXPECT_TRUE(w.empty());
    EXPECT_EQ(s.records().size(), 2u);
}

TEST(Store, CorruptionInTheMiddleStopsTheStart) {
    TempDir d;
    std::ofstream(d.path / "journal.jsonl") << "garbage\n"
                                               R"({"seq":2,"op":"put","record":{"prefix":"198.51.100.10"}})"
                                            << "\n";
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    const auto err = s.open(w);
    EXPECT_NE(err.find("journal.jsonl:1"), std::string::npos) << err;
}

TEST(Store, CompactionKeepsEverythingAndEmptiesTheJournal) {
    TempDir d;
    {
        ApprovalStore s(d.path);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        for (size_t i = 0; i < ApprovalStore::kCompactEvery + 10; ++i) {
            Approval a = rec("198.51.100.0");
            a.prefix =
                Prefix{IpAddr::from_v4(0xC6336400u + static_cast<uint32_t>(i % 256) + ((i / 256) << 8)), 32};
            ASSERT_EQ(s.put(a), "");
        }
        EXPECT_EQ(s.journal_entries(), 10u);
    }
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    EXPECT_EQ(s.records().size(), ApprovalStore::kCompactEvery + 10);
}

TEST(Store, PutAllIsOneSnapshot) {
    TempDir d;
    std::vector<Approval> all;
    for (uint32_t i = 0; i < 1000; ++i) {
        Approval a = rec("198.51.100.0");
        a.prefix = Prefix{IpAddr::from_v4(0x0A000000u + i), 32};
        all.push_back(a);
    }
    {
        ApprovalStore s(d.path);
        std::vector<std::string> w;
        ASSERT_EQ(s.open(w), "");
        ASSERT_EQ(s.put_all(all), "");
        EXPECT_EQ(fs::file_size(d.path / "journal.jsonl"), 0u);
    }
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    EXPECT_EQ(s.records().size(), 1000u);
}

TEST(Store, MostSpecificAndCovering) {
    TempDir d;
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    ASSERT_EQ(s.put(rec("198.51.100.0/24")), "");
    ASSERT_EQ(s.put(rec("198.51.100.64/28", ApprovalState::Suspended)), "");
    EXPECT_EQ(s.most_specific(*parse_addr("198.51.100.70"))->state, ApprovalState::Suspended);
    EXPECT_EQ(s.most_specific(*parse_addr("198.51.100.80"))->prefix, *parse_prefix("198.51.100.0/24"));
    EXPECT_EQ(s.most_specific(*parse_addr("198.51.101.1")), nullptr);
    EXPECT_EQ(s.covering(*parse_prefix("198.51.100.64/27"))->prefix, *parse_prefix("198.51.100.0/24"));
}

TEST(Store, OverlayAddRemoveAgainstConfiguredList) {
    TempDir d;
    ApprovalStore s(d.path);
    std::vector<std::string> w;
    ASSERT_EQ(s.open(w), "");
    const std::vector<Prefix> configured = {*parse_prefix("198.51.100.0/24")};
    ASSERT_EQ(s.change_overlay("managed", false, configured[0], configured), "");
    EXPECT_EQ(s.managed().removed.size(), 1u);
    ASSERT_EQ(s.change_overlay("managed", true, configured[0], configured), "");
    EXPECT_TRUE(s.managed().removed.empty());
    EXPECT_TRUE(s.managed().added.empty());
}

}  // namespace
