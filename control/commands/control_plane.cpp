// The control plane's core (see control_plane.hpp): the request envelope, one error envelope for every
// failure, and dispatch through the handler table.
#include "control/commands/control_plane.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <utility>
#include <vector>

#include "control/commands/request.hpp"
#include "control/store/fleet.hpp"
#include "dataplane/inspect.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

Baseline baseline_of(const Config& cfg) {
    Baseline b;
    for (const auto& p : cfg.approved) {
        Approval a;
        a.prefix = p;
        a.operator_name = "config";
        a.reason = "approved in the configuration file";
        b[p] = a;
    }
    return b;
}

bool known_command(const std::string& cmd);

// Every concern's handlers, in one table.
const std::vector<Handler>& handlers() {
    static const std::vector<Handler> table = [] {
        std::vector<Handler> t;
        for (auto group : {report_handlers(), approval_handlers(), settings_handlers(), fleet_handlers(),
                           lifecycle_handlers(), token_handlers()})
            t.insert(t.end(), group.begin(), group.end());
        return t;
    }();
    return table;
}

bool known_command(const std::string& cmd) {
    for (const Handler& h : handlers())
        if (cmd == h.name) return true;
    return false;
}

}  // namespace

ControlPlane::ControlPlane(const Config& cfg, ApprovalStore& store, PolicyPublisher& publisher,
                           AuditLog& audit, Figures figures)
    : figures_(std::move(figures)),
      baseline_(baseline_of(cfg)),
      changes_(cfg, store, audit, publisher, rules_),
      services_{
          cfg, store, audit, publisher, rules_, changes_, baseline_, figures_, std::make_shared<size_t>(0)} {}

Reply ControlPlane::serve(const std::string& line, const Peer& peer, Session& session) {
    changes_.take_changed();
    Later later;
    json body;
    try {
        std::string why;
        auto req = parse_request(line, &why);
        if (!req) return {error_reply(why), false, nullptr};
        if (!req->is_object()) throw RequestError("a request must be a JSON object");
        if (!req->contains("v")) throw RequestError("missing protocol version 'v'");
        if ((*req)["v"] != kProtocolVersion)
            throw RequestError("unsupported protocol version " + printable(reply_line((*req)["v"]), 40) +
                               " (this daemon speaks " + std::to_string(kProtocolVersion) + ")");
        const std::string cmd = need_string(*req, "cmd");
        const auto t0 = std::chrono::steady_clock::now();
        body = dispatch(Call{cmd, *req, peer, session, later});
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
        if (peer.pid != 0)  // a client's, not the daemon's own status reads (telemetry, metrics)
            latency_.by_command[known_command(cmd) ? cmd : "unknown"].record(took.count());
    } catch (const RequestError& e) {
        body = error_reply(e.what(), e.code);
    } catch (const std::exception& e) {
        spdlog::error("control request from {} failed: {}", printable(peer.user), printable(e.what(), 200));
        body = error_reply("internal error: " + printable(e.what(), 200));
    } catch (...) {
        spdlog::error("control request from {} failed with an unknown exception", printable(peer.user));
        body = error_reply("internal error");
    }
    return {std::move(body), changes_.take_changed(), std::move(later)};
}

json ControlPlane::handle(const std::string& line, const Peer& peer, Session& session) {
    begin_batch();
    Reply r = serve(line, peer, session);
    const auto err = end_batch();
    if (r.changed && !err.empty()) return error_reply("not saved: " + err);
    return r.body;
}

void ControlPlane::set_tokens(TokenStore* tokens) {
    services_.tokens = tokens;
}

void ControlPlane::set_fleet(Fleet* fleet) {
    services_.fleet = fleet;
    changes_.set_fleet(fleet);
}

void ControlPlane::pump_fleet() {
    if (!services_.fleet) return;
    std::vector<json> lines;
    if (services_.fleet->pump(&lines) == 0) return;
    for (const auto& l : lines)
        services_.audit.record(Peer{0, 0, static_cast<int>(getpid()), "fleet"}, "fleet_apply", l, nullptr,
                               nullptr, "ok");
    changes_.republish(now_s());
}

std::string ControlPlane::end_batch() {
    const bool changed = changes_.pending();
    const auto t0 = std::chrono::steady_clock::now();
    std::string err = changes_.end_batch();
    if (changed)
        latency_.commit.record(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return err;
}

json ControlPlane::record_for(const IpAddr& a) const {
    const auto [rec, source] = effective_record(services_, Prefix{a, a.v6 ? uint8_t{128} : uint8_t{32}});
    if (!rec) return nullptr;
    return {{"prefix", to_string(rec->prefix)},
            {"state", state_name(rec->state)},
            {"ticket", rec->ticket},
            {"source", source}};
}

std::string ControlPlane::auto_suspend(const IpAddr& addr, const std::string& reason) {
    const Prefix p{addr, addr.v6 ? uint8_t{128} : uint8_t{32}};
    const int64_t now = now_s();
    const auto [rec, source] = effective_record(services_, p);
    if (!rec || !rec->grants(now)) return {};
    const Approval* existing = services_.store.find(p);
    Approval a = *rec;
    if (!existing) {
        a.complaints.clear();
        a.created = now;
    }
    a.prefix = p;
    a.state = ApprovalState::Suspended;
    a.reason = reason.substr(0, kMaxReason);
    a.operator_name = "portcullis";
    a.updated = now;
    const json req = {{"addr", to_string(p)}, {"reason", a.reason}};
    begin_batch();
    json reply = changes_.commit("auto_suspend", req, Peer{0, 0, static_cast<int>(getpid()), "portcullis"},
                                 existing, a);
    const std::string err = end_batch();
    changes_.take_changed();
    if (reply["ok"] != true || !err.empty())
        return "could not suspend " + to_string(p) + ": " + (err.empty() ? reply.value("error", "") : err);
    return "suspended " + to_string(p) + ": " + a.reason;
}

uint64_t ControlPlane::policy_generation() const {
    return services_.publisher.generation();
}

std::string ControlPlane::rule_text(uint32_t id) const {
    if (!rules_.db) return {};
    for (const auto& r : rules_.db->rules)
        if (r.id == id) return r.reply;
    return {};
}

json ControlPlane::dispatch(const Call& call) {
    for (const Handler& h : handlers())
        if (call.cmd == h.name) return h.run(services_, call);
    throw RequestError("unknown command '" + printable(call.cmd, 40) + "'");
}

}  // namespace portcullis
