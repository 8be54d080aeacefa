// Reports: status, stats, list, show, export, as handlers over the services (services.hpp). Read-only: none
// of them changes anything.
#include "control/commands/services.hpp"

#include <rte_cycles.h>

#include "control/commands/request.hpp"
#include "control/policy/policy_builder.hpp"
#include "control/store/fleet.hpp"
#include "dataplane/flow_tracker.hpp"
#include "dataplane/inspect.hpp"
#include "dataplane/source_table.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

json live_limits(const Services& s, const IpAddr& a, bool relay);
json flow_status(const Services& s);

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

json stats(Services& s, const Call&) {
    json body = {{"counters", counters_json(s.figures.counters())}};
    if (s.figures.sources) {
        body["top_refused_sources"] = s.figures.sources->top(10);
        body["refused_last_minute"] = s.figures.sources->top_recent(10, now_s());
        body["untracked_sources"] = s.figures.sources->untracked();
    }
    return ok_reply(body);
}

json export_records(Services& s, const Call&) {
    json lines = json::array();
    for (const auto& [p, a] : s.store.records()) lines.push_back(to_line(a));
    return ok_reply({{"lines", std::move(lines)}});
}

json list(Services& s, const Call& c) {
    const json& req = c.req;
    const auto filter = opt_string(req, "state");
    const auto within = within_of(req);
    if (!filter.empty() && !parse_state(filter))
        throw RequestError("state: '" + filter +
                           "' is not one of approved, suspended, revoked, banned, pending, denied");
    json out = json::array();
    const int64_t now = now_s();
    auto add = [&](const Approval& a, const char* source) {
        if (!filter.empty() && filter != state_name(a.state)) return;
        if (!is_within(a.prefix, within)) return;
        json j = to_json(a);
        j["source"] = source;
        j["in_force"] = a.grants(now);
        out.push_back(std::move(j));
    };
    for (const auto& [p, a] : s.baseline)
        if (!s.store.find(p)) add(a, "configuration");
    for (const auto& [p, a] : s.store.records()) add(a, "store");
    return ok_reply({{"records", std::move(out)}});
}

json show(Services& s, const Call& c) {
    const json& req = c.req;
    const Prefix p = need_prefix(req);
    const auto [rec, source] = effective_record(s, p);
    const int64_t now = now_s();
    const bool managed = in_list(effective_list(s.cfg.managed_prefixes, &s.store.managed()), p.addr);
    const bool relay = in_list(effective_list(s.cfg.relay_hosts, &s.store.relay()), p.addr);
    std::string verdict;
    if (!managed)
        verdict = "outside managed_prefixes: the policy does not apply";
    else if (rec && rec->grants(now))
        verdict = "may send on blocked ports";
    else if (rec && rec->state == ApprovalState::Approved)
        verdict = "refused on blocked ports: its approval expired " + format_time(rec->expires);
    else if (rec && rec->state == ApprovalState::Pending)
        verdict = "refused on blocked ports: request pending since " + format_time(rec->requested);
    else if (rec && rec->state == ApprovalState::Denied)
        verdict = "refused on blocked ports: request denied " + format_time(rec->updated) +
                  (rec->reason.empty() ? "" : " (" + rec->reason + ")") +
                  (rec->retry_after > now ? "; a new request is allowed from " + format_time(rec->retry_after)
                                          : "; a new request may be made");
    else if (rec)
        verdict = std::string("refused on blocked ports: ") + state_name(rec->state);
    else
        verdict = "refused on blocked ports: not approved";
    json j = {{"addr", to_string(p)}, {"managed", managed}, {"relay", relay}, {"verdict", verdict}};
    if (s.figures.sources && p.len == p.max_len()) j["refusals"] = s.figures.sources->of(p.addr);
    if (s.figures.sources && p.len == p.max_len()) j["seen"] = s.figures.sources->seen(p.addr);
    if (managed && p.len == p.max_len()) j["limits"] = live_limits(s, p.addr, false);
    if (rec) {
        j["record"] = to_json(*rec);
        j["record"]["source"] = source;
    } else {
        j["record"] = nullptr;
    }
    return ok_reply(j);
}

json flow_status(const Services& s) {
    if (!s.figures.flows) return nullptr;
    uint64_t tracked = 0, bytes = 0, max = 0;
    for (const auto* t : s.figures.flows->trackers) {
        tracked += t->table().size();
        bytes += t->table().bytes();
        max += t->table().max_flows();
    }
    json j = {{"tracked", tracked}, {"max", max}, {"table_bytes", bytes}};
    uint64_t inspected = 0, inspect_max = 0, per_flow = 0;
    for (const auto* i : s.figures.flows->inspectors) {
        if (!i) continue;
        inspected += i->in_use();
        inspect_max += i->capacity();
        per_flow = i->bytes_per_flow();
    }
    j["inspected"] = inspected;
    j["inspected_max"] = inspect_max;
    j["inspect_bytes_per_flow"] = per_flow;
    j["rules_stream_bytes"] = s.rules.db ? s.rules.db->stream_bytes : 0;
    if (s.figures.flows->sources) {
        j["sources"] = s.figures.flows->sources->in_use();
        j["sources_max"] = s.figures.flows->sources->capacity();
        j["source_table_bytes"] = s.figures.flows->sources->bytes();
    }
    return j;
}

json status(Services& s, const Call&) {
    const Totals t = s.figures.counters();
    auto c = [&](Ctr k) { return t[static_cast<size_t>(k)]; };
    return ok_reply({{"ready", true},
                     {"version", PORTCULLIS_VERSION},
                     {"uptime_s", now_s() - s.figures.info.started},
                     {"inside_port", s.figures.info.inside_port},
                     {"outside_port", s.figures.info.outside_port},
                     {"workers", s.figures.info.workers},
                     {"tsc_hz", rte_get_tsc_hz()},
                     {"policy_generation", s.publisher.generation()},
                     {"monitor", s.publisher.current().load()->monitor},
                     {"records", s.store.records().size()},
                     {"config_approvals", s.baseline.size()},
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
                     {"flows", flow_status(s)},
                     {"store", s.fleet ? s.fleet->status() : json{{"store", "local"}}}});
}

json live_limits(const Services& s, const IpAddr& a, bool relay) {
    const Policy& pol = *s.publisher.current().load();
    const Limits& l = relay ? pol.relay_limits : pol.limit_overrides.find(a, pol.default_limits);
    json j = {{"max_concurrent", l.concurrent}, {"rate_per_min", l.rate_per_min}, {"daily", l.daily}};
    if (s.figures.flows && s.figures.flows->sources) {
        const Now now = s.figures.flows->clock.at(rte_rdtsc());
        const SourceView v = s.figures.flows->sources->view(a, l, now.us, now.day);
        j["live"] = {{"concurrent", v.concurrent}, {"rate_used", v.rate_used}, {"daily_count", v.daily}};
    }
    return j;
}

}  // namespace

std::span<const Handler> report_handlers() {
    static const Handler table[] = {
        {cmd::kStatus, status}, {cmd::kStats, stats},           {cmd::kList, list},
        {cmd::kShow, show},     {cmd::kExport, export_records},
    };
    return table;
}

}  // namespace portcullis
