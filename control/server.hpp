// The control socket: a Unix-domain stream socket, one JSON request per line in, one JSON reply per line out,
// served from the main lcore's loop with poll(). Every client is bounded: a line longer than kMaxLine gets an
// error and the connection is closed; a client that leaves a line unfinished for kLineTimeout, or says
// nothing for kIdleTimeout, is dropped; past kMaxClients a new connection is told so and closed. None of this
// can stall the workers, which never wait for the control plane.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <string>
#include <vector>

#include "control/audit.hpp"
#include "control/commands.hpp"

namespace portcullis {

class ControlServer {
  public:
    static constexpr size_t kMaxLine = 1 << 20;
    static constexpr size_t kMaxClients = 64;
    static constexpr std::chrono::seconds kLineTimeout{
        30};  // to finish a line once started (or once connected)
    static constexpr std::chrono::seconds kIdleTimeout{600};  // a connection with no traffic at all

    using Handler = std::function<nlohmann::json(const std::string& line, const Peer&, Session&)>;
    // Called around each pass over the readable clients: replies are sent only after end() says the pass's
    // changes are durable (""); otherwise every reply that changed something becomes that error.
    struct Batch {
        std::function<void()> begin;
        std::function<std::string()> end;
    };

    ControlServer(std::string path, std::string group, Handler handler, Batch batch);
    ~ControlServer();

    // Creates the directory (0750), refuses to take over a live daemon's socket, binds (0660). "" or why not.
    std::string listen();
    // Waits up to timeout_ms for activity, then serves what is ready.
    void poll_once(int timeout_ms);
    size_t clients() const { return clients_.size(); }

  private:
    struct Client {
        int fd = -1;
        Peer peer;
        std::string in, out;
        std::vector<nlohmann::json> replies;                  // this pass's, held until the batch is durable
        bool closing = false;                                 // close once `out` is flushed
        std::chrono::steady_clock::time_point line_deadline;  // max(): no line pending
        std::chrono::steady_clock::time_point last_activity;
        Session session;
    };
    void accept_clients();
    void read_client(Client& c);
    void write_client(Client& c);

    std::string path_, group_;
    Handler handler_;
    Batch batch_;
    int listen_fd_ = -1;
    std::list<Client> clients_;
};

}  // namespace portcullis
