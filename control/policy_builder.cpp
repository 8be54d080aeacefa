// Policy snapshot construction: prefixes into Roaring run containers (IPv4) and interval tables (IPv6).
#include "control/policy_builder.hpp"

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

}  // namespace

std::unique_ptr<Policy> build_policy(const Config& cfg) {
    auto pol = std::make_unique<Policy>();
    add_prefixes(pol->managed4, pol->managed6, cfg.managed_prefixes);
    add_prefixes(pol->approved4, pol->approved6, cfg.approved);
    add_prefixes(pol->relay4, pol->relay6, cfg.relay_hosts);
    for (auto port : cfg.blocked_ports) pol->blocked_ports.set(port);
    for (auto port : cfg.open_ports) pol->open_ports.set(port);
    pol->action_unapproved = cfg.action_unapproved;
    return pol;
}

}  // namespace portcullis
