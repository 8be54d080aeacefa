// Control protocol command handling (see commands.hpp).
#include "control/commands.hpp"

#include <rte_cycles.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <utility>

#include "control/policy_builder.hpp"
#include "control/rules.hpp"
#include "control/rules_compiler.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

struct RequestError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

json ok(json body = json::object()) {
    body["v"] = kProtocolVersion;
    body["ok"] = true;
    return body;
}

json fail(const std::string& why) {
    return error_reply(why);
}

std::string need_string(const json& req, const char* key) {
    if (!req.contains(key)) throw RequestError(std::string("missing '") + key + "'");
    if (!req[key].is_string()) throw RequestError(std::string("'") + key + "' must be a string");
    return req[key].get<std::string>();
}

std::string opt_string(const json& req, const char* key) {
    return req.contains(key) ? need_string(req, key) : std::string();
}

int64_t opt_int(const json& req, const char* key, int64_t lo, int64_t hi) {
    if (!req.contains(key)) return -1;
    if (!req[key].is_number_integer()) throw RequestError(std::string("'") + key + "' must be an integer");
    const auto v = req[key].get<int64_t>();
    if (v < lo || v > hi)
        throw RequestError(std::string("'") + key + "' must be between " + std::to_string(lo) + " and " +
                           std::to_string(hi));
    return v;
}

Prefix need_prefix(const json& req, const char* key = "addr") {
    const auto text = need_string(req, key);
    std::string why;
    auto p = parse_prefix(text, &why);
    if (!p) throw RequestError("'" + printable(text) + "': " + why);
    return *p;
}

std::string describe_ban(const Approval& a) {
    std::string s = to_string(a.prefix) + " is banned since " + format_time(a.updated);
    if (!a.ticket.empty()) s += " (ticket " + a.ticket + ")";
    if (!a.reason.empty()) s += ": " + a.reason;
    return s;
}

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

bool overlaps(const Prefix& a, const Prefix& b) {
    return a.addr.v6 == b.addr.v6 && (a.contains(b.addr) || b.contains(a.addr));
}

bool inside(const Prefix& inner, const Prefix& outer) {
    return inner.addr.v6 == outer.addr.v6 && outer.len <= inner.len && outer.contains(inner.addr);
}

std::string text_field(const json& req, const char* key, size_t max) {
    auto v = need_string(req, key);
    if (auto err = check_text(key, v, max); !err.empty()) throw RequestError(err);
    return v;
}

bool opt_bool(const json& req, const char* key) {
    if (!req.contains(key)) return false;
    if (!req[key].is_boolean()) throw RequestError(std::string("'") + key + "' must be true or false");
    return req[key].get<bool>();
}

}  // namespace

ControlPlane::ControlPlane(const Config& cfg, ApprovalStore& store, PolicyPublisher& publisher,
                           AuditLog& audit, std::function<Totals()> counters, DaemonInfo info,
                           const SourceStats* sources, const FlowView* flows)
    : cfg_(cfg),
      store_(store),
      publisher_(publisher),
      audit_(audit),
      counters_(std::move(counters)),
      info_(info),
      sources_(sources),
      flows_(flows) {
    for (const auto& p : cfg.approved) {
        Approval a;
        a.prefix = p;
        a.operator_name = "config";
        a.reason = "approved in the configuration file";
        baseline_[p] = a;
    }
}

void ControlPlane::republish(int64_t now) {
    auto built = build_policy(cfg_, &store_, now, rules_);
    next_expiry_ = built.next_expiry;
    publisher_.publish(std::move(built.policy));
}

void ControlPlane::publish_change() {
    changed_ = true;
    if (batch_)
        dirty_ = true;
    else
        republish(now_s());
}

void ControlPlane::begin_batch() {
    batch_ = true;
    dirty_ = false;
    store_.begin_batch();
    audit_.begin_batch();
    audit_mark_ = audit_.savepoint();
}

std::string ControlPlane::end_batch() {
    batch_ = false;
    // The audit lines first: a change whose audit line is not on disk is not made.
    auto err = audit_.end_batch();
    if (err.empty())
        err = store_.end_batch();  // rolls the batch back itself when its commit fails
    else
        store_.abort_batch();
    if (!err.empty()) {
        audit_.rollback(audit_mark_);
        if (dirty_)
            audit_.record(Peer{0, 0, static_cast<int>(getpid()), "portcullis"}, "batch", nullptr, nullptr,
                          nullptr, "not saved: " + err + " (every change of the batch undone)");
        spdlog::error("control changes not saved, undone: {}", err);
    }
    if (dirty_) republish(now_s());
    dirty_ = false;
    return err;
}

