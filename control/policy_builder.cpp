// Policy snapshot construction (see policy_builder.hpp): sets into Roaring run containers (IPv4) and interval
// tables (IPv6); approvals flattened most-specific-wins.
#include "control/policy_builder.hpp"

#include "control/prefix_flatten.hpp"

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

// Per-approval limits: the innermost record covering an address decides, its zero fields taking the
// defaults. Only records with an override of their own produce ranges; other addresses use the defaults.
void build_limit_overrides(Policy& pol, const std::map<Prefix, Approval, PrefixLess>& records) {
    std::vector<Limits> values;
    std::vector<PrefixSpan> spans[2];
    for (const auto& [p, a] : records) {
        const bool own = a.max_concurrent || a.rate_per_min || a.daily;
        if (own) {
            values.push_back({a.max_concurrent ? a.max_concurrent : pol.default_limits.concurrent,
                              a.rate_per_min ? a.rate_per_min : pol.default_limits.rate_per_min,
                              a.daily ? a.daily : pol.default_limits.daily});
        }
        const uint32_t tag = own ? static_cast<uint32_t>(values.size() - 1) : 0;
        if (p.addr.v6)
            spans[1].push_back({p.first6(), p.last6(), own, tag});
        else
            spans[0].push_back({p.first4(), p.last4(), own, tag});
    }
    for (int v6 = 0; v6 < 2; ++v6) {
        std::vector<LimitMap::Range> ranges;
        for (const auto& r : flatten_innermost(spans[v6])) ranges.push_back({r.first, r.last, values[r.tag]});
        pol.limit_overrides.assign(v6 == 1, std::move(ranges));
    }
}

// The host names and sending domains approvals name: the innermost record covering an address decides, and
// one that names none means no restriction beyond the general checks.
void build_names(Policy& pol, const std::map<Prefix, Approval, PrefixLess>& records) {
    std::vector<ApprovalNames> values;
    std::vector<PrefixSpan> spans[2];
    for (const auto& [p, a] : records) {
        const bool own = !a.hostname.empty() || !a.domains.empty();
        if (own) values.push_back({a.hostname, a.domains});
        const uint32_t tag = own ? static_cast<uint32_t>(values.size() - 1) : 0;
        if (p.addr.v6)
            spans[1].push_back({p.first6(), p.last6(), own, tag});
        else
            spans[0].push_back({p.first4(), p.last4(), own, tag});
    }
    for (int v6 = 0; v6 < 2; ++v6) {
        std::vector<AddrMap<ApprovalNames>::Range> ranges;
        for (const auto& r : flatten_innermost(spans[v6])) ranges.push_back({r.first, r.last, values[r.tag]});
        pol.names.assign(v6 == 1, std::move(ranges));
    }
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
