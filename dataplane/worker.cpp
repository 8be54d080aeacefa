// Worker loop and burst processing (see worker.hpp).
#include "dataplane/worker.hpp"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include <rte_ring_elem.h>

#include "dataplane/classify.hpp"
#include "dataplane/events.hpp"
#include "dataplane/respond.hpp"

namespace portcullis {

namespace {

// Sends what it can; frees and counts the rest. Returns how many went out.
uint16_t send_or_free(uint16_t port, uint16_t queue, rte_mbuf** pkts, uint16_t n, Counters& c, Ctr full) {
    if (n == 0) return 0;
    const uint16_t sent = rte_eth_tx_burst(port, queue, pkts, n);
    if (sent < n) [[unlikely]] {
        rte_pktmbuf_free_bulk(pkts + sent, n - sent);
        c.add(full, n - sent);
    }
    return sent;
}

// Records a refusal for the control thread: its per-source figures and the event stream.
void note_refusal(RefusalEvent& e, const Parsed& p, uint64_t us, ReplyReason reason, Action action,
                  uint8_t flags, uint32_t rule) {
    e.v6src = p.src.v6addr;
    e.v6dst = p.dst.v6addr;
    e.us = us;
    e.v4src = p.src.v4;
    e.v4dst = p.dst.v4;
    e.rule = rule;
    e.sport = p.sport;
    e.dport = p.dport;
    e.v6 = p.src.v6;
    e.syn = (p.tcp_flags & tcpflag::SYN) ? 1 : 0;
    e.reason = static_cast<uint8_t>(reason);
    e.flags = flags;
    e.action = static_cast<uint8_t>(action);
}

uint64_t cookie_slot(const Now& now) {
    return now.us / (kCookieSlotSeconds * 1'000'000);
}

// Writes the SMTP refusal's next step over the segment. Returns the answer's length (0: nothing to send).
uint32_t answer_smtp(const Policy& pol, rte_mbuf* m, const Parsed& p, LazyNow& now, ReplyReason reason,
                     SmtpStep* step) {
    const uint32_t room = rte_pktmbuf_data_len(m) + rte_pktmbuf_tailroom(m);
    const SmtpAnswer a = smtp_answer_in_place(rte_pktmbuf_mtod(m, uint8_t*), room, p, pol.cookie_key,
                                              cookie_slot(now.get()), reason, pol.replies);
    *step = a.step;
    return a.len;
}

void set_length(rte_mbuf* m, uint32_t len) {
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = len;
    m->ol_flags = 0;
}

// Rewrites a refused segment, in place, into its answer (RST or the SMTP refusal's next step) as `action`
// says. Returns false when there is nothing to send back (counted), and the caller drops the segment.
bool answer_refusal(const Policy& pol, rte_mbuf* m, const Parsed& p, LazyNow& now, Action action,
                    ReplyReason reason, Counters& c) {
    if (action == Action::Drop) {
        c.add(Ctr::dropped_refused);
        return false;
    }
    if (m->nb_segs != 1) {
        c.add(Ctr::multi_segment);
        c.add(Ctr::dropped_refused);
        return false;
    }
    uint32_t len;
    if (action == Action::Smtp) {
        SmtpStep step;
        len = answer_smtp(pol, m, p, now, reason, &step);
        c.add(smtp_step_counter(step));
    } else {
        len = make_rst_in_place(rte_pktmbuf_mtod(m, uint8_t*), p);
        c.add(Ctr::rst_sent);
    }
    if (len == 0) return false;
    set_length(m, len);
    return true;
}

// Where a frame goes. The slow paths return it and the burst loop files the frame: the loop's counts never
// have their address taken, so they stay in registers across the calls to the parser.
enum class Dest : uint8_t { Fwd, Back, Drop };

// One segment on the slow path (SMTP, refusals): what every step needs, and what it leaves for the burst loop
// besides the frame's Dest: a refusal event written into *ev (reported), a second frame to forward (extra).
struct Segment {
    const WorkerContext& ctx;
    const Policy& pol;
    rte_mbuf* m;
    const Parsed& p;
    LazyNow& now;
    Counters& c;
    RefusalEvent* ev;
    bool reported = false;  // *ev was written
    bool attempt = false;   // ... for a refusal: a connection attempt or a session, not a later segment
    rte_mbuf* extra = nullptr;

