// The outbound policy decision for one parsed frame from the inside port. Pure and branch-light: a frame
// that is not TCP to an SMTP port is decided after two tests, and the address sets are consulted only
// for the few frames that are.
#pragma once

#include "dataplane/counters.hpp"
#include "dataplane/parse.hpp"
#include "dataplane/policy.hpp"
#include "dataplane/verdict.hpp"

namespace portcullis {

// Forward, Track, Refuse (an unapproved source; answered as policy.action_unapproved says) or Drop (that
// action is Drop, or a malformed frame or a policed fragment).
struct Decision {
    Verdict verdict;
    Ctr reason;  // counted in addition to rx/tx; fwd_outbound means "nothing special"
};

inline Decision classify_outbound(const Parsed& p, const Policy& pol) {
    if (p.kind != L3Kind::Tcp) [[likely]] {
        if (p.kind == L3Kind::Malformed) [[unlikely]]
            return {Verdict::Drop, malformed_counter(p.malformation)};
        return {Verdict::Forward, Ctr::fwd_outbound};
    }
    if (!pol.smtp_ports.test(p.dport)) [[likely]]
        return {Verdict::Forward, Ctr::fwd_outbound};
    if (!pol.managed(p.src)) return {Verdict::Forward, Ctr::pass_unmanaged};
    // A first fragment (a non-first one is IpOther: it has no port). Honest SMTP uses PMTU discovery and
    // never fragments; fragments can overlap, and a receiver that lets the later one win sees flags or bytes
    // this gateway never saw (a RST rewritten to a SYN). Without its first fragment nothing reassembles.
    // Approved and relay-bound sources too: their flows are tracked and inspected on what the first fragment
    // says.
    if (p.fragment != Fragment::None) [[unlikely]]
        return {Verdict::Drop, Ctr::dropped_fragment_policed};
    if (pol.relay(p.dst)) return {Verdict::Track, Ctr::pass_relay};
    if (!pol.blocked_ports.test(p.dport)) return {Verdict::Track, Ctr::pass_open};
    if (pol.approved(p.src)) return {Verdict::Track, Ctr::pass_approved};
    if (p.tcp_flags & tcpflag::RST) return {Verdict::Forward, Ctr::pass_client_rst};
    return {pol.action_unapproved == Action::Drop ? Verdict::Drop : Verdict::Refuse, Ctr::refused_unapproved};
}

// The outcome of a decision that is not Track, for the worker's filing: an unapproved source's attempt is a
// refusal (monitor mode forwards it, whatever the action); any other Drop is dropped in every mode.
inline Outcome outcome_of(const Decision& d, const Policy& pol) {
    if (d.reason == Ctr::refused_unapproved)
        return {Verdict::Refuse, ReplyReason::Unapproved, pol.action_unapproved};
    return {d.verdict};
}

}  // namespace portcullis
