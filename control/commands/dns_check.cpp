// The DNS check behind approve and request (see services.hpp: with_dns_check): a host name on a single
// address is checked (forward-confirmed reverse DNS, control/dns/fcrdns.hpp) before the record is written;
// the reply comes when DNS has answered or the deadline passed, and the socket serves everyone else
// meanwhile.
#include "control/commands/request.hpp"
#include "control/commands/services.hpp"
#include "control/dns/fcrdns.hpp"

namespace portcullis {

using nlohmann::json;

json with_dns_check(Services& s, const Call& c, Approval a, const Approval* existing,
                    std::function<json(Approval, const Approval* existing)> finish) {
    const bool single = a.prefix.len == a.prefix.max_len();
    const int64_t now = now_s();
    if (a.hostname.empty() || !single) {
        a.dns = nullptr;
        return finish(std::move(a), existing);
    }
    if (opt_bool(c.req, "skip_dns_check")) {  // the request's args, with this flag, are in the audit log
        a.dns = {{"skipped", true}, {"by", c.peer.user}, {"checked", now}};
        return finish(std::move(a), existing);
    }
    if (!s.cfg.dns_check) {
        a.dns = nullptr;
        return finish(std::move(a), existing);
    }
    std::shared_ptr<FcrdnsCheck> check;
    try {
        check = std::make_shared<FcrdnsCheck>(DnsSettings{s.cfg.dns_servers, s.cfg.dns_timeout_ms},
                                              a.prefix.addr, a.hostname);
    } catch (const std::exception& e) {
        return error_reply(std::string(e.what()) + " (--skip-dns-check goes without it)", err::kUnavailable);
    }
    const std::optional<Approval> before = existing ? std::optional<Approval>(*existing) : std::nullopt;
    c.later = [&s, check, before, a = std::move(a),
               finish = std::move(finish)]() mutable -> std::optional<json> {
        if (!check->poll()) return std::nullopt;
        // What was read before the check must still be what the store holds.
        const Approval* current = s.store.find(a.prefix);
        if (current ? !before || !(*current == *before) : before.has_value())
            return error_reply(
                to_string(a.prefix) + " changed while its DNS was checked: run the command again",
                err::kConflict);
        a.dns = check->result().to_json(check->addr(), check->host());
        return finish(std::move(a), current);
    };
    return ok_reply();
}

std::string dns_refusal(const Services& s, const json& req, const Approval& a) {
    const bool require = s.cfg.require_fcrdns || opt_bool(req, "require_fcrdns");
    if (!require || a.hostname.empty() || a.prefix.len != a.prefix.max_len()) return {};
    if (!a.dns.is_object() || a.dns.value("skipped", false)) return {};
    if (a.dns.value("fcrdns", false)) return {};
    return "approving " + to_string(a.prefix) + " as " + a.hostname +
           " needs forward-confirmed reverse DNS (require_fcrdns): " +
           a.dns.value("said", std::string("no answer"));
}

}  // namespace portcullis
