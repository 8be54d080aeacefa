// Control socket server (see server.hpp).
#include "control/socket/server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

namespace portcullis {

namespace {

Peer peer_of(int fd) {
    Peer p;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        p.uid = static_cast<int>(cred.uid);
        p.gid = static_cast<int>(cred.gid);
        p.pid = cred.pid;
        passwd pw{}, *res = nullptr;
        char buf[1024];
        if (getpwuid_r(cred.uid, &pw, buf, sizeof buf, &res) == 0 && res)
            p.user = res->pw_name;
        else
            p.user = "uid:" + std::to_string(cred.uid);
    }
    return p;
}

}  // namespace

ControlServer::ControlServer(ControlSocket socket, Handler handler, Batch batch, Limits limits)
    : socket_(std::move(socket)), handler_(std::move(handler)), batch_(std::move(batch)), limits_(limits) {}

ControlServer::~ControlServer() {
    for (auto& c : clients_) ::close(c.fd);
}

bool ControlServer::make_room(const Peer& peer) {
    const bool root = peer.uid == 0;
    size_t same_uid = 0;
    for (const auto& c : clients_)
        if (!c.closing && c.peer.uid == peer.uid) ++same_uid;
    size_t open = 0;
    for (const auto& c : clients_) open += c.closing ? 0 : 1;
    const bool over_uid = !root && same_uid >= limits_.max_per_uid;
    const bool over_all =
        open >= (root ? limits_.max_clients : limits_.max_clients - limits_.reserved_for_root);
    if (!over_uid && !over_all) return true;
    // The victim: the client idle longest among those that count against the newcomer (its own uid when
    // that is the limit; else anyone but root, whose reserved slots stay root's).
    const auto now = std::chrono::steady_clock::now();
    Client* victim = nullptr;
    for (auto& c : clients_) {
        if (c.closing || c.waiting || (over_uid && c.peer.uid != peer.uid) ||
            (!over_uid && c.peer.uid == 0 && !root))
            continue;
        if (!victim || c.last_activity < victim->last_activity) victim = &c;
    }
    if (!victim || (!root && now - victim->last_activity < limits_.evict_idle)) return false;
    victim->out += reply_line(error_reply("closing an idle control connection to make room for another"));
    victim->in.clear();
    victim->closing = true;
    write_client(*victim);
    return true;
}

