// Forward-confirmed reverse DNS through c-ares (see fcrdns.hpp).
#include "control/dns/fcrdns.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <mutex>
#include <stdexcept>

namespace portcullis {

namespace {

std::string lower_name(std::string s) {
    if (!s.empty() && s.back() == '.') s.pop_back();
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string ares_says(int status) {
    switch (status) {
        case ARES_ENOTFOUND:
            return "NXDOMAIN (no such name)";
        case ARES_ENODATA:
            return "no record of that type";
        case ARES_ETIMEOUT:
        case ARES_ECANCELLED:
            return "timeout";
        case ARES_ECONNREFUSED:
            return "connection refused by the DNS server";
        case ARES_ESERVFAIL:
            return "SERVFAIL";
        case ARES_EREFUSED:
            return "REFUSED";
        default:
            return ares_strerror(status);
    }
}

// c-ares' global state, once per process (ares_library_init is not thread-safe).
void library_init() {
    static std::once_flag once;
    std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

}  // namespace

struct FcrdnsCheck::State {
    ares_channel channel = nullptr;
    int pending = 2;
    FcrdnsResult* result = nullptr;
};

FcrdnsCheck::FcrdnsCheck(const DnsSettings& dns, const IpAddr& addr, std::string host)
    : addr_(addr), host_(lower_name(std::move(host))), state_(std::make_unique<State>()) {
    library_init();
    state_->result = &result_;
    ares_options opts{};
    opts.timeout = static_cast<int>(std::max<uint32_t>(dns.timeout_ms / 2, 100));
    opts.tries = 2;
    if (int rc = ares_init_options(&state_->channel, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
        rc != ARES_SUCCESS)
        throw std::runtime_error(std::string("DNS: ") + ares_strerror(rc));
    if (!dns.servers.empty()) {
        std::string csv;
        for (const auto& s : dns.servers) csv += (csv.empty() ? "" : ",") + s;
        if (int rc = ares_set_servers_ports_csv(state_->channel, csv.c_str()); rc != ARES_SUCCESS)
            throw std::runtime_error("dns_servers: " + std::string(ares_strerror(rc)));
    }
    deadline_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(dns.timeout_ms);
    result_.checked = static_cast<int64_t>(std::time(nullptr));

    // The address's PTR.
    unsigned char bytes[16];
    int family = AF_INET, len = 4;
    if (addr.v6) {
        family = AF_INET6;
        len = 16;
        for (int i = 0; i < 16; ++i) bytes[i] = static_cast<unsigned char>(addr.v6addr >> (8 * (15 - i)));
    } else {
        for (int i = 0; i < 4; ++i) bytes[i] = static_cast<unsigned char>(addr.v4 >> (8 * (3 - i)));
    }
    ares_gethostbyaddr(
        state_->channel, bytes, len, family,
        [](void* arg, int status, int, hostent* h) {
            auto* st = static_cast<State*>(arg);
            --st->pending;
            if (status != ARES_SUCCESS || !h) {
                st->result->ptr_error = ares_says(status);
                return;
            }
            auto add = [&](const char* name) {
                auto& list = st->result->ptr;
                const std::string n = lower_name(name);
                if (std::find(list.begin(), list.end(), n) == list.end() && list.size() < 16)
                    list.push_back(n);
            };
            if (h->h_name) add(h->h_name);
            for (char** a = h->h_aliases; a && *a; ++a) add(*a);
        },
        state_.get());

    // The name's A and AAAA.
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_NOSORT;
    ares_getaddrinfo(
        state_->channel, host_.c_str(), nullptr, &hints,
        [](void* arg, int status, int, ares_addrinfo* ai) {
            auto* st = static_cast<State*>(arg);
            --st->pending;
            if (status != ARES_SUCCESS || !ai) {
                st->result->forward_error = ares_says(status);
                if (ai) ares_freeaddrinfo(ai);
                return;
            }
            for (auto* n = ai->nodes; n; n = n->ai_next) {
                char buf[INET6_ADDRSTRLEN] = {};
                const void* src =
                    n->ai_family == AF_INET6
                        ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr)
                        : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr);
                if (inet_ntop(n->ai_family, src, buf, sizeof buf)) {
                    // Normalised as the gateway prints addresses.
                    const auto parsed = parse_addr(buf);
                    const std::string text = parsed ? to_string(*parsed) : std::string(buf);
                    if (std::find(st->result->forward.begin(), st->result->forward.end(), text) ==
                            st->result->forward.end() &&
                        st->result->forward.size() < 16)
                        st->result->forward.push_back(text);
                }
            }
            ares_freeaddrinfo(ai);
        },
        state_.get());
}

FcrdnsCheck::~FcrdnsCheck() {
    if (state_ && state_->channel) ares_destroy(state_->channel);
}

bool FcrdnsCheck::poll() {
    if (done_) return true;
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(state_->channel, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    nfds_t n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
        short ev = 0;
        if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
        if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
        if (ev) fds[n++] = {socks[i], ev, 0};
    }
    if (n && ::poll(fds, n, 0) > 0)
        for (nfds_t i = 0; i < n; ++i)
            if (fds[i].revents)
                ares_process_fd(state_->channel,
                                (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD,
                                (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD);
    // c-ares' own retry timers.
    ares_process_fd(state_->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    if (state_->pending > 0 && std::chrono::steady_clock::now() >= deadline_) ares_cancel(state_->channel);
    if (state_->pending > 0) return false;
    done_ = true;
    result_.ptr_matches = std::find(result_.ptr.begin(), result_.ptr.end(), host_) != result_.ptr.end();
    result_.resolves_back =
        std::find(result_.forward.begin(), result_.forward.end(), to_string(addr_)) != result_.forward.end();
    result_.ok = result_.ptr_matches && result_.resolves_back;
    return true;
}

nlohmann::json FcrdnsResult::to_json(const IpAddr& addr, const std::string& host) const {
    nlohmann::json j = {{"fcrdns", ok},
                        {"ptr_matches", ptr_matches},
                        {"resolves_back", resolves_back},
                        {"ptr", ptr},
                        {"forward", forward},
                        {"checked", checked},
                        {"addr", to_string(addr)},
                        {"hostname", host}};
    if (!ptr_error.empty()) j["ptr_error"] = ptr_error;
    if (!forward_error.empty()) j["forward_error"] = forward_error;
    j["said"] = describe(addr, host);
    return j;
}

std::string FcrdnsResult::describe(const IpAddr& addr, const std::string& host) const {
    const std::string a = to_string(addr);
    std::string ptr_part = !ptr_error.empty() ? "PTR of " + a + ": " + ptr_error
                           : ptr_matches      ? "PTR of " + a + " is " + host
                                              : "PTR of " + a + " is " + join(ptr) + ", not " + host;
    std::string fwd_part = !forward_error.empty() ? host + ": " + forward_error
                           : resolves_back        ? host + " resolves to " + a
                                                  : host + " resolves to " + join(forward) + ", not " + a;
    return (ok ? "forward-confirmed: " : "not forward-confirmed: ") + ptr_part + "; " + fwd_part;
}

}  // namespace portcullis
