// The change machinery (see changes.hpp): durable changes, group commit, snapshot publication.
#include "control/commands/changes.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <utility>

#include "api/wire.hpp"
#include "control/commands/request.hpp"
#include "control/policy/policy_builder.hpp"

namespace portcullis {

using nlohmann::json;

void Changes::republish(int64_t now) {
    auto built = build_policy(cfg_, &store_, now, rules_.db);
    next_expiry_ = built.next_expiry;
    publisher_.publish(std::move(built.policy));
}

void Changes::published() {
    changed_ = true;
    if (batch_)
        dirty_ = true;
    else
        republish(now_s());
}

void Changes::begin_batch() {
    batch_ = true;
    dirty_ = false;
    store_.begin_batch();
    audit_.begin_batch();
    audit_mark_ = audit_.savepoint();
    fleet_mark_ = store_.fleet_revision();
}

std::string Changes::end_batch() {
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
    if (err.empty() && fleet_ && store_.fleet_revision() != fleet_mark_)
        audit_.record(Peer{0, 0, static_cast<int>(getpid()), "fleet"}, "fleet_commit",
                      json{{"gateway", cfg_.gateway_name}, {"revision", store_.fleet_revision()}}, nullptr,
                      nullptr, "ok");
    if (dirty_) republish(now_s());
    dirty_ = false;
    return err;
}

std::string Changes::durable(const std::string& cmd, const json& args, const Peer& peer, const json& before,
                             const std::function<std::string()>& mutate, const std::function<json()>& after) {
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
    published();
    return {};
}

json Changes::commit(const std::string& cmd, const json& req, const Peer& peer, const Approval* before,
                     const Approval& after) {
    const json before_j = before ? to_json(*before) : json(nullptr);
    const json after_j = to_json(after);
    if (auto err = durable(
            cmd, req, peer, before_j, [&] { return store_.put(after); }, [&] { return after_j; });
        !err.empty())
        return error_reply("not saved: " + err);
    return ok_reply({{"record", after_j}});
}

}  // namespace portcullis
