// The HTTP API on the control side: tokens (only a hash kept, constant-time match, hostile token files
// refused), the routes through the desk into the real control plane (401/403/404/405/400/409/429, customer
// scopes, an operator's approval, a customer lifting only its own suspension, the audit naming the token),
// and the HTTP server's bounds against hostile clients on a loopback socket (oversized body and header, too
// many fields, not HTTP, a client too slow, a full desk).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "control/api/desk.hpp"
#include "control/api/http_server.hpp"
#include "control/api/router.hpp"
#include "control/api/tokens.hpp"
#include "tests/support/command_fixture.hpp"

namespace portcullis {
namespace {

using nlohmann::json;

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

TEST(ApiTokens, OnlyTheHashIsKeptAndTheSecretMatchesItsTokenAlone) {
    char tmpl[] = "/tmp/portcullis-tok-XXXXXX";
    const std::filesystem::path dir = mkdtemp(tmpl);
    const auto file = dir / "api_tokens.json";
    std::string s1, s2;
    {
        TokenStore t(file);
        ApiToken a{"acme", TokenRole::Customer, {*parse_prefix("198.51.100.0/28")}, "", 1, "root"};
        ASSERT_EQ(t.add(a, &s1), "");
        ASSERT_EQ(t.add(ApiToken{"noc", TokenRole::Operator, {}, "", 1, "root"}, &s2), "");
        EXPECT_EQ(s1.rfind("pcu_", 0), 0u);
        EXPECT_EQ(s1.size(), 68u);
        EXPECT_NE(s1, s2);
        EXPECT_NE(t.add(a, &s1), "") << "a second token of the same name";
        EXPECT_NE(t.add(ApiToken{"bob", TokenRole::Customer, {}, "", 1, "root"}, &s1), "") << "no scope";
        EXPECT_NE(t.add(ApiToken{"bad name", TokenRole::Operator, {}, "", 1, "root"}, &s1), "");
    }
    const std::string text = slurp(file);
    EXPECT_EQ(text.find(s1), std::string::npos) << "the secret is never stored";
    EXPECT_NE(text.find(TokenStore::hash_secret(s1)), std::string::npos);
    EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::others_read,
              std::filesystem::perms::none);
    TokenStore again(file);  // as after a restart
    ASSERT_NE(again.authenticate(s1), nullptr);
    EXPECT_EQ(again.authenticate(s1)->name, "acme");
    EXPECT_EQ(again.authenticate(s2)->name, "noc");
    std::string wrong = s1;
    wrong.back() = wrong.back() == '0' ? '1' : '0';
    EXPECT_EQ(again.authenticate(wrong), nullptr);
    EXPECT_EQ(again.authenticate(""), nullptr);
    EXPECT_EQ(again.authenticate(std::string(100000, 'a')), nullptr);
    EXPECT_EQ(again.revoke("acme"), "");
    EXPECT_EQ(again.authenticate(s1), nullptr);
    EXPECT_NE(again.revoke("acme"), "");
    EXPECT_EQ(TokenStore(file).tokens().count("acme"), 0u) << "a revocation is durable";
    std::filesystem::remove_all(dir);
}

TEST(ApiTokens, AHostileTokenFileIsRefusedWithOneLine) {
    const std::string hash(64, 'a');
    for (
        const std::string& text : std::vector<std::string>{
            std::string("not json"), std::string("[]"), std::string(R"({"format":2,"tokens":[]})"),
            std::string(R"({"format":[]})"), std::string(R"({"format":1,"tokens":{}})"),
            R"({"format":1,"tokens":[{"name":"a","role":"root","sha256":")" + hash +
                R"(","created":1,"created_by":"x","scopes":[]}]})",
            R"({"format":1,"tokens":[{"name":"a","role":"operator","sha256":"00","created":1,"created_by":"x","scopes":[]}]})",
            R"({"format":1,"tokens":[{"name":"a","role":"customer","sha256":")" + hash +
                R"(","created":1,"created_by":"x","scopes":[]}]})",
            R"({"format":1,"tokens":[{"name":"a","role":"customer","sha256":")" + hash +
                R"(","created":1,"created_by":"x","scopes":["nope"]}]})",
            R"({"format":1,"tokens":[{"name":"a/b","role":"operator","sha256":")" + hash +
                R"(","created":1,"created_by":"x","scopes":[]}]})",
            R"({"format":1,"tokens":[{"name":"a","role":"operator","sha256":")" + hash +
                R"(","created":"x","created_by":"x","scopes":[]}]})"}) {
        try {
            TokenStore::parse(text);
            ADD_FAILURE() << "accepted: " << text;
        } catch (const std::runtime_error& e) {
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
        }
    }
}

