// SMTP session inspection: line assembly, built-in checks, Hyperscan streaming rules (see inspect.hpp).
#include "dataplane/inspect.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>

#include <rte_ring_elem.h>

#include "dataplane/events.hpp"

namespace portcullis {

namespace {

const std::string kEhloNotFqdn =
    "550 5.7.1 EHLO/HELO must give this server's fully qualified host name (RFC 5321 4.1.1.1)";
const std::string kEhloLiteral =
    "550 5.7.1 EHLO/HELO with an address literal is not accepted from this network";
const std::string kEhloNotApproved = "550 5.7.1 EHLO name is not the host name approved for this address";
const std::string kMailFromDomain = "550 5.7.1 Sender domain is not approved for this address";

// Hyperscan's stream state comes from the worker's own pool: the allocator Hyperscan calls in hs_open_stream
// pops a block of the Inspector active on this thread. No heap on the packet path.
// initial-exec: this library is linked into executables only, so no __tls_get_addr call on the packet path.
[[gnu::tls_model("initial-exec")]] thread_local std::vector<void*>* t_free = nullptr;
[[gnu::tls_model("initial-exec")]] thread_local size_t t_block = 0;

void* pool_alloc(size_t n) {
    if (!t_free || n > t_block || t_free->empty()) return nullptr;
    void* p = t_free->back();
    t_free->pop_back();
    return p;
}
void pool_free(void* p) {
    if (p && t_free) t_free->push_back(p);
}

int on_match(unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx);

// What the client's next bytes are.
enum class Mode : uint8_t {
    Probe,     // the first bytes of a session read from its start: a TLS ClientHello, or commands?
    Commands,  // command lines
    Await,     // the reply to STARTTLS or DATA is awaited: the client may send nothing
    Body,      // a message body after DATA's 354: passed over to its end
    Chunk,     // a BDAT chunk: passed over
    Tls,       // TLS records, until the server answers
};
enum class Awaited : uint8_t { StartTls, Data };

constexpr uint32_t kNoCommand = UINT32_MAX;

// The reply lines, a name per cause for the counters and the docs: in Unreadable's order.
const std::array<std::string, kUnreadableCauses> kUnreadableReplies = {
    "421 4.7.0 Too many commands in one transaction to inspect, closing; try again later",
    "421 4.7.0 Too many sessions being inspected, closing; try again later",
    "421 4.7.0 Segments of this session were lost, it cannot be inspected; try again",
    "421 4.7.0 Server replies were lost, this session cannot be inspected; try again",
    "421 4.7.0 Server replies do not pair with the commands sent, closing; try again later",
    "500 5.5.2 Line too long to be inspected",
    "503 5.5.1 Commands sent before the reply to STARTTLS or DATA (RFC 2920, RFC 3207)",
    "554 5.7.0 TLS not confirmed by the server, or TLS record framing broken",
};
}  // namespace

struct Inspector::State {
    hs_stream_t* stream = nullptr;
    const InspectDb* db = nullptr;  // the rule set `stream` was opened with
    const InspectRule* hit = nullptr;
    InspectResult verdict;  // once not Continue: given again for every later segment
    uint32_t counted = 0;   // rule matches that only count
    uint16_t mail_froms = 0;
    uint16_t extra_messages = 0;  // MAIL FROMs after the first, not yet reported

    // The client's side.
    uint32_t next_seq = 0;
    uint32_t bytes = 0;       // command bytes in this transaction
    uint32_t line_total = 0;  // the current line's length so far (its first kKeep bytes in `line`)
    uint16_t line_len = 0;
    bool skipping = false;  // the line is past kMaxLine in a session that need not be read: not judged
    bool skip_lf = false;   // a message ended with "." CR: an LF right after belongs to it
    Mode mode = Mode::Commands;
    Awaited awaited = Awaited::Data;
    uint8_t body_at = 1;    // Body: 0 inside a line, 1 at a line's start, 2 after a line-start "."
    uint8_t probe_len = 0;  // Probe: the bytes seen so far
    uint8_t probe_buf[6] = {};
    uint8_t tls_have = 0;  // Tls: bytes of the next record header seen
    uint8_t tls_hdr[5] = {};
    uint32_t tls_left = 0;  // Tls: bytes left in the current record
    bool chunk_last = false;
    uint64_t chunk_left = 0;

