// portcullisctl's connection to the daemon's control socket: one JSON request line out, one reply line in.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace portcullis::ctl {

class Client {
  public:
    ~Client();
    // "" or why the daemon cannot be reached.
    std::string connect(const std::string& path);
    // Sends req (the protocol version is added) and waits up to timeout_s for the reply. Throws
    // std::runtime_error when the connection fails or the reply is not JSON.
    nlohmann::json call(nlohmann::json req, int timeout_s = 60);

  private:
    int fd_ = -1;
    std::string buffered_;
};

}  // namespace portcullis::ctl