    uint8_t* data() const { return rte_pktmbuf_mtod(m, uint8_t*); }
    // Every refusal (and, in monitor mode, would-be refusal) passes here once: its event, and when it is a
    // connection attempt or a session ended its reason's counter (refusal_*; the burst loop counts the
    // total, refusals, on its own).
    void report(ReplyReason reason, Action action, bool session, uint32_t rule = 0) {
        const uint8_t flags = (pol.monitor ? kEventMonitor : 0) | (session ? kEventSession : 0);
        note_refusal(*ev, p, now.get().us, reason, action, flags, rule);
        reported = true;
        attempt = session || ev->syn;
        if (attempt) c.add(refusal_counter(reason));
    }
};

// A refusal: counted, reported, then forwarded (monitor), answered, or dropped.
Dest refuse(Segment& s, Action action, ReplyReason reason) {
    s.report(reason, action, false);
    if (reason == ReplyReason::Unapproved && (s.p.tcp_flags & tcpflag::SYN))
        s.c.add(Ctr::refused_unapproved_syn);
    if (s.pol.monitor) {  // counted and reported, not refused
        s.c.add(Ctr::monitor_passed);
        return Dest::Fwd;
    }
    return answer_refusal(s.pol, s.m, s.p, s.now, action, reason, s.c) ? Dest::Back : Dest::Drop;
}

// Ends a session whose client said what the policy refuses: the server gets a RST (a fresh buffer, its own
// sequence number: it never got this segment) in s.extra; the client gets action_payload's answer in place.
Dest end_session(Segment& s, Action action, std::string_view reply) {
    Counters& c = s.c;
    if (s.m->nb_segs != 1) {
        c.add(Ctr::multi_segment);
        c.add(Ctr::dropped_refused);
        return Dest::Drop;
    }
    if (rte_mbuf* r = rte_pktmbuf_alloc(s.m->pool)) {
        const uint32_t len =
            make_forward_rst(s.data(), s.p, rte_pktmbuf_mtod(r, uint8_t*), rte_pktmbuf_tailroom(r));
        if (len) {
            set_length(r, len);
            s.extra = r;
            c.add(Ctr::rst_sent_server);
        } else {
            rte_pktmbuf_free(r);
        }
    } else {
        c.add(Ctr::refusal_no_mbuf);
    }
    uint32_t len = 0;
    if (action == Action::Smtp) {
        len =
            smtp_close_in_place(s.data(), rte_pktmbuf_data_len(s.m) + rte_pktmbuf_tailroom(s.m), s.p, reply);
        c.add(len ? Ctr::smtp_reply_sent : Ctr::dropped_refused);
    } else if (action == Action::Rst) {
        len = make_rst_in_place(s.data(), s.p);
        c.add(Ctr::rst_sent);
    } else {
        c.add(Ctr::dropped_refused);
    }
    if (!len) return Dest::Drop;
    set_length(s.m, len);
    return Dest::Back;
}

// A SYN's data (TCP Fast Open) removed, in place: the client sends it again after the handshake, in order.
Dest strip_syn_data(Segment& s) {
    if (s.m->nb_segs != 1) return Dest::Drop;
    const uint32_t len = strip_payload_in_place(s.data(), s.p);
    rte_pktmbuf_trim(s.m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(s.m) - len));
    s.m->ol_flags = 0;
    return Dest::Fwd;
}

// A client segment of a session ended mid-way: its FIN is acknowledged, data is reset, the rest dropped.
Dest after_session(Segment& s) {
    if (s.m->nb_segs != 1 || (s.p.tcp_flags & tcpflag::RST)) return Dest::Drop;
    uint32_t len = 0;
    if (s.p.payload_len) {
        len = make_rst_in_place(s.data(), s.p);
        s.c.add(Ctr::rst_sent);
    } else if (s.p.tcp_flags & tcpflag::FIN) {
        len = ack_fin_in_place(s.data(), s.p);
        s.c.add(Ctr::smtp_finack_sent);
    } else {
        s.c.add(Ctr::smtp_quiet);
        return Dest::Drop;
    }
    set_length(s.m, len);
    return Dest::Back;
}

// Files a segment's outcome (all but Track and Untracked, which the callers resolve first): forward it,
// refuse the connection, end the session, drop it.
Dest file(Segment& s, const Outcome& o) {
    switch (o.verdict) {
        case Verdict::Forward:
            return o.strip_payload ? strip_syn_data(s) : Dest::Fwd;
        case Verdict::Refuse:
            return refuse(s, o.action, o.reason);
        case Verdict::RefuseSession:
            s.report(o.reason, o.action, true, o.rule);
            return end_session(s, o.action, o.reply ? std::string_view(*o.reply) : std::string_view());
        case Verdict::Refused:
            return after_session(s);
        case Verdict::Unacceptable:  // the normaliser's (counted): in monitor mode nothing is refused
            if (!s.pol.monitor) return Dest::Drop;
            s.c.add(Ctr::monitor_passed);
            return Dest::Fwd;
        case Verdict::Monitored:  // counted by the tracker: reported, forwarded
            s.report(o.reason, o.action, true, o.rule);
            return o.strip_payload ? strip_syn_data(s) : Dest::Fwd;
        case Verdict::Track:      // the classifier's: tracked before it is filed
        case Verdict::Untracked:  // the tracker's: resolved by track()
        case Verdict::Drop:
            break;
    }
    return Dest::Drop;
}

// A segment to a port that is not an SMTP port that may belong to an SMTP session found by its commands.
Dest track_other(Segment& s) {
    return file(s, s.ctx.flows->outbound_other(s.p, s.data(), s.pol, s.now.get(), s.c));
}

// An SMTP-class segment from a managed source: tracked, admitted or refused by the source's limits, and read.
Dest track(Segment& s, bool to_relay) {
    FlowTracker& flows = *s.ctx.flows;
    const Outcome o = flows.outbound(s.p, s.data(), s.pol, to_relay, s.now.get(), s.c);
    if (o.verdict == Verdict::Forward && !o.strip_payload) [[likely]]
        return Dest::Fwd;
    if (o.verdict != Verdict::Untracked) return file(s, o);
    // A segment of no connection this worker knows: maybe the next step of a stateless limit refusal.
    if (s.pol.action_limit == Action::Smtp && s.m->nb_segs == 1) {
        SmtpStep step;
        const uint32_t len = answer_smtp(s.pol, s.m, s.p, s.now, ReplyReason::Unapproved, &step);
        if (step != SmtpStep::Forged) {
            s.c.add(smtp_step_counter(step));
            if (!len) return Dest::Drop;
            set_length(s.m, len);
            return Dest::Back;
        }
    }
    // A segment of a connection this worker has no record of: it cannot be vouched for, so it is reset.
    return file(s, flows.unknown(s.p, s.pol, s.c));
}

}  // namespace

