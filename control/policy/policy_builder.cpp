// Policy snapshot construction (see policy_builder.hpp): sets into Roaring run containers (IPv4) and interval
// tables (IPv6); approvals flattened most-specific-wins.
#include "control/policy/policy_builder.hpp"

#include <optional>

#include "control/policy/prefix_flatten.hpp"

namespace portcullis {

namespace {

void add_prefixes(::Roaring& v4, Prefix6Set& v6, const std::vector<Prefix>& list) {
    for (const auto& p : list) {
        if (p.addr.v6)
            v6.add(p);
        else
            v4.addRange(p.first4(), uint64_t{p.last4()} + 1);
    }
    v4.runOptimize();
    v4.shrinkToFit();
    v6.seal();
}

// A per-address map of what approvals say: `value_of(approval)` is the record's own value, or nullopt when it
// says nothing (then the address takes the defaults). The innermost record covering an address decides, even
// when it says nothing.
template <class T, class F>
void build_approval_map(AddrMap<T>& out, const std::map<Prefix, Approval, PrefixLess>& records, F value_of) {
    std::vector<T> values;
    std::vector<PrefixSpan> spans[2];
    for (const auto& [p, a] : records) {
        std::optional<T> v = value_of(a);
        if (v) values.push_back(std::move(*v));
        const uint32_t tag = v ? static_cast<uint32_t>(values.size() - 1) : 0;
        if (p.addr.v6)
            spans[1].push_back({p.first6(), p.last6(), v.has_value(), tag});
        else
            spans[0].push_back({p.first4(), p.last4(), v.has_value(), tag});
    }
    for (int v6 = 0; v6 < 2; ++v6) {
        std::vector<typename AddrMap<T>::Range> ranges;
        for (const auto& r : flatten_innermost(spans[v6])) ranges.push_back({r.first, r.last, values[r.tag]});
        out.assign(v6 == 1, std::move(ranges));
    }
}

// Per-approval limits, their unset fields taking the defaults.
void build_limit_overrides(Policy& pol, const std::map<Prefix, Approval, PrefixLess>& records) {
    const Limits d = pol.default_limits;
    build_approval_map(pol.limit_overrides, records, [&](const Approval& a) -> std::optional<Limits> {
        if (!a.max_concurrent && !a.rate_per_min && !a.daily) return std::nullopt;
        return Limits{a.max_concurrent ? a.max_concurrent : d.concurrent,
                      a.rate_per_min ? a.rate_per_min : d.rate_per_min, a.daily ? a.daily : d.daily};
    });
}

// The host names and sending domains approvals name; one that names none: the general checks only.
void build_names(Policy& pol, const std::map<Prefix, Approval, PrefixLess>& records) {
    build_approval_map(pol.names, records, [](const Approval& a) -> std::optional<ApprovalNames> {
        if (a.hostname.empty() && a.domains.empty()) return std::nullopt;
        return ApprovalNames{a.hostname, a.domains};
    });
}

}  // namespace

Limits effective_default_limits(const Config& cfg, const ApprovalStore* store) {
    Limits l = cfg.default_limits;
    if (!store || !store->settings().contains("limits")) return l;
    const auto& j = store->settings()["limits"];
    l.concurrent = j.value("max_concurrent", l.concurrent);
    l.rate_per_min = j.value("rate_per_min", l.rate_per_min);
    l.daily = j.value("daily", l.daily);
    return l;
}

std::vector<Prefix> effective_list(const std::vector<Prefix>& configured,
                                   const ApprovalStore::Overlay* overlay) {
    ApprovalStore::PrefixSet set(configured.begin(), configured.end());
    if (overlay) {
        for (const auto& p : overlay->removed) set.erase(p);
        set.insert(overlay->added.begin(), overlay->added.end());
    }
    return {set.begin(), set.end()};
}

BuiltPolicy build_policy(const Config& cfg, const ApprovalStore* store, int64_t now,
                         std::shared_ptr<const InspectDb> rules) {
    BuiltPolicy out;
    out.policy = std::make_unique<Policy>();
    Policy& pol = *out.policy;
    add_prefixes(pol.managed4, pol.managed6,
                 effective_list(cfg.managed_prefixes, store ? &store->managed() : nullptr));
    add_prefixes(pol.relay4, pol.relay6, effective_list(cfg.relay_hosts, store ? &store->relay() : nullptr));

    // Baseline from the config file, overridden prefix by prefix by the store; PrefixLess order is the
    // sweep order flatten_innermost needs (IPv4 first, then by first address, wider first).
    std::map<Prefix, bool, PrefixLess> grants;
    for (const auto& p : cfg.approved) grants[p] = true;
    if (store) {
        for (const auto& [p, a] : store->records()) {
            grants[p] = a.grants(now);
            if (a.grants(now) && a.expires && (out.next_expiry == 0 || a.expires < out.next_expiry))
                out.next_expiry = a.expires;
        }
    }
    std::vector<PrefixSpan> v4, v6;
    for (const auto& [p, granted] : grants) {
        if (p.addr.v6)
            v6.push_back({p.first6(), p.last6(), granted});
        else
            v4.push_back({p.first4(), p.last4(), granted});
    }
    for (const auto& r : flatten_innermost(v4))
        pol.approved4.addRange(static_cast<uint64_t>(r.first), static_cast<uint64_t>(r.last) + 1);
    pol.approved4.runOptimize();
    pol.approved4.shrinkToFit();
    pol.summarise();
    for (const auto& r : flatten_innermost(v6)) pol.approved6.add_range(r.first, r.last);
    pol.approved6.seal();

    for (auto port : cfg.blocked_ports) pol.blocked_ports.set(port);
    for (auto port : cfg.open_ports) pol.open_ports.set(port);
    pol.smtp_ports = pol.blocked_ports | pol.open_ports;
    pol.action_unapproved = cfg.action_unapproved;
    pol.action_limit = cfg.action_limit;
    pol.replies = cfg.replies;
    pol.cookie_key = cfg.cookie_key;
    pol.default_limits = effective_default_limits(cfg, store);
    pol.relay_limits = cfg.relay_limits;
    if (store) build_limit_overrides(pol, store->records());
    if (store) build_names(pol, store->records());
    pol.inspect = cfg.inspect;
    pol.action_payload = cfg.action_payload;
    pol.action_unreadable = cfg.action_unreadable;
    pol.ehlo_allow_literal = cfg.ehlo_allow_literal;
    pol.smtp_other_ports = cfg.smtp_other_ports;
    pol.inspect_bytes = cfg.inspect_bytes;
    pol.rules = std::move(rules);
    pol.monitor = cfg.monitor;
    if (store && store->settings().contains("monitor"))
        pol.monitor = store->settings()["monitor"].get<bool>();
    return out;
}

}  // namespace portcullis