void ControlPlane::tick(int64_t now) {
    if (next_expiry_ != 0 && now >= next_expiry_) republish(now);
}

Reply ControlPlane::serve(const std::string& line, const Peer& peer, Session& session) {
    changed_ = false;
    later_ = nullptr;
    json body;
    try {
        std::string why;
        auto req = parse_request(line, &why);
        if (!req) return {fail(why), false, nullptr};
        if (!req->is_object()) throw RequestError("a request must be a JSON object");
        if (!req->contains("v")) throw RequestError("missing protocol version 'v'");
        if ((*req)["v"] != kProtocolVersion)
            throw RequestError("unsupported protocol version " + printable(reply_line((*req)["v"]), 40) +
                               " (this daemon speaks " + std::to_string(kProtocolVersion) + ")");
        body = dispatch(need_string(*req, "cmd"), *req, peer, session);
    } catch (const RequestError& e) {
        body = fail(e.what());
    } catch (const std::exception& e) {
        spdlog::error("control request from {} failed: {}", printable(peer.user), printable(e.what(), 200));
        body = fail("internal error: " + printable(e.what(), 200));
    } catch (...) {
        spdlog::error("control request from {} failed with an unknown exception", printable(peer.user));
        body = fail("internal error");
    }
    return {std::move(body), changed_, std::exchange(later_, nullptr)};
}

json ControlPlane::handle(const std::string& line, const Peer& peer, Session& session) {
    begin_batch();
    Reply r = serve(line, peer, session);
    const auto err = end_batch();
    if (r.changed && !err.empty()) return fail("not saved: " + err);
    return r.body;
}

json ControlPlane::dispatch(const std::string& cmd, const json& req, const Peer& peer, Session& session) {
    if (cmd == "status") return ok(status());
    if (cmd == "stats") {
        json body = {{"counters", counters_json(counters_())}};
        if (sources_) {
            body["top_refused_sources"] = sources_->top(10);
            body["untracked_sources"] = sources_->untracked();
        }
        return ok(body);
    }
    if (cmd == "approve") return approve(req, peer);
    if (cmd == "suspend" || cmd == "resume" || cmd == "revoke") return set_state(cmd, req, peer);
    if (cmd == "unban") return unban(req, peer);
    if (cmd == "list") return ok(list(req));
    if (cmd == "show") return ok(show(req));
    if (cmd == "export") {
        json lines = json::array();
        for (const auto& [p, a] : store_.records()) lines.push_back(to_line(a));
        return ok({{"lines", std::move(lines)}});
    }
    if (cmd == "import_begin") return import_begin(session);
    if (cmd == "import_chunk") return import_chunk(req, session);
    if (cmd == "import_commit") return import_commit(req, peer, session);
    if (cmd == "managed" || cmd == "relay") return overlay(cmd, req, peer);
    if (cmd == "monitor") return monitor(req, peer);
    if (cmd == "limits") return limits(req, peer);
    if (cmd == "rules") return rules(req, peer);
    throw RequestError("unknown command '" + printable(cmd, 40) + "'");
}

std::string ControlPlane::durable(const std::string& cmd, const json& args, const Peer& peer,
                                  const json& before, const std::function<std::string()>& mutate,
                                  const std::function<json()>& after) {
    const auto sp = store_.savepoint();
    if (auto err = mutate(); !err.empty()) {
        audit_.record(peer, cmd, args, before, nullptr, "not saved: " + err);
        return err;
    }
    if (auto err = audit_.record(peer, cmd, args, before, after(), "ok"); !err.empty()) {
        store_.rollback(sp);  // no change stands without its audit line
        spdlog::error("{} refused: {}", cmd, err);
        return err;
    }
    publish_change();
    return {};
}

json ControlPlane::commit(const std::string& cmd, const json& req, const Peer& peer, const Approval* before,
                          const Approval& after) {
    const json before_j = before ? to_json(*before) : json(nullptr);
    const json after_j = to_json(after);
    if (auto err = durable(
            cmd, req, peer, before_j, [&] { return store_.put(after); }, [&] { return after_j; });
        !err.empty())
        return fail("not saved: " + err);
    return ok({{"record", after_j}});
}