void process_inbound(const WorkerContext& ctx, const Policy& pol, rte_mbuf** pkts, uint16_t n, LazyNow& now) {
    // Inbound traffic, port 25 included, is never policed: the burst is forwarded as it came. Replies from
    // SMTP ports move their flow's state (a server's SYN-ACK, FIN or RST) and are read in sessions being
    // inspected, where a segment out of order is held back for its retransmission.
    Counters& c = *ctx.counters;
    c.add(Ctr::rx_outside, n);
    if (ctx.flows) {
        uint16_t kept = 0;
        for (uint16_t i = 0; i < n; ++i) {
            if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
            const Parsed p = parse_frame(rte_pktmbuf_mtod(pkts[i], uint8_t*), rte_pktmbuf_data_len(pkts[i]));
            if (p.kind == L3Kind::Tcp &&
                (pol.smtp_ports.test(p.sport) || ctx.flows->other_server_port(p.sport)) &&
                !ctx.flows->inbound(p, rte_pktmbuf_mtod(pkts[i], const uint8_t*), pol, now.get(), c)) {
                rte_pktmbuf_free(pkts[i]);  // out of order in a session being read: it comes again
                continue;
            }
            pkts[kept++] = pkts[i];
        }
        n = kept;
    }
    c.add(Ctr::fwd_inbound, send_or_free(ctx.inside_port, ctx.queue, pkts, n, c, Ctr::tx_full_inside));
}

