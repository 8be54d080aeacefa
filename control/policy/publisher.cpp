// RCU publication of policy snapshots (see publisher.hpp).
#include "control/policy/publisher.hpp"

#include <rte_malloc.h>

#include <stdexcept>

namespace portcullis {

PolicyPublisher::PolicyPublisher(unsigned max_workers, std::unique_ptr<Policy> initial)
    : current_(initial.get()), owned_(std::move(initial)) {
    const size_t size = rte_rcu_qsbr_get_memsize(max_workers);
    qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("portcullis_qsbr", size, RTE_CACHE_LINE_SIZE));
    if (!qsbr_ || rte_rcu_qsbr_init(qsbr_, max_workers) != 0) throw std::runtime_error("cannot set up RCU");
}

PolicyPublisher::~PolicyPublisher() {
    rte_free(qsbr_);
}

void PolicyPublisher::register_worker(unsigned id) {
    rte_rcu_qsbr_thread_register(qsbr_, id);
    rte_rcu_qsbr_thread_online(qsbr_, id);
}

void PolicyPublisher::unregister_worker(unsigned id) {
    rte_rcu_qsbr_thread_offline(qsbr_, id);
    rte_rcu_qsbr_thread_unregister(qsbr_, id);
}

void PolicyPublisher::publish(std::unique_ptr<Policy> next) {
    current_.store(next.get(), std::memory_order_release);
    // Every worker that might still hold the old snapshot passes a quiescent point before it is freed.
    rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
    owned_ = std::move(next);
    ++generation_;
}

}  // namespace portcullis