    // Pairing: command lines (and message ends) sent, final replies received; reply i answers command i.
    uint32_t cmds = 0;
    uint32_t replies = 0;
    uint32_t ehlo_idx = kNoCommand;   // the EHLO/HELO whose reply is awaited
    uint32_t await_idx = kNoCommand;  // the STARTTLS/DATA whose reply is awaited
    uint32_t quit_idx = kNoCommand;
    bool chunking = false;  // the last EHLO reply advertised CHUNKING

    // The server's side.
    uint32_t srv_next = 0;
    bool srv_known = false;  // srv_next is known
    bool srv_spoke = false;  // the server sent bytes (and they were read as replies)
    uint8_t srv_tls = 0;     // Tls: bytes of the server's first record header checked (2: confirmed)
    uint8_t rl_len = 0;      // the current reply line's kept bytes
    bool rl_cut = false;     // ... and it is longer
    bool rl_first = true;    // the current reply's first line
    bool rl_chunking = false;
    char rl[kReplyKeep] = {};
    char line[kKeep] = {};
};

namespace {
int on_match(unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) {
    auto& s = *static_cast<Inspector::State*>(ctx);
    if (id >= s.db->rules.size()) return 0;
    const InspectRule& r = s.db->rules[id];
    if (!r.refuse) {
        ++s.counted;
        return 0;
    }
    s.hit = &r;
    return 1;  // the first refusing rule decides: stop scanning
}
}  // namespace

InspectDb::~InspectDb() {
    for (auto* s : scratch) hs_free_scratch(s);
    if (db) hs_free_database(db);
    if (probe) hs_free_database(probe);
}

bool probe_smtp(const InspectDb& db, uint16_t worker, const uint8_t* payload, uint16_t len) {
    if (!db.probe || worker >= db.scratch.size()) return false;
    bool hit = false;
    hs_scan(
        db.probe, reinterpret_cast<const char*>(payload), len, 0, db.scratch[worker],
        [](unsigned, unsigned long long, unsigned long long, unsigned, void* ctx) -> int {
            *static_cast<bool*>(ctx) = true;
            return 1;
        },
        &hit);
    return hit;
}

Inspector::Inspector(uint32_t max_flows, size_t stream_block)
    : states_(max_flows), block_((std::max<size_t>(stream_block, 64) + 63) & ~size_t{63}) {
    static std::once_flag once;
    std::call_once(once, [] { hs_set_stream_allocator(pool_alloc, pool_free); });
    free_states_.reserve(max_flows);
    for (uint32_t i = max_flows; i-- > 0;) free_states_.push_back(i);
    blocks_.reset(new (std::align_val_t{64}) uint8_t[block_ * max_flows]);
    free_blocks_.reserve(max_flows);
    for (uint32_t i = max_flows; i-- > 0;) free_blocks_.push_back(blocks_.get() + block_ * i);
}

Inspector::~Inspector() {
    for (auto& s : states_) end(s);
    ::operator delete[](blocks_.release(), std::align_val_t{64});
}

uint64_t Inspector::bytes_for(uint32_t max_flows, size_t stream_block) {
    const uint64_t block = (std::max<size_t>(stream_block, 64) + 63) & ~uint64_t{63};
    // the states, their free list, the stream blocks, their free list
    return uint64_t{max_flows} * (sizeof(State) + sizeof(uint32_t) + block + sizeof(void*));
}

size_t Inspector::bytes_per_flow() const {
    return sizeof(State) + block_;
}
uint32_t Inspector::capacity() const {
    return static_cast<uint32_t>(states_.size());
}

const std::string& unreadable_reply(Unreadable u) {
    return kUnreadableReplies[static_cast<size_t>(u)];
}

InspectResult unreadable(Unreadable cause, const InspectPolicy& pol, Counters& c) {
    InspectResult r;
    if (pol.must_read()) {
        c.add(unreadable_counter(cause));
        r.kind = InspectResult::Unreadable;
        r.reply = &unreadable_reply(cause);
        r.cause = cause;
        return r;
    }
    switch (cause) {
        case Unreadable::Budget:
            c.add(Ctr::inspect_ended_budget);
            break;
        case Unreadable::Gap:
            c.add(Ctr::inspect_ended_gap);
            break;
        case Unreadable::PoolFull:
            c.add(Ctr::inspect_pool_empty);
            break;
        default:
            c.add(Ctr::inspect_ended_unreadable);
            break;
    }
    r.kind = InspectResult::Ended;
    return r;
}

uint32_t Inspector::open(uint32_t client_seq, std::optional<uint32_t> server_seq) {
    if (free_states_.empty()) return kNone;
    const uint32_t slot = free_states_.back();
    free_states_.pop_back();
    State& s = states_[slot];
    s = State{};
    s.next_seq = client_seq;
    if (server_seq) {  // from the start: the greeting is reply 0, and the client may open with TLS
        s.srv_known = true;
        s.srv_next = *server_seq;
        s.cmds = 1;
        s.mode = Mode::Probe;
    }
    in_use_.store(in_use_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return slot;
}

void Inspector::end(State& s) {
    if (s.stream) {
        t_free = &free_blocks_;
        t_block = block_;
        hs_close_stream(s.stream, nullptr, nullptr, nullptr);  // no scratch, no callback: no matches at close
        s.stream = nullptr;
    }
    s.db = nullptr;
}

void Inspector::close(uint32_t slot) {
    if (slot >= states_.size()) return;
    end(states_[slot]);
    free_states_.push_back(slot);
    in_use_.store(in_use_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

void Inspector::observe(const InspectPolicy& pol, uint8_t kind, std::string_view text, Counters& c) {
    if (!observations_ || !pol.source || text.empty()) return;
    ObservationEvent e;
    e.v6addr = pol.source->v6addr;
    e.v4 = pol.source->v4;
    e.v6 = pol.source->v6;
    e.kind = kind;
    e.len = static_cast<uint8_t>(std::min(text.size(), sizeof e.text));
    e.pad = 0;
    std::memcpy(e.text, text.data(), e.len);
    if (rte_ring_enqueue_elem(observations_, &e, sizeof e) != 0) c.add(Ctr::events_lost);
}

InspectResult Inspector::on_line(State& s, const InspectPolicy& pol, Counters& c) {
    const uint32_t idx = s.cmds++;  // every line is answered, the worst of them with 500
    if (s.skipping) return {};      // past kMaxLine, in a session that need not be read: not judged
    const bool cut = s.line_total > kKeep;
    std::string_view line(s.line, s.line_len);
    if (!cut && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    const CommandLine cl = parse_command(line, cut);
    if (!cl.whole) return pol.must_read() ? unreadable(Unreadable::Overlong, pol, c) : InspectResult{};
    switch (cl.cmd) {
        case SmtpCommand::Helo: {
            c.add(Ctr::inspect_ehlo);
            s.ehlo_idx = idx;  // its reply says whether CHUNKING is on
            s.chunking = false;
            observe(pol, kObservedEhlo, cl.arg, c);
            if (!pol.builtin) return {};  // submission: a client's EHLO is not a server's name
            if (is_address_literal(cl.arg)) {
                if (!pol.allow_literal) return {InspectResult::Violation, &kEhloLiteral, 0};
            } else if (!is_fqdn(cl.arg)) {
                return {InspectResult::Violation, &kEhloNotFqdn, 0};
            }
            if (pol.names && !pol.names->hostname.empty() && !same_name(cl.arg, pol.names->hostname))
                return {InspectResult::Violation, &kEhloNotApproved, 0};
            return {};
        }
        case SmtpCommand::MailFrom: {
            c.add(Ctr::inspect_mail_from);
            observe(pol, kObservedMailDomain, cl.arg.empty() ? std::string_view("<>") : domain_of(cl.arg), c);
            if (s.mail_froms++ > 0) ++s.extra_messages;
            if (!pol.builtin) return {};
            if (cl.arg.empty() || !pol.names || pol.names->domains.empty()) return {};  // <> always may
            const std::string_view domain = domain_of(cl.arg);
            for (const auto& d : pol.names->domains)
                if (same_name(domain, d)) return {};
            return {InspectResult::Violation, &kMailFromDomain, 0};
        }
        case SmtpCommand::StartTls:
        case SmtpCommand::Data:
            s.mode = Mode::Await;
            s.awaited = cl.cmd == SmtpCommand::Data ? Awaited::Data : Awaited::StartTls;
            s.await_idx = idx;
            return {};
        case SmtpCommand::Bdat:
            // A chunk only for a server that said CHUNKING (in a reply already seen: a BDAT sent before the
            // EHLO reply came is read on as commands).
            if (!cl.chunk_ok || !s.chunking || s.ehlo_idx != kNoCommand) return {};
            c.add(Ctr::inspect_bodies);
            if (cl.size) {
                s.mode = Mode::Chunk;
                s.chunk_left = cl.size;
                s.chunk_last = cl.last;
            } else if (cl.last) {
                s.bytes = 0;  // the transaction is over
            }
            return {};
        case SmtpCommand::Quit:
            s.quit_idx = idx;
            return {};
        default:
            return {};
    }
}

InspectResult Inspector::on_reply(State& s, const InspectPolicy& pol, Counters& c) {
    std::string_view line(s.rl, s.rl_len);
    if (!s.rl_cut && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto digit = [](char ch) { return ch >= '0' && ch <= '9'; };
    if (line.size() < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]))
        return unreadable(Unreadable::Desync, pol, c);
    const char sep = line.size() > 3 ? line[3] : ' ';
    if ((sep != ' ' && sep != '-') || s.replies == s.cmds) return unreadable(Unreadable::Desync, pol, c);
    const uint32_t idx = s.replies;
    if (s.rl_first && line[0] == '5') {  // a receiver refused: its reply's first line is evidence
        c.add(Ctr::inspect_remote_refusals);
        observe(pol, kObservedRemoteRefusal, line, c);
    }
    if (idx == s.ehlo_idx && !s.rl_first && line.size() >= 12) {
        // An extension line: "250-CHUNKING" or "250 CHUNKING" (not the first line: that names the server).
        const std::string_view kw = line.substr(4);
        bool ok = kw.size() == 8 || is_smtp_space(kw[8]);
        for (size_t i = 0; ok && i < 8; ++i) ok = (kw[i] | 0x20) == "chunking"[i];
        s.rl_chunking |= ok;
    }
    s.rl_first = sep == ' ';
    if (sep == '-') return {};
    ++s.replies;
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    const bool chunking = s.rl_chunking;
    s.rl_chunking = false;
    if (idx == s.ehlo_idx) {
        s.chunking = chunking && code == 250;
        s.ehlo_idx = kNoCommand;
    }
    if (idx == s.quit_idx && code == 221) {
        c.add(Ctr::inspect_ended_quit);
        return {InspectResult::Ended, nullptr, 0};
    }
    if (s.mode == Mode::Await && idx == s.await_idx) {
        s.await_idx = kNoCommand;
        if (s.awaited == Awaited::StartTls && code == 220) {
            c.add(Ctr::inspect_ended_starttls);
            return {InspectResult::Ended, nullptr, 0};
        }
        if (s.awaited == Awaited::Data && code == 354) {
            c.add(Ctr::inspect_bodies);
            s.mode = Mode::Body;
            s.body_at = 1;
        } else {
            s.mode = Mode::Commands;
        }
    }
    return {};
}

void Inspector::scan(State& s, const uint8_t* p, uint32_t n, const InspectPolicy& pol, Counters& c,
                     InspectResult& r) {
    if (!s.stream || !n) return;
    s.hit = nullptr;
    const uint32_t counted = s.counted;
    const hs_error_t rc = hs_scan_stream(s.stream, reinterpret_cast<const char*>(p), n, 0,
                                         pol.db->scratch[pol.worker], on_match, &s);
    if (s.counted != counted) c.add(Ctr::inspect_rule_counted, s.counted - counted);
    if (s.hit) {
        const uint16_t messages = r.messages;
        r = {InspectResult::Violation, &s.hit->reply, s.hit->id};  // an operator's rule outranks the rest
        r.messages = messages;
    } else if (rc != HS_SUCCESS) {
        c.add(Ctr::inspect_no_stream);
    }
}

uint32_t Inspector::commands(State& s, const uint8_t* p, uint32_t n, const InspectPolicy& pol, Counters& c,
                             InspectResult& r) {
    uint32_t i = 0;
    while (i < n) {
        if (s.bytes >= pol.budget) {
            r = unreadable(Unreadable::Budget, pol, c);
            break;
        }
        const uint8_t ch = p[i++];
        ++s.bytes;
        if (ch == '\n') {
            r = on_line(s, pol, c);
            s.line_len = 0;
            s.line_total = 0;
            s.skipping = false;
            if (r.kind != InspectResult::Continue || s.mode != Mode::Commands) break;
            continue;
        }
        if (s.skipping) continue;
        if (s.line_len < kKeep)
            s.line[s.line_len++] = static_cast<char>(ch);
        else if (s.line_total == kKeep)
            c.add(Ctr::inspect_overlong_lines);
        if (++s.line_total > kMaxLine) {
            if (pol.must_read()) {
                r = unreadable(Unreadable::Overlong, pol, c);
                break;
            }
            s.skipping = true;
        }
    }
    scan(s, p, i, pol, c, r);
    return i;
}

uint32_t Inspector::probe(State& s, const uint8_t* p, uint32_t n, const InspectPolicy& pol, Counters& c,
                          InspectResult& r) {
    if (s.probe_len == 0 && (p[0] != 22 || s.srv_spoke)) {
        s.mode = Mode::Commands;  // the common case: the bytes are read as commands where they are
        return 0;
    }
    uint32_t i = 0;
    while (i < n) {
        const uint8_t b = p[i++];
        s.probe_buf[s.probe_len++] = b;
        const uint32_t rec = uint32_t{s.probe_buf[3]} << 8 | s.probe_buf[4];
        bool ok = true;
        switch (s.probe_len) {
            case 1:  // a handshake record
                ok = b == 22;
                break;
            case 2:  // of version 3.x: SSL 3.0, TLS 1.0-1.3
                ok = b == 3;
                break;
            case 3:
                ok = b <= 4;
                break;
            case 5:  // 1..2^14+2048 bytes long
                ok = rec >= 1 && rec <= 18432;
                break;
            case 6:  // holding a ClientHello
                ok = b == 1;
                break;
            default:
                break;
        }
        if (ok && s.probe_len < 6) continue;
        if (ok && !s.srv_spoke) {
            s.mode = Mode::Tls;
            s.tls_left = rec - 1;
            return i;
        }
        s.mode = Mode::Commands;  // not TLS: the bytes held are the first command bytes
        commands(s, s.probe_buf, s.probe_len, pol, c, r);
        return i;
    }
    return i;
}

uint32_t Inspector::tls_records(State& s, const uint8_t* p, uint32_t n, const InspectPolicy& pol, Counters& c,
                                InspectResult& r) {
    uint32_t i = 0;
    while (i < n) {
        if (s.tls_left) {
            const uint32_t k = std::min(s.tls_left, n - i);
            s.tls_left -= k;
            i += k;
            continue;
        }
        s.tls_hdr[s.tls_have++] = p[i++];
        if (s.tls_have < 5) continue;
        s.tls_have = 0;
        const uint32_t rec = uint32_t{s.tls_hdr[3]} << 8 | s.tls_hdr[4];
        if (s.tls_hdr[0] < 20 || s.tls_hdr[0] > 24 || s.tls_hdr[1] != 3 || s.tls_hdr[2] > 4 || rec < 1 ||
            rec > 18432) {
            r = unreadable(Unreadable::Tls, pol, c);
            break;
        }
        s.tls_left = rec;
    }
    return i;
}

namespace {

// A message body: passed over to its end, a line of "." (RFC 5321 4.1.1.4). Any of CR, LF, CR LF ends a line
// here, so that every end some server takes is taken. Returns the bytes used; *ended: the end was found, and
// *cr_end: it was ".\r" (an LF right after belongs to it).
uint32_t body_end(uint8_t& at, const uint8_t* p, uint32_t n, bool* ended, bool* cr_end) {
    const auto eol = [](uint8_t ch) { return ch == '\r' || ch == '\n'; };
    uint32_t i = 0;
    while (i < n) {
        if (at == 2) {  // after a line-start ".": a line end ends the message
            const uint8_t ch = p[i++];
            if (eol(ch)) {
                *ended = true;
                *cr_end = ch == '\r';
                return i;
            }
            at = 0;
            continue;
        }
        // Only a "." can start the end: memchr passes over the rest at memory speed.
        const void* dot = std::memchr(p + i, '.', n - i);
        if (!dot) {
            at = eol(p[n - 1]) ? 1 : 0;
            return n;
        }
        const auto j = static_cast<uint32_t>(static_cast<const uint8_t*>(dot) - p);
        at = (j == i ? at == 1 : eol(p[j - 1])) ? 2 : 0;
        i = j + 1;
    }
    return n;
}

}  // namespace

InspectResult Inspector::feed(uint32_t slot, const uint8_t* payload, uint32_t len, uint32_t seq,
                              const InspectPolicy& pol, Counters& c) {
    State& s = states_[slot];
    if (s.verdict.kind != InspectResult::Continue) return s.verdict;
    c.add(Ctr::inspect_segments);
    // The rule set changed (a reload) or this is the first segment: (re)open the stream with the current one.
    if (pol.db != s.db) {
        end(s);
        s.db = pol.db;
        if (pol.db && pol.db->db) {
            t_free = &free_blocks_;
            t_block = block_;
            if (hs_open_stream(pol.db->db, 0, &s.stream) != HS_SUCCESS) {
                s.stream = nullptr;
                c.add(Ctr::inspect_no_stream);
            }
        }
    }
    // In order only: a retransmission is read from its first new byte; a gap ends the reading.
    const auto ahead = static_cast<int32_t>(seq - s.next_seq);
    if (ahead > 0) return s.verdict = unreadable(Unreadable::Gap, pol, c);
    const auto old = static_cast<uint32_t>(-ahead);
    if (old >= len) return {};
    payload += old;
    len -= old;

    InspectResult r;
    uint32_t i = 0;
    while (i < len && r.kind == InspectResult::Continue) {
        const uint8_t* p = payload + i;
        const uint32_t n = len - i;
        switch (s.mode) {
            case Mode::Probe:
                i += probe(s, p, n, pol, c, r);
                break;
            case Mode::Commands:
                if (s.skip_lf) {
                    s.skip_lf = false;
                    if (*p == '\n') {
                        ++i;
                        break;
                    }
                }
                i += commands(s, p, n, pol, c, r);
                break;
            case Mode::Await:
                r = unreadable(Unreadable::Protocol, pol, c);
                break;
            case Mode::Body: {
                bool ended = false, cr_end = false;
                i += body_end(s.body_at, p, n, &ended, &cr_end);
                if (ended) {  // one reply to come; the next transaction's commands are read afresh
                    s.mode = Mode::Commands;
                    s.skip_lf = cr_end;
                    ++s.cmds;
                    s.bytes = 0;
                }
                break;
            }
            case Mode::Chunk: {
                const auto k = static_cast<uint32_t>(std::min<uint64_t>(s.chunk_left, n));
                s.chunk_left -= k;
                i += k;
                if (!s.chunk_left) {
                    s.mode = Mode::Commands;
                    if (s.chunk_last) s.bytes = 0;
                }
                break;
            }
            case Mode::Tls:
                i += tls_records(s, p, n, pol, c, r);
                break;
        }
    }
    s.next_seq = seq + old + i;
    r.messages = s.extra_messages;
    s.extra_messages = 0;
    if (r.kind != InspectResult::Continue) {
        s.verdict = r;
        s.verdict.messages = 0;
    }
    return r;
}

InspectResult Inspector::feed_server(uint32_t slot, const uint8_t* payload, uint32_t len, uint32_t seq,
                                     const InspectPolicy& pol, Counters& c) {
    State& s = states_[slot];
    if (s.verdict.kind != InspectResult::Continue) return s.verdict;
    c.add(Ctr::inspect_server_segments);
    if (!s.srv_known) {  // a session found mid-way: its server's sequence starts here
        s.srv_known = true;
        s.srv_next = seq;
    }
    const auto ahead = static_cast<int32_t>(seq - s.srv_next);
    if (ahead > 0) return s.verdict = unreadable(Unreadable::ServerGap, pol, c);
    const auto old = static_cast<uint32_t>(-ahead);
    if (old >= len) return {};
    payload += old;
    len -= old;
    s.srv_next = seq + old + len;

    InspectResult r;
    if (s.mode == Mode::Tls) {
        // The client opened with TLS: the server's first bytes must be a TLS record (a handshake or an
        // alert).
        for (uint32_t i = 0; i < len && s.srv_tls < 2; ++i) {
            const uint8_t b = payload[i];
            if (s.srv_tls == 0 ? (b != 22 && b != 21) : b != 3)
                return s.verdict = unreadable(Unreadable::Tls, pol, c);
            ++s.srv_tls;
        }
        if (s.srv_tls == 2) {
            c.add(Ctr::inspect_ended_tls);
            r.kind = InspectResult::Ended;
            s.verdict = r;
        }
        return r;
    }
    s.srv_spoke = true;
    for (uint32_t i = 0; i < len; ++i) {
        const uint8_t ch = payload[i];
        if (ch == '\n') {
            r = on_reply(s, pol, c);
            s.rl_len = 0;
            s.rl_cut = false;
            if (r.kind != InspectResult::Continue) break;
        } else if (s.rl_len < kReplyKeep) {
            s.rl[s.rl_len++] = static_cast<char>(ch);
        } else {
            s.rl_cut = true;
        }
    }
    if (r.kind != InspectResult::Continue) s.verdict = r;
    return r;
}

}  // namespace portcullis
