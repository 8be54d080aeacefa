// Port bring-up (see ports.hpp).
#include "control/daemon/ports.hpp"

#include <rte_errno.h>
#include <rte_ethdev.h>

namespace portcullis {

namespace {
std::string fail(uint16_t port, const char* what, int rc) {
    return "port " + std::to_string(port) + ": " + what + ": " + rte_strerror(rc < 0 ? -rc : rc);
}
}  // namespace

std::string describe_ports() {
    std::string out;
    uint16_t id;
    RTE_ETH_FOREACH_DEV(id) {
        char name[RTE_ETH_NAME_MAX_LEN] = "?";
        rte_eth_dev_get_name_by_port(id, name);
        if (!out.empty()) out += ", ";
        out += std::to_string(id) + " (" + name + ")";
    }
    return out.empty() ? "none" : out;
}

std::string port_start(uint16_t port, uint16_t queues, uint16_t rx_desc, uint16_t tx_desc,
                       rte_mempool* pool) {
    if (!rte_eth_dev_is_valid_port(port))
        return "port " + std::to_string(port) + " does not exist; ports: " + describe_ports();
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(port, &info); rc != 0) return fail(port, "device info", rc);
    if (info.max_rx_queues < queues || info.max_tx_queues < queues)
        return "port " + std::to_string(port) + " (" + info.driver_name + ") has " +
               std::to_string(info.max_rx_queues) + " queue(s), " + std::to_string(queues) +
               " worker(s) need one each: add queues to the device (e.g. qpairs=N) or use fewer lcores";
    rte_eth_conf conf{};
    // Several queues: RSS with a symmetric key (0x6d5a repeated makes the Toeplitz hash of a 4-tuple equal to
    // that of its reverse), the same on both ports, so that both directions of a connection reach the same
    // worker and its flow table. Devices without RSS (net_ring, net_af_packet's fanout) spread by their own
    // rule.
    static uint8_t symmetric_key[52];
    for (size_t i = 0; i < sizeof symmetric_key; i += 2) {
        symmetric_key[i] = 0x6d;
        symmetric_key[i + 1] = 0x5a;
    }
    const uint64_t want = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
    if (queues > 1 && (info.flow_type_rss_offloads & want)) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = symmetric_key;
        conf.rx_adv_conf.rss_conf.rss_key_len = info.hash_key_size ? info.hash_key_size : 40;
        if (conf.rx_adv_conf.rss_conf.rss_key_len > sizeof symmetric_key)
            conf.rx_adv_conf.rss_conf.rss_key_len = sizeof symmetric_key;
        conf.rx_adv_conf.rss_conf.rss_hf = want & info.flow_type_rss_offloads;
    }
    if (int rc = rte_eth_dev_configure(port, queues, queues, &conf); rc != 0)
        return fail(port, "configure", rc);
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &rx_desc, &tx_desc); rc != 0)
        return fail(port, "descriptor counts", rc);
    const int socket = rte_eth_dev_socket_id(port);
    for (uint16_t q = 0; q < queues; ++q) {
        if (int rc = rte_eth_rx_queue_setup(port, q, rx_desc, socket, nullptr, pool); rc != 0)
            return fail(port, "RX queue setup", rc);
        if (int rc = rte_eth_tx_queue_setup(port, q, tx_desc, socket, nullptr); rc != 0)
            return fail(port, "TX queue setup", rc);
    }
    if (int rc = rte_eth_dev_start(port); rc != 0) return fail(port, "start", rc);
    if (int rc = rte_eth_promiscuous_enable(port); rc != 0 && rc != -ENOTSUP)
        return fail(port, "promiscuous mode", rc);
    return {};
}

void port_stop(uint16_t port) {
    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
}

}  // namespace portcullis
