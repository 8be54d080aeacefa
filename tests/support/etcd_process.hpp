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
#include <vector>

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

// Debian's etcd on loopback, its data in `dir`; stopped (SIGKILL) by stop() or at the end. With `tls` (a
// directory holding ca.pem, server.pem, server-key.pem), it serves https and requires a client certificate
// signed by that CA.
class Etcd {
  public:
    explicit Etcd(fs::path dir, fs::path tls = {})
        : dir_(std::move(dir)), tls_(std::move(tls)), client_(free_port()), peer_(free_port()) {
        start();
    }
    ~Etcd() { stop(); }
    std::string url() const {
        return std::string(tls_.empty() ? "http" : "https") + "://127.0.0.1:" + std::to_string(client_);
    }
    // The options a client needs to reach it (the client certificate when tls).
    EtcdOptions client_options() const {
        EtcdOptions o{{url()}, {}, {}, {}, {}, {}, 1000};
        if (!tls_.empty()) {
            o.ca = (tls_ / "ca.pem").string();
            o.cert = (tls_ / "client.pem").string();
            o.key = (tls_ / "client-key.pem").string();
        }
        return o;
    }
    void start() {
        pid_ = fork();
        if (pid_ == 0) {
            const std::string c = url(), p = "http://127.0.0.1:" + std::to_string(peer_);
            const std::string data = (dir_ / "etcd").string();
            if (!freopen((dir_ / "etcd.log").c_str(), "a", stderr)) _exit(126);
            std::vector<std::string> args = {"etcd",   "--name",
                                             "t",      "--data-dir",
                                             data,     "--listen-client-urls",
                                             c,        "--advertise-client-urls",
                                             c,        "--listen-peer-urls",
                                             p,        "--initial-advertise-peer-urls",
                                             p,        "--initial-cluster",
                                             "t=" + p, "--log-level",
                                             "error"};
            if (!tls_.empty())
                for (const std::string& a : {std::string("--cert-file=") + (tls_ / "server.pem").string(),
                                             std::string("--key-file=") + (tls_ / "server-key.pem").string(),
                                             std::string("--trusted-ca-file=") + (tls_ / "ca.pem").string(),
                                             std::string("--client-cert-auth")})
                    args.push_back(a);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            execv("/usr/bin/etcd", argv.data());
            _exit(127);
        }
        EtcdClient probe(client_options());
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
    fs::path dir_, tls_;
    int client_, peer_;
    pid_t pid_ = -1;
};

}  // namespace portcullis::testing

namespace portcullis::testing {

// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in `dir`.
inline void make_certificates(const fs::path& dir) {
    const std::string d = dir.string();
    const std::string cmd =
        "(cd " + d +
        " && "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=test-ca "
        "&& "
        "openssl req -newkey rsa:2048 -nodes -keyout server-key.pem -out server.csr -subj /CN=etcd && "
        "printf 'subjectAltName=IP:127.0.0.1' > san.ext && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem -days "
        "2 "
        "-extfile san.ext && "
        "openssl req -newkey rsa:2048 -nodes -keyout client-key.pem -out client.csr -subj /CN=portcullis && "
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out client.pem -days "
        "2"
        ") >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0)
        throw std::runtime_error("openssl could not make the test certificates");
}

}  // namespace portcullis::testing
