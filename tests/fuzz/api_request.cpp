// Fuzz target: the HTTP API's requests as the server hands them over (a portal, or anyone who reaches
// api_listen, may send anything): method, target, Authorization and body go through the desk and the router
// into a real control plane (TestPlane over a temporary state directory kept across inputs). Input: line 1
// "METHOD TARGET", line 2 the caller (first byte: '0' no token, '1' the operator's, '2' customer acme's
// (198.51.100.0/28), '3' customer other's (198.51.100.16/28), else the line itself as the Authorization
// value), the rest the body. Properties:
// - nothing throws out of the desk, and the request is answered exactly once, within the pass (or later
//   passes for a DNS check, which is off here);
// - the status is one the API documents, never 500; the body is a JSON object, an error one with an
//   "error" string, and it serialises;
// - a customer's token never gets 2xx on a route a customer may not use, nor on an address outside its
//   scope; no token or a bad one always gets 401 and changes nothing.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "control/api/desk.hpp"
#include "control/api/router.hpp"
#include "control/api/tokens.hpp"
#include "tests/fuzz/fuzz_util.hpp"
#include "tests/support/control_plane.hpp"

using namespace portcullis;
using nlohmann::json;

namespace {

struct State : portcullis::testing::TestPlane {
    std::filesystem::path dir;
    std::unique_ptr<TokenStore> tokens;
    std::unique_ptr<ApiRouter> router;
    std::unique_ptr<ApiDesk> desk;
    std::string op, acme, other;
    size_t inputs = 0;

    State() {
        fuzz::init_eal_once();
        spdlog::set_level(spdlog::level::off);
        dir = fuzz::make_temp_dir("api");
        cfg.managed_prefixes = {*parse_prefix("198.51.100.0/24"), *parse_prefix("2001:db8:100::/48")};
        cfg.approved = {*parse_prefix("198.51.100.64/28")};
        cfg.blocked_ports = {25};
        reset();
    }

    void reset() {
        desk.reset();
        router.reset();
        close_plane();
        std::error_code ec;
        std::filesystem::remove_all(dir / "state", ec);
        if (auto err = open_plane(dir / "state", dir / "state" / "audit.log"); !err.empty())
            fuzz::fail("cannot open a new state directory: %s", err.c_str());
        tokens = std::make_unique<TokenStore>(dir / "state" / "api_tokens.json");
        if (!tokens->add({"noc", TokenRole::Operator, {}, "", 1, "fuzz"}, &op).empty() ||
            !tokens
                 ->add({"acme", TokenRole::Customer, {*parse_prefix("198.51.100.0/28")}, "", 1, "fuzz"},
                       &acme)
                 .empty() ||
            !tokens
                 ->add({"other", TokenRole::Customer, {*parse_prefix("198.51.100.16/28")}, "", 1, "fuzz"},
                       &other)
                 .empty())
            fuzz::fail("cannot make the tokens");
        plane->set_tokens(tokens.get());
        router = std::make_unique<ApiRouter>(*tokens, *audit, ApiRate{1e9});
        desk = std::make_unique<ApiDesk>(*router);
        inputs = 0;
    }
};

State& state() {
    static State s;
    return s;
}

bool documented(int status) {
    for (int s : {200, 400, 401, 403, 404, 405, 409, 429, 503})
        if (status == s) return true;
    return false;
}

// Percent-decoded path segments (a bad escape left as it is: the router refuses it anyway).
std::vector<std::string> segments(std::string_view path) {
    std::vector<std::string> out(1);
    for (size_t i = 1; i < path.size(); ++i) {
        if (path[i] == '/') {
            out.emplace_back();
        } else if (path[i] == '%' && i + 2 < path.size() &&
                   std::isxdigit(static_cast<unsigned char>(path[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(path[i + 2]))) {
            out.back() += static_cast<char>(std::stoi(std::string(path.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out.back() += path[i];
        }
    }
    return out;
}

// Whether a route a customer may use matches, by the table (not by the router): {addr} any one segment.
bool customer_route(const std::string& method, const std::string& target) {
    const auto got = segments(std::string_view(target).substr(0, target.find('?')));
    for (const auto& r : api_routes()) {
        if (!r.customer || method != r.method) continue;
        const auto want = segments(r.path);
        if (want.size() != got.size()) continue;
        bool ok = true;
        for (size_t i = 0; i < want.size() && ok; ++i) ok = want[i] == "{addr}" || want[i] == got[i];
        if (ok) return true;
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    State& s = state();
    if (++s.inputs > 4096 || s.store->records().size() > 64 || s.store->journal_entries() > 128) s.reset();
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const size_t nl1 = in.find('\n');
    const std::string_view first = in.substr(0, nl1);
    const std::string_view rest = nl1 == std::string_view::npos ? std::string_view{} : in.substr(nl1 + 1);
    const size_t nl2 = rest.find('\n');
    const std::string_view who = rest.substr(0, nl2);
    const std::string body(nl2 == std::string_view::npos ? std::string_view{} : rest.substr(nl2 + 1));
    const size_t sp = first.find(' ');
    HttpRequest req;
    req.method = std::string(first.substr(0, sp));
    req.target = sp == std::string_view::npos ? "" : std::string(first.substr(sp + 1));
    req.body = body;
    req.remote = "192.0.2.1";
    char role = who.empty() ? '0' : who[0];
    if (role == '1')
        req.authorization = "Bearer " + s.op;
    else if (role == '2')
        req.authorization = "Bearer " + s.acme;
    else if (role == '3')
        req.authorization = "Bearer " + s.other;
    else if (role != '0')
        req.authorization = std::string(who), role = 'x';

    const auto records_before = s.store->records();
    int answers = 0;
    HttpResponse got;
    if (!s.desk->submit(req, [&](HttpResponse r) {
            ++answers;
            got = std::move(r);
        }))
        fuzz::fail("the desk refused a request with an empty queue");
    for (int pass = 0; pass < 3 && answers == 0; ++pass) s.desk->pump(*s.plane);
    if (answers != 1) fuzz::fail("answered %d times", answers);
    if (!documented(got.status)) fuzz::fail("status %d", got.status);
    if (!got.body.is_object()) fuzz::fail("a body that is not an object");
    if (got.status >= 400 && (!got.body.contains("error") || !got.body["error"].is_string()))
        fuzz::fail("an error without an error string");
    const std::string text = got.body.dump(-1, ' ', false, json::error_handler_t::replace);
    if (fuzz::verbose()) std::fprintf(stderr, "%d %s\n", got.status, text.c_str());
    if ((role == '0' || role == 'x') && got.status != 401 && got.status != 404 && got.status != 405 &&
        got.status != 400)
        fuzz::fail("no or a bad token got %d", got.status);
    if ((role == '0' || role == 'x') && s.store->records() != records_before)
        fuzz::fail("a request without a valid token changed the store");
    if ((role == '2' || role == '3') && got.status == 200) {
        if (!customer_route(req.method, req.target))
            fuzz::fail("a customer got 200 for %s %s", req.method.c_str(), req.target.c_str());
        // Whatever changed lies inside the customer's scope.
        const Prefix scope = *parse_prefix(role == '2' ? "198.51.100.0/28" : "198.51.100.16/28");
        for (const auto& [p, a] : s.store->records()) {
            auto it = records_before.find(p);
            if ((it == records_before.end() || !(it->second == a)) &&
                !(p.addr.v6 == scope.addr.v6 && scope.len <= p.len && scope.contains(p.addr)))
                fuzz::fail("a customer changed %s, outside its scope", to_string(p).c_str());
        }
    }
    return 0;
}
