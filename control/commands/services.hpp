// What a command handler works with: the daemon's services (configuration, store, audit log, publisher,
// rules, the change machinery, the figures reports read), one request as a handler sees it, and the handler
// table entry. Each concern's handlers are free functions in their own file (reports.cpp, approvals.cpp,
// settings.cpp) with their part of the table; control_plane.cpp dispatches through all of them. A new
// command: one name in api/protocol.hpp, one function and one table entry in the file of its concern.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "api/approval.hpp"
#include "control/commands/changes.hpp"
#include "control/config.hpp"
#include "control/daemon/source_stats.hpp"
#include "control/daemon/stats.hpp"
#include "control/policy/publisher.hpp"
#include "control/store/audit.hpp"
#include "control/store/store.hpp"
#include "dataplane/clock.hpp"

namespace portcullis {

class Fleet;
class TokenStore;
class FlowTracker;
class Inspector;
class SourceTable;

// Per-connection state: a bulk import in progress. An import holds one of the daemon's kMaxImports slots
// (released when the session ends, however it ends) and at most kMaxImportBytes / kMaxImportRecords.
struct Session {
    bool importing = false;
    size_t bytes = 0;
    std::vector<std::pair<size_t, Approval>> pending;  // (file line, record)
    std::shared_ptr<void> import_slot;
};

inline constexpr size_t kMaxImports = 2;              // import sessions at once
inline constexpr size_t kMaxImportBytes = 64u << 20;  // of import lines per session
inline constexpr size_t kMaxImportRecords = 250'000;  // per session
inline constexpr uint8_t kWideV4 = 24, kWideV6 = 48;  // approving, banning or relaying wider needs force

struct DaemonInfo {
    uint16_t inside_port = 0, outside_port = 1;
    unsigned workers = 0;
    int64_t started = 0;
};

// The workers' connection tracking, read (relaxed, never written) for `show` and `status`.
struct FlowView {
    const SourceTable* sources = nullptr;
    std::vector<const FlowTracker*> trackers;
    std::vector<const Inspector*> inspectors;  // may hold nulls (inspection off)
    Clock clock;
};

// What the reports read besides the store: the workers' counters, the daemon's facts, the per-source refusal
// figures (may be null) and the live flow tables (may be null).
struct Figures {
    std::function<Totals()> counters;
    DaemonInfo info;
    const SourceStats* sources = nullptr;
    const FlowView* flows = nullptr;
    // allow_test_hooks: makes worker w stall for ms (test_stall_worker); null otherwise.
    std::function<bool(unsigned w, uint32_t ms)> stall_worker{};
};

// The configuration file's approvals, as records (the store's own record for a prefix wins).
using Baseline = std::map<Prefix, Approval, PrefixLess>;

struct Services {
    const Config& cfg;
    ApprovalStore& store;
    AuditLog& audit;
    PolicyPublisher& publisher;
    RulesState& rules;
    Changes& changes;
    const Baseline& baseline;
    const Figures& figures;
    std::shared_ptr<size_t> imports;  // import sessions holding a slot
    Fleet* fleet = nullptr;           // store = etcd: the fleet's replica (null: local)
    TokenStore* tokens = nullptr;     // the HTTP API's tokens (null: api_listen is off)
};

// A reply that comes later (a rules compile): called once per pass of the control loop until it gives it.
using Later = std::function<std::optional<nlohmann::json>()>;

// One request as a handler sees it. A handler whose reply comes later returns ok_reply() and sets `later`.
struct Call {
    const std::string& cmd;
    const nlohmann::json& req;
    const Peer& peer;
    Session& session;
    Later& later;
};

struct Handler {
    const char* name;
    nlohmann::json (*run)(Services&, const Call&);  // the whole reply (api/wire.hpp's envelope)
};

// Each concern's part of the handler table.
std::span<const Handler> report_handlers();     // reports.cpp: status, stats, list, show, export
std::span<const Handler> approval_handlers();   // approvals.cpp: approve .. unban, import
std::span<const Handler> settings_handlers();   // settings.cpp: managed, relay, monitor, limits, rules
std::span<const Handler> fleet_handlers();      // fleet.cpp: fleet init, fleet adopt
std::span<const Handler> lifecycle_handlers();  // lifecycle.cpp: request, requests, deny, complaint
std::span<const Handler> token_handlers();      // tokens.cpp: token_add, token_list, token_revoke

// The DNS check of a record's host name before finish(record, the store's record now) writes it
// (dns_check.cpp): at once when there is nothing to check (no host name, a prefix, --skip-dns-check,
// dns_check = false), else later (the call's `later`), with record.dns set to what DNS said.
nlohmann::json with_dns_check(Services& s, const Call& c, Approval a, const Approval* existing,
                              std::function<nlohmann::json(Approval, const Approval* existing)> finish);
// "" or why require_fcrdns (or the request's require_fcrdns) refuses this approval, its check done.
std::string dns_refusal(const Services& s, const nlohmann::json& req, const Approval& a);

// Queries several concerns share (services.cpp).
std::vector<Prefix> managed_now(const Services& s);  // the configuration's, with the store's overlay
// "" or why granting or banning p is dangerous enough to need the request's "force": a very short prefix, or
// one covering a whole managed prefix.
std::string danger(const Services& s, const Prefix& p);
// The most specific record covering p among the store's and the configuration's (nullptr if none), and which.
std::pair<const Approval*, const char*> effective_record(const Services& s, const Prefix& p);

}  // namespace portcullis
