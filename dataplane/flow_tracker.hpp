// A worker's SMTP connection tracking: its flow table, the shared per-source limits, the timeouts, and the
// TCP normalisation that keeps the gateway's view of a session the same as the server's.
//
// The worker hands it the segments classify_outbound marks for tracking (TCP to an SMTP port from a managed
// source) and the inbound segments from an SMTP port. What it keeps, and what an attacker must pay for it:
// - A SYN makes a half-open entry and nothing else (its source's limits are only peeked at): spoofed SYNs
//   never complete a handshake, so they never claim a source slot or an inspector. While the table is 3/4
//   full a SYN makes nothing at all: the entry is made from the server's SYN-ACK, and when the table is full
//   the oldest unconfirmed entries make room for new ones (early drop).
// - The handshake is confirmed by the client's ACK of the server's SYN-ACK (its exact sequence number): only
//   then is the connection admitted against its source's limits (a refusal there ends the session with the
//   limit's reply) and read.
// - Client segments are normalised: a wrong checksum, a lower TTL than the SYN's, an old timestamp (PAWS), an
//   MD5/AO signature, data beyond the server's window or ahead of the next in-order byte are dropped (the
//   server would discard them, or the client sends them again in order); a RST counts only at the exact next
//   sequence number (RFC 5961); data on a SYN (TCP Fast Open) is removed.
// - A segment of no known connection on an SMTP port is reset both ways: the gateway cannot vouch for it.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>

#include "dataplane/clock.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/flow_timeouts.hpp"
#include "dataplane/inspect.hpp"
#include "dataplane/policy.hpp"
#include "dataplane/source_table.hpp"
#include "dataplane/tcp_segment.hpp"
#include "dataplane/verdict.hpp"

namespace portcullis {

class FlowTracker {
  public:
    // Allocates: control side only. sources is shared by every worker and outlives the tracker; inspector
    // (this worker's, may be null: no inspection) too. worker: this worker's index (its Hyperscan scratch).
    // half_open_cap: half-open connections one source may hold in this worker while the table is under
    // pressure (3/4 full); 0: no cap.
    FlowTracker(uint32_t max_flows, const CookieKey& hash_key, SourceTable* sources, FlowTimeouts t,
                Inspector* inspector = nullptr, uint16_t worker = 0, uint32_t half_open_cap = 64);
    // The bytes a tracker for max_flows allocates (itself, its flow table, its per-port and half-open
    // counts).
    static uint64_t bytes_for(uint32_t max_flows);

    // An outbound segment classify_outbound marked for tracking; to_relay: its destination is a relay. frame:
    // the segment's bytes (its payload is inspected).
    Outcome outbound(const Parsed& p, const uint8_t* frame, const Policy& pol, bool to_relay, const Now& now,
                     Counters& c);
    // A TCP segment to a port that is not an SMTP port, which other_port() picked: a segment of a session
    // found earlier by its commands, or a first command (EHLO, HELO, MAIL FROM) that makes it one. Such a
    // session is a Candidate until the server acknowledges its bytes; then it is admitted against its
    // source's limits. An unapproved source's gets what policy.smtp_other_ports says.
    Outcome outbound_other(const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                           Counters& c);
    // Cheap, per forwarded TCP segment: worth outbound_other()? (a port with such sessions, or a command
    // start)
    bool other_port(const Parsed& p, const uint8_t* frame) const {
        return dyn_ports_.test(p.dport) || looks_like_smtp_command(frame + p.payload_off, p.payload_len);
    }
    bool other_server_port(uint16_t port) const { return dyn_ports_.test(port); }

    // An outbound segment of no known flow that is no stateless refusal's either. Returns what to do: reset
    // both ways (RefuseSession with Action::Rst), or Forward (a RST; monitor mode).
    Outcome unknown(const Parsed& p, const Policy& pol, Counters& c);
    // An inbound segment from an SMTP port: moves its flow's state, if it has one (a SYN-ACK makes one when
    // the SYN made none). False: drop it (a server segment out of order in a session being read; counted).
    bool inbound(const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now, Counters& c);
    // Expires flows past their timeout; examines `budget` table entries.
    void sweep(const Now& now, uint32_t budget, Counters& c);

    // Benchmarks only: fills the table with n synthetic established flows (keys no real traffic has, holding
    // no limit unit), so that the cost of a big table can be measured. Control side, before the worker
    // starts.
    void prefill(uint32_t n, const Now& now);

    const FlowTable& table() const { return table_; }
    const FlowTimeouts& timeouts() const { return timeouts_; }

  private:
    Outcome known(Flow& f, const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                  Counters& c);
    // The client segment's checks against what the server would accept; Forward when it may go on.
    Outcome normalise(Flow& f, const Parsed& p, const uint8_t* frame, const TcpSegment& seg, Counters& c);
    // The handshake (or, for a Candidate, the server's acknowledgement) is seen: admit the connection. A
    // refusal, or Monitored for one monitor mode lets through.
    std::optional<Outcome> confirm(Flow& f, const IpAddr& client, const Policy& pol, const Now& now,
                                   Counters& c);
    void forget(Flow& f);  // before an entry is erased
    void learn_synack(Flow& f, const TcpSegment& seg, const Now& now);
    void close(Flow& f, Counters& c);  // a FIN pair or an accepted RST: holds nothing from now on
    void leave_half_open(Flow& f);
    // Takes the connection against its source's limits (*slot: the source's unit, or kNone). The reason it
    // is over one, if it is: refused, except in monitor mode, where it is admitted all the same (the caller
    // reports the would-be refusal) and *slot kept.
    std::optional<ReplyReason> admit(const IpAddr& src, const Limits& limits, const Policy& pol,
                                     const Now& now, Counters& c, uint32_t* slot);
    void release(Flow& f);  // gives back the source's unit and ends inspection
    Outcome inspect(Flow& f, const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                    Counters& c);
    Outcome end_session(Flow& f, uint32_t seq, ReplyReason reason, const std::string* reply, Action action,
                        uint32_t rule = 0);
    // Starts reading a flow (from its start when server_seq is known); a refusal when the inspector pool is
    // empty and the flow must be read.
    std::optional<Outcome> open_inspection(Flow& f, const IpAddr& client, const Policy& pol,
                                           std::optional<uint32_t> server_seq, Counters& c);
    uint32_t timeout_ms(FlowState s) const;
    const Limits& limits_for(const Flow& f, const IpAddr& src, const Policy& pol) const {
        return (f.ctl & flowctl::kRelay) ? pol.relay_limits
                                         : pol.limit_overrides.find(src, pol.default_limits);
    }

    FlowTable table_;
    SourceTable* sources_;
    FlowTimeouts timeouts_;
    Inspector* inspector_;
    uint16_t worker_;
    uint32_t half_open_cap_;
    std::bitset<65536> dyn_ports_;           // server ports with sessions found by their commands
    std::unique_ptr<uint32_t[]> port_refs_;  // how many such sessions each port has
    std::unique_ptr<uint16_t[]> half_open_;  // half-open connections per source hash cell (65536 cells)
    // Candidates reading with an inspector slot, oldest first (a ring of keys; entries of candidates since
    // confirmed or gone are skipped). They may hold at most a quarter of the pool: a flood of one-segment
    // "sessions" pushes out its own oldest, never the sessions whose handshakes were seen.
    void evict_candidate(const Now& now, Counters& c);
    std::unique_ptr<FlowKey[]> candidates_;
    uint32_t candidate_cap_ = 0, candidate_head_ = 0, candidate_count_ = 0;
};

}  // namespace portcullis
