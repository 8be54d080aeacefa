// Reading the cleartext part of an SMTP session and holding it to the sender's approval. The client's bytes
// are read as commands; the server's replies decide what the client's bytes are next, so that the client's
// word alone never ends the reading.
//
// Client side, indifferent to how the bytes were cut into segments:
// - a line assembler (the first kKeep bytes of a line kept, lines up to kMaxLine accepted, in constant memory
//   and linear time) that hands each complete command line to the built-in checks: EHLO/HELO must name a
//   fully qualified host (the approval's host name, where it names one); MAIL FROM must use one of the
//   approval's sending domains, where it names any (the null sender <> always may);
// - Hyperscan in streaming mode with the operator's rules (rules/, control/rules.*): one stream per inspected
//   flow, its state from a pool preallocated per worker (hs_set_stream_allocator), one scratch per worker.
//   Only command text is scanned: message bodies and BDAT chunks are not, and the stream reads the command
//   text on either side of them as one.
// Server side: reply lines (a 3-digit code, '-' continues, ' ' ends; only a short prefix kept), paired in
// order with the client's lines (RFC 2920: replies come in order); reply 0 is the greeting when the inspector
// was opened at the start of the session.
// - STARTTLS and DATA wait for their reply, and the client may send nothing meanwhile (RFC 3207, RFC 2920:
//   they end a pipelined group): STARTTLS 220 ends the reading (TLS follows); DATA 354 starts a message body,
//   passed over to its end (a line of ".", ended by CR LF, LF or CR: of the line ends servers disagree about,
//   the reading takes every one, so that it reads more as commands, never less); any other reply: commands
//   go on.
// - BDAT n [LAST] (RFC 3030) passes over n bytes only when the server advertised CHUNKING in its last EHLO
//   reply; otherwise the bytes after it are commands, as such a server reads them.
// - A first client record that is a TLS ClientHello before the server said anything (implicit TLS, port
//   465) is TLS only once the server answers with a TLS record; until then the client must keep TLS framing.
// - QUIT answered 221 ends the reading.
// A session that must be read (InspectPolicy::must_read: its approval names a host or domains, or rules are
// in force) and can no longer be is Unreadable, for a cause: more than `budget` bytes of commands in one
// transaction, a line past the limits, a sequence gap on either side, client bytes while a reply is awaited,
// broken TLS, or replies that pair with no command. A session that need not be read just ends there.
#pragma once

#include <hs/hs.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/counters.hpp"
#include "dataplane/smtp_command.hpp"
#include "dataplane/unreadable.hpp"

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

// What the inspection of one segment found. Once a verdict other than Continue is given, every later call
// for that slot returns it again (a server-side verdict reaches the caller's client path too).
struct InspectResult {
    enum Kind : uint8_t { Continue, Ended, Violation, Unreadable } kind = Continue;
    const std::string* reply = nullptr;  // Violation, Unreadable: the reply line
    uint32_t rule = 0;                   // Violation by a rule: its id; 0: a built-in check
    uint16_t messages = 0;               // MAIL FROM commands read here after the session's first
    portcullis::Unreadable cause = portcullis::Unreadable::Budget;  // Unreadable: why
};

// The verdict for a session that could not be read for `cause`: Unreadable (counted per cause) when it must
// be read, else Ended (counted as inspect_ended_budget, _gap or _unreadable).
struct InspectPolicy;
InspectResult unreadable(Unreadable cause, const InspectPolicy& pol, Counters& c);

// The policy an inspected flow is held to.
struct InspectPolicy {
    const InspectDb* db = nullptr;         // may be null: built-in checks only
    const ApprovalNames* names = nullptr;  // the source's approval, when it names hosts or domains
    const IpAddr* source = nullptr;        // for observation events
    bool builtin = true;                   // the EHLO/MAIL FROM checks apply (direct-to-MX sessions)
    bool allow_literal = false;            // EHLO [address literal] allowed
    uint32_t budget = 4096;                // bytes of commands per transaction (bodies, chunks not counted)
    uint16_t worker = 0;                   // which scratch

