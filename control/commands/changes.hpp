// The control plane's change machinery, shared by every handler that changes something: a store mutation and
// its audit line as one change (both or neither), group commit around the requests of one server pass (one
// journal sync, one audit sync, one snapshot publication), and the policy snapshot rebuilt and published
// after it. A handler never touches the batch; it calls durable() or commit() and the reply it returns is
// marked as a change, whose acknowledgement waits for end_batch().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "api/approval.hpp"
#include "control/config.hpp"
#include "control/policy/publisher.hpp"
#include "control/store/audit.hpp"
#include "control/store/store.hpp"

namespace portcullis {

struct InspectDb;
class RulesCompiler;
class Fleet;

// The inspection rules in force (published with the next snapshot), and where a reload compiles them (a
// child process, off the control loop; null: in-process, as in unit tests).
struct RulesState {
    std::shared_ptr<const InspectDb> db;
    RulesCompiler* compiler = nullptr;
};

class Changes {
  public:
    Changes(const Config& cfg, ApprovalStore& store, AuditLog& audit, PolicyPublisher& publisher,
            const RulesState& rules)
        : cfg_(cfg), store_(store), audit_(audit), publisher_(publisher), rules_(rules) {}

    // A store mutation and its audit line as one change: both or neither. "" or why not (audited).
    std::string durable(const std::string& cmd, const nlohmann::json& args, const Peer& peer,
                        const nlohmann::json& before, const std::function<std::string()>& mutate,
                        const std::function<nlohmann::json()>& after);
    // One record written durably: the reply ({"record": after}, or "not saved: ...").
    nlohmann::json commit(const std::string& cmd, const nlohmann::json& req, const Peer& peer,
                          const Approval* before, const Approval& after);
    // A change made outside the store (the rules in force): published at the end of the batch.
    void published();

    // Group commit around every request of one pass of the server. end_batch() returns "" or why the changes
    // are not saved (then every change of the batch is undone, on disk and in memory, and none is published).
    void begin_batch();
    std::string end_batch();
    // Whether a change was made since the last call (the reply to the request just served is a change).
    bool take_changed() { return std::exchange(changed_, false); }
    // Whether the open batch has something to save.
    bool pending() const { return dirty_; }

    // store = etcd: a batch committed to the fleet gets an audit line naming this gateway and the revision.
    void set_fleet(Fleet* fleet) { fleet_ = fleet; }

    // Builds and publishes a snapshot from the configuration, the store and the rules.
    void republish(int64_t now);
    // Rebuilds the snapshot when an approval has expired since the last one. Call about once a second.
    void tick(int64_t now) {
        if (next_expiry_ != 0 && now >= next_expiry_) republish(now);
    }

  private:
    const Config& cfg_;
    ApprovalStore& store_;
    AuditLog& audit_;
    PolicyPublisher& publisher_;
    const RulesState& rules_;
    int64_t next_expiry_ = 0;
    bool batch_ = false, dirty_ = false, changed_ = false;
    off_t audit_mark_ = 0;
    Fleet* fleet_ = nullptr;
    int64_t fleet_mark_ = 0;
};

}  // namespace portcullis
