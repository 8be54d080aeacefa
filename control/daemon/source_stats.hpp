// Refusals per source address, from the workers' refusal events (dataplane/events.hpp): how often, when last,
// to which port, and who was refused most in the last minute (`portcullisctl top`). Bounded: past
// kMaxSources distinct sources, further new ones are only counted in aggregate; the last minute keeps at most
// kRecentPerSecond sources a second.
#pragma once

#include <rte_ring.h>

#include <array>
#include <cstdint>
#include <deque>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/net_addr.hpp"
#include "dataplane/cookie.hpp"
#include "dataplane/events.hpp"

namespace portcullis {

// "unapproved", "concurrency", "rate", "daily", "busy", "payload".
const char* reason_name(ReplyReason r);

class SourceStats {
  public:
    static constexpr size_t kMaxSources = 100'000;

    static constexpr size_t kRecentSeconds = 60, kRecentPerSecond = 10'000;

    // One refusal event, read at `now` (unix seconds).
    void record(const RefusalEvent& ev, int64_t now);
    // A receiver's refusal read from a source's session, as drained.
    struct RemoteRefusal {
        IpAddr source;
        std::string reply;
    };
    // Drains the workers' observation rings (ObservationEvent): the EHLO names and MAIL FROM domains seen,
    // and the receivers' refusals (returned, for the event stream and remote_refusals_suspend). `now`: unix
    // seconds.
    std::vector<RemoteRefusal> drain_observations(const std::vector<rte_ring*>& rings, int64_t now = 0);
    // {"ehlo": [...], "mail_from_domains": [...], "remote_refused": N, "remote_refusals": [{"at", "reply"}]},
    // most recent first, for one address.
    nlohmann::json seen(const IpAddr& a) const;
    // The receivers' refusals of a source's sessions since `since` (unix seconds; the last 1,000 are kept).
    size_t remote_since(const IpAddr& a, int64_t since) const;
    // Its last few replies, most recent first, joined for a reason line.
    std::string remote_replies(const IpAddr& a, size_t n) const;
    // {"refused": N, "attempts": N, "last": T, "last_port": P, "last_reason": R, "by_reason": {R: N}} for one
    // address; reasons are named as reason_name() says.
    nlohmann::json of(const IpAddr& a) const;
    // The n sources refused most often.
    nlohmann::json top(size_t n) const;
    // The n sources with the most refused attempts in the last minute: [{"addr", "refusals"}].
    nlohmann::json top_recent(size_t n, int64_t now) const;
    uint64_t untracked() const { return untracked_; }

  private:
    struct Entry {
        IpAddr addr;
        uint64_t refused = 0, attempts = 0;
        int64_t last = 0;
        uint16_t last_port = 0;
        uint8_t last_reason = 0;                          // a ReplyReason
        std::array<uint64_t, kReplyReasons> by_reason{};  // refused segments per reason
    };
    struct Hash {
        size_t operator()(const u128& v) const {
            return std::hash<uint64_t>{}(static_cast<uint64_t>(v) ^
                                         static_cast<uint64_t>(v >> 64) * 0x9e3779b97f4a7c15ull);
        }
    };
    static u128 key(const IpAddr& a) { return a.v6 ? a.v6addr : (u128{0xffff} << 32) | a.v4; }
    std::unordered_map<u128, Entry, Hash> by_src_;
    struct Seen {
        std::vector<std::string> ehlo, domains;  // at most kSeen each, most recent first, no repeats
        uint64_t remote_count = 0;
        std::deque<std::pair<int64_t, std::string>> remote;  // the last kSeen replies, most recent first
        std::deque<int64_t> remote_times;                    // the last kRemoteTimes, oldest first
    };
    static constexpr size_t kRemoteTimes = 1000;
    static constexpr size_t kSeen = 5;
    std::unordered_map<u128, Seen, Hash> seen_;
    void count_recent(const u128& k, int64_t now);
    // Per second of the last minute, refused attempts per source.
    std::deque<std::pair<std::unordered_map<u128, uint32_t, Hash>, int64_t>> recent_;
    uint64_t untracked_ = 0;
};

}  // namespace portcullis
