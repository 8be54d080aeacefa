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

Ctr smtp_counter(SmtpStep step) {
    switch (step) {
        case SmtpStep::SynAck:
            return Ctr::smtp_synack_sent;
        case SmtpStep::Reply:
            return Ctr::smtp_reply_sent;
        case SmtpStep::FinAck:
            return Ctr::smtp_finack_sent;
        case SmtpStep::Reset:
            return Ctr::rst_sent;
        case SmtpStep::Quiet:
            return Ctr::smtp_quiet;
        case SmtpStep::Forged:
            return Ctr::smtp_forged;
        case SmtpStep::NoRoom:
            break;
    }
    return Ctr::dropped_refused;
}

// Records a refusal for the control thread's per-source figures.
void note_refusal(RefusalEvent& e, const Parsed& p, ReplyReason reason) {
    e.syn = (p.tcp_flags & tcpflag::SYN) ? 1 : 0;
    e.reason = static_cast<uint8_t>(reason);
    e.v6addr = p.src.v6addr;
    e.v4 = p.src.v4;
    e.v6 = p.src.v6;
    e.dport = p.dport;
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
        c.add(smtp_counter(step));
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

// A refusal: counted, reported (into *ev), then forwarded (monitor), answered, or dropped.
Dest refuse(const Policy& pol, rte_mbuf* m, const Parsed& p, LazyNow& now, Action action, ReplyReason reason,
            RefusalEvent* ev, Counters& c) {
    note_refusal(*ev, p, reason);
    if (reason == ReplyReason::Unapproved && (p.tcp_flags & tcpflag::SYN)) c.add(Ctr::refused_unapproved_syn);
    if (pol.monitor) {  // counted and reported, not refused
        c.add(Ctr::monitor_passed);
        return Dest::Fwd;
    }
    return answer_refusal(pol, m, p, now, action, reason, c) ? Dest::Back : Dest::Drop;
}

// Ends a session whose client said what the policy refuses: the server gets a RST (a fresh buffer, its own
// sequence number: it never got this segment) in *extra; the client gets action_payload's answer in place.
Dest end_session(Action action, rte_mbuf* m, const Parsed& p, const std::string& reply, rte_mbuf** extra,
                 Counters& c) {
    if (m->nb_segs != 1) {
        c.add(Ctr::multi_segment);
        c.add(Ctr::dropped_refused);
        return Dest::Drop;
    }
    uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
    if (rte_mbuf* r = rte_pktmbuf_alloc(m->pool)) {
        const uint32_t len =
            make_forward_rst(data, p, rte_pktmbuf_mtod(r, uint8_t*), rte_pktmbuf_tailroom(r));
        if (len) {
            set_length(r, len);
            *extra = r;
            c.add(Ctr::rst_sent_server);
        } else {
            rte_pktmbuf_free(r);
        }
    } else {
        c.add(Ctr::refusal_no_mbuf);
    }
    uint32_t len = 0;
    if (action == Action::Smtp) {
        len = smtp_close_in_place(data, rte_pktmbuf_data_len(m) + rte_pktmbuf_tailroom(m), p, reply);
        c.add(len ? Ctr::smtp_reply_sent : Ctr::dropped_refused);
    } else if (action == Action::Rst) {
        len = make_rst_in_place(data, p);
        c.add(Ctr::rst_sent);
    } else {
        c.add(Ctr::dropped_refused);
    }
    if (!len) return Dest::Drop;
    set_length(m, len);
    return Dest::Back;
}

// A SYN's data (TCP Fast Open) removed, in place: the client sends it again after the handshake, in order.
Dest strip_syn_data(rte_mbuf* m, const Parsed& p) {
    if (m->nb_segs != 1) return Dest::Drop;
    const uint32_t len = strip_payload_in_place(rte_pktmbuf_mtod(m, uint8_t*), p);
    rte_pktmbuf_trim(m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - len));
    m->ol_flags = 0;
    return Dest::Fwd;
}

// A client segment of a session ended mid-way: its FIN is acknowledged, data is reset, the rest dropped.
Dest after_session(rte_mbuf* m, const Parsed& p, Counters& c) {
    if (m->nb_segs != 1 || (p.tcp_flags & tcpflag::RST)) return Dest::Drop;
    uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
    uint32_t len = 0;
    if (p.payload_len) {
        len = make_rst_in_place(data, p);
        c.add(Ctr::rst_sent);
    } else if (p.tcp_flags & tcpflag::FIN) {
        len = ack_fin_in_place(data, p);
        c.add(Ctr::smtp_finack_sent);
    } else {
        c.add(Ctr::smtp_quiet);
        return Dest::Drop;
    }
    set_length(m, len);
    return Dest::Back;
}