std::vector<Prefix> ControlPlane::managed_now() const {
    return effective_list(cfg_.managed_prefixes, &store_.managed());
}

std::string ControlPlane::danger(const Prefix& p) const {
    std::string why;
    const uint8_t wide = p.addr.v6 ? kWideV6 : kWideV4;
    if (p.len < wide) why = to_string(p) + " is wider than /" + std::to_string(wide);
    for (const auto& m : managed_now())
        if (inside(m, p)) {
            why += (why.empty() ? to_string(p) + " covers" : " and covers") +
                   std::string(" the whole managed prefix ") + to_string(m);
            break;
        }
    return why;
}

json ControlPlane::approve(const json& req, const Peer& peer) {
    const Prefix p = need_prefix(req);
    const int64_t now = now_s();
    const bool force = opt_bool(req, "force");
    const Approval* existing = store_.find(p);
    if (const Approval* cover = store_.covering(p); cover && cover->state == ApprovalState::Banned) {
        const std::string why = cover->prefix == p ? describe_ban(*cover) + "; it cannot be approved again"
                                                   : to_string(p) + " is inside " + describe_ban(*cover) +
                                                         "; it cannot be approved";
        audit_.record(peer, "approve", req, to_json(*cover), nullptr, "refused: " + why);
        return fail(why);
    }
    if (auto why = danger(p); !why.empty() && !force)
        throw RequestError("approving " + why + ": that needs --force");
    Approval a = existing ? *existing : Approval{};
    a.prefix = p;
    a.state = ApprovalState::Approved;
    if (req.contains("hostname")) {
        a.hostname = need_string(req, "hostname");
        if (!a.hostname.empty() && !valid_hostname(a.hostname))
            throw RequestError("hostname '" + printable(a.hostname) +
                               "' is not a fully qualified domain name");
    }
    if (req.contains("domains")) {
        if (!req["domains"].is_array()) throw RequestError("'domains' must be an array of strings");
        if (req["domains"].size() > kMaxDomains)
            throw RequestError("domains: more than " + std::to_string(kMaxDomains));
        a.domains.clear();
        for (const auto& d : req["domains"]) {
            if (!d.is_string() || !valid_hostname(d.get<std::string>()))
                throw RequestError("domains: " + printable(reply_line(d), 80) +
                                   " is not a domain name such as example.com");
            a.domains.push_back(d.get<std::string>());
        }
    }
    if (auto v = opt_int(req, "max_concurrent", 1, kMaxConcurrent); v >= 0)
        a.max_concurrent = static_cast<uint32_t>(v);
    if (auto v = opt_int(req, "rate_per_min", 1, kMaxRatePerMin); v >= 0)
        a.rate_per_min = static_cast<uint32_t>(v);
    if (auto v = opt_int(req, "daily", 1, kMaxDaily); v >= 0) a.daily = static_cast<uint32_t>(v);
    if (auto v = opt_int(req, "expires", 0, kMaxTime); v >= 0) {
        if (v != 0 && v <= now) throw RequestError("'expires' is in the past: " + format_time(v));
        a.expires = v;
    }
    if (req.contains("ticket")) a.ticket = text_field(req, "ticket", kMaxTicket);
    if (req.contains("reason")) a.reason = text_field(req, "reason", kMaxReason);
    a.operator_name = peer.user;
    if (!existing) a.created = now;
    a.updated = now;
    json reply = commit("approve", req, peer, existing, a);
    if (reply["ok"] != true) return reply;
    const auto managed = managed_now();
    bool any = false, within = false;
    for (const auto& m : managed) {
        any = any || overlaps(p, m);
        within = within || inside(p, m);
    }
    if (!any)
        reply["note"] = to_string(p) + " is outside managed_prefixes: the policy does not apply to it anyway";
    else if (!within)
        reply["note"] =
            to_string(p) +
            " is only partly inside managed_prefixes: the approval matters only for the part inside";
    return reply;
}

