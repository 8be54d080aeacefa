// The fleet's replica against a real etcd (Debian's, started here on loopback): two gateways' stores share
// one set; the transaction guard holds when two act at once; etcd away leaves the replica as it was and
// refuses writes; a compacted watch is followed by a whole read that loses nothing; an empty etcd is not a
// mass revocation. (The daemons, traffic and the CLI: tests/integration/test_fleet.py.)
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "control/store/etcd_client.hpp"
#include "control/store/fleet.hpp"
#include "tests/support/etcd_process.hpp"

using namespace portcullis;
using namespace portcullis::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

Config fleet_config(const EtcdOptions& o, const std::string& name) {
    Config c;
    c.store = "etcd";
    c.etcd_endpoints = o.endpoints;
    c.etcd_ca = o.ca;
    c.etcd_cert = o.cert;
    c.etcd_key = o.key;
    c.gateway_name = name;
    c.etcd_timeout_ms = 1000;
    return c;
}

// One gateway's replica: its store (in its own directory) and its fleet.
struct Gateway {
    Config cfg;
    ApprovalStore store;
    std::unique_ptr<Fleet> fleet;
    Gateway(const Etcd& etcd, const std::string& name, const fs::path& dir,
            const std::function<void(Config&)>& adjust = {})
        : cfg(fleet_config(etcd.client_options(), name)), store(dir / name) {
        if (adjust) adjust(cfg);
        std::vector<std::string> warnings;
        EXPECT_EQ(store.open(warnings), "");
        start();
    }
    void start() {
        std::string err;
        fleet = std::make_unique<Fleet>(cfg, store, &err);
        EXPECT_EQ(err, "");
        store.set_upstream(fleet.get());
        fleet->start();
    }
    void stop() {
        store.set_upstream(nullptr);
        fleet.reset();
    }
    // Pumps until `f` holds.
    bool until(const std::function<bool()>& f, int ms = 10000) {
        return eventually(
            [&] {
                fleet->pump(nullptr);
                return f();
            },
            ms);
    }
    bool synced() {
        return until([&] { return fleet->in_sync(); });
    }
    std::string put(const std::string& prefix, ApprovalState state) {
        Approval a;
        a.prefix = *parse_prefix(prefix);
        a.state = state;
        a.operator_name = cfg.gateway_name;
        return store.put(a);
    }
    const Approval* find(const std::string& prefix) { return store.find(*parse_prefix(prefix)); }
};

}  // namespace

class FleetOnEtcd : public ::testing::Test {
  protected:
    TempDir dir;
    std::unique_ptr<Etcd> etcd;
    void SetUp() override {
        if (!fs::exists("/usr/bin/etcd"))
            GTEST_FAIL() << "etcd is not installed (apt-get install etcd-server)";
        etcd = std::make_unique<Etcd>(dir.path);
    }
};

TEST_F(FleetOnEtcd, AnApprovalOnOneIsEnforcedByTheOtherAndABanCannotBeRaced) {
    Gateway a(*etcd, "gw-a", dir.path), b(*etcd, "gw-b", dir.path);
    // A new etcd holds no fleet: neither gateway takes it as anything until one initialises it.
    ASSERT_TRUE(a.until([&] { return a.fleet->status().contains("problem"); }));
    ASSERT_EQ(a.put("198.51.100.7/32", ApprovalState::Approved).substr(0, 5), "etcd:");
    json init;
    ASSERT_EQ(a.fleet->init(&init), "");
    ASSERT_TRUE(a.synced());
    ASSERT_TRUE(b.synced());

    ASSERT_EQ(a.put("198.51.100.7/32", ApprovalState::Approved), "");
    ASSERT_TRUE(b.until([&] { return b.find("198.51.100.7/32") != nullptr; }));
    EXPECT_EQ(b.find("198.51.100.7/32")->state, ApprovalState::Approved);
    EXPECT_EQ(b.store.fleet_revision(), a.store.fleet_revision());

    // Two operators at once: both gateways at the same revision; A bans, then B (which has not seen the ban
    // yet) tries to approve on what it saw. etcd's transaction refuses B's.
    a.fleet->pump(nullptr);
    b.fleet->pump(nullptr);
    const int64_t seen = b.store.fleet_revision();
    ASSERT_EQ(a.put("198.51.100.9/32", ApprovalState::Banned), "");
    const auto race = b.put("198.51.100.9/32", ApprovalState::Approved);
    EXPECT_NE(race.find("changed on another gateway"), std::string::npos) << race;
    EXPECT_EQ(b.store.fleet_revision(), seen);  // B's store is as it was: the refused change is undone
    ASSERT_TRUE(b.until([&] { return b.find("198.51.100.9/32") != nullptr; }));
    EXPECT_EQ(b.find("198.51.100.9/32")->state, ApprovalState::Banned);
}

