// Fuzz target: what etcd (or whoever holds its port, or an operator's etcdctl) sends a gateway of a fleet
// (store = etcd, docs/fleet.md). The input's first byte picks the reader; the rest is its input:
// 0: a range reply body (parse_etcd_range); 1: one line of a watch stream (parse_etcd_watch_line);
// 2: a key and a value, split at the first NUL (fleet_item, then check_item's verdict applied to a store).
// Properties: every reader returns "" or a one-line reason and never throws; an item fleet_item accepts is
// one the store applies (apply_upstream) and reads back unchanged.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "control/store/etcd_client.hpp"
#include "control/store/fleet.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace portcullis;

namespace {

void one_line(const std::string& why, const char* what) {
    if (why.find('\n') != std::string::npos) fuzz::fail("%s: a reason spans lines: %s", what, why.c_str());
}

// One store for the whole run, in a directory removed at exit.
ApprovalStore& store() {
    static std::filesystem::path dir = [] {
        char tmpl[] = "/tmp/portcullis-fuzz-etcd-XXXXXX";
        return std::filesystem::path(mkdtemp(tmpl));
    }();
    static ApprovalStore s(dir);
    static bool opened = [] {
        std::vector<std::string> w;
        if (!s.open(w).empty()) fuzz::fail("cannot open the store in %s", dir.c_str());
        std::atexit([] { std::filesystem::remove_all(dir); });
        return true;
    }();
    (void)opened;
    return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        switch (data[0] % 3) {
            case 0: {
                EtcdRange r;
                one_line(parse_etcd_range(in, r), "range");
                break;
            }
            case 1: {
                EtcdWatchMessage m;
                one_line(parse_etcd_watch_line(in, m), "watch");
                break;
            }
            default: {
                const size_t nul = in.find('\0');
                const std::string key = "/portcullis/" + in.substr(0, nul);
                const std::string value = nul == std::string::npos ? std::string() : in.substr(nul + 1);
                StoreItem it;
                const std::string why = fleet_item("/portcullis/", key, value, it);
                one_line(why, "fleet_item");
                if (!why.empty()) break;
                ApprovalStore& s = store();
                if (auto err = s.apply_upstream({it}, {{"revision", 1}}); !err.empty())
                    fuzz::fail("an item fleet_item accepted is refused by the store: %s", err.c_str());
                const StoreItem back = s.item(it.kind, it.name);
                if (back.value != it.value)
                    fuzz::fail("the store holds %s as %s, not %s", it.name.c_str(), back.value.dump().c_str(),
                               it.value.dump().c_str());
                break;
            }
        }
    } catch (const std::exception& e) {
        fuzz::fail("threw: %s", e.what());
    }
    return 0;
}
