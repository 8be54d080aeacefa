// The /metrics endpoint (metrics_listen): prometheus-cpp's Exposer serves, on its own threads, the last set
// of families the control loop published (metric_families.hpp). The control loop rebuilds them once a second;
// a scrape copies them under a mutex and never touches the store, the workers or the control plane. A client
// that sends slowly or too much is dropped (5 s, 16 KiB).
#pragma once

#include <prometheus/metric_family.h>

#include <memory>
#include <string>
#include <vector>

namespace prometheus {
class Exposer;
}

namespace portcullis {

class MetricsEndpoint {
  public:
    // listen: "ADDR:PORT" or "[V6ADDR]:PORT". Throws std::runtime_error with a one-line reason when it cannot
    // listen there.
    explicit MetricsEndpoint(const std::string& listen);
    ~MetricsEndpoint();
    MetricsEndpoint(const MetricsEndpoint&) = delete;
    MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

    void publish(std::vector<prometheus::MetricFamily> families);
    // The port it listens on (for metrics_listen = ADDR:0).
    int port() const;

  private:
    class Snapshot;
    std::shared_ptr<Snapshot> snapshot_;
    std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace portcullis
