// The /metrics endpoint (see metrics.hpp).
#include "control/daemon/metrics.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <mutex>
#include <stdexcept>

namespace portcullis {

class MetricsEndpoint::Snapshot : public prometheus::Collectable {
  public:
    std::vector<prometheus::MetricFamily> Collect() const override {
        std::lock_guard lock(mutex_);
        return families_;
    }
    void set(std::vector<prometheus::MetricFamily> f) {
        std::lock_guard lock(mutex_);
        families_ = std::move(f);
    }

  private:
    mutable std::mutex mutex_;
    std::vector<prometheus::MetricFamily> families_;
};

MetricsEndpoint::MetricsEndpoint(const std::string& listen) : snapshot_(std::make_shared<Snapshot>()) {
    try {
        // civetweb's options: four threads serve scrapes (a slow client holds one, the others answer); a
        // request must arrive whole within 5 s and within 16 KiB, else the connection is dropped.
        exposer_ = std::make_unique<prometheus::Exposer>(
            std::vector<std::string>{"listening_ports", listen, "num_threads", "4", "request_timeout_ms",
                                     "5000", "max_request_size", "16384", "enable_keep_alive", "no"});
    } catch (const std::exception& e) {
        throw std::runtime_error("metrics_listen: cannot listen on " + listen + ": " + e.what());
    }
    exposer_->RegisterCollectable(snapshot_, "/metrics");
}

MetricsEndpoint::~MetricsEndpoint() = default;

void MetricsEndpoint::publish(std::vector<prometheus::MetricFamily> families) {
    snapshot_->set(std::move(families));
}

int MetricsEndpoint::port() const {
    const auto ports = exposer_->GetListeningPorts();
    return ports.empty() ? 0 : ports.front();
}

}  // namespace portcullis
