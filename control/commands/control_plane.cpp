// The control plane's core (see control_plane.hpp): request envelope and dispatch through the handler
// table, group commit, snapshot publication, and the durable-change machinery the handlers share.
#include "control/commands/control_plane.hpp"

#include <spdlog/spdlog.h>

#include <utility>

#include "control/commands/request.hpp"
#include "control/policy_builder.hpp"

namespace portcullis {

using nlohmann::json;

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
        if (!req) return {error_reply(why), false, nullptr};
        if (!req->is_object()) throw RequestError("a request must be a JSON object");
        if (!req->contains("v")) throw RequestError("missing protocol version 'v'");
        if ((*req)["v"] != kProtocolVersion)
            throw RequestError("unsupported protocol version " + printable(reply_line((*req)["v"]), 40) +
                               " (this daemon speaks " + std::to_string(kProtocolVersion) + ")");
        body = dispatch(need_string(*req, "cmd"), *req, peer, session);
    } catch (const RequestError& e) {
        body = error_reply(e.what());
    } catch (const std::exception& e) {
        spdlog::error("control request from {} failed: {}", printable(peer.user), printable(e.what(), 200));
        body = error_reply("internal error: " + printable(e.what(), 200));
    } catch (...) {
        spdlog::error("control request from {} failed with an unknown exception", printable(peer.user));
        body = error_reply("internal error");
    }
    return {std::move(body), changed_, std::exchange(later_, nullptr)};
}

json ControlPlane::handle(const std::string& line, const Peer& peer, Session& session) {
    begin_batch();
    Reply r = serve(line, peer, session);
    const auto err = end_batch();
    if (r.changed && !err.empty()) return error_reply("not saved: " + err);
    return r.body;
}

const std::vector<ControlPlane::Handler>& ControlPlane::handlers() {
    // One entry a command, grouped as their handlers are: reports.cpp, approvals.cpp, settings.cpp.
    static const std::vector<Handler> table = {
        {cmd::kStatus, [](ControlPlane& cp, const Call&) { return ok_reply(cp.status()); }},
        {cmd::kStats, [](ControlPlane& cp, const Call&) { return cp.stats(); }},
        {cmd::kList, [](ControlPlane& cp, const Call& c) { return ok_reply(cp.list(c.req)); }},
        {cmd::kShow, [](ControlPlane& cp, const Call& c) { return ok_reply(cp.show(c.req)); }},
        {cmd::kExport, [](ControlPlane& cp, const Call&) { return cp.export_records(); }},

        {cmd::kApprove, [](ControlPlane& cp, const Call& c) { return cp.approve(c.req, c.peer); }},
        {cmd::kSuspend, [](ControlPlane& cp, const Call& c) { return cp.set_state(c.cmd, c.req, c.peer); }},
        {cmd::kResume, [](ControlPlane& cp, const Call& c) { return cp.set_state(c.cmd, c.req, c.peer); }},
        {cmd::kRevoke, [](ControlPlane& cp, const Call& c) { return cp.set_state(c.cmd, c.req, c.peer); }},
        {cmd::kUnban, [](ControlPlane& cp, const Call& c) { return cp.unban(c.req, c.peer); }},
        {cmd::kImportBegin, [](ControlPlane& cp, const Call& c) { return cp.import_begin(c.session); }},
        {cmd::kImportChunk,
         [](ControlPlane& cp, const Call& c) { return cp.import_chunk(c.req, c.session); }},
        {cmd::kImportCommit,
         [](ControlPlane& cp, const Call& c) { return cp.import_commit(c.req, c.peer, c.session); }},

        {cmd::kManaged, [](ControlPlane& cp, const Call& c) { return cp.overlay(c.cmd, c.req, c.peer); }},
        {cmd::kRelay, [](ControlPlane& cp, const Call& c) { return cp.overlay(c.cmd, c.req, c.peer); }},
        {cmd::kMonitor, [](ControlPlane& cp, const Call& c) { return cp.monitor(c.req, c.peer); }},
        {cmd::kLimits, [](ControlPlane& cp, const Call& c) { return cp.limits(c.req, c.peer); }},
        {cmd::kRules, [](ControlPlane& cp, const Call& c) { return cp.rules(c.req, c.peer); }},
    };
    return table;
}

json ControlPlane::dispatch(const std::string& name, const json& req, const Peer& peer, Session& session) {
    for (const Handler& h : handlers())
        if (name == h.name) return h.run(*this, Call{name, req, peer, session});
    throw RequestError("unknown command '" + printable(name, 40) + "'");
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
        return error_reply("not saved: " + err);
    return ok_reply({{"record", after_j}});
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

std::pair<const Approval*, const char*> ControlPlane::effective_record(const Prefix& p) const {
    for (int len = p.len; len >= 0; --len) {
        const Prefix q = p.widened(static_cast<uint8_t>(len));
        if (const Approval* a = store_.find(q)) return {a, "store"};
        if (auto it = baseline_.find(q); it != baseline_.end()) return {&it->second, "configuration"};
    }
    return {nullptr, ""};
}

}  // namespace portcullis
