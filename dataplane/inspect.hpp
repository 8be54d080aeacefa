// Reading the cleartext part of an SMTP session, client to server, and holding it to the sender's approval.
//
// Two readers over the same bytes, both indifferent to how the bytes were cut into segments:
// - a line assembler (at most kMaxLine bytes of the current line kept; longer lines are skipped to their end,
//   counted, in constant memory and linear time) that hands each complete command line to the built-in
//   checks: EHLO/HELO must name a fully qualified host (the approval's host name, where it names one); MAIL
//   FROM must use one of the approval's sending domains, where it names any (the null sender <> always may);
// - Hyperscan in streaming mode with the operator's rules (rules/, control/rules.*): one stream per inspected
//   flow, its state from a pool preallocated per worker (hs_set_stream_allocator), one scratch per worker.
// Inspection of a flow ends at STARTTLS (nothing after it is readable), at DATA/BDAT (the message is not ours
// to read), after `inspect_bytes`, at a sequence gap, or with the flow. Bytes after the ending command in the
// same segment are not scanned.
#pragma once

#include <hs/hs.h>
#include <rte_ring.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/counters.hpp"
#include "dataplane/smtp_command.hpp"

namespace portcullis {

enum class RuleTarget : uint8_t { Ehlo, MailFrom, Line };

struct InspectRule {
    uint32_t id = 0;
    RuleTarget target = RuleTarget::Line;
    bool refuse = true;  // false: count only
    std::string reply;   // "550 5.7.1 <message>"
    std::string where;   // "file:line", for reports
};

// A compiled rule set: immutable once built; published inside the policy snapshot. Owns its Hyperscan
// database and one scratch per worker (cloned on the control side, so that a worker never allocates one).
struct InspectDb {
    hs_database_t* db = nullptr;     // streaming; null when there are no rules
    hs_database_t* probe = nullptr;  // block mode: does a first payload on another port open an SMTP session?
    size_t stream_bytes = 0;         // hs_stream_size
    std::vector<hs_scratch_t*> scratch;  // per worker, valid for db and probe
    std::vector<InspectRule> rules;      // by Hyperscan expression id
    std::string source;                  // what it was built from, for status

    InspectDb() = default;
    InspectDb(const InspectDb&) = delete;
    InspectDb& operator=(const InspectDb&) = delete;
    ~InspectDb();
};

// The cheap first test for SMTP on a port that is not an SMTP port: the payload starts like EHLO, HELO or
// MAIL (any case). Only then is the probe database asked.
inline bool looks_like_smtp_command(const uint8_t* payload, uint16_t len) {
    if (len < 6) return false;
    uint32_t w;
    __builtin_memcpy(&w, payload, 4);
    w |= 0x20202020u;  // lower case (and harmless for the other bytes compared)
    constexpr uint32_t ehlo = 'e' | 'h' << 8 | 'l' << 16 | 'o' << 24;
    constexpr uint32_t helo = 'h' | 'e' << 8 | 'l' << 16 | 'o' << 24;
    constexpr uint32_t mail = 'm' | 'a' << 8 | 'i' << 16 | 'l' << 24;
    return (w == ehlo || w == helo || w == mail) && payload[4] == ' ';
}

// Asks the probe database (block mode) whether a first payload is an SMTP command line.
bool probe_smtp(const InspectDb& db, uint16_t worker, const uint8_t* payload, uint16_t len);

// What the inspection of one segment found.
struct InspectResult {
    enum Kind : uint8_t { Continue, Ended, Violation } kind = Continue;
    const std::string* reply = nullptr;  // Violation: the reply line
    uint32_t rule = 0;                   // Violation by a rule: its id; 0: a built-in check
    uint16_t messages = 0;               // MAIL FROM commands read here after the session's first
};

// The policy an inspected flow is held to.
struct InspectPolicy {
    const InspectDb* db = nullptr;         // may be null: built-in checks only
    const ApprovalNames* names = nullptr;  // the source's approval, when it names hosts or domains
    const IpAddr* source = nullptr;        // for observation events
    bool builtin = true;                   // the EHLO/MAIL FROM checks apply (direct-to-MX sessions)
    bool allow_literal = false;            // EHLO [address literal] allowed
    uint32_t budget = 4096;                // client bytes read at most
    uint16_t worker = 0;                   // which scratch
};

class Inspector {
  public:
    static constexpr uint32_t kNone = UINT32_MAX;
    static constexpr uint32_t kMaxLine = 512;  // RFC 5321 4.5.3.1.4: a command line is at most 512 octets

    // max_flows: flows inspected at once; stream_block: bytes of Hyperscan stream state each may use (a rule
    // set needing more is refused when it is loaded). Allocates: control side only.
    Inspector(uint32_t max_flows, size_t stream_block);
    // The bytes the constructor allocates for these arguments.
    static uint64_t bytes_for(uint32_t max_flows, size_t stream_block);
    ~Inspector();
    Inspector(const Inspector&) = delete;
    Inspector& operator=(const Inspector&) = delete;

    // Where EHLO names and MAIL FROM domains read are reported (ObservationEvent elements); may be null.
    void set_observations(rte_ring* ring) { observations_ = ring; }

    // Starts inspecting a flow whose next client byte has sequence number `seq`. kNone when the pool is
    // empty.
    uint32_t open(uint32_t seq);
    // Reads one client segment (payload and its sequence number).
    InspectResult feed(uint32_t slot, const uint8_t* payload, uint32_t len, uint32_t seq,
                       const InspectPolicy& pol, Counters& c);
    void close(uint32_t slot);

    uint32_t in_use() const { return in_use_; }
    uint32_t capacity() const;
    size_t stream_block() const { return block_; }
    // Bytes of state per inspected flow: the line assembler's and the Hyperscan stream's block.
    size_t bytes_per_flow() const;

    struct State;  // one inspected flow's (public for Hyperscan's match callback)

  private:
    InspectResult on_line(State& s, const InspectPolicy& pol, Counters& c);
    void end(State& s);
    void observe(const InspectPolicy& pol, uint8_t kind, std::string_view text, Counters& c);

    std::vector<State> states_;
    std::vector<uint32_t> free_states_;
    size_t block_;
    std::unique_ptr<uint8_t[]> blocks_;
    std::vector<void*> free_blocks_;
    uint32_t in_use_ = 0;
    rte_ring* observations_ = nullptr;
};

}  // namespace portcullis
