// The memory check before the ports come up: what each table needs (as the tables themselves allocate it),
// the limits read from /proc and the cgroup files, and the one line naming the key.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "control/daemon/memory_budget.hpp"
#include "dataplane/events.hpp"
#include "dataplane/flow_tracker.hpp"
#include "dataplane/inspect.hpp"
#include "dataplane/source_table.hpp"

using namespace portcullis;

namespace {

constexpr uint64_t GiB = uint64_t{1} << 30;
constexpr uint64_t MiB = uint64_t{1} << 20;

MemoryAvailable machine_with(uint64_t bytes) {
    MemoryAvailable a;
    a.process = {bytes, MemoryLimit::Source::MemAvailable};
    a.eal = {UINT64_MAX, MemoryLimit::Source::Eal};
    return a;
}

const MemoryItem& item(const std::vector<MemoryItem>& need, const std::string& key) {
    for (const auto& i : need)
        if (i.key == key) return i;
    throw std::runtime_error("no " + key);
}

TEST(MemoryBudget, BytesAreWhatTheTablesAllocate) {
    Config cfg;  // defaults: 262144 flows and sources, 16384 inspected sessions of 512 bytes, 16383 mbufs
    const auto need = memory_needed(cfg, 2, 2432);
    const auto& flows = item(need, "max_flows");
    EXPECT_EQ(FlowTable::slots_for(262144), 524288u) << "a power of two at most 3/4 full";
    EXPECT_EQ(flows.bytes, 2 * FlowTracker::bytes_for(262144));
    EXPECT_EQ(flows.workers, 2u);
    EXPECT_GE(FlowTracker::bytes_for(262144), 524288u * 128);
    EXPECT_LT(FlowTracker::bytes_for(262144), 524288u * 128 + MiB);
    EXPECT_EQ(item(need, "max_sources").bytes, 262144u * 64);
    EXPECT_EQ(item(need, "max_inspected").bytes, 2 * Inspector::bytes_for(16384, 512));
    const auto& mbufs = item(need, "mbufs");
    EXPECT_TRUE(mbufs.eal);
    EXPECT_EQ(mbufs.bytes, 16383u * 2432 + 16384 * 8);
    const auto& rings = item(need, "event rings");
    EXPECT_TRUE(rings.eal);
    EXPECT_EQ(rings.bytes, 2u * kEventRingSize * (sizeof(RefusalEvent) + sizeof(ObservationEvent)));

    // The tables agree with the sizing functions.
    FlowTable table(1000, CookieKey{1, 2});
    EXPECT_EQ(table.slots(), FlowTable::slots_for(1000));
    SourceTable sources(1000, CookieKey{1, 2});
    EXPECT_EQ(sources.bytes(), SourceTable::slots_for(1000) * SourceTable::kSlotBytes);
    Inspector insp(100, 300);
    EXPECT_EQ(Inspector::bytes_for(100, 300),
              100 * (insp.bytes_per_flow() + sizeof(uint32_t) + sizeof(void*)));

    cfg.inspect = false;
    for (const auto& i : memory_needed(cfg, 1)) EXPECT_NE(i.key, "max_inspected") << "no inspectors";
}

TEST(MemoryBudget, HugeMaxFlowsIsOneLineNamingTheKey) {
    Config cfg;
    cfg.max_flows = 4000000000u;  // past the configuration's own bound: the computation holds anyway
    const auto need = memory_needed(cfg, 1);
    EXPECT_EQ(check_memory(need, machine_with(20 * GiB)),
              "max_flows: 4000000000 flows per worker need 1 TiB; this machine has 20 GiB available");
    cfg.max_flows = 64u << 20;
    EXPECT_EQ(
        check_memory(memory_needed(cfg, 2), machine_with(12 * GiB)),
        "max_flows: 67108864 flows per worker need 32 GiB (2 workers, 16 GiB each); this machine has 12 GiB "
        "available");
    EXPECT_EQ(check_memory(memory_needed(Config{}, 2), machine_with(12 * GiB)), "") << "the defaults fit";
}

TEST(MemoryBudget, TablesThatFitAloneButNotTogether) {
    Config cfg;
    cfg.max_flows = 8u << 20;     // 2 GiB
    cfg.max_sources = 16u << 20;  // 1 GiB
    const auto need = memory_needed(cfg, 1);
    uint64_t heap = 0;
    for (const auto& i : need)
        if (!i.eal) heap += i.bytes;
    auto avail = machine_with(heap - MiB);
    EXPECT_EQ(check_memory(need, avail),
              "max_flows: 8388608 flows per worker need 2 GiB, " + format_bytes(heap) +
                  " with the other tables; this machine has " + format_bytes(heap - MiB) + " available");
    avail.process.bytes = heap;
    EXPECT_EQ(check_memory(need, avail), "");
    // Without hugepages the packet buffers are the process's memory too.
    avail.eal_in_process = true;
    EXPECT_NE(check_memory(need, avail), "");
}

TEST(MemoryBudget, PacketBuffersAgainstDpdkMemory) {
    Config cfg;
    cfg.mbufs = 4000000;
    const auto need = memory_needed(cfg, 1, 2432);
    auto avail = machine_with(64 * GiB);
    avail.eal.bytes = GiB;
    EXPECT_EQ(check_memory(need, avail), "mbufs: 4000000 packet buffers need " +
                                             format_bytes(item(need, "mbufs").bytes) +
                                             "; DPDK has 1 GiB free (hugepages, or -m with --no-huge)");
    avail.eal.bytes = 16 * GiB;
    EXPECT_EQ(check_memory(need, avail), "");
}

TEST(MemoryBudget, FormatBytes) {
    EXPECT_EQ(format_bytes(0), "0 bytes");
    EXPECT_EQ(format_bytes(1536), "1.5 KiB");
    EXPECT_EQ(format_bytes(973 * MiB), "973 MiB");
    EXPECT_EQ(format_bytes(2 * GiB + 264 * 1024), "2 GiB");
    EXPECT_EQ(format_bytes(3 * GiB + GiB / 10 + 1), "3.1 GiB");
    EXPECT_EQ(format_bytes(512 * GiB), "512 GiB");
    EXPECT_EQ(format_bytes(uint64_t{3} << 40), "3 TiB");
}

struct FakeProc {
    std::filesystem::path root;
    MemoryPaths paths;
    FakeProc() {
        char tmpl[] = "/tmp/portcullis-mem-XXXXXX";
        root = mkdtemp(tmpl);
        paths = {(root / "meminfo").string(), (root / "status").string(), (root / "cgroup").string(),
                 (root / "mountinfo").string(), root.string()};
    }
    ~FakeProc() { std::filesystem::remove_all(root); }
    void write(const std::string& rel, const std::string& text) const {
        const auto p = root / rel;
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }
};

TEST(MemoryBudget, LimitsFromMeminfoAndCgroupV1) {
    FakeProc f;
    f.write("meminfo", "MemTotal:       24000000 kB\nMemFree:  1 kB\nMemAvailable:   20971520 kB\n");
    f.write("mountinfo",
            "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
            "36 31 0:33 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n");
    f.write("cgroup", "5:cpu:/\n4:memory:/svc/portcullis\n0::/\n");
    auto a = memory_available(GiB, true, f.paths);
    EXPECT_EQ(a.process.bytes, 20 * GiB);
    EXPECT_EQ(a.process.source, MemoryLimit::Source::MemAvailable);
    EXPECT_EQ(a.eal.bytes, GiB);
    EXPECT_FALSE(a.eal_in_process);

    f.write("sys/fs/cgroup/memory/svc/portcullis/memory.limit_in_bytes", "1073741824\n");
    f.write("sys/fs/cgroup/memory/svc/portcullis/memory.usage_in_bytes", "268435456\n");
    f.write("sys/fs/cgroup/memory/svc/memory.limit_in_bytes", "9223372036854771712\n");  // v1's "no limit"
    a = memory_available(0, false, f.paths);
    EXPECT_EQ(a.process.bytes, 768 * MiB);
    EXPECT_EQ(a.process.source, MemoryLimit::Source::Cgroup);
    EXPECT_TRUE(a.eal_in_process);
    // A parent's limit binds its children.
    f.write("sys/fs/cgroup/memory/svc/memory.limit_in_bytes", "536870912\n");
    f.write("sys/fs/cgroup/memory/svc/memory.usage_in_bytes", "469762048\n");
    a = memory_available(GiB, true, f.paths);  // the packet buffers in hugepages
    EXPECT_EQ(a.process.bytes, 64 * MiB);
    Config cfg;
    cfg.max_flows = 131072;
    EXPECT_EQ(check_memory(memory_needed(cfg, 1), a),
              "max_flows: 131072 flows per worker need 32.4 MiB, " + format_bytes([&] {
                  uint64_t s = 0;
                  for (const auto& i : memory_needed(cfg, 1)) s += i.eal ? 0 : i.bytes;
                  return s;
              }()) +
                  " with the other tables; the process's cgroup memory limit leaves 64 MiB");
}

TEST(MemoryBudget, LimitsFromCgroupV2) {
    FakeProc f;
    f.write("meminfo", "MemAvailable:   20971520 kB\n");
    f.write("mountinfo", "41 31 0:38 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n");
    f.write("cgroup", "0::/system.slice/portcullis.service\n");
    f.write("sys/fs/cgroup/system.slice/portcullis.service/memory.max", "2147483648\n");
    f.write("sys/fs/cgroup/system.slice/portcullis.service/memory.current", "1073741824\n");
    f.write("sys/fs/cgroup/system.slice/memory.max", "max\n");
    const auto a = memory_available(0, true, f.paths);
    EXPECT_EQ(a.process.bytes, GiB);
    EXPECT_EQ(a.process.source, MemoryLimit::Source::Cgroup);
}

TEST(MemoryBudget, ThisProcessHasLimits) {
    const auto a = memory_available(0, true);
    EXPECT_GT(a.process.bytes, 0u);
    EXPECT_LT(a.process.bytes, UINT64_MAX) << "MemAvailable at least";
}

}  // namespace
