// SMTP connection tracking and limit admission (see flow_tracker.hpp).
#include "dataplane/flow_tracker.hpp"

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

}  // namespace

FlowTracker::FlowTracker(uint32_t max_flows, const CookieKey& hash_key, SourceTable* sources, FlowTimeouts t,
                         Inspector* inspector, uint16_t worker)
    : table_(max_flows, hash_key),
      sources_(sources),
      timeouts_(t),
      inspector_(inspector),
      worker_(worker),
      port_refs_(new uint32_t[65536]()) {}

uint64_t FlowTracker::bytes_for(uint32_t max_flows) {
    return sizeof(FlowTracker) + FlowTable::slots_for(max_flows) * sizeof(Flow) + 65536 * sizeof(uint32_t);
}

std::optional<ReplyReason> FlowTracker::admit(const IpAddr& src, const Limits& limits, const Policy& pol,
                                              const Now& now, Counters& c, uint32_t* slot) {
    const uint64_t id = sources_->id_of(src);
    *slot = sources_->acquire(id, now.us, now.day);
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
    return std::nullopt;
}

void FlowTracker::forget(Flow& f) {
    release(f);
    if ((f.ctl & flowctl::kOtherPort) && port_refs_[f.key.sport] && --port_refs_[f.key.sport] == 0)
        dyn_ports_.reset(f.key.sport);
}

TrackResult FlowTracker::known(Flow& f, const Parsed& p, const uint8_t* frame, const Policy& pol,
                               const Now& now, Counters& c) {
    update(f, true, p, now, c);
    if (f.ctl & flowctl::kRefused) return {TrackVerdict::Refused, ReplyReason::Payload};
    if (p.payload_len && inspector_ && pol.inspect && f.state != FlowState::Closed)
        return inspect(f, p, frame, pol, now, c);
    return {TrackVerdict::Forward, ReplyReason::Unapproved};
}

TrackResult FlowTracker::outbound_other(const Parsed& p, const uint8_t* frame, const Policy& pol,
                                        const Now& now, Counters& c) {
    const TrackResult pass{TrackVerdict::Forward, ReplyReason::Unapproved};
    // Only a watched port or a command that could open a session is worth a table lookup.
    const bool opens = inspector_ && pol.inspect && pol.rules &&
                       looks_like_smtp_command(frame + p.payload_off, p.payload_len);
    if (!opens && !dyn_ports_.test(p.dport)) return pass;
    const FlowKey k = flow_key(p, true);
    const uint32_t h = table_.hash(k);
    if (Flow* f = table_.find(k, h)) return known(*f, p, frame, pol, now, c);
    if (!opens || !pol.managed(p.src) || pol.relay(p.dst)) return pass;
    if (!probe_smtp(*pol.rules, worker_, frame + p.payload_off, p.payload_len)) return pass;
    c.add(Ctr::smtp_other_port);
    const bool approved = pol.approved(p.src);
    if (!approved && pol.smtp_other_ports == OtherPorts::Allow) return pass;

    // A session found mid-way: its connection is admitted now, against the same limits as any other.
    TrackResult refuse{TrackVerdict::RefuseSession, ReplyReason::Unapproved, nullptr, pol.action_limit};
    uint32_t slot = SourceTable::kNone;
    if (table_.size() >= table_.max_flows()) {
        c.add(Ctr::flow_table_full);
        if (!pol.monitor)
            return {TrackVerdict::RefuseSession, ReplyReason::Busy,
                    &pol.replies[static_cast<size_t>(ReplyReason::Busy)], pol.action_limit};
        c.add(Ctr::monitor_passed);
        return pass;
    }
    if (!approved && pol.smtp_other_ports == OtherPorts::Refuse) {
        c.add(Ctr::refused_unapproved);
        refuse.action = pol.action_unapproved;
    } else if (const auto refused =
                   admit(p.src, pol.limit_overrides.find(p.src, pol.default_limits), pol, now, c, &slot)) {
        refuse.reason = *refused;
    } else {
        refuse.verdict = TrackVerdict::Forward;
    }
    if (pol.monitor && refuse.verdict != TrackVerdict::Forward) {
        c.add(Ctr::monitor_passed);
        refuse.verdict = TrackVerdict::Forward;
    }
    Flow* f = table_.insert(k, h);  // room was checked above
    f->state = FlowState::Established;
    f->src_slot = slot;
    f->ctl |= flowctl::kOtherPort;
    f->expire_ms = now.ms + timeouts_.established_ms;
    c.add(Ctr::flows_opened);
    if (port_refs_[p.dport]++ == 0) dyn_ports_.set(p.dport);
    if (refuse.verdict == TrackVerdict::Forward) return known(*f, p, frame, pol, now, c);
    f->ctl |= flowctl::kRefused;
    f->server_seq = load_be32(frame + p.l4_off + 4);
    refuse.reply = &pol.replies[static_cast<size_t>(refuse.reason)];
    return refuse;
}

