// Control socket client (see client.hpp).
#include "tools/portcullisctl/client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "api/protocol.hpp"

namespace portcullis::ctl {

Client::~Client() {
    if (fd_ >= 0) ::close(fd_);
}

std::string Client::connect(const std::string& path) {
    sockaddr_un addr{};
    if (path.size() >= sizeof addr.sun_path) return "socket path too long: " + path;
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        return "cannot reach portcullis at " + path + ": " + std::strerror(errno) +
               (errno == ENOENT || errno == ECONNREFUSED ? " (is the daemon running? see --socket)" : "");
    return {};
}

nlohmann::json Client::call(nlohmann::json req, int timeout_s) {
    req[key::kVersion] = kProtocolVersion;
    const std::string line = req.dump() + "\n";
    size_t off = 0;
    while (off < line.size()) {
        if (stopped()) throw Interrupted();
        const ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error(std::string("lost the daemon: ") + std::strerror(errno));
        off += static_cast<size_t>(n);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    for (;;) {
        if (const auto nl = buffered_.find('\n'); nl != std::string::npos) {
            const std::string reply = buffered_.substr(0, nl);
            buffered_.erase(0, nl + 1);
            try {
                return nlohmann::json::parse(reply);
            } catch (const std::exception&) {
                throw std::runtime_error("the daemon's reply is not JSON");
            }
        }
        if (stopped()) throw Interrupted();
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0)
            throw std::runtime_error("no reply from the daemon within " + std::to_string(timeout_s) + " s");
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
        char buf[65536];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error("the daemon closed the connection");
        buffered_.append(buf, static_cast<size_t>(n));
    }
}

}  // namespace portcullis::ctl
