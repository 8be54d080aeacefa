// A real etcd (Debian's /usr/bin/etcd) for the fleet's tests and benchmark: started on loopback ports of its
// own with its data in a directory, stopped with SIGKILL (as a crash would) by stop() or at the end.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "control/store/etcd_client.hpp"

namespace portcullis::testing {

namespace fs = std::filesystem;

struct TempDir {
    fs::path path;
    TempDir() {
        char tmpl[] = "/tmp/portcullis-fleet-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { fs::remove_all(path); }
};

inline int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    close(fd);
    return ntohs(a.sin_port);
}

inline bool eventually(const std::function<bool()>& f, int ms = 10000) {
    for (int i = 0; i < ms / 20; ++i) {
        if (f()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return f();
}

// Debian's etcd on loopback, its data in `dir`; stopped (SIGKILL) by stop() or at the end.
class Etcd {
  public:
    explicit Etcd(fs::path dir) : dir_(std::move(dir)), client_(free_port()), peer_(free_port()) { start(); }
    ~Etcd() { stop(); }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(client_); }
    void start() {
        pid_ = fork();
        if (pid_ == 0) {
            const std::string c = url(), p = "http://127.0.0.1:" + std::to_string(peer_);
            const std::string data = (dir_ / "etcd").string();
            freopen((dir_ / "etcd.log").c_str(), "a", stderr);
            execl("/usr/bin/etcd", "etcd", "--name", "t", "--data-dir", data.c_str(), "--listen-client-urls",
                  c.c_str(), "--advertise-client-urls", c.c_str(), "--listen-peer-urls", p.c_str(),
                  "--initial-advertise-peer-urls", p.c_str(), "--initial-cluster", ("t=" + p).c_str(),
                  "--log-level", "error", static_cast<char*>(nullptr));
            _exit(127);
        }
        EtcdClient probe({{url()}, {}, {}, {}, {}, {}, 500});
        if (!eventually([&] {
                EtcdRange r;
                return probe.range("x", "", 0, 0, r).empty();
            }))
            throw std::runtime_error("etcd did not start (" + (dir_ / "etcd.log").string() + ")");
    }
    void stop() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }
    void wipe() {
        stop();
        fs::remove_all(dir_ / "etcd");
    }

  private:
    fs::path dir_;
    int client_, peer_;
    pid_t pid_ = -1;
};

}  // namespace portcullis::testing
