// The HTTP API's routes on the control thread: a request as the HTTP server read it, authenticated (bearer
// token, tokens.hpp), held to its token's rate, role and scopes, and translated into the one control
// request the CLI would send (the same handlers, validation and audit: the peer is "<role>:<token name>");
// the control reply then becomes the HTTP status and JSON body. Every refusal here is an HTTP status with
// {"error": one line}: 400 bad input, 401 no or a bad token, 403 outside the role or scope (audited), 404 no
// such route or record, 405 wrong method, 409 banned or in a conflicting state, 429 over the token's rate.
// docs/api.yaml describes the routes (api_routes(); a test checks the two agree).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <variant>

#include "control/api/tokens.hpp"
#include "control/store/audit.hpp"

namespace portcullis {

struct HttpRequest {
    std::string method;         // "GET", "POST", "DELETE", ...
    std::string target;         // the request target: path and query, as sent
    std::string body;           // bounded by the server
    std::string authorization;  // the Authorization header's value, "" when absent
    std::string remote;         // the client's address, for the log
};

struct HttpResponse {
    HttpResponse() = default;
    HttpResponse(int status, nlohmann::json body) : status(status), body(std::move(body)) {}
    int status = 200;
    nlohmann::json body;
    int retry_after = 0;          // seconds, for a 429 (the Retry-After header); 0: none
    bool auth_challenge = false;  // a 401: WWW-Authenticate: Bearer
    std::string allow;            // a 405: the methods the path has (the Allow header)
};

// One route: its method, its path ("{addr}" a path segment holding an address or a percent-encoded prefix)
// and whether a customer's token may use it.
struct ApiRoute {
    const char* method;
    const char* path;
    bool customer;
};
std::span<const ApiRoute> api_routes();

// What the router made of a request for the control plane: the request line, who makes it, and how its
// reply becomes the response.
struct ApiCall {
    std::string line;
    Peer peer;
    std::function<HttpResponse(const nlohmann::json& reply)> finish;
};

// A token bucket per token: `rate` requests a second, bursts of twice that.
struct ApiRate {
    double rate = 20;
};

class ApiRouter {
  public:
    ApiRouter(const TokenStore& tokens, AuditLog& audit, ApiRate rate);
    using Clock = std::chrono::steady_clock;
    std::variant<HttpResponse, ApiCall> route(const HttpRequest& req, Clock::time_point now);

  private:
    bool take(const std::string& bucket, double rate, Clock::time_point now, int* retry_after);
    const TokenStore& tokens_;
    AuditLog& audit_;
    ApiRate rate_;
    struct Bucket {
        double level = 0;
        Clock::time_point at{};
    };
    std::map<std::string, Bucket> buckets_;
};

// The HTTP status for a control reply that is an error (its "code", else what its text says).
int status_of(const nlohmann::json& reply);

}  // namespace portcullis
