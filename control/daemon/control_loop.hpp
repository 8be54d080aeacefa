// The main lcore's loop once the gateway forwards: serve the control socket and the HTTP API, drain the
// workers' refusal and observation events (into the per-source figures and the event stream), rebuild the
// policy when an approval expires, publish the metrics and the telemetry status each second, feed systemd's
// watchdog, warn when tables are full, log counters; until the stop flag is set. Nothing the control side
// meets may end it: the daemon is the racks' uplink.
#pragma once

#include <atomic>

#include "control/commands/control_plane.hpp"
#include "control/config.hpp"
#include "control/daemon/source_stats.hpp"
#include "control/daemon/workers.hpp"
#include "control/socket/server.hpp"

struct rte_mempool;

namespace portcullis {

class EventLog;
class MetricsEndpoint;
class Watchdog;
class ApprovalStore;
class ApiDesk;
struct HttpServerCounters;

// What the loop reports to besides the log; any may be null (off).
struct Observers {
    EventLog* events = nullptr;
    MetricsEndpoint* metrics = nullptr;
    Watchdog* watchdog = nullptr;
    const ApprovalStore* store = nullptr;            // records by state, for the metrics
    const rte_mempool* pool = nullptr;               // mbufs in use, for the metrics
    std::atomic<bool>* reopen = nullptr;             // set by SIGHUP: the events file is opened again
    ApiDesk* api = nullptr;                          // the HTTP API's requests, served each pass
    const HttpServerCounters* api_server = nullptr;  // its server's figures, for the metrics
};

void run_control_loop(const Config& cfg, ControlServer& server, ControlPlane& plane, const Workers& workers,
                      SourceStats& sources, const Observers& obs, const std::atomic<bool>& stop);

}  // namespace portcullis