uint32_t FlowTracker::timeout_ms(FlowState s) const {
    switch (s) {
        case FlowState::SynSent:
        case FlowState::SynRecv:
            return timeouts_.half_open_ms;
        case FlowState::Established:
            return timeouts_.established_ms;
        default:
            return timeouts_.closing_ms;
    }
}

void FlowTracker::release(Flow& f) {
    if (f.src_slot != SourceTable::kNone) sources_->release(f.src_slot);
    f.src_slot = SourceTable::kNone;
    if (f.inspect != Inspector::kNone) {
        inspector_->close(f.inspect);
        f.inspect = Inspector::kNone;
    }
}

TrackResult FlowTracker::inspect(Flow& f, const Parsed& p, const uint8_t* frame, const Policy& pol,
                                 const Now& now, Counters& c) {
    const TrackResult pass{TrackVerdict::Forward, ReplyReason::Unapproved};
    const uint8_t* payload = frame + p.payload_off;
    const uint32_t seq = load_be32(frame + p.l4_off + 4);
    if (f.inspect == Inspector::kNone && (f.ctl & flowctl::kInspected)) return pass;
    const InspectPolicy ip = inspect_policy(f, p.src, pol, worker_);
    InspectResult r;
    if (f.inspect == Inspector::kNone) {
        f.ctl |= flowctl::kInspected;
        // From the start when the server has said nothing yet (its greeting is reply 0; the segment's ACK is
        // the server's next sequence number), else mid-way.
        f.inspect = (f.ctl & (flowctl::kServerSpoke | flowctl::kOtherPort))
                        ? inspector_->open(seq)
                        : inspector_->open(seq, load_be32(frame + p.l4_off + 8));
        if (f.inspect == Inspector::kNone)
            r = unreadable(Unreadable::PoolFull, ip, c);
        else
            c.add(Ctr::inspect_flows);
    }
    if (f.inspect != Inspector::kNone) r = inspector_->feed(f.inspect, payload, p.payload_len, seq, ip, c);
    if (r.messages && f.src_slot != SourceTable::kNone) {
        // A cleartext session's second and later messages count against the daily volume too (its first was
        // counted with the connection).
        const Limits& limits = pol.limit_overrides.find(p.src, pol.default_limits);
        bool over = false;
        for (uint16_t i = 0; i < r.messages; ++i)
            over |= !sources_->count_message(f.src_slot, limits.daily, now.day);
        if (over) {
            c.add(Ctr::refused_daily);
            if (!pol.monitor) {
                inspector_->close(f.inspect);
                f.inspect = Inspector::kNone;
                f.ctl |= flowctl::kRefused;
                f.server_seq = seq;
                release(f);
                return {TrackVerdict::RefuseSession, ReplyReason::Daily,
                        &pol.replies[static_cast<size_t>(ReplyReason::Daily)], pol.action_limit};
            }
            c.add(Ctr::monitor_passed);
        }
    }
    if (r.kind == InspectResult::Continue) return pass;
    if (f.inspect != Inspector::kNone) inspector_->close(f.inspect);
    f.inspect = Inspector::kNone;
    if (r.kind == InspectResult::Ended) return pass;
    c.add(Ctr::refused_payload);
    if (pol.monitor) {
        c.add(Ctr::monitor_passed);
        return pass;
    }
    f.ctl |= flowctl::kRefused;
    f.server_seq = seq;
    release(f);  // the session is over on both sides: it no longer counts against its source
    return {TrackVerdict::RefuseSession, ReplyReason::Payload, r.reply, pol.action_payload};
}

