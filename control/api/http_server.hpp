// The HTTP API's server: Boost.Beast over Boost.Asio (OpenSSL for TLS) on a thread of its own, never a
// worker's core. One thread serves every connection asynchronously, so a slow client holds no thread: a
// connection has request_timeout for its TLS handshake, then request_timeout for each whole request
// (headers and body, however they trickle in; an idle keep-alive connection waits in this one too), then
// request_timeout to take its response, and is closed past any of them. While the control side works out
// the answer no deadline runs (it is bounded there: a DNS check by dns_timeout_ms). Bounded: the header
// block, the number of header fields, the body, the connections in all and from one address; past a bound the
// client gets 413/431/503 or is closed. A request read whole goes to the handler (the ApiDesk) with a way to
// answer; the answer may come from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "control/api/router.hpp"

namespace portcullis {

struct HttpServerOptions {
    std::string listen;             // ADDR:PORT, [V6]:PORT
    std::string tls_cert, tls_key;  // PEM files; both empty: plain HTTP
    size_t max_body = 64 << 10;
    size_t max_header = 8 << 10;
    unsigned max_fields = 64;
    std::chrono::milliseconds request_timeout{10'000};  // the handshake; each request; each response's write
    size_t max_connections = 256, max_per_address = 32;
};

struct HttpServerCounters {
    std::atomic<uint64_t> connections{0};  // accepted
    std::atomic<uint64_t> refused{0};      // closed at once: too many connections in all or from one address
    std::atomic<uint64_t> timed_out{0};    // dropped past a deadline (a slow client)
    std::atomic<uint64_t> too_large{0};    // 413 or 431
    std::atomic<uint64_t> malformed{0};    // 400 for what is not HTTP, or a failed TLS handshake
    std::atomic<uint64_t> busy{0};         // 503: the desk's queue was full
};

class HttpServer {
  public:
    using Respond = std::function<void(HttpResponse)>;
    // false: not taken (busy); the server answers 503.
    using Handler = std::function<bool(HttpRequest, Respond)>;

    // Listens and starts serving; throws std::runtime_error with one line (a bad address, a port in use,
    // an unreadable certificate or key).
    HttpServer(const HttpServerOptions& opts, Handler handler);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Stops serving and joins the thread (the destructor does too).
    void stop();
    uint16_t port() const;
    bool tls() const;
    const HttpServerCounters& counters() const;

    struct Impl;  // the io_context, the acceptor, the TLS context (http_server.cpp)

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace portcullis
