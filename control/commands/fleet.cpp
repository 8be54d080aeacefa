// The fleet (store = etcd; docs/fleet.md): `fleet init` makes an etcd without a fleet this fleet's, seeded
// with this gateway's set; `fleet adopt` takes etcd's set as it is, the operator's explicit answer to an etcd
// that came back empty, from another cluster or from an older backup. Both are audited.
#include <unistd.h>

#include "control/commands/request.hpp"
#include "control/commands/services.hpp"
#include "control/store/fleet.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

Fleet& need_fleet(const Services& s) {
    if (!s.fleet)
        throw RequestError("this gateway keeps its approvals locally (store = local): no fleet to act on");
    return *s.fleet;
}

json fleet_init(Services& s, const Call& c) {
    Fleet& fleet = need_fleet(s);
    json done;
    if (auto err = fleet.init(&done); !err.empty()) {
        s.audit.record(c.peer, "fleet_init", c.req, nullptr, nullptr, "refused: " + err);
        return error_reply(err);
    }
    s.audit.record(c.peer, "fleet_init", c.req, nullptr, done, "ok");
    return ok_reply(done);
}

json fleet_adopt(Services& s, const Call& c) {
    Fleet& fleet = need_fleet(s);
    const json before = fleet.status();
    fleet.adopt();
    s.audit.record(c.peer, "fleet_adopt", c.req, before, nullptr, "ok");
    return ok_reply({{"note",
                      "etcd's set is read again and taken as it is; `portcullisctl status` shows when it "
                      "is applied"}});
}

}  // namespace

std::span<const Handler> fleet_handlers() {
    static const Handler table[] = {
        {cmd::kFleetInit, fleet_init},
        {cmd::kFleetAdopt, fleet_adopt},
    };
    return table;
}

}  // namespace portcullis
