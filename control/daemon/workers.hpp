// The workers as the control thread holds them: per worker its counters, its flow tracker and inspector,
// its refusal and observation rings and its WorkerContext; the per-source limit table they share; and the
// read-only view of all that the control plane reports from. Built whole before any worker runs, launched
// on the EAL's worker lcores, stopped and freed in the reverse order.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "control/commands/control_plane.hpp"
#include "control/config.hpp"
#include "control/daemon/stats.hpp"
#include "control/policy/publisher.hpp"
#include "dataplane/worker.hpp"

struct rte_ring;

namespace portcullis {

class Workers {
  public:
    // Allocates every table (the memory was checked before: control/daemon/memory_budget.hpp). count: the
    // EAL's worker lcores.
    Workers(const Config& cfg, unsigned count, PolicyPublisher& publisher, const std::atomic<bool>& stop);
    ~Workers();  // frees the rings; stop() must have returned
    Workers(const Workers&) = delete;
    Workers& operator=(const Workers&) = delete;

    // Registers each worker with the publisher's RCU and starts it on its lcore.
    void launch();
    // Waits for every worker to return (after the stop flag is set) and unregisters them.
    void stop();

    unsigned count() const { return static_cast<unsigned>(contexts_.size()); }
    Totals totals() const { return sum_counters(counter_view_); }
    Totals worker_totals(unsigned w) const { return sum_counters({counter_view_.at(w)}); }
    std::vector<const WorkerPulse*> pulses() const;
    // The test hook (allow_test_hooks): worker w spins `ms` without a heartbeat. False: no such worker.
    bool stall(unsigned w, uint32_t ms);
    const Clock& clock() const { return flow_view_.clock; }
    const FlowView& flow_view() const { return flow_view_; }
    const std::vector<rte_ring*>& event_rings() const { return event_rings_; }
    const std::vector<rte_ring*>& observation_rings() const { return observation_rings_; }

  private:
    PolicyPublisher& publisher_;
    std::unique_ptr<SourceTable> limit_table_;
    std::vector<std::unique_ptr<Inspector>> inspectors_;
    std::vector<std::unique_ptr<FlowTracker>> trackers_;
    std::vector<std::unique_ptr<Counters>> counters_;
    std::vector<const Counters*> counter_view_;
    std::vector<rte_ring*> event_rings_, observation_rings_;
    std::vector<WorkerContext> contexts_;
    std::unique_ptr<WorkerPulse[]> pulses_;
    FlowView flow_view_;
    bool launched_ = false;
};

}  // namespace portcullis
