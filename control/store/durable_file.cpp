// Durable whole-file writes (see durable_file.hpp).
#include "control/store/durable_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portcullis {

namespace {

std::string errno_text(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

}  // namespace

bool write_all(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = ENOSPC;
            return false;
        }
        off += static_cast<size_t>(n);
    }
    return true;
}

std::string fsync_dir(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_text("open " + dir.string());
    const int rc = ::fsync(fd);
    ::close(fd);
    return rc == 0 ? "" : errno_text("fsync " + dir.string());
}

std::string write_file_durably(const std::filesystem::path& path, const std::string& content, int mode) {
    auto tmp = path;
    tmp += ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return errno_text("open " + tmp.string());
    const bool ok = write_all(fd, content) && ::fsync(fd) == 0;
    const int saved = errno;
    ::close(fd);
    if (!ok) {
        ::unlink(tmp.c_str());  // a full disk must not keep a half file's worth of space
        errno = saved;
        return errno_text("write " + tmp.string());
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const auto err = errno_text("rename " + tmp.string());
        ::unlink(tmp.c_str());
        return err;
    }
    const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    return fsync_dir(dir);
}

}  // namespace portcullis
