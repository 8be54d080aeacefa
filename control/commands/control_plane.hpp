// The control plane: one JSON request in, one JSON reply out, for every operator action (the protocol:
// api/protocol.hpp, api/wire.hpp). A change is durable (store), audited, and published to the workers (a new
// policy snapshot) before its reply is returned. Each command is one entry of the handler table
// (control_plane.cpp) and one handler, in the file of its concern: reports.cpp, approvals.cpp, settings.cpp.
// See docs/control.md for every command and its arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "api/wire.hpp"
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

class RulesCompiler;
struct RulesResult;

// Per-connection state: a bulk import in progress. An import holds one of the daemon's kMaxImports slots
// (released when the session ends, however it ends) and at most kMaxImportBytes / kMaxImportRecords.
struct Session {
    bool importing = false;
    size_t bytes = 0;
    std::vector<std::pair<size_t, Approval>> pending;  // (file line, record)
    std::shared_ptr<void> import_slot;
};

// A reply, and whether the request changed anything (its acknowledgement then waits for the batch's sync).
// Long work (a rules compile) answers later: `later` is called once per pass of the control loop until it
// gives the body; the client's further requests wait behind it, in order.
struct Reply {
    nlohmann::json body;
    bool changed = false;
    std::function<std::optional<nlohmann::json>()> later;
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

    static constexpr size_t kMaxImports = 2;              // import sessions at once
    static constexpr size_t kMaxImportBytes = 64u << 20;  // of import lines per session
    static constexpr size_t kMaxImportRecords = 250'000;  // per session
    static constexpr uint8_t kWideV4 = 24, kWideV6 = 48;  // approving or banning wider needs force

    // Handles one request line inside the server's batch; never throws. A changed reply must not be sent
    // before end_batch() says the batch is durable.
    Reply serve(const std::string& line, const Peer& peer, Session& session);
    // One request as its own batch: the reply, turned into an error if the change could not be saved.
    nlohmann::json handle(const std::string& line, const Peer& peer, Session& session);
    // Group commit around every request read in one pass of the server: one journal sync, one audit sync
    // and one snapshot publication for all of them. end_batch() returns "" or why the changes are not saved
    // (then every change of the batch is undone, on disk and in memory, and none is published).
    void begin_batch();
    std::string end_batch();
    // Rebuilds the snapshot when an approval has expired since the last one. Call about once a second.
    void tick(int64_t now);
    // Builds and publishes a snapshot from the configuration and the store.
    void republish(int64_t now);
    // The compiled inspection rules in force (published with the next snapshot).
    void set_rules(std::shared_ptr<const InspectDb> rules) { rules_ = std::move(rules); }
    // Where `rules reload` compiles (a child process, off the control loop); without one, in-process.
    void set_rules_compiler(RulesCompiler* compiler) { compiler_ = compiler; }

  private:
    // One request as a handler sees it.
    struct Call {
        const std::string& cmd;
        const nlohmann::json& req;
        const Peer& peer;
        Session& session;
    };
    struct Handler {
        const char* name;
        nlohmann::json (*run)(ControlPlane&, const Call&);  // the whole reply (api/wire.hpp's envelope)
    };
    static const std::vector<Handler>& handlers();
    nlohmann::json dispatch(const std::string& cmd, const nlohmann::json& req, const Peer& peer,
                            Session& session);
    nlohmann::json approve(const nlohmann::json& req, const Peer& peer);
    nlohmann::json set_state(const std::string& cmd, const nlohmann::json& req, const Peer& peer);
    nlohmann::json unban(const nlohmann::json& req, const Peer& peer);
    nlohmann::json list(const nlohmann::json& req) const;
    nlohmann::json show(const nlohmann::json& req) const;
    nlohmann::json status() const;
    nlohmann::json stats() const;
    nlohmann::json export_records() const;
    nlohmann::json flow_status() const;
    nlohmann::json import_begin(Session& session);
    nlohmann::json import_chunk(const nlohmann::json& req, Session& session);
    nlohmann::json import_commit(const nlohmann::json& req, const Peer& peer, Session& session);
    nlohmann::json monitor(const nlohmann::json& req, const Peer& peer);
    nlohmann::json limits(const nlohmann::json& req, const Peer& peer);
    nlohmann::json rules(const nlohmann::json& req, const Peer& peer);
    nlohmann::json describe_rules() const;
    nlohmann::json finish_reload(const RulesResult& loaded, const nlohmann::json& req, const Peer& peer);
    nlohmann::json live_limits(const IpAddr& a, bool relay) const;
    nlohmann::json overlay(const std::string& set, const nlohmann::json& req, const Peer& peer);
    // A durable, audited, published change of one record.
    nlohmann::json commit(const std::string& cmd, const nlohmann::json& req, const Peer& peer,
                          const Approval* before, const Approval& after);
    // A store mutation and its audit line as one change: both or neither. "" or why not (audited).
    std::string durable(const std::string& cmd, const nlohmann::json& args, const Peer& peer,
                        const nlohmann::json& before, const std::function<std::string()>& mutate,
                        const std::function<nlohmann::json()>& after);
    void publish_change();  // marks the reply as a change; publishes at the end of the batch
    // "" or why granting or banning p is dangerous enough to need the request's "force": a very short
    // prefix, or one covering a whole managed prefix.
    std::string danger(const Prefix& p) const;
    std::vector<Prefix> managed_now() const;
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
    RulesCompiler* compiler_ = nullptr;
    int64_t next_expiry_ = 0;
    bool batch_ = false, dirty_ = false, changed_ = false;
    std::function<std::optional<nlohmann::json>()> later_;  // set by a handler whose reply comes later
    off_t audit_mark_ = 0;
    std::shared_ptr<size_t> imports_ = std::make_shared<size_t>(0);  // import sessions holding a slot
    std::map<Prefix, Approval, PrefixLess> baseline_;  // the config file's approvals, as records
};

}  // namespace portcullis