// Files the tracker's verdict on a segment (all but Untracked): forward it, refuse the connection, end the
// session.
Dest on_verdict(const TrackResult& t, const Policy& pol, rte_mbuf* m, const Parsed& p, LazyNow& now,
                RefusalEvent* ev, bool* reported, rte_mbuf** extra, Counters& c) {
    switch (t.verdict) {
        case TrackVerdict::RefuseSession:
            *reported = true;
            note_refusal(*ev, p, t.reason);
            return end_session(t.action, m, p, t.reply ? *t.reply : std::string(), extra, c);
        case TrackVerdict::Refused:
            return after_session(m, p, c);
        case TrackVerdict::Refuse:
            *reported = true;
            return refuse(pol, m, p, now, pol.action_limit, t.reason, ev, c);
        case TrackVerdict::Drop:  // the normaliser's (counted): in monitor mode nothing is refused
            if (!pol.monitor) return Dest::Drop;
            c.add(Ctr::monitor_passed);
            return Dest::Fwd;
        default:
            return t.strip_payload ? strip_syn_data(m, p) : Dest::Fwd;
    }
}

// A segment to a port that is not an SMTP port that may belong to an SMTP session found by its commands.
Dest track_other(const WorkerContext& ctx, const Policy& pol, rte_mbuf* m, const Parsed& p, LazyNow& now,
                 RefusalEvent* ev, bool* reported, rte_mbuf** extra, Counters& c) {
    const TrackResult t =
        ctx.flows->outbound_other(p, rte_pktmbuf_mtod(m, const uint8_t*), pol, now.get(), c);
    return on_verdict(t, pol, m, p, now, ev, reported, extra, c);
}

// An SMTP-class segment from a managed source: tracked, admitted or refused by the source's limits, and read.
// Sets *reported when it wrote a refusal event into *ev, *extra when there is a second frame to forward.
Dest track(const WorkerContext& ctx, const Policy& pol, rte_mbuf* m, const Parsed& p, bool to_relay,
           LazyNow& now, RefusalEvent* ev, bool* reported, rte_mbuf** extra, Counters& c) {
    const TrackResult t =
        ctx.flows->outbound(p, rte_pktmbuf_mtod(m, const uint8_t*), pol, to_relay, now.get(), c);
    if (t.verdict == TrackVerdict::Forward && !t.strip_payload) [[likely]]
        return Dest::Fwd;
    if (t.verdict != TrackVerdict::Untracked) return on_verdict(t, pol, m, p, now, ev, reported, extra, c);
    // A segment of no connection this worker knows: maybe the next step of a stateless limit refusal.
    if (pol.action_limit == Action::Smtp && m->nb_segs == 1) {
        SmtpStep step;
        const uint32_t len = answer_smtp(pol, m, p, now, ReplyReason::Unapproved, &step);
        if (step != SmtpStep::Forged) {
            c.add(smtp_counter(step));
            if (!len) return Dest::Drop;
            set_length(m, len);
            return Dest::Back;
        }
    }
    // A segment of a connection this worker has no record of: it cannot be vouched for, so it is reset.
    return on_verdict(ctx.flows->unknown(p, pol, c), pol, m, p, now, ev, reported, extra, c);
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
    uint16_t nf = 0, nb = 0, nd = 0, ne = 0;

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
        Dest dest = Dest::Drop;  // malformed: counted, dropped
        bool reported = false;
        rte_mbuf* extra = nullptr;
        if (d.verdict == Verdict::Forward) {
            dest = track_other(ctx, pol, m, p, now, &events[ne], &reported, &extra, c);
        } else if (d.verdict == Verdict::Track) {
            dest = ctx.flows ? track(ctx, pol, m, p, d.reason == Ctr::pass_relay, now, &events[ne], &reported,
                                     &extra, c)
                             : Dest::Fwd;
        } else if (d.reason == Ctr::refused_unapproved) {
            const Action action = d.verdict == Verdict::Drop ? Action::Drop : pol.action_unapproved;
            dest = refuse(pol, m, p, now, action, ReplyReason::Unapproved, &events[ne], c);
            reported = true;
        }
        ne += reported;
        if (extra) fwd[nf++] = extra;
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
        uint16_t n = rte_eth_rx_burst(ctx.inside_port, ctx.queue, pkts, kBurst);
        if (n) process_outbound(ctx, pol, pkts, n, now);
        n = rte_eth_rx_burst(ctx.outside_port, ctx.queue, pkts, kBurst);
        if (n) process_inbound(ctx, pol, pkts, n, now);
        if (ctx.flows && ++loops % kSweepEvery == 0 && ctx.flows->table().size())
            ctx.flows->sweep(now.get(), kSweepBudget, *ctx.counters);
        rte_rcu_qsbr_quiescent(ctx.qsbr, ctx.queue);  // done with `pol`
    }
    return 0;
}

}  // namespace portcullis