TEST_F(FleetOnEtcd, OverlaysSettingsAndALargeImportReachTheOther) {
    Gateway a(*etcd, "gw-a", dir.path), b(*etcd, "gw-b", dir.path);
    json init;
    ASSERT_EQ(a.fleet->init(&init), "");
    ASSERT_TRUE(a.synced() && b.synced());
    ASSERT_EQ(a.store.change_overlay("managed", true, *parse_prefix("192.0.2.128/25"), {}), "");
    ASSERT_EQ(a.store.change_overlay("relay", false, *parse_prefix("203.0.113.53/32"),
                                     {*parse_prefix("203.0.113.53/32")}),
              "");
    ASSERT_EQ(a.store.set_setting("monitor", true), "");
    ASSERT_EQ(a.store.set_setting("limits", json{{"max_concurrent", 3}}), "");
    // An import of 250 records: three transactions of at most 100 items each.
    std::vector<Approval> all;
    for (int i = 0; i < 250; ++i) {
        Approval r;
        r.prefix = Prefix{IpAddr::from_v4(0x0a000000u + static_cast<uint32_t>(i)), 32};
        r.hostname = "h" + std::to_string(i) + ".example.com";
        all.push_back(r);
    }
    ASSERT_EQ(a.store.put_all(all), "");
    ASSERT_TRUE(b.until([&] { return b.store.fleet_revision() == a.store.fleet_revision(); }));
    EXPECT_EQ(b.store.records().size(), 250u);
    EXPECT_EQ(b.store.records(), a.store.records());
    EXPECT_EQ(b.store.managed().added.count(*parse_prefix("192.0.2.128/25")), 1u);
    EXPECT_EQ(b.store.relay().removed.count(*parse_prefix("203.0.113.53/32")), 1u);
    EXPECT_EQ(b.store.settings(), a.store.settings());
    // What B keeps on disk is the same set at the same revision (a restart reads it back).
    {
        ApprovalStore again(dir.path / "gw-b");
        std::vector<std::string> warnings;
        ASSERT_EQ(again.open(warnings), "");
        EXPECT_TRUE(warnings.empty());
        EXPECT_EQ(again.records(), b.store.records());
        EXPECT_EQ(again.settings(), b.store.settings());
        EXPECT_EQ(again.fleet(), b.store.fleet());
        EXPECT_EQ(again.managed().added, b.store.managed().added);
    }
    // B's reader restarted: it goes on from its replica's revision.
    b.stop();
    b.start();
    EXPECT_EQ(b.store.records().size(), 250u);
    EXPECT_EQ(b.store.settings()["monitor"], true);
    ASSERT_TRUE(b.synced());
}

TEST_F(FleetOnEtcd, EtcdAwayKeepsTheSetRefusesWritesAndCatchesUp) {
    Gateway a(*etcd, "gw-a", dir.path), b(*etcd, "gw-b", dir.path);
    json init;
    ASSERT_EQ(a.fleet->init(&init), "");
    ASSERT_TRUE(a.synced() && b.synced());
    ASSERT_EQ(a.put("198.51.100.7/32", ApprovalState::Approved), "");
    ASSERT_TRUE(b.until([&] { return b.find("198.51.100.7/32") != nullptr; }));

    etcd->stop();
    ASSERT_TRUE(a.until([&] { return !a.fleet->in_sync(); }));
    const auto err = a.put("198.51.100.8/32", ApprovalState::Approved);
    EXPECT_NE(err.find("etcd"), std::string::npos) << err;
    EXPECT_EQ(a.find("198.51.100.8/32"), nullptr);
    EXPECT_NE(a.find("198.51.100.7/32"), nullptr);  // fail-static: the set stays
    EXPECT_TRUE(a.fleet->status().contains("stale_since"));

    // Restarted while etcd is away: the replica is what it enforces.
    b.stop();
    b.start();
    EXPECT_NE(b.find("198.51.100.7/32"), nullptr);

    etcd->start();
    ASSERT_TRUE(a.synced() && b.synced());
    ASSERT_EQ(b.put("198.51.100.8/32", ApprovalState::Approved), "");
    ASSERT_TRUE(a.until([&] { return a.find("198.51.100.8/32") != nullptr; }));
}

