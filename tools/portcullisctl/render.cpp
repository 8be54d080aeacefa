// Human-readable rendering of control replies (see render.hpp).
#include "tools/portcullisctl/render.hpp"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <vector>

#include "api/approval.hpp"
#include "api/counter_catalogue.hpp"
#include "api/wire.hpp"

namespace portcullis::ctl {

using nlohmann::json;

namespace {

std::string str(const json& j, const char* k) {
    if (!j.contains(k) || j[k].is_null()) return "";
    // The daemon's text may hold anything an operator typed: no control character reaches the terminal.
    return j[k].is_string() ? printable(j[k].get<std::string>(), 4096) : j[k].dump();
}

std::string limits(const json& r) {
    std::string s;
    auto add = [&](const char* k, const char* label, const char* unit) {
        if (r.value(k, 0) > 0)
            s += (s.empty() ? "" : " ") + std::string(label) + std::to_string(r[k].get<int>()) + unit;
    };
    add("max_concurrent", "conc=", "");
    add("rate_per_min", "rate=", "/min");
    add("daily", "daily=", "");
    return s.empty() ? "defaults" : s;
}

std::string domains(const json& r) {
    std::string s;
    const json list = r.value("domains", json::array());
    for (const auto& d : list) s += (s.empty() ? "" : ",") + d.get<std::string>();
    return s.empty() ? "-" : s;
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> w;
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) {
            if (w.size() <= i) w.push_back(0);
            w[i] = std::max(w[i], r[i].size());
        }
    std::string out;
    for (const auto& r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); ++i) {
            line += r[i];
            if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

}  // namespace

std::string render_records(const json& records) {
    std::vector<std::vector<std::string>> rows = {
        {"PREFIX", "STATE", "HOSTNAME", "DOMAINS", "LIMITS", "EXPIRES", "TICKET", "SOURCE"}};
    for (const auto& r : records) {
        std::string state = str(r, "state");
        if (state == "approved" && r.value("in_force", true) == false) state = "expired";
        rows.push_back({str(r, "prefix"), state, str(r, "hostname").empty() ? "-" : str(r, "hostname"),
                        domains(r), limits(r), format_time(r.value("expires", int64_t{0})),
                        str(r, "ticket").empty() ? "-" : str(r, "ticket"), str(r, "source")});
    }
    return table(rows) + std::to_string(records.size()) + " record(s)\n";
}

std::string render_record(const json& r) {
    std::vector<std::vector<std::string>> rows = {
        {"prefix:", str(r, "prefix")},
        {"state:", str(r, "state")},
        {"hostname:", str(r, "hostname").empty() ? "(any FQDN)" : str(r, "hostname")},
        {"domains:", domains(r) == "-" ? "(any)" : domains(r)},
        {"limits:", limits(r)},
        {"expires:", format_time(r.value("expires", int64_t{0}))},
        {"ticket:", str(r, "ticket")},
        {"reason:", str(r, "reason")},
        {"operator:", str(r, "operator")},
        {"created:", format_time(r.value("created", int64_t{0}))},
        {"updated:", format_time(r.value("updated", int64_t{0}))}};
    if (r.contains("source")) rows.push_back({"source:", str(r, "source")});
    if (const int64_t t = r.value("requested", int64_t{0})) {
        rows.push_back({"requested:", format_time(t) + (str(r, "state") == "pending" ? " (pending)" : "")});
        if (r.contains("facts") && r["facts"].is_object())
            for (const auto& [k, v] : r["facts"].items())
                rows.push_back(
                    {"  " + k + ":", v.is_string() ? printable(v.get<std::string>(), 200) : v.dump()});
    }
    if (r.contains("dns") && r["dns"].is_object()) {
        const json& d = r["dns"];
        rows.push_back({"DNS check:", d.value("skipped", false)
                                          ? "skipped by " + printable(d.value("by", std::string()), 40)
                                          : printable(d.value("said", std::string()), 300)});
        rows.push_back({"  checked:", format_time(d.value("checked", int64_t{0}))});
    }
    if (const int64_t t = r.value("retry_after", int64_t{0}))
        rows.push_back({"new request from:", format_time(t)});
    const json complaints =
        r.contains("complaints") && r["complaints"].is_array() ? r["complaints"] : json::array();
    if (!complaints.empty()) {
        rows.push_back({"complaints:", std::to_string(complaints.size())});
        for (const auto& c : complaints)
            rows.push_back({"  " + format_time(c.value("at", int64_t{0})),
                            printable(c.value("ref", std::string()), 128) +
                                (c.value("reason", std::string()).empty()
                                     ? ""
                                     : ": " + printable(c.value("reason", std::string()), 200)) +
                                " (" + printable(c.value("operator", std::string()), 40) + ")"});
    }
    return table(rows);
}

namespace {
std::string limit_text(const json& l, const char* key, const char* unit) {
    const uint64_t v = l.value(key, uint64_t{0});
    return v ? std::to_string(v) + unit : "unlimited";
}
}  // namespace

std::string render_show(const json& reply) {
    std::vector<std::vector<std::string>> rows = {{"address:", str(reply, "addr")},
                                                  {"verdict:", str(reply, "verdict")},
                                                  {"managed:", reply.value("managed", false) ? "yes" : "no"},
                                                  {"relay:", reply.value("relay", false) ? "yes" : "no"}};
    if (reply.contains("refusals")) {
        const json& r = reply["refusals"];
        std::string text = std::to_string(r.value("attempts", uint64_t{0})) + " connection attempt(s), " +
                           std::to_string(r.value("refused", uint64_t{0})) + " segment(s) refused";
        if (r.value("refused", uint64_t{0}) > 0)
            text += "; last " + format_time(r.value("last", int64_t{0})) + " to port " + str(r, "last_port") +
                    " (" + str(r, "last_reason") + ")";
        const json by = r.value("by_reason", json::object());
        std::string reasons;
        for (const auto& [k, v] : by.items()) reasons += (reasons.empty() ? "" : ", ") + k + " " + v.dump();
        if (!reasons.empty()) text += "; by reason: " + reasons;
        rows.push_back({"refusals:", text});
    }
    if (reply.contains("seen")) {
        auto list = [&](const char* key) {
            std::string t;
            for (const auto& v : reply["seen"].value(key, json::array()))
                t += (t.empty() ? "" : ", ") + v.get<std::string>();
            return t.empty() ? std::string("-") : t;
        };
        rows.push_back({"EHLO names seen:", list("ehlo")});
        rows.push_back({"MAIL FROM domains seen:", list("mail_from_domains")});
        const json& seen = reply["seen"];
        if (seen.value("remote_refused", uint64_t{0}) > 0) {
            rows.push_back({"receivers refused:", std::to_string(seen.value("remote_refused", uint64_t{0})) +
                                                      " session(s) (5xx replies), the last:"});
            if (seen.contains("remote_refusals") && seen["remote_refusals"].is_array())
                for (const auto& r : seen["remote_refusals"])
                    rows.push_back({"  " + format_time(r.value("at", int64_t{0})),
                                    printable(r.value("reply", std::string()), 200)});
        }
    }
    if (reply.contains("limits")) {
        const json& l = reply["limits"];
        const json live = l.value("live", json::object());
        auto part = [&](const char* key, const char* live_key, const char* unit) {
            const std::string used = live.contains(live_key) ? live[live_key].dump() : "?";
            return used + " of " + limit_text(l, key, unit);
        };
        rows.push_back({"open SMTP connections:", part("max_concurrent", "concurrent", "")});
        rows.push_back({"connection rate:", part("rate_per_min", "rate_used", "/min")});
        rows.push_back({"today:", part("daily", "daily_count", "/day")});
    }
    std::string out = table(rows);
    if (reply.contains("record") && !reply["record"].is_null())
        out += "\nrecord that applies (most specific):\n" + render_record(reply["record"]);
    else
        out += "\nno approval record covers it\n";
    return out;
}

std::string render_limits(const json& reply) {
    std::vector<std::vector<std::string>> rows = {{"", "IN FORCE", "CONFIGURED"}};
    const json now = reply.value("defaults", json::object());
    const json conf = reply.value("configured", json::object());
    for (auto [key, label, unit] :
         {std::tuple{"max_concurrent", "max concurrent:", ""}, std::tuple{"rate_per_min", "rate:", "/min"},
          std::tuple{"daily", "daily:", "/day"}})
        rows.push_back({label, limit_text(now, key, unit), limit_text(conf, key, unit)});
    return "default per-source SMTP limits (an approval's own values win):\n" + table(rows);
}

std::string render_status(const json& s) {
    std::vector<std::vector<std::string>> rows = {
        {"state:", s.value("ready", false) ? "up, forwarding" : "starting"},
        {"version:", str(s, "version")},
        {"uptime:", str(s, "uptime_s") + " s"},
        {"ports:", "inside " + str(s, "inside_port") + ", outside " + str(s, "outside_port")},
        {"workers:", str(s, "workers")},
        {"stored records:", str(s, "records")},
        {"config approvals:", str(s, "config_approvals")},
        {"policy generation:", str(s, "policy_generation")},
        {"monitor mode:", s.value("monitor", false) ? "on (nothing refused)" : "off"}};
    if (s.contains("flows") && s["flows"].is_object()) {
        const json& f = s["flows"];
        rows.push_back({"tracked SMTP connections:", str(f, "tracked") + " of " + str(f, "max") + " (" +
                                                         std::to_string(f.value("table_bytes", 0ull) >> 20) +
                                                         " MiB of flow tables)"});
        rows.push_back({"sources with limit state:", str(f, "sources") + " of " + str(f, "sources_max")});
    }
    if (s.contains("store") && s["store"].is_object()) {
        const json& st = s["store"];
        if (st.value("store", std::string()) == "etcd") {
            rows.push_back({"store:", "etcd " + str(st, "endpoint") + " " + str(st, "prefix") + ", fleet " +
                                          str(st, "fleet") + ", as gateway " + str(st, "gateway")});
            rows.push_back(
                {"revision applied:", str(st, "revision") + " (etcd at " + str(st, "etcd_revision") + ")"});
            rows.push_back({"fleet sync:", st.value("in_sync", false)
                                               ? std::string("in sync")
                                               : "STALE since " + str(st, "stale_since") + " (" +
                                                     str(st, "stale_seconds") +
                                                     " s): enforcing the last set applied"});
            if (st.contains("problem")) rows.push_back({"fleet problem:", str(st, "problem")});
            if (st.contains("error")) rows.push_back({"etcd error:", str(st, "error")});
        } else {
            rows.push_back({"store:", "local (state_dir)"});
        }
    }
    const json counters = s.value("counters", json::object());
    for (const auto& [k, v] : counters.items()) rows.push_back({k + ":", v.dump()});
    return table(rows);
}

std::string render_counters(const json& reply) {
    std::vector<std::vector<std::string>> rows = {{"COUNTER", "VALUE"}};
    const json counters = reply.value("counters", json::object());
    // In the daemon's own order (what arrived, what went, why), then any this CLI does not know yet.
    for (const auto& info : kCounterInfo)
        if (counters.contains(info.name)) rows.push_back({info.name, counters[info.name].dump()});
    for (const auto& [k, v] : counters.items()) {
        bool known = false;
        for (const auto& info : kCounterInfo) known |= k == info.name;
        if (!known) rows.push_back({k, v.dump()});
    }
    std::string out = table(rows);
    const json top = reply.value("top_refused_sources", json::array());
    if (!top.empty()) {
        std::vector<std::vector<std::string>> t = {{"SOURCE", "REFUSED", "ATTEMPTS", "LAST", "PORT"}};
        for (const auto& e : top)
            t.push_back({str(e, "addr"), str(e, "refused"), str(e, "attempts"),
                         format_time(e.value("last", int64_t{0})), str(e, "last_port")});
        out += "\nsources refused most often:\n" + table(t);
    }
    return out;
}

// ---- top

namespace {

// A counter or figure of a reply: 0 when it is missing, null, or not a number.
uint64_t count(const json& obj, const char* k) {
    if (!obj.is_object()) return 0;
    const auto it = obj.find(k);
    if (it == obj.end()) return 0;
    if (it->is_number_unsigned()) return it->get<uint64_t>();
    if (it->is_number_integer()) return static_cast<uint64_t>(std::max<int64_t>(it->get<int64_t>(), 0));
    if (it->is_number_float()) {
        const double v = it->get<double>();
        return v > 0 && v < 1.8e19 ? static_cast<uint64_t>(v) : 0;
    }
    return 0;
}

bool has_count(const json& obj, const char* k) {
    return obj.is_object() && obj.contains(k) && obj[k].is_number();
}

bool flag(const json& obj, const char* k) {
    return obj.is_object() && obj.contains(k) && obj[k].is_boolean() && obj[k].get<bool>();
}

[[gnu::format(printf, 1, 2)]] std::string fmt(const char* f, ...) {
    char buf[160];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

std::string uptime(uint64_t s) {
    const std::string hms = fmt("%02u:%02u:%02u", static_cast<unsigned>(s / 3600 % 24),
                                static_cast<unsigned>(s / 60 % 60), static_cast<unsigned>(s % 60));
    return s >= 86400 ? std::to_string(s / 86400) + "d " + hms : hms;
}

// "used / max  (p%)": "-" for a figure the daemon did not give.
std::string used_of(const json& f, const char* used, const char* max) {
    if (!has_count(f, used)) return "-";
    const uint64_t u = count(f, used);
    std::string s = std::to_string(u);
    if (!has_count(f, max)) return s;
    const uint64_t m = count(f, max);
    s += " / " + std::to_string(m);
    if (m > 0) s += fmt("  (%.1f%%)", 100.0 * static_cast<double>(u) / static_cast<double>(m));
    return s;
}

// Counters per second between two samples. A counter that went backwards, or every counter when the
// daemon's uptime did (a restart between the samples), has no rate: 0, never the wrapped difference.
class Rates {
  public:
    Rates(const TopSample& before, const TopSample& after, double seconds)
        : before_(before.stats.is_object() ? before.stats.value("counters", json::object()) : json::object()),
          after_(after.stats.is_object() ? after.stats.value("counters", json::object()) : json::object()),
          seconds_(seconds),
          restarted_(has_count(before.status, "uptime_s") && has_count(after.status, "uptime_s") &&
                     count(after.status, "uptime_s") < count(before.status, "uptime_s")) {}

    bool restarted() const { return restarted_; }
    uint64_t total(const char* name) const { return count(after_, name); }
    double per_second(const char* name) const {
        const uint64_t b = count(before_, name), a = count(after_, name);
        if (restarted_ || !(seconds_ > 0) || a < b) return 0;
        return static_cast<double>(a - b) / seconds_;
    }

  private:
    const json before_, after_;
    const double seconds_;
    const bool restarted_;
};

}  // namespace

std::string render_top(const TopSample& before, const TopSample& after, double seconds) {
    const Rates r(before, after, seconds);
    const json& st = after.status;
    std::string out = "portcullis " + printable(str(st, "version"), 16) + "  up " +
                      uptime(count(st, "uptime_s")) + "  monitor " + (flag(st, "monitor") ? "ON" : "off") +
                      "  policy " + std::to_string(count(st, "policy_generation")) + "  " +
                      format_time(after.at) + "\n";
    if (r.restarted()) out += "the daemon restarted between samples: rates from the next frame\n";

    out += fmt("\n%-10s %10s %15s\n", "PORT", "RX Mpps", "FORWARDED Mpps");
    const auto mpps = [&](const char* k) { return fmt("%.3f", r.per_second(k) / 1e6); };
    out += fmt("%-10s %10s %15s  %s\n", "inside", mpps("rx_inside").c_str(), mpps("fwd_outbound").c_str(),
               "to outside");
    out += fmt("%-10s %10s %15s  %s\n", "outside", mpps("rx_outside").c_str(), mpps("fwd_inbound").c_str(),
               "to inside");

    out += fmt("\n%-12s %12s %14s\n", "REFUSALS", "PER SECOND", "TOTAL");
    for (const auto& [name, label] :
         {std::pair{"refusal_unapproved", "unapproved"}, std::pair{"refusal_concurrency", "concurrency"},
          std::pair{"refusal_rate", "rate"}, std::pair{"refusal_daily", "daily"},
          std::pair{"refusal_busy", "busy"}, std::pair{"refusal_payload", "payload"},
          std::pair{"refusals", "all"}})
        out += fmt("%-12s %12.1f %14llu\n", label, r.per_second(name),
                   static_cast<unsigned long long>(r.total(name)));

    const json top = after.stats.is_object() ? after.stats.value("refused_last_minute", json()) : json();
    if (top.is_array()) {
        out += fmt("\n%-45s %12s\n", "REFUSED MOST IN THE LAST MINUTE", "REFUSALS");
        if (top.empty()) out += "(none)\n";
        size_t shown = 0;
        for (const auto& e : top) {
            if (!e.is_object()) continue;
            if (shown++ == 10) break;
            out += fmt("%-45s %12llu\n", printable(str(e, "addr"), 45).c_str(),
                       static_cast<unsigned long long>(count(e, "refusals")));
        }
    }

    const json flows = st.is_object() ? st.value("flows", json()) : json();
    out += "\n";
    out += fmt("%-20s %s\n", "tracked flows", used_of(flows, "tracked", "max").c_str());
    out += fmt("%-20s %s\n", "inspected sessions", used_of(flows, "inspected", "inspected_max").c_str());
    out += fmt("%-20s %s\n", "sources", used_of(flows, "sources", "sources_max").c_str());
    if (const uint64_t lost = r.total("events_lost"); lost > 0)
        out += fmt("%-20s %llu  (%.1f/s; refusal reports only, verdicts unaffected)\n", "events lost",
                   static_cast<unsigned long long>(lost), r.per_second("events_lost"));
    return out;
}

}  // namespace portcullis::ctl
