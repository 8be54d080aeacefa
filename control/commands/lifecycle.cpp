// The approval lifecycle before and after an approval (seed 000, seed 004; docs/workflow.md): a customer's
// request with the template's facts, staff's denial with a cooldown, the pending list, and abuse complaints
// that ban an address once complaints_ban of them fall within complaints_window. Handlers over the services
// (services.hpp); each change is durable, audited and published before its reply, like approvals.cpp's.
#include <algorithm>

#include "control/commands/request.hpp"
#include "control/commands/services.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

constexpr int64_t kDay = 86400;

std::string banned_why(const Approval& a) {
    std::string s = to_string(a.prefix) + " is banned since " + format_time(a.updated);
    if (!a.reason.empty()) s += ": " + a.reason;
    return s;
}

// The facts of a request, from the request's "facts" object (the template's keys only).
std::map<std::string, std::string> facts_of(const json& req) {
    std::map<std::string, std::string> out;
    if (!req.contains("facts")) return out;
    if (!req["facts"].is_object()) throw RequestError("'facts' must be an object of strings");
    for (const auto& [k, v] : req["facts"].items()) {
        if (!v.is_string()) throw RequestError("facts: " + printable(k, 40) + " must be a string");
        if (auto err = check_fact(k, v.get<std::string>()); !err.empty()) throw RequestError(err);
        if (!v.get<std::string>().empty()) out[k] = v.get<std::string>();
    }
    return out;
}

// request ADDR|CIDR: a pending record with the template's facts. Refused for a banned address, one already
// approved, suspended or pending, and one denied until its retry_after (unless staff force it: audited).
json request(Services& s, const Call& c) {
    const json& req = c.req;
    const Prefix p = need_prefix(req);
    const int64_t now = now_s();
    const bool force = opt_bool(req, "force");
    const Approval* existing = s.store.find(p);
    auto refuse = [&](const std::string& why, const char* code = err::kConflict) {
        s.audit.record(c.peer, "request", req, existing ? to_json(*existing) : json(nullptr), nullptr,
                       "refused: " + why);
        return error_reply(why, code);
    };
    if (const Approval* cover = s.store.covering(p); cover && cover->state == ApprovalState::Banned)
        return refuse(
            (cover->prefix == p ? banned_why(*cover) : to_string(p) + " is inside " + banned_why(*cover)) +
                "; it cannot be requested again",
            err::kBanned);
    if (auto why = danger(s, p); !why.empty() && !force)
        throw RequestError("requesting " + why + ": that needs --force");
    if (!existing) {
        // Approved already by a wider record: a pending record of its own would carve it out of that.
        if (const auto [cover, source] = effective_record(s, p); cover && cover->grants(now))
            return refuse(to_string(p) + " is approved already (" + to_string(cover->prefix) + ", from the " +
                          source + ")");
    }
    if (existing) {
        switch (existing->state) {
            case ApprovalState::Approved:
                return refuse(to_string(p) + " is approved already" +
                              (existing->grants(now)
                                   ? ""
                                   : " (expired " + format_time(existing->expires) + ": approve it again)"));
            case ApprovalState::Suspended:
                return refuse(to_string(p) + " is approved and suspended: resume it");
            case ApprovalState::Pending:
                return refuse(to_string(p) + " has a request pending since " +
                              format_time(existing->requested));
            case ApprovalState::Denied:
                if (now < existing->retry_after && !force)
                    return refuse(to_string(p) + " was denied on " + format_time(existing->updated) +
                                  (existing->reason.empty() ? "" : " (" + existing->reason + ")") +
                                  "; a new request is allowed from " + format_time(existing->retry_after) +
                                  ", with new evidence");
                break;
            default:
                break;
        }
    }
    Approval a = existing ? *existing : Approval{};
    a.prefix = p;
    a.state = ApprovalState::Pending;
    a.facts = facts_of(req);
    read_names(req, a);
    if (req.contains("ticket")) a.ticket = text_field(req, "ticket", kMaxTicket);
    a.reason = req.contains("reason") ? text_field(req, "reason", kMaxReason) : "";
    a.requested = now;
    a.retry_after = 0;
    a.expires = 0;
    a.operator_name = c.peer.user;
    if (!existing) a.created = now;
    a.updated = now;
    // The DNS check's result is kept for staff's review; it refuses no request.
    return with_dns_check(s, c, std::move(a), existing,
                          [&s, req, peer = c.peer](Approval a, const Approval* current) {
                              return s.changes.commit("request", req, peer, current, a);
                          });
}