void ControlServer::accept_clients() {
    for (;;) {
        const int fd = ::accept4(socket_.fd(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN, or a transient error: try again at the next poll
        const Peer peer = peer_of(fd);
        if (!make_room(peer)) {
            const std::string msg = reply_line(error_reply(
                "too many control clients (" + std::to_string(limits_.max_per_uid) + " per user, " +
                std::to_string(limits_.max_clients) + " in all, all busy); try again"));
            [[maybe_unused]] auto n = ::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            continue;
        }
        Client c;
        c.fd = fd;
        c.last_activity = std::chrono::steady_clock::now();
        c.line_deadline = c.last_activity + limits_.line_timeout;
        c.peer = peer;
        clients_.push_back(std::move(c));
    }
}

void ControlServer::handle_line(Client& c, const std::string& line) {
    try {
        c.replies.push_back(handler_(line, c.peer, c.session));
    } catch (const std::exception& e) {
        spdlog::error("control request from {} failed: {}", printable(c.peer.user), printable(e.what(), 200));
        c.replies.push_back({error_reply("internal error: " + printable(e.what(), 200)), false, nullptr});
    } catch (...) {
        spdlog::error("control request from {} failed with an unknown exception", printable(c.peer.user));
        c.replies.push_back({error_reply("internal error"), false, nullptr});
    }
}

void ControlServer::read_client(Client& c) {
    char buf[65536];
    const auto now = std::chrono::steady_clock::now();
    for (;;) {
        const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
        if (n > 0) {
            if (c.in.empty() && c.line_deadline == std::chrono::steady_clock::time_point::max())
                c.line_deadline = now + limits_.line_timeout;
            c.in.append(buf, static_cast<size_t>(n));
            if (c.in.size() > kMaxLine + sizeof buf) break;  // handle what we have before reading more
            continue;
        }
        if (n == 0) {  // the client closed its side: answer what it sent, then close
            c.closing = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            c.closing = true;
            c.in.clear();
        }
        break;
    }
    take_lines(c, now);
}

void ControlServer::take_lines(Client& c, std::chrono::steady_clock::time_point now) {
    size_t start = 0;
    while (!c.waiting) {
        const size_t nl = c.in.find('\n', start);
        if (nl == std::string::npos) break;
        if (nl - start > kMaxLine) {
            start = c.in.size();
            c.out += reply_line(error_reply("request line over " + std::to_string(kMaxLine) + " bytes"));
            c.closing = true;
            break;
        }
        std::string line = c.in.substr(start, nl - start);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        start = nl + 1;
        if (line.find_first_not_of(" \t") == std::string::npos) continue;  // keeps no slot alive
        c.last_activity = now;
        handle_line(c, line);
        if (!c.replies.empty() && c.replies.back().later) {
            c.waiting = std::move(c.replies.back().later);
            c.replies.pop_back();
        }
    }
    c.in.erase(0, start);
    if (c.in.size() > kMaxLine && !c.waiting) {
        c.out += reply_line(error_reply("request line over " + std::to_string(kMaxLine) + " bytes"));
        c.in.clear();
        c.closing = true;
    }
    if (start > 0)
        c.line_deadline =
            c.in.empty() ? std::chrono::steady_clock::time_point::max() : now + limits_.line_timeout;
}

// A reply being worked out: ready now? Then the client's buffered requests go on.
void ControlServer::resolve(Client& c, std::chrono::steady_clock::time_point now) {
    std::optional<nlohmann::json> body;
    try {
        body = c.waiting();
    } catch (const std::exception& e) {
        body = error_reply("internal error: " + printable(e.what(), 200));
    } catch (...) {
        body = error_reply("internal error");
    }
    if (!body) return;
    c.waiting = nullptr;
    const bool changed = batch_.later_changed && batch_.later_changed();
    c.replies.push_back({std::move(*body), changed, nullptr});
    c.last_activity = now;
    take_lines(c, now);
}

void ControlServer::write_client(Client& c) {
    while (!c.out.empty()) {
        const ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c.out.erase(0, static_cast<size_t>(n));
            c.last_activity = std::chrono::steady_clock::now();  // a slow reader of a long reply is not idle
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        c.out.clear();  // the peer is gone
        c.closing = true;
        return;
    }
}

void ControlServer::poll_once(int timeout_ms) {
    std::vector<pollfd> fds;
    fds.reserve(clients_.size() + 1);
    fds.push_back({socket_.fd(), POLLIN, 0});
    for (const auto& c : clients_) {
        // Replies unread, or one still being worked out: read no more from this client for now.
        const bool read = !c.closing && !c.waiting && c.out.size() < kMaxPendingOut;
        // A client that hung up while its reply is worked out would report POLLHUP on every pass and spin
        // the loop: it is left out of the poll (a negative fd) until the reply is ready.
        const bool idle_hangup = c.closing && c.out.empty();
        fds.push_back({idle_hangup ? -1 : c.fd,
                       static_cast<short>((read ? POLLIN : 0) | (c.out.empty() ? 0 : POLLOUT)), 0});
    }
    for (int fd : wake_fds_) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0) return;

    const auto now = std::chrono::steady_clock::now();
    // Pass 1: read and handle every complete request, as one batch.
    batch_.begin();
    size_t i = 1;
    for (auto& c : clients_) {
        if (c.waiting) resolve(c, now);
        if (!c.closing && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) read_client(c);
        ++i;
    }
    const std::string unsaved = batch_.end();
    // Pass 2: release the replies (turned into errors if the batch is not durable), write, expire, close.
    for (auto it = clients_.begin(); it != clients_.end();) {
        Client& c = *it;
        for (auto& r : c.replies)
            c.out +=
                reply_line(r.changed && !unsaved.empty() ? error_reply("not saved: " + unsaved) : r.body);
        c.replies.clear();
        if (!c.closing && !c.waiting &&
            (now > c.line_deadline || now - c.last_activity > limits_.idle_timeout)) {
            c.out += reply_line(error_reply("no complete request in time; closing"));
            c.in.clear();
            c.closing = true;
        }
        write_client(c);
        if (c.closing && c.out.empty() && !c.waiting) {  // a reply in the works is finished, not dropped
            ::close(c.fd);
            it = clients_.erase(it);
        } else {
            ++it;
        }
    }
    if (fds[0].revents & POLLIN) accept_clients();
}

}  // namespace portcullis
