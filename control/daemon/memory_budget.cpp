// The tables' memory against the process's limits (see memory_budget.hpp).
#include "control/daemon/memory_budget.hpp"

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dataplane/events.hpp"
#include "dataplane/flow_tracker.hpp"
#include "dataplane/inspect.hpp"
#include "dataplane/source_table.hpp"

namespace portcullis {

namespace {

// "Key:   123 kB" from /proc/meminfo or /proc/self/status, in bytes; 0 when absent.
uint64_t kb_field(const std::string& path, const std::string& key) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (line.compare(0, key.size() + 1, key + ":") == 0) {
            std::istringstream v(line.substr(key.size() + 1));
            uint64_t kb = 0;
            v >> kb;
            return kb * 1024;
        }
    return 0;
}

// A number from a one-line file ("max" and anything else unreadable: no limit).
uint64_t number_file(const std::string& path) {
    std::ifstream in(path);
    std::string s;
    if (!(in >> s) || s.empty() ||
        !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return UINT64_MAX;
    try {
        return std::stoull(s);
    } catch (...) {
        return UINT64_MAX;
    }
}

void tighten(MemoryLimit& l, uint64_t bytes, MemoryLimit::Source source) {
    if (bytes < l.bytes) l = {bytes, source};
}

// The room left under the memory limit of the process's cgroup and each of its ancestors.
uint64_t cgroup_room(const MemoryPaths& p) {
    struct Mount {
        std::string root, point;
    };
    Mount v2, v1;
    {
        std::ifstream in(p.mountinfo);
        std::string line;
        while (std::getline(in, line)) {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            std::istringstream f(line);
            std::string id, parent, dev, root, point, opts, tok;
            f >> id >> parent >> dev >> root >> point >> opts;
            while (f >> tok && tok != "-") {
            }
            std::string fstype, source, super;
            f >> fstype >> source >> super;
            if (fstype == "cgroup2" && v2.point.empty()) v2 = {root, point};
            if (fstype == "cgroup" && v1.point.empty() &&
                ("," + super + ",").find(",memory,") != std::string::npos)
                v1 = {root, point};
        }
    }
    uint64_t room = UINT64_MAX;
    auto walk = [&](const Mount& m, std::string path, const char* limit_file, const char* usage_file) {
        if (m.root != "/" && path.compare(0, m.root.size(), m.root) == 0) path = path.substr(m.root.size());
        for (;;) {
            const std::string dir = p.prefix + m.point + (path == "/" ? "" : path);
            const uint64_t limit = number_file(dir + "/" + limit_file);
            if (limit != UINT64_MAX && limit < (uint64_t{1} << 60)) {  // v1 says "no limit" as a huge number
                uint64_t used = number_file(dir + "/" + usage_file);
                if (used == UINT64_MAX) used = 0;
                room = std::min(room, limit > used ? limit - used : 0);
            }
            if (path.empty() || path == "/") break;
            const auto slash = path.find_last_of('/');
            path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
        }
    };
    std::ifstream in(p.cgroup);
    std::string line;
    while (std::getline(in, line)) {
        // hierarchy-id:controllers:path
        const auto a = line.find(':'), b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        if (line.compare(0, a, "0") == 0 && controllers.empty() && !v2.point.empty())
            walk(v2, path, "memory.max", "memory.current");
        else if (("," + controllers + ",").find(",memory,") != std::string::npos && !v1.point.empty())
            walk(v1, path, "memory.limit_in_bytes", "memory.usage_in_bytes");
    }
    return room;
}

std::string says(const MemoryLimit& l) {
    const std::string b = format_bytes(l.bytes);
    switch (l.source) {
        case MemoryLimit::Source::MemAvailable:
            return "this machine has " + b + " available";
        case MemoryLimit::Source::RlimitAs:
            return "RLIMIT_AS leaves the process " + b;
        case MemoryLimit::Source::RlimitData:
            return "RLIMIT_DATA leaves the process " + b;
        case MemoryLimit::Source::Cgroup:
            return "the process's cgroup memory limit leaves " + b;
        case MemoryLimit::Source::Eal:
            return "DPDK has " + b + " free (hugepages, or -m with --no-huge)";
        case MemoryLimit::Source::None:
            break;
    }
    return b + " available";
}

// The line for the largest item among `counted` when their sum passes `limit`.
std::string over(const std::vector<const MemoryItem*>& counted, const MemoryLimit& limit) {
    uint64_t sum = 0;
    const MemoryItem* big = nullptr;
    for (const auto* i : counted) {
        sum += i->bytes;
        if (!big || i->bytes > big->bytes) big = i;
    }
    if (!big || sum <= limit.bytes) return {};
    std::string line = big->key + ": " + big->amount + " need " + format_bytes(big->bytes);
    if (big->workers > 1)
        line += " (" + std::to_string(big->workers) + " workers, " + format_bytes(big->bytes / big->workers) +
                " each)";
    if (big->bytes <= limit.bytes) line += ", " + format_bytes(sum) + " with the other tables";
    return line + "; " + says(limit);
}

}  // namespace

std::string format_bytes(uint64_t b) {
    static const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    const double frac = v - static_cast<double>(static_cast<uint64_t>(v));
    if (u == 0 || v >= 100 || frac < 0.05 || frac >= 0.95)
        std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
    else
        std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::vector<MemoryItem> memory_needed(const Config& cfg, unsigned workers, uint64_t mbuf_object) {
    workers = std::max(workers, 1u);
    std::vector<MemoryItem> need;
    need.push_back({"max_flows", std::to_string(cfg.max_flows) + " flows per worker",
                    workers * FlowTracker::bytes_for(cfg.max_flows), workers, false});
    need.push_back({"max_sources", std::to_string(cfg.max_sources) + " sources",
                    SourceTable::slots_for(cfg.max_sources) * SourceTable::kSlotBytes, 1, false});
    if (cfg.inspect)
        need.push_back({"max_inspected", std::to_string(cfg.max_inspected) + " inspected sessions per worker",
                        workers * Inspector::bytes_for(cfg.max_inspected, cfg.inspect_stream_bytes), workers,
                        false});
    need.push_back({"event rings",
                    std::to_string(kEventRingSize) + " refusal and observation events per worker",
                    workers * uint64_t{kEventRingSize} * (sizeof(RefusalEvent) + sizeof(ObservationEvent)),
                    workers, true});
    uint64_t ring = 1;
    while (ring < uint64_t{cfg.mbufs} + 1) ring <<= 1;
    need.push_back({"mbufs", std::to_string(cfg.mbufs) + " packet buffers",
                    cfg.mbufs * mbuf_object + ring * sizeof(void*), 1, true});
    return need;
}

uint64_t mbuf_object_bytes() {
    rte_mempool_objsz sz{};
    const uint32_t total = rte_mempool_calc_obj_size(sizeof(rte_mbuf) + RTE_MBUF_DEFAULT_BUF_SIZE, 0, &sz);
    return total ? total : kMbufObjectBytes;
}

uint64_t eal_free_bytes() {
    uint64_t free = 0;
    rte_malloc_socket_stats st{};
    if (rte_malloc_get_socket_stats(static_cast<int>(rte_socket_id()), &st) == 0) free = st.heap_freesz_bytes;
    if (rte_eal_has_hugepages()) {
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator("/sys/kernel/mm/hugepages", ec)) {
            const std::string name = e.path().filename().string();  // hugepages-2048kB
            const uint64_t kb = std::strtoull(name.c_str() + name.find('-') + 1, nullptr, 10);
            const uint64_t pages = number_file(e.path().string() + "/free_hugepages");
            if (pages != UINT64_MAX) free += pages * kb * 1024;
        }
    }
    return free;
}

MemoryAvailable memory_available(uint64_t eal_free, bool eal_hugepages, const MemoryPaths& paths) {
    MemoryAvailable a;
    if (const uint64_t m = kb_field(paths.meminfo, "MemAvailable"))
        tighten(a.process, m, MemoryLimit::Source::MemAvailable);
    rlimit r{};
    if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
        const uint64_t used = kb_field(paths.status, "VmSize");
        tighten(a.process, r.rlim_cur > used ? r.rlim_cur - used : 0, MemoryLimit::Source::RlimitAs);
    }
    if (getrlimit(RLIMIT_DATA, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
        const uint64_t used = kb_field(paths.status, "VmData");
        tighten(a.process, r.rlim_cur > used ? r.rlim_cur - used : 0, MemoryLimit::Source::RlimitData);
    }
    tighten(a.process, cgroup_room(paths), MemoryLimit::Source::Cgroup);
    a.eal = {eal_free, MemoryLimit::Source::Eal};
    a.eal_in_process = !eal_hugepages;
    return a;
}

std::string check_memory(const std::vector<MemoryItem>& need, const MemoryAvailable& avail) {
    std::vector<const MemoryItem*> process, eal;
    for (const auto& i : need) {
        if (!i.eal || avail.eal_in_process) process.push_back(&i);
        if (i.eal) eal.push_back(&i);
    }
    if (auto line = over(process, avail.process); !line.empty()) return line;
    return over(eal, avail.eal);
}

}  // namespace portcullis
