// The outbound policy decision for one parsed frame from the inside port. Pure and branch-light: a frame
// that is not TCP to an SMTP port is decided after two tests, and the address sets are consulted only
// for the few frames that are.
#pragma once

#include "dataplane/counters.hpp"
#include "dataplane/parse.hpp"
#include "dataplane/policy.hpp"

namespace portcullis {

enum class Verdict : uint8_t {
    Forward,  // send on to the other port, unchanged
    Track,    // SMTP from a managed source: forward, subject to flow tracking and the source's limits
    Refuse,   // answer the client (RST or SMTP reply) on the port it came from
    Drop,     // free it
};

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

}  // namespace portcullis
