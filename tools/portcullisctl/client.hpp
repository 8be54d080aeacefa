// portcullisctl's connection to the daemon's control socket: one JSON request line out, one reply line in.
#pragma once

#include <csignal>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace portcullis::ctl {

// A call given up because a signal set the client's stop flag (`top` on Ctrl-C).
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted") {}
};

class Client {
  public:
    ~Client();
    // "" or why the daemon cannot be reached.
    std::string connect(const std::string& path);
    // Sends req (the protocol version is added) and waits up to timeout_s for the reply. Throws
    // std::runtime_error when the connection fails or the reply is not JSON, Interrupted when a signal
    // interrupted the wait and set the stop flag.
    nlohmann::json call(nlohmann::json req, int timeout_s = 60);
    // A flag a signal handler sets: from then on, a call waiting on the daemon gives up (Interrupted).
    void stop_on(const volatile std::sig_atomic_t* flag) { stop_ = flag; }

  private:
    bool stopped() const { return stop_ && *stop_; }

    int fd_ = -1;
    std::string buffered_;
    const volatile std::sig_atomic_t* stop_ = nullptr;
};

}  // namespace portcullis::ctl
