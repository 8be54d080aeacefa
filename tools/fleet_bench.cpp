// Fleet figures (docs/benchmarks.md, docs/fleet.md), against a real etcd started here on loopback (run it in
// a network namespace of its own: tools/bench-fleet). Prints figures; asserts nothing.
// - propagation: an acknowledged write on gateway A (etcd committed, A's replica kept it) to the snapshot
//   built on gateway B (B's reader got the watch message, its control loop applied it to its replica and
//   built the policy from it), one change at a time: median and p99 over --changes;
// - a whole read: a gateway with an empty replica joining a fleet of --records approvals (read in pages at
// one
//   revision, applied as one commit, the policy built), as at a first start or after a compaction.
// Each replica is what the daemon runs (ApprovalStore + Fleet) without the ports; B's "control loop" here
// is a thread that waits on the fleet's wake fd as the daemon's poll does.
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/policy/policy_builder.hpp"
#include "control/store/fleet.hpp"
#include "tests/support/etcd_process.hpp"

using namespace portcullis;
using namespace portcullis::testing;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

Config fleet_config(const std::string& url, const std::string& name) {
    Config c;
    c.store = "etcd";
    c.etcd_endpoints = {url};
    c.gateway_name = name;
    c.managed_prefixes = {*parse_prefix("10.0.0.0/8"), *parse_prefix("198.51.100.0/24")};
    return c;
}

struct Replica {
    Config cfg;
    ApprovalStore store;
    std::unique_ptr<Fleet> fleet;
    Replica(const std::string& url, const std::string& name, const fs::path& dir)
        : cfg(fleet_config(url, name)), store(dir / name) {
        std::vector<std::string> w;
        if (auto err = store.open(w); !err.empty()) throw std::runtime_error(err);
        std::string err;
        fleet = std::make_unique<Fleet>(cfg, store, &err);
        if (!err.empty()) throw std::runtime_error(err);
        store.set_upstream(fleet.get());
        fleet->start();
    }
    bool wait_sync(int ms = 20000) {
        return eventually(
            [&] {
                fleet->pump(nullptr);
                return fleet->in_sync();
            },
            ms);
    }
};

Approval record(uint32_t i) {
    Approval a;
    a.prefix = Prefix{IpAddr::from_v4(0x0a000000u + i), 32};
    a.hostname = "mail" + std::to_string(i) + ".example.com";
    a.ticket = "T-" + std::to_string(i);
    a.operator_name = "bench";
    return a;
}

