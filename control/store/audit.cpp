// Audit log appends (see audit.hpp).
#include "control/store/audit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "api/approval.hpp"

namespace portcullis {

AuditLog::~AuditLog() {
    if (fd_ >= 0) ::close(fd_);
}

std::string AuditLog::open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    return fd_ < 0 ? "open " + path_.string() + ": " + std::strerror(errno) : "";
}

off_t AuditLog::savepoint() const {
    struct stat st {};
    return ::fstat(fd_, &st) == 0 ? st.st_size : -1;
}

void AuditLog::rollback(off_t size) {
    if (size >= 0 && savepoint() > size) [[maybe_unused]]
        int rc = ::ftruncate(fd_, size);
}

std::string AuditLog::record(const Peer& peer, const std::string& cmd, const nlohmann::json& args,
                             const nlohmann::json& before, const nlohmann::json& after,
                             const std::string& result) {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    const nlohmann::json line = {{"time", format_time(secs)}, {"uid", peer.uid}, {"pid", peer.pid},
                                 {"user", peer.user},         {"cmd", cmd},      {"args", args},
                                 {"before", before},          {"after", after},  {"result", result}};
    const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    const off_t start = savepoint();
    size_t off = 0;
    while (off < text.size()) {
        const ssize_t n = ::write(fd_, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            const std::string why = std::string("audit log write: ") + std::strerror(n == 0 ? ENOSPC : errno);
            rollback(start);  // no torn line for the next one to be glued to
            return why;
        }
        off += static_cast<size_t>(n);
    }
    if (batch_) {
        unsynced_ = true;
        return {};
    }
    if (::fdatasync(fd_) != 0) {
        const std::string why = std::string("audit log sync: ") + std::strerror(errno);
        rollback(start);
        return why;
    }
    return {};
}

std::string AuditLog::end_batch() {
    batch_ = false;
    if (!unsynced_) return {};
    unsynced_ = false;
    return ::fdatasync(fd_) == 0 ? "" : std::string("audit log sync: ") + std::strerror(errno);
}

}  // namespace portcullis
