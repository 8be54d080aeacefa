// How long a tracked SMTP connection counts in each state without a segment (flow_timeout_* options).
#pragma once

#include <cstdint>

namespace portcullis {

struct FlowTimeouts {
    uint32_t half_open_ms = 30'000;       // SYN seen, handshake not completed
    uint32_t established_ms = 1'800'000;  // idle, open connection
    uint32_t closing_ms = 60'000;         // FIN from one side; also how long a closed flow lingers
};

}  // namespace portcullis