TEST_F(FleetOnEtcd, ACompactedWatchIsFollowedByAWholeReadThatLosesNothing) {
    Gateway a(*etcd, "gw-a", dir.path), b(*etcd, "gw-b", dir.path);
    json init;
    ASSERT_EQ(a.fleet->init(&init), "");
    ASSERT_TRUE(a.synced() && b.synced());
    ASSERT_EQ(a.put("198.51.100.1/32", ApprovalState::Approved), "");
    ASSERT_TRUE(b.until([&] { return b.find("198.51.100.1/32") != nullptr; }));
    b.stop();  // B is away while A changes things and etcd is compacted past B's revision
    for (int i = 2; i < 40; ++i)
        ASSERT_EQ(a.put("198.51.100." + std::to_string(i) + "/32", ApprovalState::Approved), "");
    ASSERT_EQ(a.put("198.51.100.1/32", ApprovalState::Revoked), "");
    const auto head = a.store.fleet_revision();
    const std::string cmd = "ETCDCTL_API=3 etcdctl --endpoints=" + etcd->url() + " compact " +
                            std::to_string(head) + " >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    b.start();
    ASSERT_TRUE(b.until([&] { return b.store.fleet_revision() == head; }));
    EXPECT_EQ(b.store.records().size(), 39u);
    EXPECT_EQ(b.find("198.51.100.1/32")->state, ApprovalState::Revoked);
    // In sync once the new watch runs, which follows the whole read (not at once: a loaded machine lags).
    EXPECT_TRUE(b.until([&] { return b.fleet->in_sync(); }));
}

TEST_F(FleetOnEtcd, AnEmptyEtcdIsNotAMassRevocation) {
    Gateway a(*etcd, "gw-a", dir.path);
    json init;
    ASSERT_EQ(a.fleet->init(&init), "");
    ASSERT_TRUE(a.synced());
    for (int i = 1; i <= 5; ++i)
        ASSERT_EQ(a.put("198.51.100." + std::to_string(i) + "/32", ApprovalState::Approved), "");
    etcd->wipe();
    etcd->start();
    ASSERT_TRUE(a.until([&] { return a.fleet->status().contains("problem"); }));
    EXPECT_NE(a.fleet->status()["problem"].get<std::string>().find("no fleet marker"), std::string::npos);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    a.fleet->pump(nullptr);
    EXPECT_EQ(a.store.records().size(), 5u);  // kept
    EXPECT_FALSE(a.fleet->in_sync());
    // The operator's explicit answer: seed the new etcd from this gateway's set.
    ASSERT_EQ(a.fleet->init(&init), "");
    ASSERT_TRUE(a.synced());
    EXPECT_EQ(a.store.records().size(), 5u);
    EXPECT_EQ(init["items"], 5);
}

TEST(FleetOnEtcdSecured, TlsWithAClientCertificate) {
    TempDir dir;
    make_certificates(dir.path);
    Etcd etcd(dir.path, dir.path);
    Gateway a(etcd, "gw-a", dir.path), b(etcd, "gw-b", dir.path);
    json init;
    ASSERT_EQ(a.fleet->init(&init), "");
    ASSERT_TRUE(a.synced() && b.synced());
    ASSERT_EQ(a.put("198.51.100.7/32", ApprovalState::Approved), "");
    ASSERT_TRUE(b.until([&] { return b.find("198.51.100.7/32") != nullptr; }));
    // Without the client certificate etcd refuses the connection: the gateway says so and enforces its set.
    Gateway c(etcd, "gw-c", dir.path, [](Config& cfg) {
        cfg.etcd_cert.clear();
        cfg.etcd_key.clear();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    c.fleet->pump(nullptr);
    EXPECT_FALSE(c.fleet->in_sync());
    EXPECT_TRUE(c.fleet->status().contains("error"));
    EXPECT_EQ(c.store.records().size(), 0u);
}

TEST(FleetOnEtcdSecured, UserAndPassword) {
    TempDir dir;
    Etcd etcd(dir.path);
    auto etcdctl = [&](const std::string& args) {
        return std::system(
            ("ETCDCTL_API=3 etcdctl --endpoints=" + etcd.url() + " " + args + " >/dev/null 2>&1").c_str());
    };
    ASSERT_EQ(etcdctl("user add root:s3cret"), 0);
    ASSERT_EQ(etcdctl("auth enable"), 0);
    {
        std::ofstream(dir.path / "password") << "s3cret\n";
        std::ofstream(dir.path / "wrong") << "guess\n";
    }
    Gateway a(etcd, "gw-a", dir.path, [&](Config& cfg) {
        cfg.etcd_user = "root";
        cfg.etcd_password_file = (dir.path / "password").string();
    });
    json init;
    ASSERT_EQ(a.fleet->init(&init), "");
    ASSERT_TRUE(a.synced());
    ASSERT_EQ(a.put("198.51.100.7/32", ApprovalState::Approved), "");
    Gateway b(etcd, "gw-b", dir.path, [&](Config& cfg) {
        cfg.etcd_user = "root";
        cfg.etcd_password_file = (dir.path / "wrong").string();
    });
    ASSERT_TRUE(b.until([&] { return b.fleet->status().contains("error"); }));
    EXPECT_NE(b.fleet->status()["error"].get<std::string>().find("refused user 'root'"), std::string::npos)
        << b.fleet->status().dump();
    EXPECT_EQ(b.find("198.51.100.7/32"), nullptr);
}