json ControlPlane::set_state(const std::string& cmd, const json& req, const Peer& peer) {
    const Prefix p = need_prefix(req);
    const Approval* existing = store_.find(p);
    Approval a;
    if (cmd == "revoke") {
        const bool ban = opt_bool(req, "ban");
        if (existing && existing->state == ApprovalState::Banned)
            throw RequestError(to_string(p) + " is already banned");
        if (auto why = danger(p); ban && !why.empty() && !opt_bool(req, "force"))
            throw RequestError("banning " + why + " (a ban is for good): that needs --force");
        // No record of its own: a revocation carves the prefix out of a wider approval.
        a = existing ? *existing : Approval{};
        a.prefix = p;
        if (!existing) a.created = now_s();
        a.state = ban ? ApprovalState::Banned : ApprovalState::Revoked;
    } else {
        if (!existing) {
            const auto [rec, source] = effective_record(p);
            throw RequestError(
                to_string(p) + " has no approval record of its own" +
                (rec ? std::string(" (") + to_string(rec->prefix) + " from the " + source + " covers it)"
                     : std::string()));
        }
        const auto want = cmd == "suspend" ? ApprovalState::Approved : ApprovalState::Suspended;
        if (existing->state != want)
            throw RequestError(to_string(p) + " is " + state_name(existing->state) + ", not " +
                               state_name(want));
        a = *existing;
        a.state = cmd == "suspend" ? ApprovalState::Suspended : ApprovalState::Approved;
    }
    if (req.contains("reason")) a.reason = text_field(req, "reason", kMaxReason);
    if (req.contains("ticket")) a.ticket = text_field(req, "ticket", kMaxTicket);
    a.operator_name = peer.user;
    a.updated = now_s();
    return commit(cmd, req, peer, existing, a);
}

// A ban is for good for customers (seed 000); an operator who banned the wrong prefix lifts it here, with a
// reason, and the record becomes revoked: an approve is needed to send again.
json ControlPlane::unban(const json& req, const Peer& peer) {
    const Prefix p = need_prefix(req);
    const std::string reason = req.contains("reason") ? text_field(req, "reason", kMaxReason) : "";
    if (reason.empty()) throw RequestError("unban needs a reason (--reason): it is kept in the audit log");
    const Approval* existing = store_.find(p);
    if (!existing || existing->state != ApprovalState::Banned) {
        const Approval* cover = store_.covering(p);
        if (cover && cover->state == ApprovalState::Banned)
            throw RequestError(to_string(p) + " is inside the ban of " + to_string(cover->prefix) +
                               ": unban " + to_string(cover->prefix));
        throw RequestError(to_string(p) + " is not banned");
    }
    Approval a = *existing;
    a.state = ApprovalState::Revoked;
    a.reason = reason;
    if (req.contains("ticket")) a.ticket = text_field(req, "ticket", kMaxTicket);
    a.operator_name = peer.user;
    a.updated = now_s();
    return commit("unban", req, peer, existing, a);
}

