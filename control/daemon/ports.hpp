// Port bring-up at start-up and shutdown at exit (control thread only): queues, descriptors, promiscuous
// mode. A gateway is a bump in the wire, so it must receive frames addressed to any MAC.
#pragma once

#include <rte_mempool.h>

#include <cstdint>
#include <string>

namespace portcullis {

// Returns an empty string on success, otherwise the reason, naming the port.
std::string port_start(uint16_t port, uint16_t queues, uint16_t rx_desc, uint16_t tx_desc, rte_mempool* pool);
void port_stop(uint16_t port);
// "0 (net_af_packet0), 1 (net_af_packet1)": what exists, for error messages.
std::string describe_ports();

}  // namespace portcullis
