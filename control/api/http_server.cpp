// The HTTP API's server (see http_server.hpp).
#include "control/api/http_server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

namespace portcullis {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

tcp::endpoint endpoint_of(const std::string& listen) {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("api_listen: '" + listen + "' is not ADDR:PORT");
    std::string host = listen.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    boost::system::error_code ec;
    const auto addr = asio::ip::make_address(host, ec);
    if (ec) throw std::runtime_error("api_listen: '" + host + "' is not an IP address");
    int port = 0;
    try {
        port = std::stoi(listen.substr(colon + 1));
    } catch (...) {
        port = -1;
    }
    if (port < 0 || port > 65535) throw std::runtime_error("api_listen: bad port in '" + listen + "'");
    return {addr, static_cast<uint16_t>(port)};
}

// Connections per client address, shared by the connections (each drops its count however it ends, from
// whichever thread lets go of it last).
struct ConnCount {
    std::mutex mutex;
    size_t total = 0;
    std::map<asio::ip::address, size_t> by_address;
};

}  // namespace

struct HttpServer::Impl {
    HttpServerOptions opts;
    Handler handler;
    HttpServerCounters counters;
    asio::io_context ioc{1};
    std::optional<asio::ssl::context> ssl;
    tcp::acceptor acceptor{ioc};
    std::shared_ptr<ConnCount> count = std::make_shared<ConnCount>();
    std::thread thread;
    bool stopped = false;

    void accept();
};

namespace {

template <class Stream>
class Conn : public std::enable_shared_from_this<Conn<Stream>> {
  public:
    Conn(Stream stream, HttpServer::Impl& server, asio::ip::address peer, std::shared_ptr<ConnCount> count)
        : stream_(std::move(stream)), server_(server), peer_(std::move(peer)), count_(std::move(count)) {}
    ~Conn() {
        std::lock_guard lock(count_->mutex);
        --count_->total;
        if (--count_->by_address[peer_] == 0) count_->by_address.erase(peer_);
    }

    void start() {
        if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
            lowest().expires_after(server_.opts.request_timeout);
            stream_.async_handshake(asio::ssl::stream_base::server,
                                    [self = this->shared_from_this()](beast::error_code ec) {
                                        if (ec) return self->failed(ec);
                                        self->read();
                                    });
        } else {
            read();
        }
    }

  private:
    beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

    void failed(beast::error_code ec) {
        if (ec == beast::error::timeout)
            ++server_.counters.timed_out;
        else if (ec != http::error::end_of_stream && ec != asio::error::eof &&
                 ec != asio::error::connection_reset && ec != asio::ssl::error::stream_truncated)
            ++server_.counters.malformed;
        close();
    }

    void close() {
        beast::error_code ignored;
        lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
        lowest().close();
    }

    void read() {
        parser_.emplace();
        parser_->header_limit(static_cast<uint32_t>(server_.opts.max_header));
        parser_->body_limit(server_.opts.max_body);
        lowest().expires_after(server_.opts.request_timeout);  // the whole request, however it trickles in
        http::async_read(
            stream_, buffer_, *parser_,
            [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        if (ec == http::error::body_limit) {
            ++server_.counters.too_large;
            return reply(
                {413, {{"error", "request body over " + std::to_string(server_.opts.max_body) + " bytes"}}},
                false);
        }
        if (ec == http::error::header_limit) {
            ++server_.counters.too_large;
            return reply(
                {431,
                 {{"error", "request header over " + std::to_string(server_.opts.max_header) + " bytes"}}},
                false);
        }
        if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == asio::error::eof ||
            ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated)
            return failed(ec);
        if (ec) {
            ++server_.counters.malformed;
            return reply({400, {{"error", "not a valid HTTP/1.1 request"}}}, false);
        }
        const auto& msg = parser_->get();
        size_t fields = 0;
        for (auto it = msg.begin(); it != msg.end(); ++it) ++fields;
        if (fields > server_.opts.max_fields) {
            ++server_.counters.too_large;
            return reply(
                {431, {{"error", "more than " + std::to_string(server_.opts.max_fields) + " header fields"}}},
                false);
        }
        keep_alive_ = msg.keep_alive();
        HttpRequest req;
        req.method = std::string(msg.method_string());
        req.target = std::string(msg.target());
        req.body = msg.body();
        if (auto it = msg.find(http::field::authorization); it != msg.end())
            req.authorization = std::string(it->value());
        req.remote = peer_.to_string();
        lowest().expires_never();  // the control side answers (the deadline resumes with the write)
        // The answer comes from the control thread: it is carried back onto this connection's thread.
        auto respond = [self = this->shared_from_this()](HttpResponse rsp) mutable {
            auto conn = std::move(self);
            if (!conn) return;
            auto ex = conn->lowest().get_executor();
            asio::post(ex, [conn = std::move(conn), rsp = std::move(rsp)]() mutable {
                conn->reply(std::move(rsp), conn->keep_alive_);
            });
        };
        bool taken = false;
        try {
            taken = server_.handler(std::move(req), std::move(respond));
        } catch (const std::exception& e) {
            spdlog::error("api: {}", e.what());
        }
        if (!taken) {
            ++server_.counters.busy;
            HttpResponse busy(503, {{"error", "the control plane is busy; try again"}});
            busy.retry_after = 1;
            reply(std::move(busy), false);
        }
    }

    void reply(HttpResponse rsp, bool keep_alive) {
        auto res =
            std::make_shared<http::response<http::string_body>>(static_cast<http::status>(rsp.status), 11);
        res->set(http::field::content_type, "application/json");
        res->set(http::field::cache_control, "no-store");
        if (rsp.retry_after > 0) res->set(http::field::retry_after, std::to_string(rsp.retry_after));
        if (rsp.auth_challenge) res->set(http::field::www_authenticate, "Bearer realm=\"portcullis\"");
        if (!rsp.allow.empty()) res->set(http::field::allow, rsp.allow);
        res->keep_alive(keep_alive);
        res->body() = rsp.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        res->prepare_payload();
        lowest().expires_after(server_.opts.request_timeout);
        http::async_write(stream_, *res,
                          [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                              if (ec) return self->failed(ec);
                              if (!keep_alive) return self->close();
                              self->read();
                          });
    }

    Stream stream_;
    HttpServer::Impl& server_;
    asio::ip::address peer_;
    std::shared_ptr<ConnCount> count_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    bool keep_alive_ = false;
};

}  // namespace

