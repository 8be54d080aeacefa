// Fuzz target: the approval store's files as the daemon finds them at start (a crash, a full disk or a hand
// edit may have left anything there). The input is split on its first 0x00 byte: before it, approvals.json
// (the snapshot); after it, journal.jsonl. Without a 0x00 byte the whole input is the journal and there is no
// snapshot. Both are written into a fresh state directory, then ApprovalStore::open() runs.
// Properties: open() returns "" or an error, never throws (PORTCULLIS_FUZZ_NOTHROW=0 ignores a throw) or
// crashes; when it opens, what the daemon does next works too: build_policy() over the store does not throw,
// and a second open() of the same directory (a restart) succeeds with the same records, overlays and
// settings.
#include <cstddef>
#include <cstdint>
#include <string>

#include "control/policy/policy_builder.hpp"
#include "control/store/store.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace portcullis;

namespace {

const Config& config() {
    static const Config cfg = [] {
        Config c;
        c.managed_prefixes = {*parse_prefix("198.51.100.0/24"), *parse_prefix("2001:db8:100::/48")};
        c.approved = {*parse_prefix("198.51.100.64/28")};
        c.blocked_ports = {25};
        return c;
    }();
    return cfg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::filesystem::path base = fuzz::make_temp_dir("journal");
    const std::filesystem::path dir = base / "state";
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(dir);

    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const size_t nul = input.find('\0');
    if (nul != std::string_view::npos) {
        fuzz::write_file(dir / "approvals.json", input.substr(0, nul));
        fuzz::write_file(dir / "journal.jsonl", input.substr(nul + 1));
    } else {
        fuzz::write_file(dir / "journal.jsonl", input);
    }

    std::string err;
    std::vector<std::string> warnings;
    ApprovalStore store(dir);
    try {
        err = store.open(warnings);
    } catch (const std::exception& e) {
        if (fuzz::nothrow_checked()) fuzz::fail("ApprovalStore::open() threw: %s", e.what());
        return 0;
    }
    if (fuzz::verbose())
        std::fprintf(stderr, "  -> %s (%zu records, %zu warnings)\n", err.empty() ? "opened" : err.c_str(),
                     store.records().size(), warnings.size());
    if (!err.empty()) return 0;

    try {
        (void)build_policy(config(), &store, 1'700'000'000);
    } catch (const std::exception& e) {
        if (fuzz::nothrow_checked()) fuzz::fail("build_policy() over an opened store threw: %s", e.what());
        return 0;
    }

    ApprovalStore again(dir);
    std::vector<std::string> warnings2;
    try {
        err = again.open(warnings2);
    } catch (const std::exception& e) {
        fuzz::fail("the second ApprovalStore::open() threw: %s", e.what());
    }
    if (!err.empty()) fuzz::fail("opens once, not twice: %s", err.c_str());
    if (!warnings2.empty()) fuzz::fail("the second open warns: %s", warnings2[0].c_str());
    if (again.records() != store.records() || again.managed().added != store.managed().added ||
        again.managed().removed != store.managed().removed || again.relay().added != store.relay().added ||
        again.relay().removed != store.relay().removed || again.settings() != store.settings())
        fuzz::fail("the second open finds another state than the first");
    return 0;
}
