// Builds an immutable policy snapshot (dataplane/policy.hpp) from validated configuration.
#pragma once

#include <memory>

#include "control/config.hpp"
#include "dataplane/policy.hpp"

namespace portcullis {

std::unique_ptr<Policy> build_policy(const Config& cfg);

}  // namespace portcullis
