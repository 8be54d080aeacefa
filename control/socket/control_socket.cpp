// The control socket's listening end (see control_socket.hpp).
#include "control/socket/control_socket.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace portcullis {

namespace {

std::string err(const std::string& what) {
    return what + ": " + std::strerror(errno);
}

}  // namespace

ControlSocket::ControlSocket(std::string path, std::string group)
    : path_(std::move(path)), group_(std::move(group)) {}

ControlSocket::ControlSocket(ControlSocket&& o) noexcept
    : path_(std::move(o.path_)), group_(std::move(o.group_)), fd_(std::exchange(o.fd_, -1)) {}

ControlSocket::~ControlSocket() {
    if (fd_ >= 0) {
        ::close(fd_);
        ::unlink(path_.c_str());
    }
}

std::string ControlSocket::listen() {
    sockaddr_un addr{};
    if (path_.size() >= sizeof addr.sun_path) return "control_socket: path too long: " + path_;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);

    const auto dir = std::filesystem::path(path_).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::exists(dir)) {
        std::filesystem::create_directories(dir, ec);
        if (ec) return "control_socket: " + dir.string() + ": " + ec.message();
        ::chmod(dir.c_str(), 0750);
    }
    gid_t gid = static_cast<gid_t>(-1);
    if (!group_.empty()) {
        group g{}, *res = nullptr;
        char buf[1024];
        if (getgrnam_r(group_.c_str(), &g, buf, sizeof buf, &res) != 0 || !res)
            return "control_group: no group named '" + group_ + "'";
        gid = res->gr_gid;
    }

    // A socket file left by a daemon that died is stale; one that answers belongs to a live daemon.
    const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        ::close(probe);
        if (live) return "control_socket: " + path_ + " is in use by a running daemon";
    }
    ::unlink(path_.c_str());

    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return err("control_socket: socket");
    const mode_t old = ::umask(0117);
    const int rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::umask(old);
    if (rc != 0) return err("control_socket: bind " + path_);
    if (::chmod(path_.c_str(), 0660) != 0) return err("control_socket: chmod " + path_);
    if (gid != static_cast<gid_t>(-1) && ::chown(path_.c_str(), static_cast<uid_t>(-1), gid) != 0)
        return err("control_socket: chown " + path_);
    if (::listen(fd_, 64) != 0) return err("control_socket: listen");
    return {};
}

}  // namespace portcullis
