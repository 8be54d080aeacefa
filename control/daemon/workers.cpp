// The workers' tables, rings and contexts (see workers.hpp).
#include "control/daemon/workers.hpp"

#include <rte_cycles.h>
#include <rte_lcore.h>
#include <rte_ring_elem.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <string>

#include "dataplane/events.hpp"

namespace portcullis {

namespace {

rte_ring* make_ring(const std::string& name, unsigned element_size) {
    return rte_ring_create_elem(name.c_str(), element_size, kEventRingSize, static_cast<int>(rte_socket_id()),
                                RING_F_SP_ENQ | RING_F_SC_DEQ);
}

}  // namespace

Workers::Workers(const Config& cfg, unsigned count, PolicyPublisher& publisher, const std::atomic<bool>& stop)
    : publisher_(publisher), contexts_(count), pulses_(std::make_unique<WorkerPulse[]>(count)) {
    const auto unix_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    flow_view_.clock = Clock::make(rte_rdtsc(), rte_get_tsc_hz(), unix_us);
    // Connection tracking: one flow table per worker, one per-source limit table shared by all.
    limit_table_ = std::make_unique<SourceTable>(cfg.max_sources, cfg.cookie_key, cfg.source_prefix_v6,
                                                 cfg.max_flows_per_source);
    flow_view_.sources = limit_table_.get();
    for (unsigned w = 0; w < count; ++w) {
        const CookieKey flow_key{cfg.cookie_key.k0 ^ (0x9e3779b97f4a7c15ull * (w + 1)),
                                 cfg.cookie_key.k1 + w + 1};
        inspectors_.push_back(
            cfg.inspect ? std::make_unique<Inspector>(cfg.max_inspected, cfg.inspect_stream_bytes) : nullptr);
        flow_view_.inspectors.push_back(inspectors_.back().get());
        trackers_.push_back(std::make_unique<FlowTracker>(
            cfg.max_flows, flow_key, limit_table_.get(), cfg.timeouts, inspectors_.back().get(),
            static_cast<uint16_t>(w), cfg.max_half_open_per_source));
        flow_view_.trackers.push_back(trackers_.back().get());
        if (cfg.bench_prefill_flows)
            trackers_.back()->prefill(cfg.bench_prefill_flows, flow_view_.clock.at(rte_rdtsc()));

        counters_.push_back(std::make_unique<Counters>());
        counter_view_.push_back(counters_.back().get());
        rte_ring* ring = make_ring("portcullis_ev" + std::to_string(w), sizeof(RefusalEvent));
        if (ring)
            event_rings_.push_back(ring);
        else
            spdlog::warn("no refusal event ring for worker {}: per-source figures are off", w);
        rte_ring* obs = make_ring("portcullis_ob" + std::to_string(w), sizeof(ObservationEvent));
        if (obs) observation_rings_.push_back(obs);
        if (inspectors_[w]) inspectors_[w]->set_observations(obs);
        contexts_[w] = WorkerContext{cfg.inside_port,
                                     cfg.outside_port,
                                     static_cast<uint16_t>(w),
                                     &publisher.current(),
                                     &stop,
                                     counters_.back().get(),
                                     publisher.qsbr(),
                                     ring,
                                     flow_view_.clock,
                                     trackers_.back().get()};
        contexts_[w].idle_sleep_us = cfg.idle_sleep_us;
        contexts_[w].pulse = &pulses_[w];
    }
}

std::vector<const WorkerPulse*> Workers::pulses() const {
    std::vector<const WorkerPulse*> out;
    for (size_t w = 0; w < contexts_.size(); ++w) out.push_back(&pulses_[w]);
    return out;
}

bool Workers::stall(unsigned w, uint32_t ms) {
    if (w >= contexts_.size()) return false;
    pulses_[w].stall_ms.store(ms, std::memory_order_relaxed);
    return true;
}

void Workers::launch() {
    unsigned w = 0, lcore;
    RTE_LCORE_FOREACH_WORKER(lcore) {
        if (w == contexts_.size()) break;
        publisher_.register_worker(w);
        rte_eal_remote_launch(worker_main, &contexts_[w], lcore);
        ++w;
    }
    launched_ = true;
}

void Workers::stop() {
    if (!launched_) return;
    rte_eal_mp_wait_lcore();
    for (unsigned w = 0; w < contexts_.size(); ++w) publisher_.unregister_worker(w);
    launched_ = false;
}

Workers::~Workers() {
    stop();
    for (auto* ring : event_rings_) rte_ring_free(ring);
    for (auto* ring : observation_rings_) rte_ring_free(ring);
}

}  // namespace portcullis
