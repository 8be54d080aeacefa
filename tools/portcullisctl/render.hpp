// portcullisctl's human-readable output: tables and key/value blocks from the daemon's JSON replies, and
// `top`'s frame from two samples. Pure functions of the replies: no socket, no clock, no terminal.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace portcullis::ctl {

std::string render_records(const nlohmann::json& records);  // the `list` table
std::string render_record(const nlohmann::json& record);    // one record, key: value
std::string render_show(const nlohmann::json& reply);
std::string render_status(const nlohmann::json& reply);
std::string render_limits(const nlohmann::json& reply);    // `limits`: the defaults in force
std::string render_counters(const nlohmann::json& reply);  // `stats`: counters and top refused sources

// One sample of `top`: the daemon's `stats` and `status` replies, taken together.
struct TopSample {
    nlohmann::json stats;
    nlohmann::json status;
    int64_t at = 0;  // when it was taken (unix seconds): the frame's timestamp
};
// `top`'s frame, plain text of at most 80 columns: rates are the counters' deltas from `before` to `after`
// over `seconds`. A missing counter counts as 0; one that went backwards (the daemon restarted) has no rate.
std::string render_top(const TopSample& before, const TopSample& after, double seconds);

}  // namespace portcullis::ctl
