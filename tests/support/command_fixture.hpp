// A GoogleTest fixture around TestPlane for the command tests: a fresh state directory, the lab's address
// plan (198.51.100.0/24 and 2001:db8:100::/48 managed, 198.51.100.64/28 approved by the configuration,
// port 25 blocked), an operator peer, and the calls the tests make.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/support/control_plane.hpp"

namespace portcullis::testing {

class CommandFixture : public ::testing::Test, protected TestPlane {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/portcullis-cmd-XXXXXX";
        dir = mkdtemp(tmpl);
        cfg.managed_prefixes = {*parse_prefix("198.51.100.0/24"), *parse_prefix("2001:db8:100::/48")};
        cfg.approved = {*parse_prefix("198.51.100.64/28")};
        cfg.blocked_ports = {25};
        ASSERT_EQ(open_plane(dir, std::filesystem::path(dir) / "audit.log"), "");
        peer.user = "alice";
        peer.uid = 1000;
        peer.pid = 4242;
    }
    void TearDown() override {
        close_plane();
        std::filesystem::remove_all(dir);
    }
    nlohmann::json call(const nlohmann::json& req) { return plane->handle(req.dump(), peer, session); }
    nlohmann::json raw(const std::string& line) { return plane->handle(line, peer, session); }
    bool approved_now(const char* addr) { return publisher->current().load()->approved(*parse_addr(addr)); }
    std::string error(const nlohmann::json& reply) {
        EXPECT_EQ(reply["ok"], false) << reply.dump();
        return reply.value("error", "");
    }

    std::string dir;
    Peer peer;
    Session session;
};

}  // namespace portcullis::testing
