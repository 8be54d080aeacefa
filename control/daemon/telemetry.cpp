// The gateway's DPDK telemetry commands (see telemetry.hpp).
#include "control/daemon/telemetry.hpp"

#include <rte_telemetry.h>

#include <mutex>
#include <string>

namespace portcullis {

namespace {

std::mutex g_mutex;
std::function<Totals()> g_counters;
nlohmann::json g_status = nlohmann::json::object();

int counters_cmd(const char*, const char*, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    std::lock_guard lk(g_mutex);
    if (!g_counters) return 0;
    const Totals t = g_counters();
    for (size_t i = 0; i < kCounterCount; ++i) rte_tel_data_add_dict_u64(d, kCounterInfo[i].name, t[i]);
    return 0;
}

int status_cmd(const char*, const char*, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    std::lock_guard lk(g_mutex);
    for (const auto& [k, v] : g_status.items()) {
        if (v.is_boolean())
            rte_tel_data_add_dict_int(d, k.c_str(), v.get<bool>() ? 1 : 0);
        else if (v.is_number_unsigned())
            rte_tel_data_add_dict_u64(d, k.c_str(), v.get<uint64_t>());
        else if (v.is_number_integer())
            rte_tel_data_add_dict_u64(d, k.c_str(),
                                      static_cast<uint64_t>(std::max<int64_t>(0, v.get<int64_t>())));
        else if (v.is_string())
            rte_tel_data_add_dict_string(d, k.c_str(),
                                         v.get<std::string>().substr(0, RTE_TEL_MAX_STRING_LEN - 1).c_str());
    }
    return 0;
}

}  // namespace

void register_telemetry(std::function<Totals()> counters) {
    {
        std::lock_guard lk(g_mutex);
        g_counters = std::move(counters);
    }
    rte_telemetry_register_cmd(
        "/portcullis/counters", counters_cmd,
        "Every portcullis counter (api/counter_catalogue.hpp), summed over the workers");
    rte_telemetry_register_cmd(
        "/portcullis/status", status_cmd,
        "portcullis: version, uptime, workers, records, policy generation, monitor, store");
}

void publish_telemetry_status(const nlohmann::json& status) {
    std::lock_guard lk(g_mutex);
    g_status = status;
}

void unregister_telemetry() {
    std::lock_guard lk(g_mutex);
    g_counters = nullptr;
}

}  // namespace portcullis