TEST(ApiTokens, AnUnreadableTokenFileLeavesNoTokensAndIsNotWrittenOver) {
    char tmpl[] = "/tmp/portcullis-tok-XXXXXX";
    const std::filesystem::path dir = mkdtemp(tmpl);
    const auto file = dir / "api_tokens.json";
    {
        std::ofstream out(file);
        out << "{\"format\":1,\"tokens\":[{\"name\":";  // cut short (a full disk, a bad restore)
    }
    TokenStore t(file);  // never throws: the daemon starts, the racks keep their uplink
    EXPECT_NE(t.broken(), "");
    EXPECT_EQ(t.broken().find('\n'), std::string::npos);
    EXPECT_TRUE(t.tokens().empty());
    std::string secret;
    EXPECT_NE(t.add({"noc", TokenRole::Operator, {}, "", 1, "root"}, &secret), "");
    EXPECT_NE(t.revoke("noc"), "");
    EXPECT_EQ(slurp(file), "{\"format\":1,\"tokens\":[{\"name\":") << "left for the operator to repair";
    std::filesystem::remove_all(dir);
}

// The routes through the desk into a real control plane.
class Api : public testing::CommandFixture {
  protected:
    void SetUp() override {
        CommandFixture::SetUp();
        tokens = std::make_unique<TokenStore>(std::filesystem::path(dir) / "api_tokens.json");
        ASSERT_EQ(tokens->add({"noc", TokenRole::Operator, {}, "", 1, "root"}, &op), "");
        ASSERT_EQ(
            tokens->add({"acme", TokenRole::Customer, {*parse_prefix("198.51.100.0/28")}, "", 1, "root"},
                        &acme),
            "");
        ASSERT_EQ(
            tokens->add({"other", TokenRole::Customer, {*parse_prefix("198.51.100.16/28")}, "", 1, "root"},
                        &other),
            "");
        plane->set_tokens(tokens.get());
        router = std::make_unique<ApiRouter>(*tokens, *audit, ApiRate{rate});
        desk = std::make_unique<ApiDesk>(*router);
    }
    void TearDown() override {
        desk.reset();
        router.reset();
        CommandFixture::TearDown();
    }
    HttpResponse http(const std::string& method, const std::string& target, const std::string& secret,
                      const std::string& body = "") {
        HttpResponse got{0, nullptr};
        EXPECT_TRUE(desk->submit(
            HttpRequest{method, target, body, secret.empty() ? "" : "Bearer " + secret, "192.0.2.9"},
            [&](HttpResponse r) { got = std::move(r); }));
        for (int i = 0; i < 100 && got.status == 0; ++i) desk->pump(*plane);
        return got;
    }
    std::string audit_text() { return slurp(std::filesystem::path(dir) / "audit.log"); }

    double rate = 1000;
    std::unique_ptr<TokenStore> tokens;
    std::unique_ptr<ApiRouter> router;
    std::unique_ptr<ApiDesk> desk;
    std::string op, acme, other;
};

TEST_F(Api, NoTokenOrABadOneIs401AndNamesTheChallenge) {
    auto r = http("GET", "/v1/status", "");
    EXPECT_EQ(r.status, 401);
    EXPECT_TRUE(r.auth_challenge);
    EXPECT_TRUE(r.body["error"].is_string());
    EXPECT_EQ(http("GET", "/v1/status", "pcu_" + std::string(64, '0')).status, 401);
    EXPECT_EQ(http("GET", "/v1/status", op).status, 200);
    EXPECT_EQ(http("GET", "/v1/status", op).body.value("ready", false), true);
}

