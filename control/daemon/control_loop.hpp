// The main lcore's loop once the gateway forwards: serve the control socket, drain the workers' refusal and
// observation events, rebuild the policy when an approval expires, warn when tables are full, log counters;
// until the stop flag is set. Nothing the control side meets may end it: the daemon is the racks' uplink.
#pragma once

#include <atomic>

#include "control/commands/control_plane.hpp"
#include "control/config.hpp"
#include "control/daemon/source_stats.hpp"
#include "control/daemon/workers.hpp"
#include "control/socket/server.hpp"

namespace portcullis {

void run_control_loop(const Config& cfg, ControlServer& server, ControlPlane& plane, const Workers& workers,
                      SourceStats& sources, const std::atomic<bool>& stop);

}  // namespace portcullis
