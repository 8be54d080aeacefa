// Fuzz target: the control socket's request lines (a control-group user may send anything). The input is one
// or more lines, split on '\n' as the server splits them (a trailing '\r' dropped, empty lines skipped), each
// handled by ControlPlane::handle() inside one batch (begin_batch/end_batch, as one pass of the server), over
// a real ApprovalStore and AuditLog in a temporary state directory kept across inputs, so that sequences of
// commands reach deep states. Properties:
// - handle() never throws (PORTCULLIS_FUZZ_NOTHROW=0 ignores a throw), and every reply is a JSON object with
// "v" and "ok";
// - every reply serialises as the server writes it (the "_changed" key stripped; dump with invalid UTF-8
//   replaced, or plain dump() with PORTCULLIS_FUZZ_STRICT_DUMP=1, which throws on invalid UTF-8);
// - after a batch that changed something, the state directory opens again (a restart) with the same records,
//   overlays and settings (PORTCULLIS_FUZZ_REOPEN=0 turns this off).
// The state is recreated from scratch every few thousand inputs, and when its records or journal grow.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "control/commands/control_plane.hpp"
#include "dataplane/policy.hpp"
#include "tests/fuzz/fuzz_util.hpp"
#include "tests/support/control_plane.hpp"

using namespace portcullis;
using nlohmann::json;

namespace {

// The state starts again from scratch past these: every reopen check reads the snapshot and the journal
// back, so both stay small (an import still folds the journal into a snapshot).
constexpr size_t kMaxRecords = 64;
constexpr size_t kMaxJournal = 128;
constexpr size_t kInputsPerState = 4096;  // at least this often (the audit log only grows)

struct State : portcullis::testing::TestPlane {
    std::filesystem::path dir;
    Peer peer;
    size_t inputs = 0;

    State() {
        fuzz::init_eal_once();
        spdlog::set_level(spdlog::level::off);
        dir = fuzz::make_temp_dir("control");
        // A configuration like the unit tests' (tests/unit/test_commands.cpp), with a rules directory of one
        // small rule so that "rules reload" compiles something quickly.
        cfg.managed_prefixes = {*parse_prefix("198.51.100.0/24"), *parse_prefix("2001:db8:100::/48")};
        cfg.approved = {*parse_prefix("198.51.100.64/28")};
        cfg.relay_hosts = {*parse_prefix("203.0.113.5")};
        cfg.blocked_ports = {25};
        cfg.rules_dir = (dir / "rules").string();
        std::filesystem::create_directories(cfg.rules_dir);
        fuzz::write_file(dir / "rules" / "fuzz.rules", "1001 ehlo refuse /localhost$/i \"EHLO localhost\"\n");
        peer.user = "fuzz";
        peer.uid = 1000;
        peer.pid = 1;
        reset();
    }

    void reset() {
        close_plane();
        std::error_code ec;
        std::filesystem::remove_all(dir / "state", ec);
        if (auto err = open_plane(dir / "state", dir / "state" / "audit.log"); !err.empty())
            fuzz::fail("cannot open a new state directory: %s", err.c_str());
        inputs = 0;
    }
};

State& state() {
    static State s;
    return s;
}

std::string serialise(const json& reply, bool strict) {
    if (strict) return reply.dump();
    return reply.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A restart: a second store opened on the same directory sees what the first one acknowledged.
void check_reopens(const ApprovalStore& live) {
    ApprovalStore again(live.dir());
    std::vector<std::string> warnings;
    if (auto err = again.open(warnings); !err.empty())
        fuzz::fail("the state directory does not open again after acknowledged changes: %s", err.c_str());
    if (!warnings.empty()) fuzz::fail("reopening warns: %s", warnings[0].c_str());
    if (again.records() != live.records())
        fuzz::fail("reopened store has %zu records, the live one %zu (or they differ)",
                   again.records().size(), live.records().size());
    if (again.managed().added != live.managed().added || again.managed().removed != live.managed().removed ||
        again.relay().added != live.relay().added || again.relay().removed != live.relay().removed)
        fuzz::fail("reopened store's managed/relay changes differ from the live ones");
    if (again.settings() != live.settings())
        fuzz::fail("reopened store's settings %s differ from the live ones %s",
                   again.settings().dump(-1, ' ', false, json::error_handler_t::replace).c_str(),
                   live.settings().dump(-1, ' ', false, json::error_handler_t::replace).c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool strict = fuzz::env_switch("PORTCULLIS_FUZZ_STRICT_DUMP", false);
    static const bool reopen = fuzz::env_switch("PORTCULLIS_FUZZ_REOPEN", true);
    State& s = state();
    if (++s.inputs > kInputsPerState || s.store->records().size() > kMaxRecords ||
        s.store->journal_entries() > kMaxJournal)
        s.reset();

    Session session;  // one connection per input
    std::vector<json> replies;
    s.plane->begin_batch();
    for (auto line : fuzz::split_lines(std::string_view(reinterpret_cast<const char*>(data), size))) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty()) continue;
        try {
            replies.push_back(s.plane->handle(std::string(line), s.peer, session));
        } catch (const std::exception& e) {
            if (fuzz::nothrow_checked()) fuzz::fail("ControlPlane::handle() threw: %s", e.what());
        }
    }
    const std::string unsaved = s.plane->end_batch();
    if (!unsaved.empty()) fuzz::fail("end_batch() on tmpfs failed: %s", unsaved.c_str());

    bool changed = false;
    for (auto& r : replies) {
        if (!r.is_object() || !r.contains("v") || !r.contains("ok") || !r["ok"].is_boolean())
            fuzz::fail("a reply without v/ok: %s", serialise(r, false).c_str());
        if (r.contains("_changed")) {
            r.erase("_changed");
            changed = true;
        }
        if (r["ok"] == false && (!r.contains("error") || !r["error"].is_string()))
            fuzz::fail("a refusal without an error string");
        try {
            const std::string text = serialise(r, strict);
            if (fuzz::verbose()) std::fprintf(stderr, "  -> %s\n", text.c_str());
            if (text.find('\n') != std::string::npos) fuzz::fail("a reply spans lines");
        } catch (const std::exception& e) {
            fuzz::fail("the reply does not serialise: %s", e.what());
        }
    }
    if (changed && reopen) check_reopens(*s.store);
    return 0;
}