TEST_F(Api, UnknownRoutesMethodsTargetsAndQueriesAreRefused) {
    EXPECT_EQ(http("GET", "/v2/status", op).status, 404);
    EXPECT_EQ(http("GET", "/v1/approvals/198.51.100.10/x", op).status, 404);
    EXPECT_EQ(http("PUT", "/v1/status", op).status, 405);
    EXPECT_EQ(http("PUT", "/v1/approvals", op).allow, "GET, POST");
    EXPECT_EQ(
        http("POST", "/v1/addresses/198.51.100.10/suspend", op, R"({"address":"198.51.100.11"})").status, 400)
        << "the address is the path's";
    EXPECT_EQ(http("GET", "/v1/addresses/%zz", op).status, 400);
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.10%00", op).status, 400);
    EXPECT_EQ(http("GET", "/v1/addresses/not-an-address", op).status, 400);
    EXPECT_EQ(http("GET", "/v1/status?x=1", op).status, 400);
    EXPECT_EQ(http("GET", "/v1/approvals?state=%C3%28", op).status, 400) << "not UTF-8 (found by fuzzing)";
    EXPECT_EQ(http("GET", "/v1/addresses/%FF", op).status, 400);
    EXPECT_EQ(http("GET", "/v1/approvals?state=a&state=b", op).status, 400);
    EXPECT_EQ(http("GET", "/v1/approvals?state=nonsense", op).status, 400);
    EXPECT_EQ(http("GET", "/v1/approvals?state=approved", op).status, 200);
    EXPECT_EQ(http("GET", "relative", op).status, 400);
}

TEST_F(Api, AnOperatorApprovesRevokesAndBansAndTheAuditNamesTheToken) {
    auto r = http(
        "POST", "/v1/approvals", op,
        R"({"address":"198.51.100.10","hostname":"mail.example.com","max_concurrent":3,"ticket":"T-1"})");
    ASSERT_EQ(r.status, 200) << r.body.dump();
    EXPECT_TRUE(approved_now("198.51.100.10"));
    r = http("GET", "/v1/addresses/198.51.100.10", op);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body["record"]["hostname"], "mail.example.com");
    EXPECT_EQ(r.body["record"]["max_concurrent"], 3);
    EXPECT_EQ(r.body["record"]["operator"], "operator:noc");
    EXPECT_EQ(http("POST", "/v1/approvals", op, R"({"address":"198.51.100.11","state":"approved"})").status,
              400)
        << "a read-only field";
    EXPECT_EQ(http("POST", "/v1/approvals", op, R"({"address":"198.51.100.11","max_concurrent":"x"})").status,
              400);
    EXPECT_EQ(http("POST", "/v1/approvals", op, R"({"hostname":"a.example"})").status, 400);
    EXPECT_EQ(http("POST", "/v1/approvals", op, "[1,2]").status, 400);
    EXPECT_EQ(http("POST", "/v1/approvals", op, "{").status, 400);
    EXPECT_EQ(http("POST", "/v1/approvals", op, std::string(100, '[')).status, 400);
    r = http("DELETE", "/v1/approvals/198.51.100.10?ban=true", op, R"({"reason":"spam run"})");
    ASSERT_EQ(r.status, 200) << r.body.dump();
    EXPECT_FALSE(approved_now("198.51.100.10"));
    r = http("POST", "/v1/approvals", op, R"({"address":"198.51.100.10"})");
    EXPECT_EQ(r.status, 409) << "banned: " << r.body.dump();
    EXPECT_EQ(http("DELETE", "/v1/approvals/198.51.100.10?ban=maybe", op).status, 400);
    const std::string log = audit_text();
    EXPECT_NE(log.find("\"operator:noc\""), std::string::npos);
    EXPECT_NE(log.find("spam run"), std::string::npos);
    EXPECT_EQ(log.find(op), std::string::npos) << "no secret in the audit log";
}

