// Sums the workers' counters and renders them for the log and for the exit report.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "dataplane/counters.hpp"

namespace portcullis {

using Totals = std::array<uint64_t, kCounterCount>;

Totals sum_counters(const std::vector<const Counters*>& workers);
// One log line: the headline figures, then every non-zero reason.
std::string stats_line(const Totals& t);
// One counter a line, with its meaning: the report printed at exit.
std::string stats_table(const Totals& t);

}  // namespace portcullis