void FlowTracker::update(Flow& f, bool outbound, const Parsed& p, const Now& now, Counters& c) {
    const FlowState before = f.state;
    f.state = next_flow_state(f.state, f.fins, outbound, p.tcp_flags, p.payload_len);
    if (f.state == FlowState::Closed && before != FlowState::Closed) {
        release(f);
        c.add(Ctr::flows_closed);
    }
    f.expire_ms = now.ms + timeout_ms(f.state);
}

TrackResult FlowTracker::outbound(const Parsed& p, const uint8_t* frame, const Policy& pol, bool to_relay,
                                  const Now& now, Counters& c) {
    const FlowKey k = flow_key(p, true);
    const uint32_t h = table_.hash(k);
    const bool syn = (p.tcp_flags & (tcpflag::SYN | tcpflag::ACK | tcpflag::RST)) == tcpflag::SYN;
    if (Flow* f = table_.find(k, h)) {
        if (!(syn && (f->state == FlowState::Closing || f->state == FlowState::Closed)))
            return known(*f, p, frame, pol, now, c);
        // The client reuses the ports of a finished connection: a new connection, admitted afresh.
        forget(*f);
        table_.erase(f);
    }
    if (!syn) {
        if (p.tcp_flags & tcpflag::RST) return {TrackVerdict::Forward, ReplyReason::Unapproved};
        return {TrackVerdict::Untracked, ReplyReason::Unapproved};
    }

    // A new connection.
    if (table_.size() >= table_.max_flows()) {
        c.add(Ctr::flow_table_full);
        if (pol.monitor) {
            c.add(Ctr::monitor_passed);
            return {TrackVerdict::Forward, ReplyReason::Busy};
        }
        return {TrackVerdict::Refuse, ReplyReason::Busy};
    }
    const Limits& limits = to_relay ? pol.relay_limits : pol.limit_overrides.find(p.src, pol.default_limits);
    uint32_t slot;
    if (const auto refused = admit(p.src, limits, pol, now, c, &slot))
        return {TrackVerdict::Refuse, *refused};
    Flow* f = table_.insert(k, h);  // room was checked above
    f->state = FlowState::SynSent;
    f->src_slot = slot;
    if (!to_relay && pol.blocked_ports.test(p.dport)) f->ctl |= flowctl::kDirect;
    f->expire_ms = now.ms + timeouts_.half_open_ms;
    c.add(Ctr::flows_opened);
    return {TrackVerdict::Forward, ReplyReason::Unapproved};
}

void FlowTracker::pick_up(const Parsed& p, const Now& now, Counters& c) {
    const FlowKey k = flow_key(p, true);
    const uint32_t h = table_.hash(k);
    if (p.tcp_flags & tcpflag::FIN) return;  // a connection on its way out: not worth a slot
    Flow* f = table_.insert(k, h);
    if (!f) {
        c.add(Ctr::flows_untracked);
        return;
    }
    const uint64_t id = sources_->id_of(p.src);
    f->src_slot = sources_->acquire(id, now.us, now.day);
    if (f->src_slot != SourceTable::kNone) sources_->hold(f->src_slot);
    f->state = FlowState::Established;
    f->expire_ms = now.ms + timeouts_.established_ms;
    f->ctl |= flowctl::kInspected;  // joined mid-session: its commands cannot be read in order
    c.add(Ctr::flows_picked_up);
}

void FlowTracker::inbound(const Parsed& p, const uint8_t* frame, const Policy& pol, const Now& now,
                          Counters& c) {
    if (table_.size() == 0) return;
    const FlowKey k = flow_key(p, false);
    Flow* f = table_.find(k, table_.hash(k));
    if (!f) return;
    update(*f, false, p, now, c);
    if (!p.payload_len) return;
    f->ctl |= flowctl::kServerSpoke;
    if (f->inspect == Inspector::kNone || f->state == FlowState::Closed) return;
    const InspectResult r =
        inspector_->feed_server(f->inspect, frame + p.payload_off, p.payload_len,
                                load_be32(frame + p.l4_off + 4), inspect_policy(*f, p.dst, pol, worker_), c);
    if (r.kind == InspectResult::Ended) {
        inspector_->close(f->inspect);
        f->inspect = Inspector::kNone;
    }
    // Unreadable: the inspector gives it again at the client's next segment, which ends the session there.
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
