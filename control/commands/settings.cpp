// Settings: the managed and relay overlays, monitor mode, the default limits and the inspection rules
// (see control_plane.hpp). Stored, audited and published like approvals.
#include "control/commands/control_plane.hpp"

#include "control/commands/request.hpp"
#include "control/policy_builder.hpp"
#include "control/rules.hpp"
#include "control/rules_compiler.hpp"

namespace portcullis {

using nlohmann::json;

json ControlPlane::monitor(const json& req, const Peer& peer) {
    const bool current = publisher_.current().load()->monitor;
    if (!req.contains("enable")) return ok_reply({{"monitor", current}});
    const bool enable = opt_bool(req, "enable");
    if (auto err = durable(
            "monitor", req, peer, current, [&] { return store_.set_setting("monitor", enable); },
            [&] { return json(enable); });
        !err.empty())
        return error_reply("not saved: " + err);
    return ok_reply({{"monitor", enable}});
}

// The limits that apply to a source, and where it stands against them now.

json ControlPlane::limits(const json& req, const Peer& peer) {
    const Limits before = publisher_.current().load()->default_limits;
    auto as_json = [](const Limits& l) {
        return json{{"max_concurrent", l.concurrent}, {"rate_per_min", l.rate_per_min}, {"daily", l.daily}};
    };
    json change = store_.settings().contains("limits") ? store_.settings()["limits"] : json::object();
    bool any = false;
    for (const char* key : {"max_concurrent", "rate_per_min", "daily"}) {
        if (!req.contains(key)) continue;
        const int64_t v = opt_int(req, key, 0, 1'000'000'000);
        change[key] = v;
        any = true;
    }
    if (!any) return ok_reply({{"defaults", as_json(before)}, {"configured", as_json(cfg_.default_limits)}});
    if (auto err = durable(
            "limits", req, peer, as_json(before), [&] { return store_.set_setting("limits", change); },
            [&] { return as_json(effective_default_limits(cfg_, &store_)); });
        !err.empty())
        return error_reply("not saved: " + err);
    return ok_reply({{"defaults", as_json(effective_default_limits(cfg_, &store_))},
                     {"configured", as_json(cfg_.default_limits)}});
}

json ControlPlane::describe_rules() const {
    json j = {{"inspect", cfg_.inspect}, {"rules_dir", cfg_.rules_dir}};
    j["rules"] = rules_ ? rules_->rules.size() : 0;
    j["stream_bytes"] = rules_ ? rules_->stream_bytes : 0;
    j["reloading"] = compiler_ && compiler_->busy();
    json list = json::array();
    if (rules_)
        for (const auto& r : rules_->rules)
            list.push_back({{"id", r.id}, {"where", r.where}, {"refuse", r.refuse}, {"reply", r.reply}});
    j["list"] = std::move(list);
    return j;
}

// The end of a reload: the new set in force, or the old one kept and the reason told.

json ControlPlane::finish_reload(const RulesResult& loaded, const json& req, const Peer& peer) {
    if (!loaded.db) {
        audit_.record(peer, "rules reload", req, nullptr, nullptr, "refused: " + loaded.error);
        return error_reply(loaded.error + " (the rules in force are unchanged)");
    }
    if (auto err = audit_.record(peer, "rules reload", req, nullptr, {{"rules", loaded.rules}}, "ok");
        !err.empty())
        return error_reply("not reloaded: " + err + " (the rules in force are unchanged)");
    rules_ = loaded.db;
    publish_change();
    return ok_reply(describe_rules());
}

json ControlPlane::rules(const json& req, const Peer& peer) {
    const std::string action = req.contains("action") ? need_string(req, "action") : "show";
    if (action == "show") return ok_reply(describe_rules());
    if (action != "reload")
        throw RequestError("action: '" + printable(action, 40) + "' is not one of show, reload");
    if (!cfg_.inspect) return error_reply("inspection is off (inspect = false): no rules to reload");
    if (!compiler_) {  // no compiler process (unit tests): compile here
        const auto job = rules_job(cfg_, info_.workers);
        return finish_reload(load_rules(job.dir, job.workers, job.stream_limit), req, peer);
    }
    // Compiled in a child process; the socket and the workers go on, and the old set stays in force until
    // the new one is ready. The reply comes when it is.
    if (!compiler_->start(rules_job(cfg_, info_.workers)))
        throw RequestError("a rules reload is already under way; try again when it is done");
    later_ = [this, req, peer]() -> std::optional<json> {
        auto loaded = compiler_->poll();
        if (!loaded) return std::nullopt;
        return finish_reload(*loaded, req, peer);
    };
    return ok_reply();
}

json ControlPlane::overlay(const std::string& set, const json& req, const Peer& peer) {
    const auto action = need_string(req, "action");
    const auto& configured = set == "managed" ? cfg_.managed_prefixes : cfg_.relay_hosts;
    const auto& ov = set == "managed" ? store_.managed() : store_.relay();
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
    if (auto err = durable(
            set, req, peer, listed(),
            [&] { return store_.change_overlay(set, action == "add", p, configured); }, listed);
        !err.empty())
        return error_reply("not saved: " + err);
    return ok_reply({{"prefixes", listed()}});
}

}  // namespace portcullis
