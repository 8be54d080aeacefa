// The SMTP flow table and its TCP state machine (see flow_table.hpp).
#include "dataplane/flow_table.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace portcullis {

FlowKey flow_key(const Parsed& p, bool outbound) {
    const IpAddr& c = outbound ? p.src : p.dst;
    const IpAddr& s = outbound ? p.dst : p.src;
    FlowKey k;
    std::memset(&k, 0, sizeof k);
    const auto put = [](uint64_t* out, const IpAddr& a) {
        if (a.v6) {
            out[0] = static_cast<uint64_t>(a.v6addr >> 64);
            out[1] = static_cast<uint64_t>(a.v6addr);
        } else {
            out[1] = a.v4;
        }
    };
    put(k.client, c);
    put(k.server, s);
    k.cport = outbound ? p.sport : p.dport;
    k.sport = outbound ? p.dport : p.sport;
    k.v6 = p.src.v6 ? 1 : 0;
    return k;
}

const char* flow_state_name(FlowState s) {
    switch (s) {
        case FlowState::Empty:
            return "empty";
        case FlowState::SynSent:
            return "syn-sent";
        case FlowState::SynRecv:
            return "syn-received";
        case FlowState::Established:
            return "established";
        case FlowState::Closing:
            return "closing";
        case FlowState::Closed:
            return "closed";
        case FlowState::Candidate:
            return "candidate";
    }
    return "?";
}

FlowTable::FlowTable(uint32_t max_flows, const CookieKey& hash_key)
    : mask_(static_cast<uint32_t>(slots_for(max_flows) - 1)), max_(max_flows), key_(hash_key) {
    slots_ = std::make_unique<Flow[]>(size_t{mask_} + 1);
    std::memset(static_cast<void*>(slots_.get()), 0, sizeof(Flow) * (size_t{mask_} + 1));
}

uint32_t FlowTable::hash(const FlowKey& k) const {
    return static_cast<uint32_t>(siphash24(key_, reinterpret_cast<const uint8_t*>(&k), sizeof k));
}

Flow* FlowTable::find(const FlowKey& k, uint32_t h) {
    for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
        Flow& f = slots_[i];
        if (f.state == FlowState::Empty) return nullptr;
        if (f.hash == h && f.key == k) return &f;
    }
}

Flow* FlowTable::insert(const FlowKey& k, uint32_t h) {
    const uint32_t n = size_.load(std::memory_order_relaxed);
    if (n >= max_) return nullptr;
    uint32_t i = h & mask_;
    while (slots_[i].state != FlowState::Empty) i = (i + 1) & mask_;
    Flow& f = slots_[i];
    f.key = k;
    f.hash = h;
    f.fins = 0;
    f.inspect = UINT32_MAX;
    f.src_slot = UINT32_MAX;
    f.server_seq = 0;
    f.ctl = 0;
    f.tcp = 0;
    f.client_next = f.ts_recent = f.first_seq = f.server_next = f.server_ack = f.server_edge = 0;
    f.opened_ms = 0;
    f.ho_index = 0;
    f.ttl = f.server_ws = f.client_ws = 0;
    size_.store(n + 1, std::memory_order_relaxed);
    return &f;
}

void FlowTable::erase_at(uint32_t i) {
    // Backward-shift deletion: pull later entries of the probe run into the hole when their home slot
    // allows it, so no lookup ever stops early at the hole.
    for (;;) {
        slots_[i].state = FlowState::Empty;
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & mask_;
            if (slots_[j].state == FlowState::Empty) {
                size_.store(size_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
                return;
            }
            const uint32_t home = slots_[j].hash & mask_;
            if (((j - home) & mask_) >= ((j - i) & mask_)) {
                slots_[i] = slots_[j];
                i = j;
                break;
            }
        }
    }
}

}  // namespace portcullis
