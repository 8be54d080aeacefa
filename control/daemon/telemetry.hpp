// The gateway's own DPDK telemetry commands, next to ethdev's, so dpdk-telemetry.py and Telegraf's dpdk input
// read them: /portcullis/counters (every counter of the catalogue, summed over the workers) and
// /portcullis/status (what `portcullisctl status` heads with). They run on DPDK's telemetry thread: counters
// are read as the control thread reads them (relaxed atomics); the status is a copy the control loop
// refreshes.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>

#include "control/daemon/stats.hpp"

namespace portcullis {

// After rte_eal_init(); `counters` must be callable from another thread for as long as the EAL runs (until
// unregister_telemetry()).
void register_telemetry(std::function<Totals()> counters);
// The control loop's copy of the status: flat JSON values (strings, numbers, booleans).
void publish_telemetry_status(const nlohmann::json& status);
// Before what `counters` reads goes away: the commands then answer with nothing.
void unregister_telemetry();

}  // namespace portcullis
