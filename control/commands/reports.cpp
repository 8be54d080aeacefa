// Reports: status, stats, list, show, export (see control_plane.hpp). Read-only: none of them changes
// anything.
#include "control/commands/control_plane.hpp"

#include <rte_cycles.h>

#include "control/commands/request.hpp"
#include "control/policy_builder.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

json counters_json(const Totals& t) {
    json j = json::object();
    for (size_t i = 0; i < kCounterCount; ++i) j[kCounterInfo[i].name] = t[i];
    return j;
}

bool in_list(const std::vector<Prefix>& list, const IpAddr& a) {
    for (const auto& p : list)
        if (p.contains(a)) return true;
    return false;
}

}  // namespace

json ControlPlane::stats() const {
    json body = {{"counters", counters_json(counters_())}};
    if (sources_) {
        body["top_refused_sources"] = sources_->top(10);
        body["untracked_sources"] = sources_->untracked();
    }
    return ok_reply(body);
}

json ControlPlane::export_records() const {
    json lines = json::array();
    for (const auto& [p, a] : store_.records()) lines.push_back(to_line(a));
    return ok_reply({{"lines", std::move(lines)}});
}

json ControlPlane::list(const json& req) const {
    const auto filter = opt_string(req, "state");
    if (!filter.empty() && !parse_state(filter))
        throw RequestError("state: '" + filter + "' is not one of approved, suspended, revoked, banned");
    json out = json::array();
    const int64_t now = now_s();
    auto add = [&](const Approval& a, const char* source) {
        if (!filter.empty() && filter != state_name(a.state)) return;
        json j = to_json(a);
        j["source"] = source;
        j["in_force"] = a.grants(now);
        out.push_back(std::move(j));
    };
    for (const auto& [p, a] : baseline_)
        if (!store_.find(p)) add(a, "configuration");
    for (const auto& [p, a] : store_.records()) add(a, "store");
    return {{"records", std::move(out)}};
}

json ControlPlane::show(const json& req) const {
    const Prefix p = need_prefix(req);
    const auto [rec, source] = effective_record(p);
    const int64_t now = now_s();
    const bool managed = in_list(effective_list(cfg_.managed_prefixes, &store_.managed()), p.addr);
    const bool relay = in_list(effective_list(cfg_.relay_hosts, &store_.relay()), p.addr);
    std::string verdict;
    if (!managed)
        verdict = "outside managed_prefixes: the policy does not apply";
    else if (rec && rec->grants(now))
        verdict = "may send on blocked ports";
    else if (rec && rec->state == ApprovalState::Approved)
        verdict = "refused on blocked ports: its approval expired " + format_time(rec->expires);
    else if (rec)
        verdict = std::string("refused on blocked ports: ") + state_name(rec->state);
    else
        verdict = "refused on blocked ports: not approved";
    json j = {{"addr", to_string(p)}, {"managed", managed}, {"relay", relay}, {"verdict", verdict}};
    if (sources_ && p.len == p.max_len()) j["refusals"] = sources_->of(p.addr);
    if (sources_ && p.len == p.max_len()) j["seen"] = sources_->seen(p.addr);
    if (managed && p.len == p.max_len()) j["limits"] = live_limits(p.addr, false);
    if (rec) {
        j["record"] = to_json(*rec);
        j["record"]["source"] = source;
    } else {
        j["record"] = nullptr;
    }
    return j;
}

json ControlPlane::flow_status() const {
    if (!flows_) return nullptr;
    uint64_t tracked = 0, bytes = 0, max = 0;
    for (const auto* t : flows_->trackers) {
        tracked += t->table().size();
        bytes += t->table().bytes();
        max += t->table().max_flows();
    }
    json j = {{"tracked", tracked}, {"max", max}, {"table_bytes", bytes}};
    uint64_t inspected = 0, inspect_max = 0, per_flow = 0;
    for (const auto* i : flows_->inspectors) {
        if (!i) continue;
        inspected += i->in_use();
        inspect_max += i->capacity();
        per_flow = i->bytes_per_flow();
    }
    j["inspected"] = inspected;
    j["inspected_max"] = inspect_max;
    j["inspect_bytes_per_flow"] = per_flow;
    j["rules_stream_bytes"] = rules_ ? rules_->stream_bytes : 0;
    if (flows_->sources) {
        j["sources"] = flows_->sources->in_use();
        j["sources_max"] = flows_->sources->capacity();
        j["source_table_bytes"] = flows_->sources->bytes();
    }
    return j;
}

json ControlPlane::status() const {
    const Totals t = counters_();
    auto c = [&](Ctr k) { return t[static_cast<size_t>(k)]; };
    return {{"ready", true},
            {"version", PORTCULLIS_VERSION},
            {"uptime_s", now_s() - info_.started},
            {"inside_port", info_.inside_port},
            {"outside_port", info_.outside_port},
            {"workers", info_.workers},
            {"tsc_hz", rte_get_tsc_hz()},
            {"policy_generation", publisher_.generation()},
            {"monitor", publisher_.current().load()->monitor},
            {"records", store_.records().size()},
            {"config_approvals", baseline_.size()},
            {"counters",
             {{"rx_inside", c(Ctr::rx_inside)},
              {"rx_outside", c(Ctr::rx_outside)},
              {"fwd_outbound", c(Ctr::fwd_outbound)},
              {"fwd_inbound", c(Ctr::fwd_inbound)},
              {"refused_unapproved_syn", c(Ctr::refused_unapproved_syn)},
              {"refused_concurrency", c(Ctr::refused_concurrency)},
              {"refused_rate", c(Ctr::refused_rate)},
              {"refused_daily", c(Ctr::refused_daily)},
              {"rst_sent", c(Ctr::rst_sent)}}},
            {"flows", flow_status()}};
}

json ControlPlane::live_limits(const IpAddr& a, bool relay) const {
    const Policy& pol = *publisher_.current().load();
    const Limits& l = relay ? pol.relay_limits : pol.limit_overrides.find(a, pol.default_limits);
    json j = {{"max_concurrent", l.concurrent}, {"rate_per_min", l.rate_per_min}, {"daily", l.daily}};
    if (flows_ && flows_->sources) {
        const Now now = flows_->clock.at(rte_rdtsc());
        const SourceView v = flows_->sources->view(a, l, now.us, now.day);
        j["live"] = {{"concurrent", v.concurrent}, {"rate_used", v.rate_used}, {"daily_count", v.daily}};
    }
    return j;
}

}  // namespace portcullis
