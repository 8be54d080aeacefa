// The control plane: one JSON request in, one JSON reply out, for every operator action (the protocol:
// api/protocol.hpp, api/wire.hpp). It owns the services the handlers work with (services.hpp), checks the
// request envelope, and dispatches through the handler table, whose entries live with their concern:
// reports.cpp, approvals.cpp, settings.cpp. A change is durable (store), audited, and published to the
// workers (a new policy snapshot) before its reply is returned (changes.hpp). See docs/control.md for every
// command and its arguments.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "api/wire.hpp"
#include "control/commands/changes.hpp"
#include "control/commands/latency.hpp"
#include "control/commands/services.hpp"

namespace portcullis {

// A reply, and whether the request changed anything (its acknowledgement then waits for the batch's sync).
// Long work (a rules compile) answers later: `later` is called once per pass of the control loop until it
// gives the body; the client's further requests wait behind it, in order.
struct Reply {
    nlohmann::json body;
    bool changed = false;
    Later later;
};

class ControlPlane {
  public:
    // figures.sources may be null (no per-source refusal figures); figures.flows may be null (no live limit
    // figures).
    ControlPlane(const Config& cfg, ApprovalStore& store, PolicyPublisher& publisher, AuditLog& audit,
                 Figures figures);
    // The handlers hold references into it (and a reply that comes later, to its services).
    ControlPlane(const ControlPlane&) = delete;
    ControlPlane& operator=(const ControlPlane&) = delete;

    // Handles one request line inside the server's batch; never throws. A changed reply must not be sent
    // before end_batch() says the batch is durable.
    Reply serve(const std::string& line, const Peer& peer, Session& session);
    // One request as its own batch: the reply, turned into an error if the change could not be saved.
    nlohmann::json handle(const std::string& line, const Peer& peer, Session& session);
    // Group commit around every request read in one pass of the server (changes.hpp).
    // (What the fleet's watch brought is applied first: the batch's commands act on the newest set.)
    void begin_batch() {
        pump_fleet();
        changes_.begin_batch();
    }
    std::string end_batch();
    // Whether a change was made since the last call (a reply that came later: the server asks).
    bool take_changed() { return changes_.take_changed(); }
    // Rebuilds the snapshot when an approval has expired since the last one. Call about once a second.
    void tick(int64_t now) { changes_.tick(now); }
    // Builds and publishes a snapshot from the configuration and the store.
    void republish(int64_t now) { changes_.republish(now); }
    // The compiled inspection rules in force (published with the next snapshot).
    void set_rules(std::shared_ptr<const InspectDb> rules) { rules_.db = std::move(rules); }
    // store = etcd: the fleet's replica, for status, the fleet commands and the audit of its commits.
    void set_fleet(Fleet* fleet);
    // The HTTP API's tokens (api_listen set), for the token commands.
    void set_tokens(TokenStore* tokens);
    // Applies what the fleet's watch brought (audited), and republishes. Every pass of the control loop.
    void pump_fleet();
    // Where `rules reload` compiles (a child process, off the control loop); without one, in-process.
    void set_rules_compiler(RulesCompiler* compiler) { rules_.compiler = compiler; }

    // Handler and commit latencies so far (for /metrics).
    const ControlLatency& latency() const { return latency_; }
    uint64_t policy_generation() const;
    // The record that applies to an address as the event stream names it: {"prefix", "state", "ticket",
    // "source"}, or null.
    nlohmann::json record_for(const IpAddr& a) const;
    // Suspends the approval that lets `a` send (remote_refusals_suspend): its own record, or one made for it
    // with the covering record's terms; audited as the daemon's. "" if nothing grants it, else what was done.
    std::string auto_suspend(const IpAddr& a, const std::string& reason);
    // The reply line of the rule with this id in the rule set in force ("" if none).
    std::string rule_text(uint32_t id) const;

  private:
    nlohmann::json dispatch(const Call& call);
    ControlLatency latency_;

    Figures figures_;
    Baseline baseline_;
    RulesState rules_;
    Changes changes_;
    Services services_;
};

}  // namespace portcullis
