// A ControlPlane as the daemon builds one, without the dataplane: the store and the audit log of a state
// directory, a publisher with one reader, no counters. Shared by the command tests and the control_line fuzz
// target, so that each builds the control plane the same way.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "control/commands/control_plane.hpp"

namespace portcullis::testing {

struct TestPlane {
    Config cfg = [] {
        Config c;
        c.dns_check = false;  // no resolver here; the DNS check has its own tests
        return c;
    }();
    std::unique_ptr<ApprovalStore> store;
    std::unique_ptr<AuditLog> audit;
    std::unique_ptr<PolicyPublisher> publisher;
    std::unique_ptr<ControlPlane> plane;

    // Opens the store at `state` and the audit log at `audit_path` (again: as after a restart) and publishes
    // the first snapshot. "" or why not.
    std::string open_plane(const std::filesystem::path& state, const std::filesystem::path& audit_path) {
        close_plane();
        store = std::make_unique<ApprovalStore>(state);
        std::vector<std::string> warnings;
        if (auto err = store->open(warnings); !err.empty()) return err;
        audit = std::make_unique<AuditLog>(audit_path);
        if (auto err = audit->open(); !err.empty()) return err;
        publisher = std::make_unique<PolicyPublisher>(1, std::make_unique<Policy>());
        plane = std::make_unique<ControlPlane>(cfg, *store, *publisher, *audit,
                                               Figures{[] { return Totals{}; }, DaemonInfo{}});
        plane->republish(0);
        return {};
    }
    void close_plane() {
        plane.reset();
        publisher.reset();
        audit.reset();
        store.reset();
    }
};

}  // namespace portcullis::testing