void process_outbound(const WorkerContext& ctx, const Policy& pol, rte_mbuf** pkts, uint16_t n,
                      LazyNow& now) {
    Counters& c = *ctx.counters;
    rte_mbuf* fwd[2 * kBurst];  // a session ended mid-way adds the server's RST
    rte_mbuf* back[kBurst];
    rte_mbuf* drop[kBurst];
    RefusalEvent events[kBurst];
    uint16_t nf = 0, nb = 0, nd = 0, ne = 0, na = 0;

    c.add(Ctr::rx_inside, n);
    for (uint16_t i = 0; i < n; ++i) {
        if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
        rte_mbuf* m = pkts[i];
        const Parsed p = parse_frame(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
        const Decision d = classify_outbound(p, pol);
        const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
        if (d.verdict == Verdict::Forward) [[likely]] {
            if (d.reason != Ctr::fwd_outbound) c.add(d.reason);
            // Not an SMTP port: done, unless the segment opens or continues SMTP found on another port.
            if (p.kind != L3Kind::Tcp || !ctx.flows || !ctx.flows->other_port(p, frame)) [[likely]] {
                fwd[nf++] = m;
                continue;
            }
        } else {
            c.add(d.reason);
        }
        Segment seg{ctx, pol, m, p, now, c, &events[ne]};
        Dest dest;
        if (d.verdict == Verdict::Forward)
            dest = track_other(seg);
        else if (d.verdict == Verdict::Track)
            dest = ctx.flows ? track(seg, d.reason == Ctr::pass_relay) : Dest::Fwd;
        else
            dest = file(seg, outcome_of(d, pol));
        ne += seg.reported;
        na += seg.attempt;
        if (seg.extra) fwd[nf++] = seg.extra;
        if (dest == Dest::Fwd)
            fwd[nf++] = m;
        else if (dest == Dest::Back)
            back[nb++] = m;
        else
            drop[nd++] = m;
    }
    c.add(Ctr::fwd_outbound, send_or_free(ctx.outside_port, ctx.queue, fwd, nf, c, Ctr::tx_full_outside));
    send_or_free(ctx.inside_port, ctx.queue, back, nb, c, Ctr::tx_full_inside);
    if (nd) rte_pktmbuf_free_bulk(drop, nd);
    if (na) c.add(Ctr::refusals, na);
    if (ne && ctx.events) {
        const unsigned queued =
            rte_ring_enqueue_burst_elem(ctx.events, events, sizeof(RefusalEvent), ne, nullptr);
        if (queued < ne) c.add(Ctr::events_lost, ne - queued);
    }
}

int worker_main(void* arg) {
    const auto& ctx = *static_cast<const WorkerContext*>(arg);
    rte_mbuf* pkts[kBurst];
    uint32_t loops = 0;
    while (!ctx.stop->load(std::memory_order_relaxed)) {
        const Policy& pol = *ctx.policy->load(std::memory_order_acquire);
        LazyNow now(ctx.clock);
        const uint16_t out = rte_eth_rx_burst(ctx.inside_port, ctx.queue, pkts, kBurst);
        if (out) process_outbound(ctx, pol, pkts, out, now);
        const uint16_t in = rte_eth_rx_burst(ctx.outside_port, ctx.queue, pkts, kBurst);
        if (in) process_inbound(ctx, pol, pkts, in, now);
        if (ctx.flows && ++loops % kSweepEvery == 0 && ctx.flows->table().size())
            ctx.flows->sweep(now.get(), kSweepBudget, *ctx.counters);
        rte_rcu_qsbr_quiescent(ctx.qsbr, ctx.queue);  // done with `pol`
        if (ctx.pulse) {
            ctx.pulse->beats.store(ctx.pulse->beats.load(std::memory_order_relaxed) + 1,
                                   std::memory_order_relaxed);
            if (const uint32_t ms = ctx.pulse->stall_ms.load(std::memory_order_relaxed)) [[unlikely]] {
                ctx.pulse->stall_ms.store(0, std::memory_order_relaxed);
                rte_delay_us_block(ms * 1000u);  // the test hook: a stuck worker, spinning without a beat
            }
        }
        if (ctx.idle_sleep_us && (out | in) == 0) [[unlikely]]
            rte_delay_us_sleep(ctx.idle_sleep_us);  // nothing came: give the core back for a while
    }
    return 0;
}

}  // namespace portcullis