TEST_F(Api, ACustomerActsOnlyInsideItsScopesAndOnlyOnWhatACustomerMay) {
    ASSERT_EQ(http("POST", "/v1/approvals", op, R"({"address":"198.51.100.10"})").status, 200);
    ASSERT_EQ(http("POST", "/v1/approvals", op, R"({"address":"198.51.100.20"})").status, 200);
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.10", acme).status, 200);
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.20", acme).status, 403) << "another customer's address";
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.0%2F24", acme).status, 403) << "wider than its scope";
    EXPECT_EQ(http("POST", "/v1/addresses/198.51.100.20/suspend", acme).status, 403);
    EXPECT_TRUE(approved_now("198.51.100.20"));
    EXPECT_EQ(http("POST", "/v1/approvals", acme, R"({"address":"198.51.100.11"})").status, 403);
    EXPECT_EQ(http("DELETE", "/v1/approvals/198.51.100.10", acme).status, 403);
    EXPECT_EQ(http("GET", "/v1/status", acme).status, 403);
    EXPECT_EQ(http("POST", "/v1/requests", acme, R"({"address":"198.51.100.21"})").status, 403);
    EXPECT_EQ(http("POST", "/v1/requests", acme, R"({"address":"198.51.100.12","force":true})").status, 400)
        << "a customer cannot force";
    // Lists: only its own.
    auto r = http("GET", "/v1/approvals", acme);
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body["records"].size(), 1u) << r.body.dump();
    EXPECT_EQ(r.body["records"][0]["prefix"], "198.51.100.10");
    EXPECT_GE(http("GET", "/v1/approvals", op).body["records"].size(), 3u);
    // The filter is the command's own ("within"), before any record becomes JSON.
    auto l = call({{"v", 1}, {"cmd", "list"}, {"within", {"198.51.100.16/28"}}});
    ASSERT_EQ(l["records"].size(), 1u) << l.dump();
    EXPECT_EQ(l["records"][0]["prefix"], "198.51.100.20");
    EXPECT_EQ(call({{"v", 1}, {"cmd", "list"}, {"within", json::array()}})["ok"], false);
    EXPECT_EQ(call({{"v", 1}, {"cmd", "requests"}, {"within", {"nonsense"}}})["ok"], false);
    EXPECT_NE(audit_text().find("customer:acme"), std::string::npos) << "a refused try is audited";
}

TEST_F(Api, ACustomerSuspendsAndResumesItsOwnButNotTheProvidersSuspension) {
    ASSERT_EQ(http("POST", "/v1/approvals", op, R"({"address":"198.51.100.10"})").status, 200);
    auto r = http("POST", "/v1/addresses/198.51.100.10/suspend", acme, R"({"reason":"maintenance"})");
    ASSERT_EQ(r.status, 200) << r.body.dump();
    EXPECT_FALSE(approved_now("198.51.100.10"));
    EXPECT_EQ(http("POST", "/v1/addresses/198.51.100.10/suspend", acme).status, 409) << "suspended already";
    r = http("POST", "/v1/addresses/198.51.100.10/resume", acme);
    ASSERT_EQ(r.status, 200) << r.body.dump();
    EXPECT_TRUE(approved_now("198.51.100.10"));
    // The provider suspends (abuse): the customer cannot lift it.
    ASSERT_EQ(call({{"v", 1}, {"cmd", "suspend"}, {"addr", "198.51.100.10"}, {"reason", "abuse desk"}})["ok"],
              true);
    r = http("POST", "/v1/addresses/198.51.100.10/resume", acme);
    EXPECT_EQ(r.status, 403) << r.body.dump();
    EXPECT_NE(r.body["error"].get<std::string>().find("abuse desk"), std::string::npos);
    EXPECT_FALSE(approved_now("198.51.100.10"));
    EXPECT_EQ(http("POST", "/v1/addresses/198.51.100.10/resume", op).status, 200);
    EXPECT_EQ(http("POST", "/v1/addresses/198.51.100.11/suspend", acme).status, 404)
        << "no record of its own";
}