void HttpServer::Impl::accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
        if (stopped) return;
        if (!ec) {
            beast::error_code peer_ec;
            const auto peer = socket.remote_endpoint(peer_ec).address();
            bool room = false;
            if (!peer_ec) {
                std::lock_guard lock(count->mutex);
                room = count->total < opts.max_connections && count->by_address[peer] < opts.max_per_address;
                if (room) {
                    ++count->total;
                    ++count->by_address[peer];
                } else if (count->by_address[peer] == 0) {
                    count->by_address.erase(peer);
                }
            }
            if (!room) {
                ++counters.refused;
                socket.close(peer_ec);
            } else {
                ++counters.connections;
                if (ssl)
                    std::make_shared<Conn<beast::ssl_stream<beast::tcp_stream>>>(
                        beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *ssl),
                        *this, peer, count)
                        ->start();
                else
                    std::make_shared<Conn<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), *this,
                                                              peer, count)
                        ->start();
            }
        }
        accept();
    });
}

HttpServer::HttpServer(const HttpServerOptions& opts, Handler handler) : impl_(std::make_unique<Impl>()) {
    impl_->opts = opts;
    impl_->handler = std::move(handler);
    if (!opts.tls_cert.empty() || !opts.tls_key.empty()) {
        impl_->ssl.emplace(asio::ssl::context::tls_server);
        auto& ctx = *impl_->ssl;
        ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                        asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                        asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
        boost::system::error_code ec;
        ctx.use_certificate_chain_file(opts.tls_cert, ec);
        if (ec) throw std::runtime_error("api_tls_cert: cannot use " + opts.tls_cert + ": " + ec.message());
        ctx.use_private_key_file(opts.tls_key, asio::ssl::context::pem, ec);
        if (ec) throw std::runtime_error("api_tls_key: cannot use " + opts.tls_key + ": " + ec.message());
    }
    const auto ep = endpoint_of(opts.listen);
    boost::system::error_code ec;
    impl_->acceptor.open(ep.protocol(), ec);
    if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) impl_->acceptor.bind(ep, ec);
    if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("api_listen: cannot listen on " + opts.listen + ": " + ec.message());
    impl_->accept();
    impl_->thread = std::thread([this] {
        for (;;) {
            try {
                impl_->ioc.run();
                return;
            } catch (const std::exception& e) {  // a handler's exception ends no serving
                spdlog::error("api server: {} (carrying on)", e.what());
            }
        }
    });
}

void HttpServer::stop() {
    if (impl_->stopped) return;
    asio::post(impl_->ioc, [this] {
        impl_->stopped = true;
        boost::system::error_code ec;
        impl_->acceptor.close(ec);
    });
    impl_->ioc.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
    impl_->stopped = true;
}

HttpServer::~HttpServer() {
    stop();
}

uint16_t HttpServer::port() const {
    boost::system::error_code ec;
    return impl_->acceptor.local_endpoint(ec).port();
}

bool HttpServer::tls() const {
    return impl_->ssl.has_value();
}

const HttpServerCounters& HttpServer::counters() const {
    return impl_->counters;
}

}  // namespace portcullis
