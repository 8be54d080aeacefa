// The control protocol's commands: one JSON request in, one JSON reply out, for every operator action.
// Requests are {"v": 1, "cmd": "...", ...}; replies {"v": 1, "ok": true, ...} or {"v": 1, "ok": false,
// "error": "one line"}. A change is durable (store), audited, and published to the workers (a new policy
// snapshot) before its reply is returned. See docs/control.md for every command and its arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/audit.hpp"
#include "control/config.hpp"
#include "control/publisher.hpp"
#include "control/source_stats.hpp"
#include "control/stats.hpp"
#include "control/store.hpp"
#include "dataplane/clock.hpp"
#include "dataplane/flow_tracker.hpp"
#include "dataplane/source_table.hpp"

namespace portcullis {

inline constexpr int kProtocolVersion = 1;

// Per-connection state: a bulk import in progress.
struct Session {
    bool importing = false;
    std::vector<std::pair<size_t, Approval>> pending;  // (file line, record)
};

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

class ControlPlane {
  public:
    // sources may be null (no per-source refusal figures); flows may be null (no live limit figures).
    ControlPlane(const Config& cfg, ApprovalStore& store, PolicyPublisher& publisher, AuditLog& audit,
                 std::function<Totals()> counters, DaemonInfo info, const SourceStats* sources = nullptr,
                 const FlowView* flows = nullptr);

    // Handles one request line; never throws. A reply to a request that changed something carries the
    // internal key "_changed" (the server strips it) so that a failed batch sync can turn it into an error.
    nlohmann::json handle(const std::string& line, const Peer& peer, Session& session);
    // Group commit around every request read in one pass of the server: one journal sync, one audit sync
    // and one snapshot publication for all of them. end_batch() returns "" or why the changes are not saved.
    void begin_batch();
    std::string end_batch();
    // Rebuilds the snapshot when an approval has expired since the last one. Call about once a second.
    void tick(int64_t now);
    // Builds and publishes a snapshot from the configuration and the store.
    void republish(int64_t now);
    // The compiled inspection rules in force (published with the next snapshot).
    void set_rules(std::shared_ptr<const InspectDb> rules) { rules_ = std::move(rules); }

  private:
    nlohmann::json dispatch(const std::string& cmd, const nlohmann::json& req, const Peer& peer,
                            Session& session);
    nlohmann::json approve(const nlohmann::json& req, const Peer& peer);
    nlohmann::json set_state(const std::string& cmd, const nlohmann::json& req, const Peer& peer);
    nlohmann::json list(const nlohmann::json& req) const;
    nlohmann::json show(const nlohmann::json& req) const;
    nlohmann::json status() const;
    nlohmann::json flow_status() const;
    nlohmann::json import_chunk(const nlohmann::json& req, Session& session);
    nlohmann::json import_commit(const Peer& peer, Session& session);
    nlohmann::json monitor(const nlohmann::json& req, const Peer& peer);
    nlohmann::json limits(const nlohmann::json& req, const Peer& peer);
    nlohmann::json rules(const nlohmann::json& req, const Peer& peer);
    nlohmann::json live_limits(const IpAddr& a, bool relay) const;
    nlohmann::json overlay(const std::string& set, const nlohmann::json& req, const Peer& peer);
    // A durable, audited, published change of one record.
    nlohmann::json commit(const std::string& cmd, const nlohmann::json& req, const Peer& peer,
                          const Approval* before, const Approval& after);
    void publish_change();  // now, or at the end of the batch
    // The most specific record covering p among the store's and the config's baseline (nullptr if none).
    std::pair<const Approval*, const char*> effective_record(const Prefix& p) const;

    const Config& cfg_;
    ApprovalStore& store_;
    PolicyPublisher& publisher_;
    AuditLog& audit_;
    std::function<Totals()> counters_;
    DaemonInfo info_;
    const SourceStats* sources_;
    const FlowView* flows_;
    std::shared_ptr<const InspectDb> rules_;
    int64_t next_expiry_ = 0;
    bool batch_ = false, dirty_ = false;
    std::map<Prefix, Approval, PrefixLess> baseline_;  // the config file's approvals, as records
};

}  // namespace portcullis
