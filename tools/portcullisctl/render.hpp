// portcullisctl's human-readable output: tables and key/value blocks from the daemon's JSON replies.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace portcullis::ctl {

std::string render_records(const nlohmann::json& records);  // the `list` table
std::string render_record(const nlohmann::json& record);    // one record, key: value
std::string render_show(const nlohmann::json& reply);
std::string render_status(const nlohmann::json& reply);
std::string render_limits(const nlohmann::json& reply);    // `limits`: the defaults in force
std::string render_counters(const nlohmann::json& reply);  // `stats`: counters and top refused sources

}  // namespace portcullis::ctl
