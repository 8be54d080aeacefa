// The policy snapshot: everything a worker needs to decide on a packet, immutable once built.
// The control side builds one (control/policy/policy_builder.cpp); workers only read it. IPv4 sets are
// CRoaring bitmaps (prefixes become run containers, so a /8 costs a few bytes); IPv6 sets are Prefix6Set.
#pragma once

#include <array>
#include <bitset>
#include <cstdint>
#include <memory>
#include <roaring/roaring.hh>
#include <string>

#include "dataplane/cookie.hpp"
#include "dataplane/limits.hpp"
#include "dataplane/prefix6_set.hpp"
#include "dataplane/respond.hpp"
#include "dataplane/smtp_command.hpp"
#include "dataplane/unreadable.hpp"
#include "dataplane/v4_summary.hpp"

namespace portcullis {

struct InspectDb;  // dataplane/inspect.hpp: the operator's compiled rules, shared by the snapshots

// What an unapproved managed source gets when SMTP is found on a port that is not an SMTP port.
enum class OtherPorts : uint8_t { Allow, Limit, Refuse };

// What happens to a refused connection attempt.
enum class Action : uint8_t {
    Rst,   // answer the client with a TCP RST: its MTA fails at once and logs "connection refused"
    Drop,  // silently discard (the client times out)
    Smtp,  // complete the handshake statelessly and answer with an SMTP reply line, then close
};

// What a session that must be read but cannot be gets, per Unreadable cause (default: the cause's reply).
inline constexpr std::array<Action, kUnreadableCauses> make_unreadable_actions() {
    std::array<Action, kUnreadableCauses> a{};
    a.fill(Action::Smtp);
    return a;
}

struct Policy {
    ::Roaring managed4, approved4, relay4;
    V4Summary managed4_sum, approved4_sum, relay4_sum;  // built by summarise(); until then the bitmaps answer
    Prefix6Set managed6, approved6, relay6;
    std::bitset<65536> blocked_ports;  // outbound TCP refused from managed, unapproved sources
    std::bitset<65536> open_ports;     // SMTP submission ports, always open
    std::bitset<65536> smtp_ports;     // blocked | open: TCP to these from managed sources is tracked
    Action action_unapproved = Action::Rst;
    Action action_limit = Action::Smtp;  // a new connection over a limit (or no room to track it)
    bool monitor = false;                // count and report what would be refused, refuse nothing
    ReplyLines replies;                  // the SMTP reply line per reason, for Action::Smtp
    Limits default_limits;               // for managed sources no approval overrides
    Limits relay_limits;                 // for connections to relay hosts
    LimitMap limit_overrides;            // per approval, resolved against the defaults
    // Inspection of SMTP sessions (dataplane/inspect.hpp).
    bool inspect = true;
    Action action_payload = Action::Smtp;  // a session whose commands break the policy
    std::array<Action, kUnreadableCauses> action_unreadable = make_unreadable_actions();
    bool ehlo_allow_literal = false;
    uint32_t inspect_bytes = 4096;
    OtherPorts smtp_other_ports = OtherPorts::Limit;  // unapproved sources; approved ones are always limited
    std::shared_ptr<const InspectDb> rules;           // the operator's rules; may be null
    AddrMap<ApprovalNames> names;                     // approvals that name host names or sending domains
    CookieKey cookie_key;                             // random per start, the same in every snapshot of a run

    bool managed(const IpAddr& a) const {
        return a.v6 ? managed6.contains(a.v6addr) : managed4_sum.contains(managed4, a.v4);
    }
    bool approved(const IpAddr& a) const {
        return a.v6 ? approved6.contains(a.v6addr) : approved4_sum.contains(approved4, a.v4);
    }
    bool relay(const IpAddr& a) const {
        return a.v6 ? relay6.contains(a.v6addr) : relay4_sum.contains(relay4, a.v4);
    }
    // Builds the /16 summaries of the IPv4 sets, once they are final (control side).
    void summarise() {
        managed4_sum.build(managed4);
        approved4_sum.build(approved4);
        relay4_sum.build(relay4);
    }
};

}  // namespace portcullis
