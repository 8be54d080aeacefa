// Counter aggregation and rendering (see stats.hpp).
#include "control/daemon/stats.hpp"

#include <spdlog/fmt/fmt.h>

namespace portcullis {

Totals sum_counters(const std::vector<const Counters*>& workers) {
    Totals t{};
    for (const auto* w : workers)
        for (size_t i = 0; i < kCounterCount; ++i) t[i] += w->get(static_cast<Ctr>(i));
    return t;
}

std::string stats_line(const Totals& t) {
    std::string s;
    for (size_t i = 0; i < kCounterCount; ++i) {
        if (t[i] == 0) continue;
        if (!s.empty()) s += ' ';
        s += fmt::format("{}={}", kCounterInfo[i].name, t[i]);
    }
    return s.empty() ? "no traffic" : s;
}

std::string stats_table(const Totals& t) {
    std::string s;
    for (size_t i = 0; i < kCounterCount; ++i)
        s += fmt::format("  {:<30} {:>14}  {}\n", kCounterInfo[i].name, t[i], kCounterInfo[i].help);
    return s;
}

}  // namespace portcullis