TEST_F(Api, ACustomerRequestsAndSeesItsOwnRequestsAndABannedAddressIs409) {
    auto r =
        http("POST", "/v1/requests", acme,
             R"({"address":"198.51.100.12","hostname":"mx.acme.example","facts":{"volume_daily":"500"}})");
    ASSERT_EQ(r.status, 200) << r.body.dump();
    EXPECT_EQ(http("POST", "/v1/requests", acme, R"({"address":"198.51.100.12"})").status, 409) << "pending";
    EXPECT_EQ(http("POST", "/v1/requests", other, R"({"address":"198.51.100.22"})").status, 200);
    r = http("GET", "/v1/requests", acme);
    ASSERT_EQ(r.body["requests"].size(), 1u);
    EXPECT_EQ(r.body["requests"][0]["facts"]["volume_daily"], "500");
    EXPECT_EQ(http("GET", "/v1/requests", op).body["requests"].size(), 2u);
    EXPECT_EQ(
        http("POST", "/v1/requests", acme, R"({"address":"198.51.100.13","facts":{"colour":"x"}})").status,
        400);
    ASSERT_EQ(http("DELETE", "/v1/approvals/198.51.100.13?ban=true", op).status, 200);
    r = http("POST", "/v1/requests", acme, R"({"address":"198.51.100.13"})");
    EXPECT_EQ(r.status, 409);
    EXPECT_EQ(r.body["code"], "banned");
}

TEST_F(Api, ARevokedTokenIsRefusedAtOnce) {
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.10", acme).status, 200);
    ASSERT_EQ(call({{"v", 1}, {"cmd", "token_revoke"}, {"name", "acme"}})["ok"], true);
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.10", acme).status, 401);
    EXPECT_NE(audit_text().find("token_revoke"), std::string::npos);
    auto r = call({{"v", 1},
                   {"cmd", "token_add"},
                   {"name", "acme2"},
                   {"role", "customer"},
                   {"scopes", {"198.51.100.0/28"}}});
    ASSERT_EQ(r["ok"], true) << r.dump();
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.10", r["secret"].get<std::string>()).status, 200);
    EXPECT_EQ(audit_text().find(r["secret"].get<std::string>()), std::string::npos);
    EXPECT_EQ(call({{"v", 1}, {"cmd", "token_list"}})["tokens"].size(), 3u);
}

class ApiRateLimit : public Api {
  protected:
    void SetUp() override {
        rate = 1;
        Api::SetUp();
    }
};

TEST_F(ApiRateLimit, ATokenOverItsRateGets429AndOthersDoNot) {
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.10", acme).status, 200);
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.10", acme).status, 200);  // a burst of two
    auto r = http("GET", "/v1/addresses/198.51.100.10", acme);
    EXPECT_EQ(r.status, 429);
    EXPECT_GE(r.retry_after, 1);
    EXPECT_EQ(http("GET", "/v1/addresses/198.51.100.20", other).status, 200) << "another token's bucket";
}

// docs/api.yaml describes exactly the routes the server has: each path at two spaces under `paths:`, each
// method at four.
TEST(ApiSpec, TheOpenApiDescriptionHasEveryRouteOfTheServerAndNoOther) {
    std::ifstream in(std::string(PORTCULLIS_SOURCE_DIR) + "/docs/api.yaml");
    ASSERT_TRUE(in) << "docs/api.yaml";
    std::set<std::string> documented, served;
    std::string line, path;
    bool in_paths = false;
    while (std::getline(in, line)) {
        if (!line.empty() && line[0] != ' ' && line[0] != '#') in_paths = line.rfind("paths:", 0) == 0;
        if (!in_paths) continue;
        if (line.size() > 3 && line.rfind("  /", 0) == 0 && line.back() == ':') {
            path = line.substr(2, line.size() - 3);
            continue;
        }
        for (const char* m : {"get", "post", "put", "patch", "delete"})
            if (line == std::string("    ") + m + ":") {
                std::string up = m;
                for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                documented.insert(up + " " + path);
            }
    }
    for (const auto& r : api_routes()) served.insert(std::string(r.method) + " " + r.path);
    EXPECT_EQ(documented, served);
}