// requests: the pending ones, oldest first.
json requests(Services& s, const Call& c) {
    const auto within = within_of(c.req);
    std::vector<const Approval*> pending;
    for (const auto& [p, a] : s.store.records())
        if (a.state == ApprovalState::Pending && is_within(p, within)) pending.push_back(&a);
    std::stable_sort(pending.begin(), pending.end(),
                     [](const Approval* a, const Approval* b) { return a->requested < b->requested; });
    json out = json::array();
    for (const auto* a : pending) out.push_back(to_json(*a));
    return ok_reply({{"requests", std::move(out)}});
}

// deny ADDR --reason TEXT: a pending request turned down; a new one is allowed after request_cooldown.
json deny(Services& s, const Call& c) {
    const json& req = c.req;
    const Prefix p = need_prefix(req);
    const std::string reason = req.contains("reason") ? text_field(req, "reason", kMaxReason) : "";
    if (reason.empty()) throw RequestError("deny needs a reason (--reason): the customer is told it");
    const Approval* existing = s.store.find(p);
    if (!existing || existing->state != ApprovalState::Pending)
        throw RequestError(to_string(p) + " has no pending request" +
                           (existing ? std::string(" (it is ") + state_name(existing->state) + ")" : ""));
    const int64_t now = now_s();
    Approval a = *existing;
    a.state = ApprovalState::Denied;
    a.reason = reason;
    if (req.contains("ticket")) a.ticket = text_field(req, "ticket", kMaxTicket);
    a.retry_after = std::min(now + int64_t{s.cfg.request_cooldown_days} * kDay, kMaxTime);
    a.operator_name = c.peer.user;
    a.updated = now;
    return s.changes.commit("deny", req, c.peer, existing, a);
}

// complaint ADDR --ref ID [--reason TEXT]: one abuse complaint against an address (or prefix). It is kept
// on the address's own record (made for it, as the record that covers it says, if it has none, so an
// approval of its wider prefix still applies to it); complaints_ban of them within complaints_window ban it.
json complaint(Services& s, const Call& c) {
    const json& req = c.req;
    const Prefix p = need_prefix(req);
    const std::string ref = req.contains("ref") ? need_string(req, "ref") : "";
    if (!valid_complaint_ref(ref))
        throw RequestError(
            "complaint needs --ref: the abuse desk's id, 1 to 128 printable characters without "
            "spaces or commas");
    const std::string reason = req.contains("reason") ? text_field(req, "reason", kMaxReason) : "";
    const int64_t now = now_s();
    const Approval* existing = s.store.find(p);
    Approval a;
    if (existing) {
        a = *existing;
    } else if (const auto [cover, source] = effective_record(s, p); cover) {
        a = *cover;  // the wider record's terms, for this address alone
        a.complaints.clear();
        a.created = now;
    } else {
        a.state = ApprovalState::Revoked;  // not approved: the record only holds the complaints
        a.created = now;
    }
    a.prefix = p;
    for (const auto& k : a.complaints)
        if (k.ref == ref)
            throw RequestError("complaint " + printable(ref, 40) + " is recorded already for " +
                               to_string(p));
    a.complaints.push_back(Complaint{ref, now, reason, c.peer.user});
    if (a.complaints.size() > kMaxComplaints) a.complaints.erase(a.complaints.begin());
    json note = nullptr;
    const int64_t since = now - int64_t{s.cfg.complaints_window_days} * kDay;
    const auto recent = std::count_if(a.complaints.begin(), a.complaints.end(),
                                      [&](const Complaint& k) { return k.at > since; });
    if (s.cfg.complaints_ban && recent >= s.cfg.complaints_ban && a.state != ApprovalState::Banned) {
        std::string refs;
        for (const auto& k : a.complaints)
            if (k.at > since) refs += (refs.empty() ? "" : ", ") + k.ref;
        a.state = ApprovalState::Banned;
        a.reason = std::to_string(recent) + " abuse complaints within " +
                   std::to_string(s.cfg.complaints_window_days) + " days: " + refs;
        a.reason = a.reason.substr(0, kMaxReason);
        note = "banned: " + a.reason;
    }
    a.operator_name = c.peer.user;
    a.updated = now;
    json reply = s.changes.commit("complaint", req, c.peer, existing, a);
    if (reply["ok"] == true) {
        reply["complaints_in_window"] = recent;
        if (!note.is_null()) reply["note"] = note;
    }
    return reply;
}

const Handler kHandlers[] = {
    {cmd::kRequest, request},
    {cmd::kRequests, requests},
    {cmd::kDeny, deny},
    {cmd::kComplaint, complaint},
};

}  // namespace

std::span<const Handler> lifecycle_handlers() {
    return kHandlers;
}

}  // namespace portcullis
