// SMTP session inspection: line assembly, built-in checks, Hyperscan streaming rules (see inspect.hpp).
#include "dataplane/inspect.hpp"

#include <algorithm>
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

}  // namespace

struct Inspector::State {
    hs_stream_t* stream = nullptr;
    const InspectDb* db = nullptr;  // the rule set `stream` was opened with
    const InspectRule* hit = nullptr;
    uint32_t next_seq = 0;
    uint32_t bytes = 0;
    uint16_t line_len = 0;
    bool overlong = false;
    uint32_t counted = 0;  // rule matches that only count
    uint16_t mail_froms = 0;
    uint16_t extra_messages = 0;  // MAIL FROMs after the first, not yet reported
    char line[kMaxLine];
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

uint32_t Inspector::open(uint32_t seq) {
    if (free_states_.empty()) return kNone;
    const uint32_t slot = free_states_.back();
    free_states_.pop_back();
    State& s = states_[slot];
    s.stream = nullptr;
    s.db = nullptr;
    s.hit = nullptr;
    s.next_seq = seq;
    s.bytes = 0;
    s.line_len = 0;
    s.overlong = false;
    s.counted = 0;
    s.mail_froms = 0;
    ++in_use_;
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
    --in_use_;
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
    if (s.overlong) return {};  // its content is unknown: skipped (counted when it overflowed)
    std::string_view line(s.line, s.line_len);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const CommandLine cl = parse_command(line);
    switch (cl.cmd) {
        case SmtpCommand::Helo: {
            c.add(Ctr::inspect_ehlo);
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
            c.add(Ctr::inspect_ended_starttls);
            return {InspectResult::Ended, nullptr, 0};
        case SmtpCommand::Data:
            c.add(Ctr::inspect_ended_data);
            return {InspectResult::Ended, nullptr, 0};
        default:
            return {};
    }
}

InspectResult Inspector::feed(uint32_t slot, const uint8_t* payload, uint32_t len, uint32_t seq,
                              const InspectPolicy& pol, Counters& c) {
    State& s = states_[slot];
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
    // In order only: a retransmission is read from its first new byte; a gap ends the inspection.
    const auto ahead = static_cast<int32_t>(seq - s.next_seq);
    if (ahead > 0) {
        c.add(Ctr::inspect_ended_gap);
        return {InspectResult::Ended, nullptr, 0};
    }
    const auto old = static_cast<uint32_t>(-ahead);
    if (old >= len) return {};
    payload += old;
    len -= old;
    const uint32_t room = pol.budget > s.bytes ? pol.budget - s.bytes : 0;
    const uint32_t take = std::min(len, room);

    InspectResult r;
    uint32_t cut = take;
    for (uint32_t i = 0; i < take; ++i) {
        const uint8_t ch = payload[i];
        if (ch == '\n') {
            r = on_line(s, pol, c);
            s.line_len = 0;
            s.overlong = false;
            if (r.kind != InspectResult::Continue) {
                cut = i + 1;  // what follows DATA or STARTTLS is not read
                break;
            }
        } else if (s.line_len < kMaxLine) {
            s.line[s.line_len++] = static_cast<char>(ch);
        } else if (!s.overlong) {
            s.overlong = true;
            c.add(Ctr::inspect_overlong_lines);
        }
    }
    if (s.stream && cut) {
        s.hit = nullptr;
        const uint32_t counted = s.counted;
        const hs_error_t rc = hs_scan_stream(s.stream, reinterpret_cast<const char*>(payload), cut, 0,
                                             pol.db->scratch[pol.worker], on_match, &s);
        if (s.counted != counted) c.add(Ctr::inspect_rule_counted, s.counted - counted);
        if (s.hit) {
            r = {InspectResult::Violation, &s.hit->reply,
                 s.hit->id};  // an operator's rule outranks the checks
        } else if (rc != HS_SUCCESS) {
            c.add(Ctr::inspect_no_stream);
        }
    }
    s.bytes += cut;
    s.next_seq = seq + old + cut;
    r.messages = s.extra_messages;
    s.extra_messages = 0;
    if (r.kind == InspectResult::Continue && (take < len || s.bytes >= pol.budget)) {
        c.add(Ctr::inspect_ended_budget);
        r.kind = InspectResult::Ended;
    }
    return r;
}

}  // namespace portcullis
