// SMTP connection tracking, TCP normalisation and limit admission (see flow_tracker.hpp).
#include "dataplane/flow_tracker.hpp"

#include <algorithm>
#include <optional>

namespace portcullis {

namespace {

ReplyReason reason_of(Admit a) {
    switch (a) {
        case Admit::Concurrency:
            return ReplyReason::Concurrency;
        case Admit::Rate:
            return ReplyReason::Rate;
        case Admit::Daily:
            return ReplyReason::Daily;
        case Admit::Ok:
        case Admit::NoSlot:
            break;
    }
    return ReplyReason::Busy;
}

Ctr counter_of(Admit a) {
    switch (a) {
        case Admit::Concurrency:
            return Ctr::refused_concurrency;
        case Admit::Rate:
            return Ctr::refused_rate;
        case Admit::Daily:
            return Ctr::refused_daily;
        case Admit::Ok:
        case Admit::NoSlot:
            break;
    }
    return Ctr::source_table_full;
}

// What an inspected flow is held to; client: the flow's client (inside) address.
InspectPolicy inspect_policy(const Flow& f, const IpAddr& client, const Policy& pol, uint16_t worker) {
    InspectPolicy ip;
    ip.db = pol.rules.get();
    ip.names = (f.ctl & flowctl::kDirect) ? pol.names.find(client) : nullptr;
    ip.builtin = (f.ctl & flowctl::kDirect) != 0;
    ip.allow_literal = pol.ehlo_allow_literal;
    ip.budget = pol.inspect_bytes;
    ip.worker = worker;
    ip.source = &client;
    return ip;
}

constexpr Outcome kPass{Verdict::Forward, ReplyReason::Unapproved};
constexpr Outcome kUnacceptable{Verdict::Unacceptable, ReplyReason::Unapproved};

bool pure_ack(const Parsed& p) {
    return p.payload_len == 0 && !(p.tcp_flags & (tcpflag::SYN | tcpflag::FIN | tcpflag::RST));
}

}  // namespace

FlowTracker::FlowTracker(uint32_t max_flows, const CookieKey& hash_key, SourceTable* sources, FlowTimeouts t,
                         Inspector* inspector, uint16_t worker, uint32_t half_open_cap)
    : table_(max_flows, hash_key),
      sources_(sources),
      timeouts_(t),
      inspector_(inspector),
      worker_(worker),
      half_open_cap_(half_open_cap),
      port_refs_(new uint32_t[65536]()),
      half_open_(new uint16_t[65536]()) {
    if (inspector_) {
        candidate_cap_ = std::max<uint32_t>(1, inspector_->capacity() / 4);
        candidates_ = std::make_unique<FlowKey[]>(candidate_cap_);
    }
}

void FlowTracker::evict_candidate(const Now& now, Counters& c) {
    while (candidate_count_) {
        const FlowKey k = candidates_[candidate_head_];
        candidate_head_ = (candidate_head_ + 1) % candidate_cap_;
        --candidate_count_;
        Flow* f = table_.find(k, table_.hash(k));
        if (!f || f->state != FlowState::Candidate || f->inspect == Inspector::kNone) continue;  // moved on
        // Its reading cannot go on: the session is ended (its next client segment is reset), fail closed.
        release(*f);
        f->ctl |= flowctl::kRefused;
        f->expire_ms = now.ms + timeouts_.closing_ms;
        c.add(Ctr::candidates_evicted);
        return;
    }
}

uint64_t FlowTracker::bytes_for(uint32_t max_flows) {
    return sizeof(FlowTracker) + FlowTable::slots_for(max_flows) * sizeof(Flow) + 65536 * sizeof(uint32_t) +
           65536 * sizeof(uint16_t);
}

std::optional<ReplyReason> FlowTracker::admit(const IpAddr& src, const Limits& limits, const Policy& pol,
                                              const Now& now, Counters& c, uint32_t* slot) {
    const uint64_t id = sources_->id_of(src);
    bool reclaimed = false;
    *slot = sources_->acquire(id, now.us, now.day, &reclaimed);
    if (reclaimed) c.add(Ctr::source_slots_reclaimed);
    const Admit a = *slot == SourceTable::kNone
                        ? Admit::NoSlot
                        : sources_->admit(*slot, id, limits, now.us, now.day, !pol.monitor);
    if (a == Admit::Ok) return std::nullopt;
    c.add(counter_of(a));
    if (!pol.monitor) {
        *slot = SourceTable::kNone;
        return reason_of(a);
    }
    if (a == Admit::NoSlot) *slot = SourceTable::kNone;  // tracked without a unit
    c.add(Ctr::monitor_passed);
    return reason_of(a);  // monitor mode: admitted all the same, the caller reports the would-be refusal
}

void FlowTracker::leave_half_open(Flow& f) {
    if (!(f.ctl & flowctl::kHalfOpen)) return;
    f.ctl &= static_cast<uint8_t>(~flowctl::kHalfOpen);
    if (half_open_[f.ho_index]) --half_open_[f.ho_index];
}

void FlowTracker::forget(Flow& f) {
    release(f);
    leave_half_open(f);
    if ((f.ctl & flowctl::kOtherPort) && port_refs_[f.key.sport] && --port_refs_[f.key.sport] == 0)
        dyn_ports_.reset(f.key.sport);
    f.ctl &= static_cast<uint8_t>(~flowctl::kOtherPort);
}

void FlowTracker::release(Flow& f) {
    if (f.src_slot != SourceTable::kNone) sources_->release(f.src_slot);
    f.src_slot = SourceTable::kNone;
    if (f.inspect != Inspector::kNone) {
        inspector_->close(f.inspect);
        f.inspect = Inspector::kNone;
    }
}

void FlowTracker::close(Flow& f, Counters& c) {
    if (f.state == FlowState::Closed) return;
    release(f);
    leave_half_open(f);
    f.state = FlowState::Closed;
    c.add(Ctr::flows_closed);
}

uint32_t FlowTracker::timeout_ms(FlowState s) const {
    switch (s) {
        case FlowState::SynSent:
        case FlowState::SynRecv:
        case FlowState::Candidate:
            return timeouts_.half_open_ms;
        case FlowState::Established:
            return timeouts_.established_ms;
        default:
            return timeouts_.closing_ms;
    }
}

std::optional<Outcome> FlowTracker::open_inspection(Flow& f, const IpAddr& client, const Policy& pol,
                                                    std::optional<uint32_t> server_seq, Counters& c) {
    if (!inspector_ || !pol.inspect) return std::nullopt;
    f.ctl |= flowctl::kInspected;
    f.inspect = inspector_->open(f.client_next, server_seq);
    if (f.inspect != Inspector::kNone) {
        c.add(Ctr::inspect_flows);
        return std::nullopt;
    }
    const InspectResult r = unreadable(Unreadable::PoolFull, inspect_policy(f, client, pol, worker_), c);
    if (r.kind != InspectResult::Unreadable) return std::nullopt;  // need not be read: goes on unread
    c.add(Ctr::refused_payload);
    if (pol.monitor) {
        c.add(Ctr::monitor_passed);
        return Outcome{Verdict::Monitored, ReplyReason::Payload};
    }
    return end_session(f, f.client_next, ReplyReason::Payload, r.reply,
                       pol.action_unreadable[static_cast<size_t>(Unreadable::PoolFull)]);
}

Outcome FlowTracker::end_session(Flow& f, uint32_t seq, ReplyReason reason, const std::string* reply,
                                 Action action, uint32_t rule) {
    f.ctl |= flowctl::kRefused;
    f.server_seq = seq;
    release(f);  // the session is over on both sides: it no longer counts against its source
    return {Verdict::RefuseSession, reason, action, false, rule, reply};
}

std::optional<Outcome> FlowTracker::confirm(Flow& f, const IpAddr& client, const Policy& pol, const Now& now,
                                            Counters& c) {
    leave_half_open(f);
    f.state = FlowState::Established;
    f.expire_ms = now.ms + timeouts_.established_ms;
    uint32_t slot = SourceTable::kNone;
    const auto refused = admit(client, limits_for(f, client, pol), pol, now, c, &slot);
    if (refused && !pol.monitor) {
        // Over a limit at the handshake (its SYN found nothing against it, but others got here first).
        const Outcome r = end_session(f, f.client_next, *refused, &pol.replies[static_cast<size_t>(*refused)],
                                      pol.action_limit);
        c.add(Ctr::refused_at_handshake);
        return r;
    }
    f.src_slot = slot;
    c.add(Ctr::flows_opened);
    // Read from the start: the server's greeting, next, is its reply 0.
    std::optional<Outcome> r;
    if (!(f.ctl & flowctl::kOtherPort)) r = open_inspection(f, client, pol, f.server_next, c);
    if (refused && (!r || r->verdict == Verdict::Monitored)) return Outcome{Verdict::Monitored, *refused};
    return r;
}

Outcome FlowTracker::normalise(Flow& f, const Parsed& p, const uint8_t* frame, const TcpSegment& seg,
                               Counters& c) {
    if (pure_ack(p)) return kPass;  // changes nothing the gateway reads
    if (!tcp_checksums_ok(frame, p)) {
        c.add(Ctr::tcp_bad_checksum);
        return kUnacceptable;
    }
    if (seg.opt.signed_) {
        c.add(Ctr::tcp_signed);
        return kUnacceptable;
    }
    if (seg.ttl < f.ttl) {
        c.add(Ctr::tcp_ttl_low);
        return kUnacceptable;
    }
    if ((f.tcp & tcpctl::kTs) && (f.tcp & tcpctl::kClientTs) && seg.opt.has_ts &&
        seq_lt(seg.opt.tsval, f.ts_recent)) {
        c.add(Ctr::tcp_paws);
        return kUnacceptable;
    }
    if (p.tcp_flags & tcpflag::RST) return kPass;  // judged by the caller
    const uint32_t span = p.payload_len + ((p.tcp_flags & tcpflag::FIN) ? 1u : 0u);
    if (!span) return kPass;
    if (seq_lt(f.client_next, seg.seq)) {  // a hole before it: sent again in order, read then
        c.add(Ctr::tcp_out_of_order);
        return kUnacceptable;
    }
    const uint32_t end = seg.seq + span;
    if ((f.tcp & tcpctl::kServerSeq) && seq_lt(f.server_edge, end) && seq_lt(f.client_next, end)) {
        c.add(Ctr::tcp_beyond_window);  // the server keeps at most up to its window's edge
        return kUnacceptable;
    }
    if (seg.opt.has_ts && (f.tcp & tcpctl::kTs)) f.ts_recent = seg.opt.tsval;
    return kPass;
}

Outcome FlowTracker::known(Flow& f, const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                           Counters& c) {
    const uint8_t fl = p.tcp_flags;
    if (f.ctl & flowctl::kRefused) {
        if (fl & (tcpflag::RST | tcpflag::FIN)) f.state = FlowState::Closed;
        f.expire_ms = now.ms + timeouts_.closing_ms;
        return {Verdict::Refused, ReplyReason::Payload};
    }
    const TcpSegment seg = read_tcp_segment(frame, p);
    if (f.state == FlowState::Closed) {  // lingering: retransmissions of a finished connection
        f.expire_ms = now.ms + timeouts_.closing_ms;
        return kPass;
    }
    if (fl & tcpflag::SYN) {
        if (!tcp_checksums_ok(frame, p)) {  // the server never takes it: no new ISN either
            c.add(Ctr::tcp_bad_checksum);
            return kUnacceptable;
        }
        if ((fl & tcpflag::ACK) || f.state != FlowState::SynSent) {
            c.add(Ctr::tcp_unconfirmed);  // a SYN inside a connection: the server answers it with an ACK only
            return (fl & tcpflag::ACK) ? kUnacceptable : kPass;
        }
        f.client_next = seg.seq + 1;  // a retransmitted SYN (maybe with a new ISN)
        f.expire_ms = now.ms + timeouts_.half_open_ms;
        Outcome r = kPass;
        if (p.payload_len) {
            r.strip_payload = true;
            c.add(Ctr::tcp_syn_data_stripped);
        }
        return r;
    }
    if (f.state == FlowState::SynSent) {
        if (!(fl & tcpflag::RST)) {
            c.add(Ctr::tcp_unconfirmed);  // the handshake is not the client's to finish: no SYN-ACK seen
            return kUnacceptable;
        }
        // A RST closes the entry only if the server takes it too (checksum, signature, TTL): one it never
        // sees would leave a closed entry, which passes what follows unread, beside an open connection.
        if (const Outcome n = normalise(f, p, frame, seg, c); n.verdict != Verdict::Forward) return n;
        if (seg.seq == f.client_next) close(f, c);
        return kPass;
    }
    if (const Outcome n = normalise(f, p, frame, seg, c); n.verdict != Verdict::Forward) return n;

    if (fl & tcpflag::RST) {
        // RFC 5961 3.2: a reset counts only at exactly the next sequence number the server expects; the
        // server ignores any other (or answers a challenge ACK), and so does the tracker. Forwarded either
        // way.
        if (seg.seq == f.client_next || ((f.tcp & tcpctl::kServerSeq) && seg.seq == f.server_ack))
            close(f, c);
        else
            c.add(Ctr::tcp_rst_ignored);
        f.expire_ms = now.ms + timeout_ms(f.state);
        return kPass;
    }
    std::optional<Outcome> monitored;  // monitor mode: a would-be refusal at the handshake
    if (f.state == FlowState::SynRecv) {
        if (!(fl & tcpflag::ACK) || seg.ack != f.server_next || seg.seq != f.client_next) {
            c.add(Ctr::tcp_unconfirmed);
            return kUnacceptable;
        }
        if (!f.ttl) f.ttl = seg.ttl;  // an entry made at the SYN-ACK: the handshake's ACK sets the TTL
        if (seg.opt.has_ts && !(f.tcp & tcpctl::kClientTs)) {  // ... and the client's timestamp
            f.tcp |= tcpctl::kClientTs;
            f.ts_recent = seg.opt.tsval;
        }
        if (auto r = confirm(f, p.src, pol, now, c)) {
            if (r->verdict != Verdict::Monitored) return *r;
            monitored = r;  // reported once the segment is read
        }
    }
    const uint32_t span = p.payload_len + ((fl & tcpflag::FIN) ? 1u : 0u);
    const uint32_t end = seg.seq + span;
    const bool fresh = seq_lt(f.client_next, end);  // carries bytes the server has not been sent
    if (fresh) f.client_next = end;
    f.expire_ms = now.ms + timeout_ms(f.state);
    Outcome r = kPass;
    if (p.payload_len && fresh) r = inspect(f, p, frame, pol, now, c);
    if (monitored && r.verdict == Verdict::Forward) r = *monitored;
    if ((fl & tcpflag::FIN) && fresh && (r.verdict == Verdict::Forward || r.verdict == Verdict::Monitored)) {
        f.fins |= 1;
        if (f.fins == 3) {
            close(f, c);
        } else if (f.state == FlowState::Established) {
            f.state = FlowState::Closing;
        }
        f.expire_ms = now.ms + timeout_ms(f.state);
    }
    return r;
}

Outcome FlowTracker::inspect(Flow& f, const Parsed& p, const uint8_t* frame, const Policy& pol,
                             const Now& now, Counters& c) {
    if (f.inspect == Inspector::kNone) return kPass;  // not read (ended, or need not be)
    const uint32_t seq = load_be32(frame + p.l4_off + 4);
    const InspectPolicy ip = inspect_policy(f, p.src, pol, worker_);
    const InspectResult r = inspector_->feed(f.inspect, frame + p.payload_off, p.payload_len, seq, ip, c);
    if (r.messages && f.src_slot != SourceTable::kNone) {
        // A cleartext session's second and later messages count against the daily volume too (its first was
        // counted with the connection).
        const Limits& limits = limits_for(f, p.src, pol);
        bool over = false;
        for (uint16_t i = 0; i < r.messages; ++i)
            over |= !sources_->count_message(f.src_slot, limits.daily, now.day);
        if (over) {
            c.add(Ctr::refused_daily);
            if (!pol.monitor)
                return end_session(f, seq, ReplyReason::Daily,
                                   &pol.replies[static_cast<size_t>(ReplyReason::Daily)], pol.action_limit);
            c.add(Ctr::monitor_passed);
        }
    }
    if (r.kind == InspectResult::Continue) return kPass;
    inspector_->close(f.inspect);
    f.inspect = Inspector::kNone;
    if (r.kind == InspectResult::Ended) return kPass;
    c.add(Ctr::refused_payload);
    if (pol.monitor) {
        c.add(Ctr::monitor_passed);
        return Outcome{Verdict::Monitored, ReplyReason::Payload, Action::Smtp, false, r.rule};
    }
    const Action action = r.kind == InspectResult::Unreadable
                              ? pol.action_unreadable[static_cast<size_t>(r.cause)]
                              : pol.action_payload;
    return end_session(f, seq, ReplyReason::Payload, r.reply, action, r.rule);
}

Outcome FlowTracker::outbound(const Parsed& p, const uint8_t* frame, const Policy& pol, bool to_relay,
                              const Now& now, Counters& c) {
    const bool syn = (p.tcp_flags & (tcpflag::SYN | tcpflag::ACK | tcpflag::RST)) == tcpflag::SYN;
    if (syn && table_.under_pressure()) {
        // A flood's worth of SYNs (or a busy table): a SYN keeps nothing and touches no table; its entry is
        // made when the server answers it (inbound), and its source is admitted when the client completes the
        // handshake. A bare SYN goes on unchanged, so one with a wrong checksum is discarded by the server
        // as it would be without the gateway (nothing is learnt from it here). Data on a SYN is removed as
        // always, and the removal writes fresh checksums: such a SYN is verified first, or a corrupt one
        // would leave here as a valid one.
        c.add(Ctr::syn_stateless);
        if (!p.payload_len) return kPass;
        if (!tcp_checksums_ok(frame, p)) {
            c.add(Ctr::tcp_bad_checksum);
            return kUnacceptable;
        }
        Outcome r = kPass;
        r.strip_payload = true;
        c.add(Ctr::tcp_syn_data_stripped);
        return r;
    }
    const FlowKey k = flow_key(p, true);
    const uint32_t h = table_.hash(k);
    if (Flow* f = table_.find(k, h)) {
        if (!(syn && (f->state == FlowState::Closing || f->state == FlowState::Closed)))
            return known(*f, p, frame, pol, now, c);
        // The client reuses the ports of a finished connection: a new connection, admitted afresh.
        forget(*f);
        table_.erase(f);
    }
    if (!syn) {
        if (p.tcp_flags & tcpflag::RST) return kPass;
        return {Verdict::Untracked, ReplyReason::Unapproved};
    }

    // A new connection: a SYN, which costs its sender nothing. It is checked, peeked at and remembered as
    // half-open; its source's slot waits for the handshake.
    if (!tcp_checksums_ok(frame, p)) {
        c.add(Ctr::tcp_bad_checksum);
        return kUnacceptable;
    }
    const Limits& limits = to_relay ? pol.relay_limits : pol.limit_overrides.find(p.src, pol.default_limits);
    const uint64_t id = sources_->id_of(p.src);
    // (Monitor mode lets it through: the admission at the handshake counts what it would have refused.)
    if (const Admit a = sources_->peek(id, limits, now.us, now.day); a != Admit::Ok && !pol.monitor) {
        c.add(counter_of(a));
        return {Verdict::Refuse, reason_of(a), pol.action_limit};
    }
    const auto cell = static_cast<uint16_t>(id >> 48);
    if (half_open_cap_ && half_open_[cell] >= half_open_cap_ && table_.under_pressure()) {
        c.add(Ctr::half_open_capped);  // one source's SYNs may not crowd out everyone else's
        if (!pol.monitor) return kUnacceptable;
        c.add(Ctr::monitor_passed);
        return kPass;
    }
    Flow* f = table_.insert_early_drop(k, h, [&](Flow& victim) {
        c.add(Ctr::flows_early_dropped);
        forget(victim);
    });
    if (!f) {
        c.add(Ctr::flow_table_full);
        if (pol.monitor) {
            c.add(Ctr::monitor_passed);
            return {Verdict::Monitored, ReplyReason::Busy};
        }
        return {Verdict::Refuse, ReplyReason::Busy, pol.action_limit};
    }
    const TcpSegment seg = read_tcp_segment(frame, p);
    f->state = FlowState::SynSent;
    f->opened_ms = now.ms;
    f->expire_ms = now.ms + timeouts_.half_open_ms;
    f->client_next =
        seg.seq + 1;  // data on the SYN is removed: the client sends it again after the handshake
    f->ttl = seg.ttl;
    if (seg.opt.has_ts) {
        f->tcp |= tcpctl::kClientTs;
        f->ts_recent = seg.opt.tsval;
    }
    if (seg.opt.has_ws) {
        f->tcp |= tcpctl::kClientWs;
        f->client_ws = seg.opt.ws;
    }
    if (to_relay) f->ctl |= flowctl::kRelay;
    if (!to_relay && pol.blocked_ports.test(p.dport)) f->ctl |= flowctl::kDirect;
    f->ho_index = cell;
    f->ctl |= flowctl::kHalfOpen;
    if (half_open_[cell] != UINT16_MAX) ++half_open_[cell];
    c.add(Ctr::flows_half_open);
    Outcome r = kPass;
    if (p.payload_len) {
        r.strip_payload = true;
        c.add(Ctr::tcp_syn_data_stripped);
    }
    return r;
}

Outcome FlowTracker::outbound_other(const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                                    Counters& c) {
    // Only a watched port or a command that could open a session is worth a table lookup.
    const bool opens = inspector_ && pol.inspect && pol.rules &&
                       looks_like_smtp_command(frame + p.payload_off, p.payload_len);
    if (!opens && !dyn_ports_.test(p.dport)) return kPass;
    const FlowKey k = flow_key(p, true);
    const uint32_t h = table_.hash(k);
    if (Flow* f = table_.find(k, h)) return known(*f, p, frame, pol, now, c);
    if (!opens || !pol.managed(p.src) || pol.relay(p.dst)) return kPass;
    if (!probe_smtp(*pol.rules, worker_, frame + p.payload_off, p.payload_len)) return kPass;
    c.add(Ctr::smtp_other_port);
    const bool approved = pol.approved(p.src);
    if (!approved && pol.smtp_other_ports == OtherPorts::Allow) return kPass;
    const TcpSegment seg = read_tcp_segment(frame, p);
    if (!tcp_checksums_ok(frame, p)) {
        c.add(Ctr::tcp_bad_checksum);
        return kUnacceptable;
    }
    if (!approved && pol.smtp_other_ports == OtherPorts::Refuse) {
        // Refused at once and statelessly: a flood of such segments leaves nothing behind.
        c.add(Ctr::refused_unapproved);
        if (pol.monitor) {
            c.add(Ctr::monitor_passed);
            return {Verdict::Monitored, ReplyReason::Unapproved};
        }
        return {Verdict::RefuseSession,
                ReplyReason::Unapproved,
                pol.action_unapproved,
                false,
                0,
                &pol.replies[static_cast<size_t>(ReplyReason::Unapproved)]};
    }
    // A source with connections open may already be over its limits; one with none has nothing against it
    // until the server acknowledges this session (a spoofed one-segment "session" never is).
    const Limits& limits = pol.limit_overrides.find(p.src, pol.default_limits);
    if (const Admit a = sources_->peek(sources_->id_of(p.src), limits, now.us, now.day);
        a != Admit::Ok && !pol.monitor) {
        c.add(counter_of(a));
        return {Verdict::RefuseSession,
                reason_of(a),
                pol.action_limit,
                false,
                0,
                &pol.replies[static_cast<size_t>(reason_of(a))]};
    }
    Flow* f = table_.insert_early_drop(k, h, [&](Flow& victim) {
        c.add(Ctr::flows_early_dropped);
        forget(victim);
    });
    if (!f) {
        c.add(Ctr::flow_table_full);
        if (!pol.monitor)
            return {Verdict::RefuseSession,
                    ReplyReason::Busy,
                    pol.action_limit,
                    false,
                    0,
                    &pol.replies[static_cast<size_t>(ReplyReason::Busy)]};
        c.add(Ctr::monitor_passed);
        return {Verdict::Monitored, ReplyReason::Busy};
    }
    f->state = FlowState::Candidate;
    f->opened_ms = now.ms;
    f->expire_ms = now.ms + timeouts_.half_open_ms;
    f->client_next = seg.seq;
    f->first_seq = seg.seq;
    f->ttl = seg.ttl;
    f->ctl |= flowctl::kOtherPort;
    if (port_refs_[p.dport]++ == 0) dyn_ports_.set(p.dport);
    if (inspector_ && pol.inspect) {
        if (candidate_count_ == candidate_cap_) evict_candidate(now, c);
        candidates_[(candidate_head_ + candidate_count_++) % candidate_cap_] = k;
    }
    const auto r = open_inspection(*f, p.src, pol, std::nullopt, c);  // found mid-way: no greeting
    if (r && r->verdict != Verdict::Monitored) return *r;
    const Outcome o = known(*f, p, frame, pol, now, c);
    return r && o.verdict == Verdict::Forward ? *r : o;
}

Outcome FlowTracker::unknown(const Parsed& p, const Policy& pol, Counters& c) {
    if (p.tcp_flags & tcpflag::RST) return kPass;
    c.add(Ctr::flows_unknown_reset);
    if (pol.monitor) {
        c.add(Ctr::monitor_passed);
        return kPass;
    }
    return {Verdict::RefuseSession, ReplyReason::Busy, Action::Rst};
}

void FlowTracker::learn_synack(Flow& f, const TcpSegment& seg, const Now& now) {
    f.server_next = seg.seq + 1;
    f.server_ack = seg.ack;
    // The server answers window scaling and timestamps only when the client's SYN offered them.
    if (seg.opt.has_ws) {
        f.tcp |= tcpctl::kWs;
        f.server_ws = seg.opt.ws;
    }
    if (seg.opt.has_ts) f.tcp |= tcpctl::kTs;
    f.server_edge = seg.ack + seg.window;  // a SYN-ACK's window is never scaled
    f.tcp |= tcpctl::kServerSeq;
    f.state = FlowState::SynRecv;
    f.expire_ms = now.ms + timeouts_.half_open_ms;
}

bool FlowTracker::inbound(const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                          Counters& c) {
    const uint8_t fl = p.tcp_flags;
    const bool synack = (fl & (tcpflag::SYN | tcpflag::ACK | tcpflag::RST)) == (tcpflag::SYN | tcpflag::ACK);
    if (table_.size() == 0 && !synack) return true;
    const FlowKey k = flow_key(p, false);
    const uint32_t h = table_.hash(k);
    Flow* fp = table_.find(k, h);
    const TcpSegment seg = read_tcp_segment(frame, p);
    if (synack && (!fp || fp->state == FlowState::Closing || fp->state == FlowState::Closed)) {
        // The server answers a SYN the tracker kept no entry for (the table was under pressure: SYNs then
        // make none), or one reusing a finished connection's ports: the half-open entry is made now, from
        // what the server acknowledges. Spoofed SYNs to hosts that never answer make none at all.
        const IpAddr& client = p.dst;
        if (!pol.smtp_ports.test(p.sport) || !pol.managed(client)) return true;
        const bool relay = pol.relay(p.src);
        if (!relay && pol.blocked_ports.test(p.sport) && !pol.approved(client))
            return true;  // refused at its SYN
        if (fp) {
            forget(*fp);
            table_.erase(fp);
        }
        fp = table_.insert_early_drop(k, h, [&](Flow& victim) {
            c.add(Ctr::flows_early_dropped);
            forget(victim);
        });
        if (!fp) {
            c.add(Ctr::flow_table_full);
            return true;  // the client's ACK will find no record: reset then
        }
        fp->opened_ms = now.ms;
        fp->client_next = seg.ack;
        if (relay) fp->ctl |= flowctl::kRelay;
        if (!relay && pol.blocked_ports.test(p.sport)) fp->ctl |= flowctl::kDirect;
        learn_synack(*fp, seg, now);
        c.add(Ctr::flows_half_open_at_synack);
        return true;
    }
    if (!fp) return true;
    Flow& f = *fp;
    if (f.state == FlowState::Closed) return true;
    if (f.state == FlowState::SynSent) {
        if (synack && seg.ack == f.client_next) {
            learn_synack(f, seg, now);
            if (!(f.tcp & tcpctl::kClientWs)) f.tcp &= static_cast<uint8_t>(~tcpctl::kWs);
            if (!(f.tcp & tcpctl::kClientTs)) f.tcp &= static_cast<uint8_t>(~tcpctl::kTs);
        } else if ((fl & tcpflag::RST) && (fl & tcpflag::ACK) && seg.ack == f.client_next) {
            close(f, c);  // connection refused by the server
            f.expire_ms = now.ms + timeouts_.closing_ms;
        }
        return true;
    }
    // The server's segments come from outside the racks, where the policed senders are not: trusted for
    // state (an RST, a FIN), read for its window and acknowledgements.
    if (fl & tcpflag::RST) {
        close(f, c);
        f.expire_ms = now.ms + timeouts_.closing_ms;
        return true;
    }
    const uint32_t end = seg.seq + p.payload_len + ((fl & tcpflag::FIN) ? 1u : 0u);
    if (f.inspect != Inspector::kNone && (f.tcp & tcpctl::kServerSeq) && p.payload_len &&
        seq_lt(f.server_next, seg.seq)) {
        // A server segment ahead of the next in-order byte of a session being read: the replies must be
        // paired in order, so it waits for its retransmission (the server sends it again once the gap is
        // filled).
        c.add(Ctr::tcp_server_out_of_order);
        return false;
    }
    if (fl & tcpflag::ACK) {
        if (!(f.tcp & tcpctl::kServerSeq) || seq_lt(f.server_ack, seg.ack)) f.server_ack = seg.ack;
        const uint32_t edge = seg.ack + (uint32_t{seg.window} << ((f.tcp & tcpctl::kWs) ? f.server_ws : 0));
        if (!(f.tcp & tcpctl::kServerSeq) || seq_lt(f.server_edge, edge)) f.server_edge = edge;
        if (!(f.tcp & tcpctl::kServerSeq) || seq_lt(f.server_next, end)) f.server_next = end;
        f.tcp |= tcpctl::kServerSeq;
        // A Candidate whose bytes the server acknowledges is a session someone really opened: admitted now
        // (unless it was ended already: a refused session holds nothing).
        if (f.state == FlowState::Candidate && !(f.ctl & flowctl::kRefused) && seq_lt(f.first_seq, seg.ack) &&
            seq_le(seg.ack, f.client_next)) {
            // A refusal here cannot be answered on this (inbound) segment: the client's next segment is.
            if (const auto r = confirm(f, p.dst, pol, now, c); r && r->verdict != Verdict::Monitored)
                f.ctl |= flowctl::kRefused;
        }
    }
    if (p.payload_len && f.inspect != Inspector::kNone) {
        const InspectResult r = inspector_->feed_server(f.inspect, frame + p.payload_off, p.payload_len,
                                                        seg.seq, inspect_policy(f, p.dst, pol, worker_), c);
        if (r.kind == InspectResult::Ended) {
            inspector_->close(f.inspect);
            f.inspect = Inspector::kNone;
        }
        // Unreadable: the inspector says it again at the client's next segment, which ends the session there.
    }
    if (fl & tcpflag::FIN) {
        f.fins |= 2;
        if (f.fins == 3)
            close(f, c);
        else if (f.state == FlowState::Established)
            f.state = FlowState::Closing;
    }
    if (f.state != FlowState::Closed) f.expire_ms = now.ms + timeout_ms(f.state);
    return true;
}

void FlowTracker::prefill(uint32_t n, const Now& now) {
    for (uint32_t i = 0; i < n; ++i) {
        FlowKey k{};
        k.client[1] = i;  // 0.x.y.z: never a source on the wire
        k.cport = static_cast<uint16_t>(1024 + (i & 0x3fff));
        k.sport = 25;
        Flow* f = table_.insert(k, table_.hash(k));
        if (!f) return;
        f->state = FlowState::Established;
        f->src_slot = SourceTable::kNone;
        f->expire_ms = now.ms + timeouts_.established_ms;
    }
}

void FlowTracker::sweep(const Now& now, uint32_t budget, Counters& c) {
    table_.sweep(now.ms, budget, [&](Flow& f) {
        switch (f.state) {
            case FlowState::SynSent:
            case FlowState::SynRecv:
            case FlowState::Candidate:
                c.add(Ctr::flows_expired_half_open);
                break;
            case FlowState::Established:
                c.add(Ctr::flows_expired_established);
                break;
            case FlowState::Closing:
                c.add(Ctr::flows_expired_closing);
                break;
            default:
                break;
        }
        forget(f);
    });
}

}  // namespace portcullis
