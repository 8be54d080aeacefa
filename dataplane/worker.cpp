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
void note_refusal(RefusalEvent& e, const Parsed& p, Counters& c) {
    e.syn = (p.tcp_flags & tcpflag::SYN) ? 1 : 0;
    if (e.syn) c.add(Ctr::refused_unapproved_syn);
    e.v6addr = p.src.v6addr;
    e.v4 = p.src.v4;
    e.v6 = p.src.v6;
    e.dport = p.dport;
}

// Rewrites a refused segment, in place, into its answer (RST or the SMTP refusal's next step). Returns false
// when there is nothing to send back (counted under the reason), and the caller drops the segment.
bool answer_refusal(const WorkerContext& ctx, const Policy& pol, rte_mbuf* m, const Parsed& p, uint64_t& slot,
                    Counters& c) {
    if (m->nb_segs != 1) {
        c.add(Ctr::multi_segment);
        c.add(Ctr::dropped_refused);
        return false;
    }
    uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
    uint32_t len;
    if (pol.action_unapproved == Action::Smtp) {
        if (slot == UINT64_MAX) slot = ctx.tsc_per_slot ? rte_rdtsc() / ctx.tsc_per_slot : 0;
        const uint32_t room = rte_pktmbuf_data_len(m) + rte_pktmbuf_tailroom(m);
        const SmtpAnswer a = smtp_answer_in_place(data, room, p, pol.cookie_key, slot, pol.reply_unapproved);
        c.add(smtp_counter(a.step));
        len = a.len;
    } else {
        len = make_rst_in_place(data, p);
        c.add(Ctr::rst_sent);
    }
    if (len == 0) return false;
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = len;
    m->ol_flags = 0;
    return true;
}

}  // namespace

void process_inbound(const WorkerContext& ctx, rte_mbuf** pkts, uint16_t n) {
    // Inbound traffic, port 25 included, is never policed: forward the burst as it came.
    Counters& c = *ctx.counters;
    c.add(Ctr::rx_outside, n);
    c.add(Ctr::fwd_inbound, send_or_free(ctx.inside_port, ctx.queue, pkts, n, c, Ctr::tx_full_inside));
}

void process_outbound(const WorkerContext& ctx, const Policy& pol, rte_mbuf** pkts, uint16_t n) {
    Counters& c = *ctx.counters;
    rte_mbuf* fwd[kBurst];
    rte_mbuf* back[kBurst];
    rte_mbuf* drop[kBurst];
    RefusalEvent events[kBurst];
    uint16_t nf = 0, nb = 0, nd = 0, ne = 0;
    uint64_t slot = UINT64_MAX;  // cookie time slot, read once a burst when needed

    c.add(Ctr::rx_inside, n);
    for (uint16_t i = 0; i < n; ++i) {
        if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
        rte_mbuf* m = pkts[i];
        uint8_t* data = rte_pktmbuf_mtod(m, uint8_t*);
        const Parsed p = parse_frame(data, rte_pktmbuf_data_len(m));
        const Decision d = classify_outbound(p, pol);
        if (d.verdict == Verdict::Forward) [[likely]] {
            if (d.reason != Ctr::fwd_outbound) c.add(d.reason);
            fwd[nf++] = m;
            continue;
        }
        c.add(d.reason);
        if (d.reason != Ctr::refused_unapproved) {  // malformed: counted, dropped
            drop[nd++] = m;
            continue;
        }
        note_refusal(events[ne++], p, c);
        if (pol.monitor) {  // counted and reported, not refused
            c.add(Ctr::monitor_passed);
            fwd[nf++] = m;
            continue;
        }
        if (d.verdict == Verdict::Refuse) {
            if (answer_refusal(ctx, pol, m, p, slot, c))
                back[nb++] = m;
            else
                drop[nd++] = m;
            continue;
        }
        c.add(Ctr::dropped_refused);  // action drop
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
    while (!ctx.stop->load(std::memory_order_relaxed)) {
        const Policy& pol = *ctx.policy->load(std::memory_order_acquire);
        uint16_t n = rte_eth_rx_burst(ctx.inside_port, ctx.queue, pkts, kBurst);
        if (n) process_outbound(ctx, pol, pkts, n);
        n = rte_eth_rx_burst(ctx.outside_port, ctx.queue, pkts, kBurst);
        if (n) process_inbound(ctx, pkts, n);
        rte_rcu_qsbr_quiescent(ctx.qsbr, ctx.queue);  // done with `pol`
    }
    return 0;
}

}  // namespace portcullis
