// Settings: the managed and relay overlays, monitor mode, the default limits and the inspection rules
// as handlers over the services
// (services.hpp). Stored, audited and published like approvals (changes.hpp).
#include "control/commands/services.hpp"

#include "control/commands/request.hpp"
#include "control/policy/policy_builder.hpp"
#include "control/policy/rules.hpp"
#include "control/policy/rules_compiler.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

json monitor(Services& s, const Call& c) {
    const json& req = c.req;
    const Peer& peer = c.peer;
    const bool current = s.publisher.current().load()->monitor;
    if (!req.contains("enable")) return ok_reply({{"monitor", current}});
    const bool enable = opt_bool(req, "enable");
    if (auto err = s.changes.durable(
            "monitor", req, peer, current, [&] { return s.store.set_setting("monitor", enable); },
            [&] { return json(enable); });
        !err.empty())
        return error_reply("not saved: " + err);
    return ok_reply({{"monitor", enable}});
}

// The watchdog's test hook: a worker spins without a heartbeat (allow_test_hooks = true only; audited).
json stall_worker(Services& s, const Call& c) {
    if (!s.figures.stall_worker)
        throw RequestError("test_stall_worker: test hooks are off (allow_test_hooks = false)");
    const int64_t w = opt_int(c.req, "worker", 0, 1023);
    const int64_t ms = opt_int(c.req, "ms", 1, 600'000);
    if (w < 0 || ms < 0) throw RequestError("test_stall_worker: needs worker and ms");
    if (!s.figures.stall_worker(static_cast<unsigned>(w), static_cast<uint32_t>(ms)))
        throw RequestError("test_stall_worker: no worker " + std::to_string(w));
    s.audit.record(c.peer, cmd::kTestStallWorker, c.req, nullptr, nullptr, "ok");
    return ok_reply({{"worker", w}, {"ms", ms}});
}

// The limits that apply to a source, and where it stands against them now.

json limits(Services& s, const Call& c) {
    const json& req = c.req;
    const Peer& peer = c.peer;
    const Limits before = s.publisher.current().load()->default_limits;
    auto as_json = [](const Limits& l) {
        return json{{"max_concurrent", l.concurrent}, {"rate_per_min", l.rate_per_min}, {"daily", l.daily}};
    };
    json change = s.store.settings().contains("limits") ? s.store.settings()["limits"] : json::object();
    bool any = false;
    for (const char* key : {"max_concurrent", "rate_per_min", "daily"}) {
        if (!req.contains(key)) continue;
        const int64_t v = opt_int(req, key, 0, 1'000'000'000);
        change[key] = v;
        any = true;
    }
    if (!any) return ok_reply({{"defaults", as_json(before)}, {"configured", as_json(s.cfg.default_limits)}});
    if (auto err = s.changes.durable(
            "limits", req, peer, as_json(before), [&] { return s.store.set_setting("limits", change); },
            [&] { return as_json(effective_default_limits(s.cfg, &s.store)); });
        !err.empty())
        return error_reply("not saved: " + err);
    return ok_reply({{"defaults", as_json(effective_default_limits(s.cfg, &s.store))},
                     {"configured", as_json(s.cfg.default_limits)}});
}

json describe_rules(const Services& s) {
    json j = {{"inspect", s.cfg.inspect}, {"rules_dir", s.cfg.rules_dir}};
    j["rules"] = s.rules.db ? s.rules.db->rules.size() : 0;
    j["stream_bytes"] = s.rules.db ? s.rules.db->stream_bytes : 0;
    j["reloading"] = s.rules.compiler && s.rules.compiler->busy();
    json list = json::array();
    if (s.rules.db)
        for (const auto& r : s.rules.db->rules)
            list.push_back({{"id", r.id}, {"where", r.where}, {"refuse", r.refuse}, {"reply", r.reply}});
    j["list"] = std::move(list);
    return j;
}

// The end of a reload: the new set in force, or the old one kept and the reason told.

json finish_reload(Services& s, const RulesResult& loaded, const json& req, const Peer& peer) {
    if (!loaded.db) {
        s.audit.record(peer, "rules reload", req, nullptr, nullptr, "refused: " + loaded.error);
        return error_reply(loaded.error + " (the rules in force are unchanged)");
    }
    if (auto err = s.audit.record(peer, "rules reload", req, nullptr, {{"rules", loaded.rules}}, "ok");
        !err.empty())
        return error_reply("not reloaded: " + err + " (the rules in force are unchanged)");
    s.rules.db = loaded.db;
    s.changes.published();
    return ok_reply(describe_rules(s));
}

json rules(Services& s, const Call& c) {
    const json& req = c.req;
    const Peer& peer = c.peer;
    const std::string action = req.contains("action") ? need_string(req, "action") : "show";
    if (action == "show") return ok_reply(describe_rules(s));
    if (action != "reload")
        throw RequestError("action: '" + printable(action, 40) + "' is not one of show, reload");
    if (!s.cfg.inspect) return error_reply("inspection is off (inspect = false): no rules to reload");
    if (!s.rules.compiler) {  // no compiler process (unit tests): compile here
        const auto job = rules_job(s.cfg, s.figures.info.workers);
        return finish_reload(s, load_rules(job.dir, job.workers, job.stream_limit), req, peer);
    }
    // Compiled in a child process; the socket and the workers go on, and the old set stays in force until
    // the new one is ready. The reply comes when it is.
    if (!s.rules.compiler->start(rules_job(s.cfg, s.figures.info.workers)))
        throw RequestError("a rules reload is already under way; try again when it is done");
    c.later = [&s, req, peer]() -> std::optional<json> {
        auto loaded = s.rules.compiler->poll();
        if (!loaded) return std::nullopt;
        return finish_reload(s, *loaded, req, peer);
    };
    return ok_reply();
}

// managed and relay.
json overlay(Services& s, const Call& c) {
    const std::string& set = c.cmd;
    const json& req = c.req;
    const Peer& peer = c.peer;
    const auto action = need_string(req, "action");
    const auto& configured = set == "managed" ? s.cfg.managed_prefixes : s.cfg.relay_hosts;
    const auto& ov = set == "managed" ? s.store.managed() : s.store.relay();
    if (action == "list") {
        json out = json::array();
        for (const auto& p : effective_list(configured, &ov)) out.push_back(to_string(p));
        return ok_reply({{"prefixes", std::move(out)}});
    }
    if (action != "add" && action != "del")
        throw RequestError("action: '" + printable(action, 40) + "' is not one of add, del, list");
    const Prefix p = need_prefix(req, "prefix");
    // The two changes that open port 25 wider than an approval would: lifting the policy from managed space,
    // and a wide relay every customer may reach.
    if (!opt_bool(req, "force")) {
        const auto now = effective_list(configured, &ov);
        const bool listed_now = std::find(now.begin(), now.end(), p) != now.end();
        if (set == "managed" && action == "del" && listed_now)
            throw RequestError(
                "removing " + to_string(p) +
                " from the managed prefixes lifts the policy from all of it: that needs --force");
        if (set == "relay" && action == "add" && p.len < (p.addr.v6 ? kWideV6 : kWideV4))
            throw RequestError("a relay as wide as " + to_string(p) +
                               " lets every customer reach all of it on blocked ports: that needs --force");
    }
    auto listed = [&] {
        json out = json::array();
        for (const auto& q : effective_list(configured, &ov)) out.push_back(to_string(q));
        return out;
    };
    if (auto err = s.changes.durable(
            set, req, peer, listed(),
            [&] { return s.store.change_overlay(set, action == "add", p, configured); }, listed);
        !err.empty())
        return error_reply("not saved: " + err);
    return ok_reply({{"prefixes", listed()}});
}

}  // namespace

std::span<const Handler> settings_handlers() {
    static const Handler table[] = {
        {cmd::kManaged, overlay}, {cmd::kRelay, overlay}, {cmd::kMonitor, monitor},
        {cmd::kLimits, limits},   {cmd::kRules, rules},   {cmd::kTestStallWorker, stall_worker},
    };
    return table;
}

}  // namespace portcullis
