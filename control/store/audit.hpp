// The audit log: one JSON line per control-plane change or refused change (time, who, command, the record
// before and after, the result), appended to state_dir/audit.log. A change is acknowledged only once its
// audit line is on disk: a line that cannot be written (or synced) fails the change, and the caller cuts the
// log back to its savepoint so that no "ok" line stands for a change that was not made.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace portcullis {

struct Peer {
    int uid = -1, gid = -1, pid = -1;
    std::string user;  // from uid, "uid:N" when it has no name
};

class AuditLog {
  public:
    explicit AuditLog(std::filesystem::path path) : path_(std::move(path)) {}
    ~AuditLog();
    std::string open();
    // Returns "" once the line is written (synced too, outside a batch); on failure nothing of it is left.
    std::string record(const Peer& peer, const std::string& cmd, const nlohmann::json& args,
                       const nlohmann::json& before, const nlohmann::json& after, const std::string& result);

    // Group commit, as in ApprovalStore: end_batch() syncs what the batch wrote ("" or why not).
    void begin_batch() { batch_ = true; }
    std::string end_batch();
    // The log's length now; rollback() cuts it back there (a failed batch's lines).
    off_t savepoint() const;
    void rollback(off_t size);

  private:
    std::filesystem::path path_;
    int fd_ = -1;
    bool batch_ = false, unsynced_ = false;
};

}  // namespace portcullis
