// The control socket: a Unix-domain stream socket, one JSON request per line in, one JSON reply per line out,
// served from the main lcore's loop with poll(). Every client is bounded: a line longer than kMaxLine gets an
// error and the connection is closed; a client that leaves a line unfinished for line_timeout, or sends no
// request (empty lines do not count) for idle_timeout, is dropped; a client that does not read its replies
// is not read from until it does. Slots: at most max_clients, max_per_uid per non-root uid, and the last
// reserved_for_root only for root; a newcomer who finds no slot takes the one of the client idle longest
// (idle at least evict_idle; root's newcomers take it whatever its idle time), so neither idle connections
// nor one user's flood can lock the operator out. Whatever a handler throws becomes an error reply and a log
// line. None of this can stall the workers, which never wait for the control plane.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <string>
#include <vector>

#include "control/commands/control_plane.hpp"
#include "control/socket/control_socket.hpp"
#include "control/store/audit.hpp"

namespace portcullis {

struct ControlLimits {
    size_t max_clients = 64, reserved_for_root = 4, max_per_uid = 16;
    std::chrono::milliseconds line_timeout{30'000};  // to finish a line once started (or send one)
    std::chrono::milliseconds idle_timeout{60'000};  // no request (nor reply read) for this long
    std::chrono::milliseconds evict_idle{5'000};     // idle enough to give its slot to a newcomer
};

class ControlServer {
  public:
    static constexpr size_t kMaxLine = 1 << 20;
    static constexpr size_t kMaxPendingOut = 8 << 20;  // unread replies past which a client is not read
    using Limits = ControlLimits;

    using Handler = std::function<Reply(const std::string& line, const Peer&, Session&)>;
    // Called around each pass over the readable clients: replies are sent only after end() says the pass's
    // changes are durable (""); otherwise every reply that changed something becomes that error.
    struct Batch {
        std::function<void()> begin;
        std::function<std::string()> end;
        // Whether a reply that came later (a Later) changed anything: its acknowledgement then waits for the
        // batch's sync like any change's. Null: later replies change nothing.
        std::function<bool()> later_changed{};
    };

    // socket: listening already (ControlSocket::listen).
    ControlServer(ControlSocket socket, Handler handler, Batch batch, Limits limits = {});
    ~ControlServer();
    // Waits up to timeout_ms for activity, then serves what is ready.
    void poll_once(int timeout_ms);
    size_t clients() const { return clients_.size(); }
    // An eventfd whose readiness ends the wait early (the fleet's updates, the HTTP API's requests); whoever
    // owns it drains it.
    void add_wake_fd(int fd) { wake_fds_.push_back(fd); }

  private:
    struct Client {
        int fd = -1;
        Peer peer;
        std::string in, out;
        std::vector<Reply> replies;  // this pass's, held until the batch is durable
        std::function<std::optional<nlohmann::json>()> waiting;  // a reply still being worked out
        bool closing = false;                                    // close once `out` is flushed
        std::chrono::steady_clock::time_point line_deadline;     // max(): no line pending
        std::chrono::steady_clock::time_point last_activity;
        Session session;
    };
    void accept_clients();
    // Makes room for a newcomer from `peer`: true when a slot is free or was freed by dropping an idle
    // client.
    bool make_room(const Peer& peer);
    void handle_line(Client& c, const std::string& line);
    void read_client(Client& c);
    void take_lines(Client& c, std::chrono::steady_clock::time_point now);  // handles complete lines
    void resolve(Client& c, std::chrono::steady_clock::time_point now);
    void write_client(Client& c);

    ControlSocket socket_;
    Handler handler_;
    Batch batch_;
    Limits limits_;
    std::list<Client> clients_;
    std::vector<int> wake_fds_;
};

}  // namespace portcullis