std::pair<const Approval*, const char*> ControlPlane::effective_record(const Prefix& p) const {
    for (int len = p.len; len >= 0; --len) {
        const Prefix q = p.widened(static_cast<uint8_t>(len));
        if (const Approval* a = store_.find(q)) return {a, "store"};
        if (auto it = baseline_.find(q); it != baseline_.end()) return {&it->second, "configuration"};
    }
    return {nullptr, ""};
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

json ControlPlane::import_begin(Session& session) {
    session = Session{};  // a new begin drops what an earlier one left, and its slot
    if (*imports_ >= kMaxImports)
        throw RequestError("another " + std::to_string(*imports_) + " import(s) in progress (at most " +
                           std::to_string(kMaxImports) + " at once); try again");
    ++*imports_;
    auto count = imports_;
    session.import_slot = std::shared_ptr<void>(count.get(), [count](void*) { --*count; });
    session.importing = true;
    return ok();
}

json ControlPlane::import_chunk(const json& req, Session& session) {
    if (!session.importing) throw RequestError("no import in progress: send import_begin first");
    if (!req.contains("lines") || !req["lines"].is_array()) throw RequestError("'lines' must be an array");
    const auto first = opt_int(req, "first_line", 1, INT32_MAX);
    size_t line_no = first < 0 ? session.pending.size() + 1 : static_cast<size_t>(first);
    auto abandon = [&](const std::string& why) {
        session = Session{};
        return RequestError(why + " (nothing imported)");
    };
    for (const auto& l : req["lines"]) {
        if (!l.is_string()) throw abandon("line " + std::to_string(line_no) + ": not a string");
        const auto& text = l.get_ref<const std::string&>();
        session.bytes += text.size() + 1;
        if (session.bytes > kMaxImportBytes)
            throw abandon("import larger than " + std::to_string(kMaxImportBytes >> 20) + " MiB");
        std::string why;
        auto a = parse_line(text, &why);
        if (!a && !why.empty()) throw abandon("line " + std::to_string(line_no) + ": " + why);
        if (a) session.pending.emplace_back(line_no, std::move(*a));
        if (session.pending.size() > kMaxImportRecords)
            throw abandon("import larger than " + std::to_string(kMaxImportRecords) + " records");
        ++line_no;
    }
    return ok({{"pending", session.pending.size()}});
}

json ControlPlane::import_commit(const json& req, const Peer& peer, Session& session) {
    if (!session.importing) throw RequestError("no import in progress: send import_begin first");
    const bool force = opt_bool(req, "force");
    const int64_t now = now_s();
    std::vector<Approval> all;
    all.reserve(session.pending.size());
    auto refuse = [&](const std::string& why) {
        session = Session{};
        audit_.record(peer, "import", {{"entries", all.size()}}, nullptr, nullptr, "refused: " + why);
        return fail(why);
    };
    for (auto& [line_no, a] : session.pending) {
        const std::string at = "line " + std::to_string(line_no) + ": ";
        if (const Approval* cover = store_.covering(a.prefix);
            cover && cover->state == ApprovalState::Banned && a.state != ApprovalState::Banned)
            return refuse(at + describe_ban(*cover) + " (nothing imported)");
        if (a.state == ApprovalState::Approved || a.state == ApprovalState::Banned)
            if (auto why = danger(a.prefix); !why.empty() && !force)
                return refuse(at + why + ": that needs --force (nothing imported)");
        const Approval* existing = store_.find(a.prefix);
        a.created = existing ? existing->created : now;
        a.updated = now;
        a.operator_name = peer.user;
        all.push_back(std::move(a));
    }
    const size_t n = all.size();
    session = Session{};
    if (auto err = durable(
            "import", {{"entries", n}, {"force", force}}, peer, nullptr, [&] { return store_.put_all(all); },
            [&] {
                return json{{"records", store_.records().size()}};
            });
        !err.empty())
        return fail("not saved: " + err + " (nothing imported)");
    return ok({{"applied", n}, {"records", store_.records().size()}});
}

json ControlPlane::monitor(const json& req, const Peer& peer) {
    const bool current = publisher_.current().load()->monitor;
    if (!req.contains("enable")) return ok({{"monitor", current}});
    const bool enable = opt_bool(req, "enable");
    if (auto err = durable(
            "monitor", req, peer, current, [&] { return store_.set_setting("monitor", enable); },
            [&] { return json(enable); });
        !err.empty())
        return fail("not saved: " + err);
    return ok({{"monitor", enable}});
}

// The limits that apply to a source, and where it stands against them now.
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
    if (!any) return ok({{"defaults", as_json(before)}, {"configured", as_json(cfg_.default_limits)}});
    if (auto err = durable(
            "limits", req, peer, as_json(before), [&] { return store_.set_setting("limits", change); },
            [&] { return as_json(effective_default_limits(cfg_, &store_)); });
        !err.empty())
        return fail("not saved: " + err);
    return ok({{"defaults", as_json(effective_default_limits(cfg_, &store_))},
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
        return fail(loaded.error + " (the rules in force are unchanged)");
    }
    if (auto err = audit_.record(peer, "rules reload", req, nullptr, {{"rules", loaded.rules}}, "ok");
        !err.empty())
        return fail("not reloaded: " + err + " (the rules in force are unchanged)");
    rules_ = loaded.db;
    publish_change();
    return ok(describe_rules());
}

json ControlPlane::rules(const json& req, const Peer& peer) {
    const std::string action = req.contains("action") ? need_string(req, "action") : "show";
    if (action == "show") return ok(describe_rules());
    if (action != "reload")
        throw RequestError("action: '" + printable(action, 40) + "' is not one of show, reload");
    if (!cfg_.inspect) return fail("inspection is off (inspect = false): no rules to reload");
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
    return ok();
}

json ControlPlane::overlay(const std::string& set, const json& req, const Peer& peer) {
    const auto action = need_string(req, "action");
    const auto& configured = set == "managed" ? cfg_.managed_prefixes : cfg_.relay_hosts;
    const auto& ov = set == "managed" ? store_.managed() : store_.relay();
    if (action == "list") {
        json out = json::array();
        for (const auto& p : effective_list(configured, &ov)) out.push_back(to_string(p));
        return ok({{"prefixes", std::move(out)}});
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
        return fail("not saved: " + err);
    return ok({{"prefixes", listed()}});
}

}  // namespace portcullis
