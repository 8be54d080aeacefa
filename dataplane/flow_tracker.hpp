// A worker's SMTP connection tracking: its flow table, the shared per-source limits, and the timeouts.
// The worker hands it the segments classify_outbound marks for tracking (TCP to an SMTP port from a managed
// source) and the inbound segments from an SMTP port; it keeps each flow's state, admits new connections
// against the source's limits, and gives the limit back when a connection closes or times out.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>

#include "dataplane/clock.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/inspect.hpp"
#include "dataplane/policy.hpp"
#include "dataplane/source_table.hpp"

namespace portcullis {

struct FlowTimeouts {
    uint32_t half_open_ms = 30'000;       // SYN seen, handshake not completed
    uint32_t established_ms = 1'800'000;  // idle, open connection
    uint32_t closing_ms = 60'000;         // FIN from one side; also how long a closed flow lingers
};

enum class TrackVerdict : uint8_t {
    Forward,        // send it on
    Refuse,         // a new connection over a limit: answer with policy.action_limit and `reason`
    Untracked,      // a segment of no known flow: the caller checks for a stateless refusal, then pick_up()
    RefuseSession,  // what this segment says breaks the policy: end the session (policy.action_payload,
                    // `reply`)
    Refused,        // a later client segment of a session so ended
};

struct TrackResult {
    TrackVerdict verdict;
    ReplyReason reason;
    const std::string* reply = nullptr;  // RefuseSession: the reply line
    Action action = Action::Smtp;        // RefuseSession: how the client is answered
};

class FlowTracker {
  public:
    // Allocates: control side only. sources is shared by every worker and outlives the tracker; inspector
    // (this worker's, may be null: no inspection) too. worker: this worker's index (its Hyperscan scratch).
    FlowTracker(uint32_t max_flows, const CookieKey& hash_key, SourceTable* sources, FlowTimeouts t,
                Inspector* inspector = nullptr, uint16_t worker = 0);
    // The bytes a tracker for max_flows allocates (itself, its flow table, its per-port counts).
    static uint64_t bytes_for(uint32_t max_flows);

    // An outbound segment classify_outbound marked for tracking; to_relay: its destination is a relay. frame:
    // the segment's bytes (its payload is inspected).
    TrackResult outbound(const Parsed& p, const uint8_t* frame, const Policy& pol, bool to_relay,
                         const Now& now, Counters& c);
    // A TCP segment to a port that is not an SMTP port, which other_port() picked: a segment of a session
    // found earlier by its commands, or a first command (EHLO, HELO, MAIL FROM) that makes it one. Limits
    // apply to such a session, and inspection; an unapproved source's gets what policy.smtp_other_ports says.
    TrackResult outbound_other(const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                               Counters& c);
    // Cheap, per forwarded TCP segment: worth outbound_other()? (a port with such sessions, or a command
    // start)
    bool other_port(const Parsed& p, const uint8_t* frame) const {
        return dyn_ports_.test(p.dport) || looks_like_smtp_command(frame + p.payload_off, p.payload_len);
    }
    bool other_server_port(uint16_t port) const { return dyn_ports_.test(port); }

    // An outbound segment of no known flow that is no stateless refusal's either: tracked from here on, as
    // established, holding a concurrency unit (never refused: it may be a connection opened before a
    // restart).
    void pick_up(const Parsed& p, const Now& now, Counters& c);
    // An inbound segment from an SMTP port: moves its flow's state, if it has one, and reads its payload
    // (the server's replies) when the flow is inspected.
    void inbound(const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now, Counters& c);
    // Expires flows past their timeout; examines `budget` table entries.
    void sweep(const Now& now, uint32_t budget, Counters& c);

    // Benchmarks only: fills the table with n synthetic established flows (keys no real traffic has, holding
    // no limit unit), so that the cost of a big table can be measured. Control side, before the worker
    // starts.
    void prefill(uint32_t n, const Now& now);

    const FlowTable& table() const { return table_; }
    const FlowTimeouts& timeouts() const { return timeouts_; }

  private:
    void update(Flow& f, bool outbound, const Parsed& p, const Now& now, Counters& c);
    TrackResult known(Flow& f, const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                      Counters& c);
    void forget(Flow& f);  // before an entry is erased
    // Counts a new connection against its source's limits: the refusal's reason, or nullopt when admitted
    // (*slot: the unit it holds, or SourceTable::kNone). Monitor mode admits, and counts what it would have
    // refused.
    std::optional<ReplyReason> admit(const IpAddr& src, const Limits& limits, const Policy& pol,
                                     const Now& now, Counters& c, uint32_t* slot);
    void release(Flow& f);  // gives back the source's unit and ends inspection
    TrackResult inspect(Flow& f, const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                        Counters& c);
    uint32_t timeout_ms(FlowState s) const;

    FlowTable table_;
    SourceTable* sources_;
    FlowTimeouts timeouts_;
    Inspector* inspector_;
    uint16_t worker_;
    std::bitset<65536> dyn_ports_;           // server ports with sessions found by their commands
    std::unique_ptr<uint32_t[]> port_refs_;  // how many such sessions each port has
};

}  // namespace portcullis