// The HTTP server against hostile clients, on a loopback socket.
class ApiServer : public ::testing::Test {
  protected:
    void start(size_t per_address = 32) {
        HttpServerOptions o;
        o.listen = "127.0.0.1:0";
        o.max_body = 1024;
        o.max_header = 2048;
        o.max_fields = 16;
        o.request_timeout = std::chrono::milliseconds(300);
        o.max_per_address = per_address;
        server = std::make_unique<HttpServer>(o, [this](HttpRequest req, HttpServer::Respond respond) {
            if (busy) return false;
            std::thread([req, respond] {
                respond({200, json{{"target", req.target}, {"body", req.body}}});
            }).detach();
            return true;
        });
    }
    int connect_() {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(server->port());
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        timeval tv{3, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        return fd;
    }
    // Sends `data`, reads to the server's close: the whole answer.
    std::string exchange(const std::string& data) {
        const int fd = connect_();
        [[maybe_unused]] auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        std::string got;
        char buf[4096];
        for (ssize_t k; (k = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<size_t>(k));
        ::close(fd);
        return got;
    }
    std::unique_ptr<HttpServer> server;
    std::atomic<bool> busy{false};
};

TEST_F(ApiServer, AWellFormedRequestIsAnsweredFromAnotherThread) {
    start();
    const auto got =
        exchange("POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
    EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
    EXPECT_NE(got.find("application/json"), std::string::npos);
    EXPECT_NE(got.find(R"("target":"/v1/x")"), std::string::npos);
}

TEST_F(ApiServer, OversizedBodiesHeadersAndTooManyFieldsAreRefused) {
    start();
    auto got =
        exchange("POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'x'));
    EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
    got = exchange("GET /v1/x HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(4000, 'x') + "\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got;
    std::string many = "GET /v1/x HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 40; ++i) many += "X-" + std::to_string(i) + ": y\r\n";
    got = exchange(many + "\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got;
    got = exchange("\x16\x03\x01 not http at all\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 400", 0), 0u) << got;
    EXPECT_EQ(server->counters().too_large.load(), 3u);
}

TEST_F(ApiServer, ASlowClientIsDroppedAtItsDeadlineWhileOthersAreServed) {
    start();
    const int slow = connect_();
    const auto t0 = std::chrono::steady_clock::now();
    // One byte every 100 ms: each read is quick, the request never whole. The deadline is the request's.
    std::string got;
    const std::string partial = "GET /v1/x HTTP/1.1\r\nHost: a\r\nX-Slow: ";
    for (char ch : partial) {
        if (::send(slow, &ch, 1, MSG_NOSIGNAL) != 1) break;
        EXPECT_NE(exchange("GET /v1/y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").find("200 OK"),
                  std::string::npos);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        char buf[64];
        const ssize_t k = ::recv(slow, buf, sizeof buf, MSG_DONTWAIT);
        if (k == 0) break;  // closed by the server
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(3)) break;
    }
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(took, 1.5) << "dropped near its 300 ms deadline";
    EXPECT_GE(server->counters().timed_out.load(), 1u);
    ::close(slow);
}

TEST_F(ApiServer, AFullDeskIs503AndConnectionsPerAddressAreBounded) {
    start(2);
    busy = true;
    auto got = exchange("GET /v1/x HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(got.rfind("HTTP/1.1 503", 0), 0u) << got;
    busy = false;
    const int a = connect_(), b = connect_();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    got = exchange("GET /v1/x HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(got, "") << "a third connection from one address is closed at once";
    EXPECT_GE(server->counters().refused.load(), 1u);
    ::close(a);
    ::close(b);
}

}  // namespace
}  // namespace portcullis
