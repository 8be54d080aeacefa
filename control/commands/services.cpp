// Queries the handlers of several concerns share (see services.hpp).
#include "control/commands/services.hpp"

#include "control/commands/request.hpp"
#include "control/policy/policy_builder.hpp"

namespace portcullis {

std::vector<Prefix> managed_now(const Services& s) {
    return effective_list(s.cfg.managed_prefixes, &s.store.managed());
}

std::string danger(const Services& s, const Prefix& p) {
    std::string why;
    const uint8_t wide = p.addr.v6 ? kWideV6 : kWideV4;
    if (p.len < wide) why = to_string(p) + " is wider than /" + std::to_string(wide);
    for (const auto& m : managed_now(s))
        if (inside(m, p)) {
            why += (why.empty() ? to_string(p) + " covers" : " and covers") +
                   std::string(" the whole managed prefix ") + to_string(m);
            break;
        }
    return why;
}

std::pair<const Approval*, const char*> effective_record(const Services& s, const Prefix& p) {
    for (int len = p.len; len >= 0; --len) {
        const Prefix q = p.widened(static_cast<uint8_t>(len));
        if (const Approval* a = s.store.find(q)) return {a, "store"};
        if (auto it = s.baseline.find(q); it != s.baseline.end()) return {&it->second, "configuration"};
    }
    return {nullptr, ""};
}

}  // namespace portcullis
