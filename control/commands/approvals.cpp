// Approvals: approve, suspend, resume, revoke (and ban), unban, and bulk import in three steps, as handlers
// over the services (services.hpp). Each change is durable, audited and published before its reply.
#include "control/commands/services.hpp"

#include "control/commands/request.hpp"

namespace portcullis {

using nlohmann::json;

namespace {

std::string describe_ban(const Approval& a) {
    std::string s = to_string(a.prefix) + " is banned since " + format_time(a.updated);
    if (!a.ticket.empty()) s += " (ticket " + a.ticket + ")";
    if (!a.reason.empty()) s += ": " + a.reason;
    return s;
}

json approve(Services& s, const Call& c) {
    const json& req = c.req;
    const Peer& peer = c.peer;
    const Prefix p = need_prefix(req);
    const int64_t now = now_s();
    const bool force = opt_bool(req, "force");
    const Approval* existing = s.store.find(p);
    if (const Approval* cover = s.store.covering(p); cover && cover->state == ApprovalState::Banned) {
        const std::string why = cover->prefix == p ? describe_ban(*cover) + "; it cannot be approved again"
                                                   : to_string(p) + " is inside " + describe_ban(*cover) +
                                                         "; it cannot be approved";
        s.audit.record(peer, "approve", req, to_json(*cover), nullptr, "refused: " + why);
        return error_reply(why, err::kBanned);
    }
    if (auto why = danger(s, p); !why.empty() && !force)
        throw RequestError("approving " + why + ": that needs --force");
    Approval a = existing ? *existing : Approval{};
    a.prefix = p;
    // A pending request's host name and domains stay unless the approval says otherwise; its daily volume
    // becomes the daily limit (below).
    const bool from_request = existing && existing->state == ApprovalState::Pending;
    a.state = ApprovalState::Approved;
    a.retry_after = 0;
    read_names(req, a);
    if (auto v = opt_int(req, "max_concurrent", 1, kMaxConcurrent); v >= 0)
        a.max_concurrent = static_cast<uint32_t>(v);
    if (auto v = opt_int(req, "rate_per_min", 1, kMaxRatePerMin); v >= 0)
        a.rate_per_min = static_cast<uint32_t>(v);
    if (auto v = opt_int(req, "daily", 1, kMaxDaily); v >= 0) {
        a.daily = static_cast<uint32_t>(v);
    } else if (from_request && a.daily == 0) {
        if (auto it = a.facts.find("volume_daily"); it != a.facts.end() && !it->second.empty())
            a.daily = static_cast<uint32_t>(std::min<int64_t>(std::stoll(it->second), kMaxDaily));
    }
    if (auto v = opt_int(req, "expires", 0, kMaxTime); v >= 0) {
        if (v != 0 && v <= now) throw RequestError("'expires' is in the past: " + format_time(v));
        a.expires = v;
    }
    if (req.contains("ticket")) a.ticket = text_field(req, "ticket", kMaxTicket);
    if (req.contains("reason")) a.reason = text_field(req, "reason", kMaxReason);
    a.operator_name = peer.user;
    if (!existing) a.created = now;
    a.updated = now;
    const int64_t requested = from_request ? existing->requested : 0;
    return with_dns_check(
        s, c, std::move(a), existing,
        [&s, c_req = req, peer, p, requested](Approval a, const Approval* current) -> json {
            // (Checked again after the DNS check: a ban may have come meanwhile.)
            if (const Approval* cover = s.store.covering(p); cover && cover->state == ApprovalState::Banned)
                return error_reply(to_string(p) + " is banned (" + describe_ban(*cover) + ")", err::kBanned);
            if (auto why = dns_refusal(s, c_req, a); !why.empty()) {
                s.audit.record(peer, "approve", c_req, current ? to_json(*current) : json(nullptr), nullptr,
                               "refused: " + why);
                return error_reply(why);
            }
            json reply = s.changes.commit("approve", c_req, peer, current, a);
            if (reply["ok"] != true) return reply;
            if (requested) reply["from_request"] = requested;
            const auto managed = managed_now(s);
            bool any = false, within = false;
            for (const auto& m : managed) {
                any = any || overlaps(p, m);
                within = within || inside(p, m);
            }
            if (!any)
                reply["note"] =
                    to_string(p) + " is outside managed_prefixes: the policy does not apply to it anyway";
            else if (!within)
                reply["note"] =
                    to_string(p) +
                    " is only partly inside managed_prefixes: the approval matters only for the part inside";
            return reply;
        });
}

// suspend, resume, revoke (--ban).
json set_state(Services& s, const Call& c) {
    const std::string& cmd = c.cmd;
    const json& req = c.req;
    const Peer& peer = c.peer;
    const Prefix p = need_prefix(req);
    const Approval* existing = s.store.find(p);
    Approval a;
    if (cmd == "revoke") {
        const bool ban = opt_bool(req, "ban");
        if (existing && existing->state == ApprovalState::Banned)
            throw RequestError(to_string(p) + " is already banned", err::kBanned);
        if (auto why = danger(s, p); ban && !why.empty() && !opt_bool(req, "force"))
            throw RequestError("banning " + why + " (a ban is for good): that needs --force");
        // No record of its own: a revocation carves the prefix out of a wider approval.
        a = existing ? *existing : Approval{};
        a.prefix = p;
        if (!existing) a.created = now_s();
        a.state = ban ? ApprovalState::Banned : ApprovalState::Revoked;
    } else {
        if (!existing) {
            const auto [rec, source] = effective_record(s, p);
            throw RequestError(
                to_string(p) + " has no approval record of its own" +
                    (rec ? std::string(" (") + to_string(rec->prefix) + " from the " + source + " covers it)"
                         : std::string()),
                err::kNotFound);
        }
        const auto want = cmd == "suspend" ? ApprovalState::Approved : ApprovalState::Suspended;
        if (existing->state != want)
            throw RequestError(
                to_string(p) + " is " + state_name(existing->state) + ", not " + state_name(want),
                existing->state == ApprovalState::Banned ? err::kBanned : err::kConflict);
        // A customer's token may lift its own suspension, never the provider's (an abuse desk's, or the
        // receivers' verdicts').
        if (cmd == "resume" && is_customer(peer) && !is_customer_name(existing->operator_name)) {
            const std::string why = to_string(p) + " was suspended by the provider (" +
                                    existing->operator_name +
                                    (existing->reason.empty() ? "" : ": " + existing->reason) +
                                    "); only the provider can resume it";
            s.audit.record(peer, cmd, req, to_json(*existing), nullptr, "refused: " + why);
            return error_reply(why, err::kForbidden);
        }
        a = *existing;
        a.state = cmd == "suspend" ? ApprovalState::Suspended : ApprovalState::Approved;
    }
    if (req.contains("reason")) a.reason = text_field(req, "reason", kMaxReason);
    if (req.contains("ticket")) a.ticket = text_field(req, "ticket", kMaxTicket);
    a.operator_name = peer.user;
    a.updated = now_s();
    return s.changes.commit(cmd, req, peer, existing, a);
}

// A ban is for good for customers (seed 000); an operator who banned the wrong prefix lifts it here, with a
// reason, and the record becomes revoked: an approve is needed to send again.

json unban(Services& s, const Call& c) {
    const json& req = c.req;
    const Peer& peer = c.peer;
    const Prefix p = need_prefix(req);
    const std::string reason = req.contains("reason") ? text_field(req, "reason", kMaxReason) : "";
    if (reason.empty()) throw RequestError("unban needs a reason (--reason): it is kept in the audit log");
    const Approval* existing = s.store.find(p);
    if (!existing || existing->state != ApprovalState::Banned) {
        const Approval* cover = s.store.covering(p);
        if (cover && cover->state == ApprovalState::Banned)
            throw RequestError(to_string(p) + " is inside the ban of " + to_string(cover->prefix) +
                               ": unban " + to_string(cover->prefix));
        throw RequestError(to_string(p) + " is not banned");
    }
    Approval a = *existing;
    a.state = ApprovalState::Revoked;
    a.reason = reason;
    if (req.contains("ticket")) a.ticket = text_field(req, "ticket", kMaxTicket);
    a.operator_name = peer.user;
    a.updated = now_s();
    return s.changes.commit("unban", req, peer, existing, a);
}

json import_begin(Services& s, const Call& c) {
    Session& session = c.session;
    session = Session{};  // a new begin drops what an earlier one left, and its slot
    if (*s.imports >= kMaxImports)
        throw RequestError("another " + std::to_string(*s.imports) + " import(s) in progress (at most " +
                           std::to_string(kMaxImports) + " at once); try again");
    ++*s.imports;
    auto count = s.imports;
    session.import_slot = std::shared_ptr<void>(count.get(), [count](void*) { --*count; });
    session.importing = true;
    return ok_reply();
}

json import_chunk(Services&, const Call& c) {
    const json& req = c.req;
    Session& session = c.session;
    if (!session.importing) throw RequestError("no import in progress: send import_begin first");
    if (!req.contains("lines") || !req["lines"].is_array()) throw RequestError("'lines' must be an array");
    const auto first = opt_int(req, "first_line", 1, INT32_MAX);
    size_t line_no = first < 0 ? session.pending.size() + 1 : static_cast<size_t>(first);
    auto abandon = [&](const std::string& why) {
        session = Session{};
        return RequestError(why + " (nothing imported)");
    };
    for (const auto& l : req["lines"]) {
        if (!l.is_string()) throw abandon("line " + std::to_string(line_no) + ": not a string");
        const auto& text = l.get_ref<const std::string&>();
        session.bytes += text.size() + 1;
        if (session.bytes > kMaxImportBytes)
            throw abandon("import larger than " + std::to_string(kMaxImportBytes >> 20) + " MiB");
        std::string why;
        auto a = parse_line(text, &why);
        if (!a && !why.empty()) throw abandon("line " + std::to_string(line_no) + ": " + why);
        if (a) session.pending.emplace_back(line_no, std::move(*a));
        if (session.pending.size() > kMaxImportRecords)
            throw abandon("import larger than " + std::to_string(kMaxImportRecords) + " records");
        ++line_no;
    }
    return ok_reply({{"pending", session.pending.size()}});
}

json import_commit(Services& s, const Call& c) {
    const json& req = c.req;
    const Peer& peer = c.peer;
    Session& session = c.session;
    if (!session.importing) throw RequestError("no import in progress: send import_begin first");
    const bool force = opt_bool(req, "force");
    const int64_t now = now_s();
    std::vector<Approval> all;
    all.reserve(session.pending.size());
    auto refuse = [&](const std::string& why) {
        session = Session{};
        s.audit.record(peer, "import", {{"entries", all.size()}}, nullptr, nullptr, "refused: " + why);
        return error_reply(why);
    };
    for (auto& [line_no, a] : session.pending) {
        const std::string at = "line " + std::to_string(line_no) + ": ";
        if (const Approval* cover = s.store.covering(a.prefix);
            cover && cover->state == ApprovalState::Banned && a.state != ApprovalState::Banned)
            return refuse(at + describe_ban(*cover) + " (nothing imported)");
        if (a.state == ApprovalState::Approved || a.state == ApprovalState::Banned)
            if (auto why = danger(s, a.prefix); !why.empty() && !force)
                return refuse(at + why + ": that needs --force (nothing imported)");
        const Approval* existing = s.store.find(a.prefix);
        a.created = existing ? existing->created : now;
        a.updated = now;
        a.operator_name = peer.user;
        all.push_back(std::move(a));
    }
    const size_t n = all.size();
    session = Session{};
    if (auto err = s.changes.durable(
            "import", {{"entries", n}, {"force", force}}, peer, nullptr, [&] { return s.store.put_all(all); },
            [&] {
                return json{{"records", s.store.records().size()}};
            });
        !err.empty())
        return error_reply("not saved: " + err + " (nothing imported)");
    return ok_reply({{"applied", n}, {"records", s.store.records().size()}});
}

}  // namespace

std::span<const Handler> approval_handlers() {
    static const Handler table[] = {
        {cmd::kApprove, approve},
        {cmd::kSuspend, set_state},
        {cmd::kResume, set_state},
        {cmd::kRevoke, set_state},
        {cmd::kUnban, unban},
        {cmd::kImportBegin, import_begin},
        {cmd::kImportChunk, import_chunk},
        {cmd::kImportCommit, import_commit},
    };
    return table;
}

}  // namespace portcullis
