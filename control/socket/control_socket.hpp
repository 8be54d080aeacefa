// The control socket's listening end, on its own: taken early in the daemon's start (a daemon that cannot
// take it, or finds another daemon on it, must not start forwarding), then handed to the ControlServer once
// the control plane it serves exists. Closes and removes the socket file when it goes.
#pragma once

#include <string>

namespace portcullis {

class ControlSocket {
  public:
    ControlSocket(std::string path, std::string group);
    ControlSocket(ControlSocket&& o) noexcept;
    ControlSocket& operator=(ControlSocket&&) = delete;
    ~ControlSocket();

    // Creates the directory (0750), refuses to take over a live daemon's socket, binds (0660), listens.
    // "" or why not.
    std::string listen();
    int fd() const { return fd_; }
    const std::string& path() const { return path_; }

  private:
    std::string path_, group_;
    int fd_ = -1;
};

}  // namespace portcullis
