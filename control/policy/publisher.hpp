// Publishes policy snapshots to the workers without stopping them (RCU, DPDK's rte_rcu_qsbr).
// The control thread swaps the pointer, waits until every worker has reported a quiescent state (it reports
// one per loop iteration, after it is done with the snapshot it loaded), then frees the old snapshot.
// Workers never wait for the control plane; the control plane waits at most one worker loop iteration.
#pragma once

#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "dataplane/policy.hpp"

namespace portcullis {

class PolicyPublisher {
  public:
    // max_workers: thread ids 0..max_workers-1 may register.
    PolicyPublisher(unsigned max_workers, std::unique_ptr<Policy> initial);
    ~PolicyPublisher();
    PolicyPublisher(const PolicyPublisher&) = delete;
    PolicyPublisher& operator=(const PolicyPublisher&) = delete;

    // Registers worker `id` and marks it online; call before the worker starts.
    void register_worker(unsigned id);
    void unregister_worker(unsigned id);

    void publish(std::unique_ptr<Policy> next);

    rte_rcu_qsbr* qsbr() const { return qsbr_; }
    const std::atomic<const Policy*>& current() const { return current_; }
    uint64_t generation() const { return generation_; }

  private:
    rte_rcu_qsbr* qsbr_ = nullptr;
    std::atomic<const Policy*> current_;
    std::unique_ptr<Policy> owned_;
    uint64_t generation_ = 1;
};

}  // namespace portcullis