double percentile(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

// --writer URL: another gateway of a running fleet, writing `rate` changes a second (approve and revoke in
// turn over 128 addresses) for `seconds`, in transactions of `rate / 100` changes (one every 10 ms): the load
// tools/bench puts on a forwarding gateway (its fleet scenario). Prints what it wrote.
int writer(const std::string& url, int rate, double seconds) {
    TempDir dir;
    Replica w(url, "bench-writer", dir.path);
    if (!w.wait_sync()) {
        std::fprintf(stderr, "writer: not in sync with the fleet at %s\n", url.c_str());
        return 1;
    }
    const int per_txn = std::max(1, rate / 100);
    const auto t0 = Clock::now();
    int written = 0, failed = 0;
    for (int tick = 0; ms_since(t0) < seconds * 1000; ++tick) {
        while (ms_since(t0) < tick * 10.0) std::this_thread::sleep_for(std::chrono::microseconds(200));
        w.fleet->pump(nullptr);
        w.store.begin_batch();
        for (int i = 0; i < per_txn; ++i) {
            Approval a = record(static_cast<uint32_t>((written + i) % 128));
            a.prefix = Prefix{IpAddr::from_v4(0xc6336440u + static_cast<uint32_t>((written + i) % 128)), 32};
            a.state = ((written + i) / 128) % 2 ? ApprovalState::Revoked : ApprovalState::Approved;
            (void)w.store.put(a);
        }
        if (auto err = w.store.end_batch(); err.empty())
            written += per_txn;
        else
            ++failed;
    }
    const double s = ms_since(t0) / 1000;
    std::printf("writer: %d changes in %.1f s (%.0f/s), %d transactions refused\n", written, s, written / s,
                failed);
    return 0;
}

int main(int argc, char** argv) {
    int changes = 1000, rate = 1000;
    uint32_t records = 100000;
    double seconds = 5;
    std::string writer_url;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        if (k == "--changes") changes = std::atoi(argv[i + 1]);
        if (k == "--records") records = static_cast<uint32_t>(std::atoi(argv[i + 1]));
        if (k == "--writer") writer_url = argv[i + 1];
        if (k == "--rate") rate = std::atoi(argv[i + 1]);
        if (k == "--seconds") seconds = std::atof(argv[i + 1]);
    }
    spdlog::set_level(spdlog::level::warn);
    if (!writer_url.empty()) return writer(writer_url, rate, seconds);
    TempDir dir;
    Etcd etcd(dir.path);
    Replica a(etcd.url(), "gw-a", dir.path), b(etcd.url(), "gw-b", dir.path);
    nlohmann::json init;
    if (auto err = a.fleet->init(&init); !err.empty()) {
        std::fprintf(stderr, "fleet init: %s\n", err.c_str());
        return 1;
    }
    if (!a.wait_sync() || !b.wait_sync()) {
        std::fprintf(stderr, "the replicas did not get in sync\n");
        return 1;
    }

    // B's control loop: wait on the wake fd, apply, build the snapshot; note when each revision is in force.
    std::atomic<bool> stop{false};
    std::atomic<int64_t> in_force{0};
    std::thread loop([&] {
        while (!stop) {
            pollfd p{b.fleet->wake_fd(), POLLIN, 0};
            ::poll(&p, 1, 100);
            if (p.revents & POLLIN) {
                uint64_t n;
                [[maybe_unused]] auto got = ::read(p.fd, &n, sizeof n);
            }
            if (b.fleet->pump(nullptr)) {
                auto built = build_policy(b.cfg, &b.store, 0, nullptr);
                in_force = b.store.fleet_revision();
            }
        }
    });
    std::vector<double> lat;
    std::vector<double> ack;
    for (int i = 0; i < changes; ++i) {
        const auto t0 = Clock::now();
        if (auto err = a.store.put(record(static_cast<uint32_t>(i))); !err.empty()) {
            std::fprintf(stderr, "write %d: %s\n", i, err.c_str());
            return 1;
        }
        ack.push_back(ms_since(t0));
        const auto t1 = Clock::now();
        const int64_t rev = a.store.fleet_revision();
        while (in_force.load() < rev) std::this_thread::yield();
        lat.push_back(ms_since(t1));
    }
    stop = true;
    loop.join();
    std::printf("fleet: one etcd member on loopback, %d changes one at a time\n", changes);
    std::printf("  write acknowledged on A (etcd txn + A's local commit): median %.2f ms, p99 %.2f ms\n",
                percentile(ack, 0.5), percentile(ack, 0.99));
    std::printf("  acknowledged on A -> snapshot built on B: median %.2f ms, p99 %.2f ms\n",
                percentile(lat, 0.5), percentile(lat, 0.99));

    // A whole set: seeded through A in batches (as an import is), then read by a new replica.
    const auto seed0 = Clock::now();
    for (uint32_t done = static_cast<uint32_t>(changes); done < records;) {
        const uint32_t end = std::min(records, done + 5000);
        std::vector<Approval> batch;
        for (uint32_t i = done; i < end; ++i) batch.push_back(record(i));
        if (auto err = a.store.put_all(batch); !err.empty()) {
            std::fprintf(stderr, "seeding: %s\n", err.c_str());
            return 1;
        }
        done = end;
    }
    const double seed_s = ms_since(seed0) / 1000;
    std::printf("  seeding %u approvals through A (transactions of %zu): %.1f s (%.0f approvals/s)\n",
                records, kFleetTxnItems, seed_s, (records - changes) / seed_s);
    const auto t0 = Clock::now();
    Replica c(etcd.url(), "gw-c", dir.path);
    eventually(
        [&] {
            c.fleet->pump(nullptr);
            return c.store.records().size() >= records;
        },
        600000);
    const double read_ms = ms_since(t0);
    const auto t1 = Clock::now();
    auto built = build_policy(c.cfg, &c.store, 0, nullptr);
    const double build_ms = ms_since(t1);
    std::printf(
        "  a new gateway reading %zu approvals (paged read at one revision, one local commit): %.0f ms; "
        "building the snapshot: %.0f ms; in force after %.0f ms\n",
        c.store.records().size(), read_ms, build_ms, read_ms + build_ms);
    return 0;
}
