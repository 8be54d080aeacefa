// Builds an immutable policy snapshot (dataplane/policy.hpp) from the configuration and the approval store.
//
// How configured and stored approvals combine: the config file's `approved` entries are a baseline of
// approved records; a stored record for the same prefix replaces its baseline entry; then, for every address,
// the most specific record covering it decides (approved and not expired: it may send; suspended, revoked,
// banned or expired: it may not). Managed prefixes and relay hosts are the configured lists plus the live
// additions, minus the live removals.
#pragma once

#include <cstdint>
#include <memory>

#include "control/config.hpp"
#include "control/store/store.hpp"
#include "dataplane/policy.hpp"

namespace portcullis {

struct BuiltPolicy {
    std::unique_ptr<Policy> policy;
    int64_t next_expiry = 0;  // the earliest future expiry of a granting record (0: none): rebuild then
};

// store may be null (configuration only). now: unix seconds, for expiries. rules: the operator's compiled
// rules (may be null).
BuiltPolicy build_policy(const Config& cfg, const ApprovalStore* store, int64_t now,
                         std::shared_ptr<const InspectDb> rules = nullptr);

// The default per-source limits: the configuration's, with any live change (`portcullisctl limits`).
Limits effective_default_limits(const Config& cfg, const ApprovalStore* store);

// The effective managed-prefix and relay lists (configuration with the store's live changes).
std::vector<Prefix> effective_list(const std::vector<Prefix>& configured,
                                   const ApprovalStore::Overlay* overlay);

}  // namespace portcullis
