// Per-source refusal statistics (see source_stats.hpp).
#include "control/daemon/source_stats.hpp"

#include <rte_ring_elem.h>

#include <algorithm>

#include "api/approval.hpp"
#include "dataplane/events.hpp"

namespace portcullis {

const char* reason_name(ReplyReason r) {
    static constexpr const char* kNames[kReplyReasons] = {"unapproved", "concurrency", "rate",
                                                          "daily",      "busy",        "payload"};
    const auto i = static_cast<unsigned>(r);
    return i < kReplyReasons ? kNames[i] : "unknown";
}

void SourceStats::record(const RefusalEvent& ev, int64_t now) {
    const IpAddr src = ev.source();
    const u128 k = key(src);
    if (ev.syn || (ev.flags & kEventSession)) count_recent(k, now);
    auto it = by_src_.find(k);
    if (it == by_src_.end()) {
        if (by_src_.size() >= kMaxSources) {
            ++untracked_;
            return;
        }
        it = by_src_.emplace(k, Entry{src}).first;
    }
    Entry& e = it->second;
    ++e.refused;
    e.attempts += ev.syn;
    e.last = now;
    e.last_port = ev.dport;
    if (ev.reason < kReplyReasons) {
        e.last_reason = ev.reason;
        ++e.by_reason[ev.reason];
    }
}

void SourceStats::count_recent(const u128& k, int64_t now) {
    if (recent_.empty() || recent_.back().second != now) {
        recent_.push_back({{}, now});
        while (recent_.size() > kRecentSeconds) recent_.pop_front();
    }
    auto& second = recent_.back().first;
    if (second.size() < kRecentPerSecond || second.count(k)) ++second[k];
}

nlohmann::json SourceStats::top_recent(size_t n, int64_t now) const {
    std::unordered_map<u128, uint64_t, Hash> sum;
    for (const auto& [counts, t] : recent_)
        if (t > now - static_cast<int64_t>(kRecentSeconds))
            for (const auto& [k, c] : counts) sum[k] += c;
    std::vector<std::pair<u128, uint64_t>> all(sum.begin(), sum.end());
    n = std::min(n, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<long>(n), all.end(),
                      [](const auto& a, const auto& b) { return a.second > b.second; });
    auto out = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
        const u128 k = all[i].first;
        const bool v4 = (k >> 32) == 0xffff;
        const IpAddr a = v4 ? IpAddr::from_v4(static_cast<uint32_t>(k)) : IpAddr::from_v6(k);
        out.push_back({{"addr", to_string(a)}, {"refusals", all[i].second}});
    }
    return out;
}

std::vector<SourceStats::RemoteRefusal> SourceStats::drain_observations(const std::vector<rte_ring*>& rings,
                                                                        int64_t now) {
    std::vector<RemoteRefusal> remote;
    ObservationEvent ev[32];
    auto remember = [](std::vector<std::string>& list, std::string text) {
        std::erase(list, text);
        list.insert(list.begin(), std::move(text));
        if (list.size() > kSeen) list.pop_back();
    };
    for (auto* ring : rings) {
        unsigned n;
        while ((n = rte_ring_dequeue_burst_elem(ring, ev, sizeof(ObservationEvent), 32, nullptr)) > 0) {
            for (unsigned i = 0; i < n; ++i) {
                const u128 k = key(ev[i].source());
                auto it = seen_.find(k);
                if (it == seen_.end()) {
                    if (seen_.size() >= kMaxSources) continue;
                    it = seen_.emplace(k, Seen{}).first;
                }
                std::string text(ev[i].text, std::min<size_t>(ev[i].len, sizeof ev[i].text));
                for (char& ch : text)
                    if (ch < 0x20 || ch > 0x7e) ch = '?';  // what a client sent: printable before it is shown
                Seen& seen = it->second;
                if (ev[i].kind == kObservedRemoteRefusal) {
                    ++seen.remote_count;
                    seen.remote.push_front({now, text});
                    if (seen.remote.size() > kSeen) seen.remote.pop_back();
                    seen.remote_times.push_back(now);
                    if (seen.remote_times.size() > kRemoteTimes) seen.remote_times.pop_front();
                    if (remote.size() < 4096) remote.push_back({ev[i].source(), std::move(text)});
                    continue;
                }
                remember(ev[i].kind == kObservedEhlo ? seen.ehlo : seen.domains, std::move(text));
            }
        }
    }
    return remote;
}

size_t SourceStats::remote_since(const IpAddr& a, int64_t since) const {
    auto it = seen_.find(key(a));
    if (it == seen_.end()) return 0;
    const auto& t = it->second.remote_times;
    return static_cast<size_t>(std::count_if(t.begin(), t.end(), [&](int64_t x) { return x >= since; }));
}

std::string SourceStats::remote_replies(const IpAddr& a, size_t n) const {
    auto it = seen_.find(key(a));
    if (it == seen_.end()) return {};
    std::string out;
    for (size_t i = 0; i < n && i < it->second.remote.size(); ++i)
        out += (out.empty() ? "" : " | ") + it->second.remote[i].second;
    return out;
}

nlohmann::json SourceStats::seen(const IpAddr& a) const {
    auto it = seen_.find(key(a));
    if (it == seen_.end())
        return {{"ehlo", nlohmann::json::array()},
                {"mail_from_domains", nlohmann::json::array()},
                {"remote_refused", 0},
                {"remote_refusals", nlohmann::json::array()}};
    auto remote = nlohmann::json::array();
    for (const auto& [at, reply] : it->second.remote) remote.push_back({{"at", at}, {"reply", reply}});
    return {{"ehlo", it->second.ehlo},
            {"mail_from_domains", it->second.domains},
            {"remote_refused", it->second.remote_count},
            {"remote_refusals", std::move(remote)}};
}

nlohmann::json SourceStats::of(const IpAddr& a) const {
    auto it = by_src_.find(key(a));
    if (it == by_src_.end()) return {{"refused", 0}, {"attempts", 0}};
    const Entry& e = it->second;
    nlohmann::json by = nlohmann::json::object();
    for (unsigned r = 0; r < kReplyReasons; ++r)
        if (e.by_reason[r]) by[reason_name(static_cast<ReplyReason>(r))] = e.by_reason[r];
    return {{"refused", e.refused},
            {"attempts", e.attempts},
            {"last", e.last},
            {"last_port", e.last_port},
            {"last_reason", reason_name(static_cast<ReplyReason>(e.last_reason))},
            {"by_reason", by}};
}

nlohmann::json SourceStats::top(size_t n) const {
    std::vector<const Entry*> all;
    all.reserve(by_src_.size());
    for (const auto& [k, e] : by_src_) all.push_back(&e);
    n = std::min(n, all.size());
    std::partial_sort(all.begin(), all.begin() + static_cast<long>(n), all.end(),
                      [](const Entry* a, const Entry* b) { return a->refused > b->refused; });
    auto out = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i)
        out.push_back({{"addr", to_string(all[i]->addr)},
                       {"refused", all[i]->refused},
                       {"attempts", all[i]->attempts},
                       {"last", all[i]->last},
                       {"last_port", all[i]->last_port},
                       {"last_reason", reason_name(static_cast<ReplyReason>(all[i]->last_reason))}});
    return out;
}

}  // namespace portcullis