    // The session must be read to its end (or refused): its approval names a host or domains, or rules are
    // in force.
    bool must_read() const {
        return (names && (!names->hostname.empty() || !names->domains.empty())) || (db && db->db);
    }
};

class Inspector {
  public:
    static constexpr uint32_t kNone = UINT32_MAX;
    // A command line's bytes kept (and checked): RFC 5321 4.5.3.1.4 allows 512, Postfix reads 2048
    // (line_length_limit) and extensions lengthen MAIL and RCPT, but the verb, an EHLO name and a MAIL FROM
    // path come first: a line whose verb, name or path does not end inside them is Overlong.
    static constexpr uint32_t kKeep = 1024;
    // The longest command line accepted, before its LF: a SASL response line may be 12288 bytes (RFC 4954
    // 4), plus 512 for a command line's verb and arguments around it. Longer is Overlong as soon as it is
    // (before its LF), in a session that must be read; in one that need not be, it is skipped to its end.
    static constexpr uint32_t kMaxLine = 12288 + 512;
    // A server reply line's bytes kept: the code, the separator and "CHUNKING", and of a 5xx reply the text
    // an abuse reviewer reads ("554 5.7.1 ... blocked using ...").
    static constexpr uint32_t kReplyKeep = 120;

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

    // Starts inspecting a flow whose next client byte has sequence number `client_seq`. server_seq: the
    // server's next sequence number when the session is read from its start (the server has sent nothing
    // yet: its greeting is reply 0); nullopt for a session found mid-way (learnt from the first server
    // segment; replies pair only with the commands read from here). kNone when the pool is empty.
    uint32_t open(uint32_t client_seq, std::optional<uint32_t> server_seq = std::nullopt);
    // Reads one client segment (payload and its sequence number).
    InspectResult feed(uint32_t slot, const uint8_t* payload, uint32_t len, uint32_t seq,
                       const InspectPolicy& pol, Counters& c);
    // Reads one server segment (payload and its sequence number).
    InspectResult feed_server(uint32_t slot, const uint8_t* payload, uint32_t len, uint32_t seq,
                              const InspectPolicy& pol, Counters& c);
    void close(uint32_t slot);

    uint32_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
    uint32_t capacity() const;
    size_t stream_block() const { return block_; }
    // Bytes of state per inspected flow: the line assembler's and the Hyperscan stream's block.
    size_t bytes_per_flow() const;

    struct State;  // one inspected flow's (public for Hyperscan's match callback)

  private:
    InspectResult on_line(State& s, const InspectPolicy& pol, Counters& c);
    InspectResult on_reply(State& s, const InspectPolicy& pol, Counters& c);
    uint32_t commands(State& s, const uint8_t* p, uint32_t n, const InspectPolicy& pol, Counters& c,
                      InspectResult& r);
    uint32_t probe(State& s, const uint8_t* p, uint32_t n, const InspectPolicy& pol, Counters& c,
                   InspectResult& r);
    uint32_t tls_records(State& s, const uint8_t* p, uint32_t n, const InspectPolicy& pol, Counters& c,
                         InspectResult& r);
    void scan(State& s, const uint8_t* p, uint32_t n, const InspectPolicy& pol, Counters& c,
              InspectResult& r);
    void end(State& s);
    void observe(const InspectPolicy& pol, uint8_t kind, std::string_view text, Counters& c);

    std::vector<State> states_;
    std::vector<uint32_t> free_states_;
    size_t block_;
    std::unique_ptr<uint8_t[]> blocks_;
    std::vector<void*> free_blocks_;
    std::atomic<uint32_t> in_use_{0};  // written by the worker, read by the control thread
    rte_ring* observations_ = nullptr;
};

}  // namespace portcullis
