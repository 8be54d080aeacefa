// The audit log: one JSON line per control-plane change or refused change (time, who, command, the record
// before and after, the result), appended to state_dir/audit.log and synced before the reply goes out.
#pragma once

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
    // Returns "" once the line is on disk.
    std::string record(const Peer& peer, const std::string& cmd, const nlohmann::json& args,
                       const nlohmann::json& before, const nlohmann::json& after, const std::string& result);

    // Group commit, as in ApprovalStore.
    void begin_batch() { batch_ = true; }
    std::string end_batch();

  private:
    std::filesystem::path path_;
    int fd_ = -1;
    bool batch_ = false, unsynced_ = false;
};

}  // namespace portcullis
