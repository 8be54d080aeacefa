// Forward-confirmed reverse DNS for an approval's host name (seed 003: receivers check that the sending
// address's PTR names the EHLO host and that the name resolves back to the address). Asked on the control
// thread through c-ares, never a worker: the PTR of the address and the A/AAAA of the name at once, over
// non-blocking sockets polled once per pass of the control loop, with a deadline (dns_timeout_ms). The result
// names what DNS said, for `show` and for a refusal's one line.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/net_addr.hpp"

namespace portcullis {

struct DnsSettings {
    std::vector<std::string> servers;  // "ADDR" or "ADDR:PORT" ("[V6]:PORT"); empty: the system's
    uint32_t timeout_ms = 3000;
};

struct FcrdnsResult {
    bool ok = false;  // a PTR names the host, and the host resolves back to the address
    bool ptr_matches = false;
    bool resolves_back = false;
    std::vector<std::string> ptr;          // the address's PTR names
    std::vector<std::string> forward;      // the host name's addresses
    std::string ptr_error, forward_error;  // what DNS said instead of an answer ("NXDOMAIN", "timeout", ...)
    int64_t checked = 0;                   // unix seconds

    nlohmann::json to_json(const IpAddr& addr, const std::string& host) const;
    // One line: "PTR of 198.51.100.20 is elsewhere.example, not mail.example.com; mail.example.com resolves
    // to 192.0.2.99, not 198.51.100.20".
    std::string describe(const IpAddr& addr, const std::string& host) const;
};

class FcrdnsCheck {
  public:
    // Starts both queries. Throws std::runtime_error (a one-line reason) if c-ares cannot start.
    FcrdnsCheck(const DnsSettings& dns, const IpAddr& addr, std::string host);
    ~FcrdnsCheck();
    FcrdnsCheck(const FcrdnsCheck&) = delete;
    FcrdnsCheck& operator=(const FcrdnsCheck&) = delete;

    // Reads what has arrived, without waiting. True once both answers are in, or the deadline passed.
    bool poll();
    const FcrdnsResult& result() const { return result_; }
    const IpAddr& addr() const { return addr_; }
    const std::string& host() const { return host_; }

    struct State;  // c-ares' channel and the answers, for its callbacks

  private:
    IpAddr addr_;
    std::string host_;
    std::unique_ptr<State> state_;
    std::chrono::steady_clock::time_point deadline_;
    FcrdnsResult result_;
    bool done_ = false;
};

}  // namespace portcullis
