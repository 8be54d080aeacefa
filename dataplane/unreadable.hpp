// Why a session that must be read could not be read, cause by cause: the inspector finds the cause, the
// policy says per cause what the client gets (action_unreadable_<cause>), and each has its counter. Apart
// from dataplane/inspect.hpp so that the policy and option parsing need no Hyperscan header.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "dataplane/counters.hpp"

namespace portcullis {

// Why a session that must be read could not be. The capacity causes come first (a 4xx reply: the client may
// try again), then the protocol causes (5xx). Shares its order with the inspect_unreadable_* counters.
enum class Unreadable : uint8_t {
    Budget,     // more than InspectPolicy::budget bytes of commands in one transaction
    PoolFull,   // no inspection slot free (the caller's cause: Inspector::open returned kNone)
    Gap,        // a client sequence gap: a segment lost or reordered
    ServerGap,  // a server sequence gap: replies lost, the pairing broken
    Desync,     // a server line that is no reply, or a reply to no command
    Overlong,   // a line past kMaxLine, or cut (at kKeep) inside its verb, EHLO name or MAIL FROM path
    Protocol,   // client bytes while the reply to STARTTLS or DATA is awaited
    Tls,        // TLS framing broken, or a cleartext answer to a client's TLS
};
inline constexpr size_t kUnreadableCauses = 8;
// "budget", "pool_full", ...: the suffix of its counter and of its action_unreadable_<cause> option.
inline const char* unreadable_name(Unreadable u) {
    constexpr std::array<const char*, kUnreadableCauses> kNames = {
        "budget", "pool_full", "gap", "server_gap", "desync", "overlong", "protocol", "tls"};
    return kNames[static_cast<size_t>(u)];
}
// The reply line the client gets: "421 4.7.0 ..." for the capacity causes, "500 5.5.2 ..." and kin for the
// others.
const std::string& unreadable_reply(Unreadable u);
inline Ctr unreadable_counter(Unreadable u) {
    static_assert(static_cast<int>(Ctr::inspect_unreadable_tls) -
                      static_cast<int>(Ctr::inspect_unreadable_budget) ==
                  static_cast<int>(Unreadable::Tls) - static_cast<int>(Unreadable::Budget));
    static_assert(static_cast<size_t>(Unreadable::Tls) + 1 == kUnreadableCauses);
    return static_cast<Ctr>(static_cast<int>(Ctr::inspect_unreadable_budget) + static_cast<int>(u));
}

}  // namespace portcullis
