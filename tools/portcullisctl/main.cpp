// portcullisctl: the operators' CLI. Approvals, revocations, limits, managed prefixes and relays on a running
// gateway, through its control socket. Human tables by default, --json for scripts. Exit codes: 0 done,
// 1 the daemon refused (its reason on stderr), 2 bad usage, 3 the daemon could not be reached.
//
// Every subcommand is one entry of kSubcommands (its name, synopsis, options, positional arguments, handler);
// a new command is one entry here and one handler in the daemon (control/commands/), both naming it through
// api/protocol.hpp.
#include <boost/program_options.hpp>

#include <algorithm>

#include <signal.h>
#include <time.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/approval.hpp"
#include "api/protocol.hpp"
#include "api/wire.hpp"
#include "tools/portcullisctl/client.hpp"
#include "tools/portcullisctl/render.hpp"

namespace po = boost::program_options;
using nlohmann::json;
using namespace portcullis;

namespace {

struct Usage : std::runtime_error {
    using std::runtime_error::runtime_error;
};

int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// What a handler works with: the parsed arguments, the daemon (connected on first use), the output mode.
class Ctx {
  public:
    Ctx(std::string name, po::variables_map vm, std::string socket, bool as_json)
        : name(std::move(name)), vm(std::move(vm)), socket_(std::move(socket)), as_json_(as_json) {}

    const std::string name;  // the subcommand, as typed
    const po::variables_map vm;

    bool has(const char* opt) const { return vm.count(opt) > 0; }
    std::string str(const char* opt) const { return vm[opt].as<std::string>(); }

    // Sends a request; fails with the daemon's reason when it refused. Exits 3 when it cannot be reached.
    json call(const json& req, int timeout_s = 60) {
        if (!connected_) {
            if (auto err = client_.connect(socket_); !err.empty()) {
                std::fprintf(stderr, "portcullisctl: %s\n", err.c_str());
                std::exit(3);
            }
            connected_ = true;
        }
        json reply = client_.call(req, timeout_s);
        if (!reply.value(key::kOk, false))
            throw std::runtime_error(reply.value(key::kError, std::string("refused")));
        return reply;
    }
    // Prints the reply: the daemon's JSON with --json, else the human form.
    int out(const json& reply, const std::string& human) const {
        if (as_json_)
            std::cout << reply.dump(2) << "\n";
        else
            std::cout << human;
        return 0;
    }
    bool connected() const { return connected_; }
    bool as_json() const { return as_json_; }
    // From now on a signal that sets *flag ends a call waiting on the daemon (ctl::Interrupted).
    void stop_on(const volatile std::sig_atomic_t* flag) { client_.stop_on(flag); }

  private:
    std::string socket_;
    bool as_json_;
    bool connected_ = false;
    ctl::Client client_;
};

struct Positional {
    const char* name;
    bool required;
    const char* help;
};

struct Subcommand {
    const char* name;
    const char* synopsis;  // after "portcullisctl [--socket PATH] [--json] "
    const char* summary;   // one line in the command list
    void (*options)(po::options_description&);
    std::vector<Positional> positionals;
    int (*run)(Ctx&);
    const char* more_help = nullptr;  // printed after the options
};

// ---- option sets

void no_options(po::options_description&) {}

void approve_options(po::options_description& d) {
    d.add_options()("hostname", po::value<std::string>(), "the FQDN its EHLO must name (its rDNS)")(
        "domain", po::value<std::vector<std::string>>(), "a sending domain for MAIL FROM (repeatable)")(
        "max-concurrent", po::value<unsigned>(), "concurrent SMTP connections allowed")(
        "rate", po::value<std::string>(), "new SMTP connections allowed, e.g. 30/min or 600/h")(
        "daily", po::value<unsigned>(), "messages per day")("ticket", po::value<std::string>(),
                                                            "support ticket or service id")(
        "reason", po::value<std::string>(), "why it is approved")(
        "expires", po::value<std::string>(),
        "when it stops applying: 2026-12-31, 2026-12-31T18:00:00Z, +30d")(
        "force", "approve a prefix wider than /24 (IPv6 /48) or one covering a whole managed prefix")(
        "require-fcrdns", "refuse unless the host name is forward-confirmed (PTR and A/AAAA agree)")(
        "skip-dns-check", "approve without the DNS check of the host name (audited)");
}

void request_options(po::options_description& d) {
    d.add_options()("hostname", po::value<std::string>(), "the server's FQDN (its rDNS, its EHLO name)")(
        "domain", po::value<std::vector<std::string>>(), "a sending domain (repeatable)")(
        "ticket", po::value<std::string>(), "support ticket")("reason", po::value<std::string>(), "a note")(
        "force", "staff: request before a denial's cooldown ends, or for a wide prefix (audited)")(
        "skip-dns-check", "record the request without the DNS check of the host name (audited)");
    for (const char* k : kFactKeys) {
        std::string opt = k;
        std::replace(opt.begin(), opt.end(), '_', '-');
        d.add_options()(opt.c_str(), po::value<std::string>(), "the request template's fact");
    }
}

void deny_options(po::options_description& d) {
    d.add_options()("reason", po::value<std::string>(), "why (required; the customer is told)")(
        "ticket", po::value<std::string>(), "ticket id");
}

void complaint_options(po::options_description& d) {
    d.add_options()("ref", po::value<std::string>(),
                    "the complaint's id (abuse desk, feedback loop; required)")(
        "reason", po::value<std::string>(), "what it says");
}

void token_options(po::options_description& d) {
    d.add_options()("role", po::value<std::string>(), "token add: operator or customer")(
        "scope", po::value<std::vector<std::string>>(),
        "token add, customer: an address or prefix it may act on (repeatable; at least one)");
}

void state_options(po::options_description& d) {
    d.add_options()("reason", po::value<std::string>(), "why")("ticket", po::value<std::string>(),
                                                               "ticket id");
}

void revoke_options(po::options_description& d) {
    state_options(d);
    d.add_options()("ban", "revoke for good (after abuse): approve will refuse it")(
        "force", "ban a prefix wider than /24 (IPv6 /48) or one covering a whole managed prefix");
}

void unban_options(po::options_description& d) {
    d.add_options()("reason", po::value<std::string>(), "why the ban is lifted (required; audited)")(
        "ticket", po::value<std::string>(), "ticket id");
}

void list_options(po::options_description& d) {
    d.add_options()("state", po::value<std::string>(),
                    "only records in this state: approved, suspended, revoked, banned, pending, denied");
}

void import_options(po::options_description& d) {
    d.add_options()("force", "accept records approving or banning wide prefixes (see approve --force)");
}

void managed_options(po::options_description& d) {
    d.add_options()("force", "del: lift the policy from a whole managed prefix");
}

void relay_options(po::options_description& d) {
    d.add_options()("force", "add: a relay wider than /24 (IPv6 /48)");
}

void top_options(po::options_description& d) {
    d.add_options()("interval", po::value<std::string>(), "seconds between frames, 0.2 to 60 (default 1)")(
        "once", "print one frame (two samples an interval apart) without terminal control codes");
}

void limits_options(po::options_description& d) {
    d.add_options()("max-concurrent", po::value<unsigned>(), "open SMTP connections per source at once")(
        "rate", po::value<std::string>(), "new SMTP connections per source, e.g. 60/min or 600/h")(
        "daily", po::value<unsigned>(), "SMTP messages per source per UTC day");
}

// ---- handlers: reports

int status(Ctx& c) {
    const json r = c.call({{key::kCmd, cmd::kStatus}});
    return c.out(r, ctl::render_status(r));
}

int stats(Ctx& c) {
    const json r = c.call({{key::kCmd, cmd::kStats}});
    return c.out(r, ctl::render_counters(r));
}

// ---- top: a live view, one frame a second (ctl::render_top); --once prints one frame for scripts.

volatile std::sig_atomic_t g_interrupted = 0;

void on_interrupt(int) {
    g_interrupted = 1;
}

using SteadyClock = std::chrono::steady_clock;

// Sleeps until t; false when Ctrl-C came first.
bool sleep_until(SteadyClock::time_point t) {
    for (;;) {
        if (g_interrupted) return false;
        const auto left =
            std::chrono::duration_cast<std::chrono::nanoseconds>(t - SteadyClock::now()).count();
        if (left <= 0) return true;
        const timespec ts{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
        ::nanosleep(&ts, nullptr);  // a signal ends it early: the loop looks at the flag
    }
}

double top_interval(const Ctx& c) {
    if (!c.has("interval")) return 1.0;
    const std::string text = c.str("interval");
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !(v >= 0.2 && v <= 60))
        throw Usage("top: --interval '" + printable(text, 20) +
                    "' is not a number of seconds from 0.2 to 60");
    return v;
}

// Both replies of one sample; *when: as the counters arrived, for the rates.
ctl::TopSample take_sample(Ctx& c, SteadyClock::time_point* when) {
    constexpr int kTimeoutS = 10;  // a daemon that does not answer ends the view with an error
    ctl::TopSample s;
    s.stats = c.call({{key::kCmd, cmd::kStats}}, kTimeoutS);
    *when = SteadyClock::now();
    s.status = c.call({{key::kCmd, cmd::kStatus}}, kTimeoutS);
    s.at = now_s();
    return s;
}

int top(Ctx& c) {
    if (c.as_json())
        throw Usage("top: --json does not apply (stats --json and status --json give the figures)");
    const double interval = top_interval(c);
    const bool once = c.has("once");
    if (!once) {
        // Ctrl-C ends the view with exit 0, also while a call waits on the daemon. --once keeps the default.
        struct sigaction sa {};
        sa.sa_handler = on_interrupt;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGINT, &sa, nullptr);
        c.stop_on(&g_interrupted);
    }
    const auto period =
        std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(interval));
    try {
        SteadyClock::time_point t0, t1;
        ctl::TopSample before = take_sample(c, &t0);
        for (;;) {
            if (!sleep_until(t0 + period)) return 0;
            ctl::TopSample after = take_sample(c, &t1);
            const std::string frame =
                ctl::render_top(before, after, std::chrono::duration<double>(t1 - t0).count());
            if (once) {
                std::cout << frame << std::flush;
                return 0;
            }
            std::cout << "\x1b[H\x1b[2J" << frame << std::flush;
            before = std::move(after);
            t0 = t1;
        }
    } catch (const ctl::Interrupted&) {
        return 0;
    }
}

int export_records(Ctx& c) {
    const json r = c.call({{key::kCmd, cmd::kExport}});
    std::string text;
    for (const auto& l : r["lines"]) text += l.get<std::string>() + "\n";
    return c.out(r, text);
}

int list(Ctx& c) {
    json req = {{key::kCmd, cmd::kList}};
    if (c.has("state")) req["state"] = c.str("state");
    const json r = c.call(req);
    return c.out(r, ctl::render_records(r["records"]));
}

int show(Ctx& c) {
    const json r = c.call({{key::kCmd, cmd::kShow}, {"addr", c.str("ADDR")}});
    return c.out(r, ctl::render_show(r));
}

// ---- handlers: approvals

// --hostname and --domain (approve, request), checked before the daemon is asked.
void names_into(Ctx& c, json& req) {
    if (c.has("hostname")) {
        const auto h = c.str("hostname");
        if (!valid_hostname(h))
            throw Usage(c.name + ": --hostname '" + h + "' is not a fully qualified domain name");
        req["hostname"] = h;
    }
    if (c.has("domain")) {
        const auto domains = c.vm["domain"].as<std::vector<std::string>>();
        for (const auto& dn : domains)
            if (!valid_hostname(dn)) throw Usage(c.name + ": --domain '" + dn + "' is not a domain name");
        req["domains"] = domains;
    }
}

int approve(Ctx& c) {
    json req = {{key::kCmd, cmd::kApprove}, {"addr", c.str("ADDR")}};
    names_into(c, req);
    if (c.has("max-concurrent")) req["max_concurrent"] = c.vm["max-concurrent"].as<unsigned>();
    if (c.has("rate")) {
        const auto r = parse_rate(c.str("rate"));
        if (!r || *r == 0)
            throw Usage("approve: --rate '" + c.str("rate") + "' is not a rate such as 30/min");
        req["rate_per_min"] = *r;
    }
    if (c.has("daily")) req["daily"] = c.vm["daily"].as<unsigned>();
    if (c.has("ticket")) req["ticket"] = c.str("ticket");
    if (c.has("reason")) req["reason"] = c.str("reason");
    if (c.has("expires")) {
        const auto t = parse_time(c.str("expires"), now_s());
        if (!t)
            throw Usage("approve: --expires '" + c.str("expires") +
                        "' is not a date such as 2026-12-31 or +30d");
        req["expires"] = *t;
    }
    if (c.has("force")) req["force"] = true;
    if (c.has("require-fcrdns")) req["require_fcrdns"] = true;
    if (c.has("skip-dns-check")) req["skip_dns_check"] = true;
    const json r = c.call(req, 60);
    std::string human = "approved " + r["record"]["prefix"].get<std::string>() + "\n";
    if (r.contains("note")) human += "note: " + r["note"].get<std::string>() + "\n";
    return c.out(r, human + ctl::render_record(r["record"]));
}

// request: a pending record with the template's facts.
int request(Ctx& c) {
    json req = {{key::kCmd, cmd::kRequest}, {"addr", c.str("ADDR")}};
    names_into(c, req);
    json facts = json::object();
    for (const char* k : kFactKeys) {
        std::string opt = k;
        std::replace(opt.begin(), opt.end(), '_', '-');
        if (!c.has(opt.c_str())) continue;
        const std::string v = c.str(opt.c_str());
        if (auto err = check_fact(k, v); !err.empty()) throw Usage("request: --" + opt + ": " + err);
        facts[k] = v;
    }
    req["facts"] = facts;
    if (c.has("ticket")) req["ticket"] = c.str("ticket");
    if (c.has("reason")) req["reason"] = c.str("reason");
    if (c.has("force")) req["force"] = true;
    if (c.has("skip-dns-check")) req["skip_dns_check"] = true;
    const json r = c.call(req, 60);
    return c.out(r, "request recorded for " + r["record"]["prefix"].get<std::string>() + " (pending)\n" +
                        ctl::render_record(r["record"]));
}

int requests(Ctx& c) {
    const json r = c.call({{key::kCmd, cmd::kRequests}});
    std::string text;
    for (const auto& rec : r["requests"])
        text += format_time(rec.value("requested", int64_t{0})) + "  " + rec.value("prefix", std::string()) +
                "  " + printable(rec.value("hostname", std::string("-")), 80) + "  " +
                printable(rec.value("ticket", std::string()), 40) + "\n";
    return c.out(r, text + std::to_string(r["requests"].size()) + " pending request(s), oldest first\n");
}

int deny(Ctx& c) {
    json req = {{key::kCmd, cmd::kDeny}, {"addr", c.str("ADDR")}};
    if (!c.has("reason")) throw Usage("deny: --reason is required (the customer is told it)");
    req["reason"] = c.str("reason");
    if (c.has("ticket")) req["ticket"] = c.str("ticket");
    const json r = c.call(req);
    return c.out(r, "denied " + r["record"]["prefix"].get<std::string>() +
                        "; a new request is allowed from " +
                        format_time(r["record"].value("retry_after", int64_t{0})) + "\n");
}

int complaint(Ctx& c) {
    json req = {{key::kCmd, cmd::kComplaint}, {"addr", c.str("ADDR")}};
    if (!c.has("ref")) throw Usage("complaint: --ref is required (the complaint's id)");
    req["ref"] = c.str("ref");
    if (c.has("reason")) req["reason"] = c.str("reason");
    const json r = c.call(req);
    std::string text = "complaint " + c.str("ref") + " recorded for " +
                       r["record"]["prefix"].get<std::string>() + " (" + r["complaints_in_window"].dump() +
                       " within the window)\n";
    if (r.contains("note")) text += r["note"].get<std::string>() + "\n";
    return c.out(r, text);
}

// suspend, resume and revoke: the record's new state.
int set_state(Ctx& c) {
    json req = {{key::kCmd, c.name}, {"addr", c.str("ADDR")}};
    if (c.has("reason")) req["reason"] = c.str("reason");
    if (c.has("ticket")) req["ticket"] = c.str("ticket");
    if (c.has("ban")) req["ban"] = true;
    if (c.has("force")) req["force"] = true;
    const json r = c.call(req);
    return c.out(r, r["record"]["prefix"].get<std::string>() + " is now " +
                        r["record"]["state"].get<std::string>() + "\n");
}

int unban(Ctx& c) {
    if (!c.has("reason")) throw Usage("unban: --reason is required (it is kept in the audit log)");
    json req = {{key::kCmd, cmd::kUnban}, {"addr", c.str("ADDR")}, {"reason", c.str("reason")}};
    if (c.has("ticket")) req["ticket"] = c.str("ticket");
    const json r = c.call(req);
    return c.out(r, r["record"]["prefix"].get<std::string>() + " is no longer banned (now " +
                        r["record"]["state"].get<std::string>() + "; approve it to let it send)\n");
}

// A file of records, sent in chunks of 5,000 lines inside one import session: all or nothing.
int import_file(Ctx& c) {
    const auto path = c.str("FILE");
    std::ifstream in(path == "-" ? "/dev/stdin" : path);
    if (!in) throw Usage("import: cannot read '" + path + "'");
    const auto in_file = [&](auto&& step) {
        try {
            return step();
        } catch (const std::runtime_error& e) {
            throw std::runtime_error(path + ": " + e.what());
        }
    };
    c.call({{key::kCmd, cmd::kImportBegin}});
    std::string line;
    json chunk = json::array();
    size_t line_no = 0, first = 1;
    const auto flush = [&] {
        in_file([&] {
            return c.call({{key::kCmd, cmd::kImportChunk}, {"first_line", first}, {"lines", chunk}});
        });
        first = line_no + 1;
        chunk = json::array();
    };
    while (std::getline(in, line)) {
        ++line_no;
        if (!valid_utf8(line))
            throw std::runtime_error(path + ": line " + std::to_string(line_no) +
                                     ": not UTF-8 text (nothing imported)");
        chunk.push_back(line);
        if (chunk.size() == 5000) flush();
    }
    if (!chunk.empty()) flush();
    json commit = {{key::kCmd, cmd::kImportCommit}};
    if (c.has("force")) commit["force"] = true;
    const json r = in_file([&] { return c.call(commit, 300); });
    return c.out(r, "imported " + r["applied"].dump() + " record(s) from " + path + "; the store holds " +
                        r["records"].dump() + "\n");
}

// ---- handlers: settings

// managed and relay: list, add or del a prefix.
int overlay(Ctx& c) {
    const std::string action = c.has("ACTION") ? c.str("ACTION") : "list";
    if (action != "list" && action != "add" && action != "del")
        throw Usage(c.name + ": '" + action + "' is not one of list, add, del");
    json req = {{key::kCmd, c.name}, {"action", action}};
    if (action != "list") {
        if (!c.has("CIDR")) throw Usage(c.name + " " + action + ": missing CIDR");
        req["prefix"] = c.str("CIDR");
    }
    if (c.has("force")) req["force"] = true;
    const json r = c.call(req);
    std::string text;
    for (const auto& p : r["prefixes"]) text += p.get<std::string>() + "\n";
    return c.out(r, text);
}

int limits(Ctx& c) {
    json req = {{key::kCmd, cmd::kLimits}};
    if (c.has("max-concurrent")) req["max_concurrent"] = c.vm["max-concurrent"].as<unsigned>();
    if (c.has("daily")) req["daily"] = c.vm["daily"].as<unsigned>();
    if (c.has("rate")) {
        const auto text = c.str("rate");
        const auto r = text == "0" ? std::optional<uint32_t>(0) : parse_rate(text);
        if (!r) throw Usage("limits: --rate '" + text + "' is not a rate such as 60/min or 600/h");
        req["rate_per_min"] = *r;
    }
    const json r = c.call(req);
    return c.out(r, ctl::render_limits(r));
}

int rules(Ctx& c) {
    const std::string action = c.has("ACTION") ? c.str("ACTION") : "show";
    if (action != "show" && action != "reload") throw Usage("rules: '" + action + "' is not show or reload");
    const json r = c.call({{key::kCmd, cmd::kRules}, {"action", action}});
    std::string text = (action == "reload" ? "reloaded: " : "") + r["rules"].dump() + " rule(s) from " +
                       r.value("rules_dir", std::string()) + "\n";
    for (const auto& rule : r.value("list", json::array()))
        text +=
            "  " + rule["id"].dump() + "  " + rule["where"].get<std::string>() + "  " +
            (rule["refuse"].get<bool>() ? rule["reply"].get<std::string>() : std::string("(count only)")) +
            "\n";
    return c.out(r, text);
}

int monitor(Ctx& c) {
    json req = {{key::kCmd, cmd::kMonitor}};
    if (c.has("STATE")) {
        const auto st = c.str("STATE");
        if (st != "on" && st != "off") throw Usage("monitor: '" + st + "' is not on or off");
        req["enable"] = st == "on";
    }
    const json r = c.call(req);
    return c.out(r, std::string("monitor mode is ") +
                        (r["monitor"].get<bool>() ? "on: nothing is refused, would-be refusals are counted"
                                                  : "off: the policy is enforced") +
                        "\n");
}

int fleet(Ctx& c) {
    const std::string action = c.has("ACTION") ? c.str("ACTION") : "";
    if (action != "init" && action != "adopt") throw Usage("fleet: say init or adopt");
    const json r = c.call({{key::kCmd, action == "init" ? cmd::kFleetInit : cmd::kFleetAdopt}});
    if (action == "init")
        return c.out(r, "etcd now holds fleet " + r.value("fleet", std::string()) +
                            ", seeded with this gateway's " + std::to_string(r.value("items", 0)) +
                            " item(s) at revision " + std::to_string(r.value("revision", int64_t{0})) + "\n");
    return c.out(r, r.value("note", std::string()) + "\n");
}

// token add NAME --role R [--scope CIDR]..., token list, token revoke NAME: the HTTP API's tokens.
int token(Ctx& c) {
    const std::string action = c.has("ACTION") ? c.str("ACTION") : "";
    if (action == "list") {
        const json r = c.call({{key::kCmd, cmd::kTokenList}});
        std::string text;
        for (const auto& t : r["tokens"]) {
            std::string scopes;
            for (const auto& p : t["scopes"]) scopes += (scopes.empty() ? "" : ",") + p.get<std::string>();
            text += t["name"].get<std::string>() + "  " + t["role"].get<std::string>() + "  " +
                    (scopes.empty() ? "-" : scopes) + "  made " +
                    format_time(t.value("created", int64_t{0})) + " by " +
                    t.value("created_by", std::string()) + "\n";
        }
        return c.out(r, text.empty() ? "no tokens\n" : text);
    }
    if (!c.has("NAME")) throw Usage("token " + action + ": NAME is required");
    const std::string name = c.str("NAME");
    if (action == "revoke")
        return c.out(c.call({{key::kCmd, cmd::kTokenRevoke}, {"name", name}}),
                     "token " + name + " revoked: requests with it are refused from now on\n");
    if (action != "add") throw Usage("token: say add, list or revoke");
    if (!c.has("role")) throw Usage("token add: --role operator|customer is required");
    json req = {{key::kCmd, cmd::kTokenAdd}, {"name", name}, {"role", c.str("role")}};
    req["scopes"] = c.has("scope") ? json(c.vm["scope"].as<std::vector<std::string>>()) : json::array();
    const json r = c.call(req);
    return c.out(r, "token " + name + " (" + c.str("role") + ") made. Its secret, shown this once only:\n" +
                        r["secret"].get<std::string>() + "\nSend it as 'Authorization: Bearer <secret>'.\n");
}

constexpr const char* kTokenHelp =
    "The HTTP API's bearer tokens (api_listen; docs/api.md). A customer token acts only inside its\n"
    "--scope prefixes: it may read, suspend, resume and request there, nothing else. An operator token may\n"
    "use every route. The secret is printed once; the daemon keeps only its SHA-256.\n";

constexpr const char* kFleetHelp =
    "store = etcd only (docs/fleet.md).\n"
    "  init   make an etcd that holds no fleet this fleet's, seeded with this gateway's set (refused when "
    "etcd\n"
    "         holds a fleet already)\n"
    "  adopt  take etcd's set as it is, even when it came back empty, from another cluster or from an older\n"
    "         backup: what this gateway enforces becomes etcd's (audited)\n";

constexpr const char* kTopHelp =
    "A new frame every --interval seconds, the screen cleared before each, until Ctrl-C (exit 0). Rates\n"
    "are counter deltas between two samples: the first frame comes after one interval. --once prints that\n"
    "one frame as plain text and exits. docs/control.md, \"portcullisctl top\", describes the frame.\n";

constexpr const char* kImportHelp =
    "FILE: one record a line, as 'export' prints them:\n"
    "  PREFIX [state=S] [hostname=H] [domains=D1,D2] [max_concurrent=N] [rate=N/min] [daily=N]\n"
    "         [expires=DATE] [ticket=T] [reason=\"...\"]\n"
    "Blank lines and lines starting with # are skipped. Nothing is applied unless every line is.\n";

const std::vector<Subcommand> kSubcommands = {
    {cmd::kStatus, "status", "is the gateway up; ports, workers, headline counters", no_options, {}, status},
    {cmd::kStats, "stats", "every counter", no_options, {}, stats},
    {"top",
     "top [--interval S] [--once]",
     "live view: traffic and refusal rates, top refused sources, tables",
     top_options,
     {},
     top,
     kTopHelp},
    {cmd::kApprove,
     "approve ADDR|CIDR [options]",
     "approve a server (or prefix) for outbound port 25",
     approve_options,
     {{"ADDR", true, "address or CIDR"}},
     approve},
    {cmd::kRequest,
     "request ADDR|CIDR [options]",
     "a customer's request for port 25, with the template's facts (pending)",
     request_options,
     {{"ADDR", true, "address or CIDR"}},
     request},
    {cmd::kRequests, "requests", "pending requests, oldest first", no_options, {}, requests},
    {cmd::kDeny,
     "deny ADDR|CIDR --reason R",
     "turn a pending request down; a new one only after request_cooldown",
     deny_options,
     {{"ADDR", true, "address or CIDR"}},
     deny},
    {cmd::kComplaint,
     "complaint ADDR|CIDR --ref ID [--reason R]",
     "record an abuse complaint; complaints_ban of them in complaints_window ban",
     complaint_options,
     {{"ADDR", true, "address or CIDR"}},
     complaint},
    {cmd::kSuspend,
     "suspend ADDR|CIDR",
     "switch an approval off for now (resume switches it back on)",
     state_options,
     {{"ADDR", true, "address or CIDR"}},
     set_state},
    {cmd::kResume,
     "resume ADDR|CIDR",
     "switch a suspended approval back on",
     state_options,
     {{"ADDR", true, "address or CIDR"}},
     set_state},
    {cmd::kRevoke,
     "revoke ADDR|CIDR [--ban]",
     "take an approval away; --ban: for good, approve will refuse it",
     revoke_options,
     {{"ADDR", true, "address or CIDR"}},
     set_state},
    {cmd::kUnban,
     "unban ADDR|CIDR --reason R",
     "lift a ban made in error (audited); the record becomes revoked",
     unban_options,
     {{"ADDR", true, "address or CIDR"}},
     unban},
    {cmd::kList,
     "list [--state S]",
     "approval records (approved, suspended, revoked, banned, pending, denied)",
     list_options,
     {},
     list},
    {cmd::kShow,
     "show ADDR|CIDR",
     "the record that applies to an address and the verdict",
     no_options,
     {{"ADDR", true, "address or CIDR"}},
     show},
    {"import",
     "import FILE",
     "apply a file of records, one per line, all or nothing",
     import_options,
     {{"FILE", true, "the file ('-': standard input)"}},
     import_file,
     kImportHelp},
    {cmd::kExport,
     "export",
     "print every stored record in the import format",
     no_options,
     {},
     export_records},
    {cmd::kManaged,
     "managed list|add|del [CIDR]",
     "the provider's prefixes the policy applies to",
     managed_options,
     {{"ACTION", false, "list, add or del"}, {"CIDR", false, "the prefix"}},
     overlay},
    {cmd::kRelay,
     "relay list|add|del [CIDR]",
     "the provider's relays, reachable by everyone",
     relay_options,
     {{"ACTION", false, "list, add or del"}, {"CIDR", false, "the prefix"}},
     overlay},
    {cmd::kMonitor,
     "monitor [on|off]",
     "report would-be refusals without refusing (no argument: show)",
     no_options,
     {{"STATE", false, "on or off"}},
     monitor},
    {cmd::kLimits,
     "limits [options]",
     "the default per-source SMTP limits (no option: show); stored",
     limits_options,
     {},
     limits},
    {cmd::kRules,
     "rules [show|reload]",
     "the inspection rules in force; reload rereads rules_dir",
     no_options,
     {{"ACTION", false, "show or reload"}},
     rules},
    {cmd::kFleet,
     "fleet init|adopt",
     "store = etcd: make etcd this fleet's, or take etcd's set as it is",
     no_options,
     {{"ACTION", true, "init or adopt"}},
     fleet,
     kFleetHelp},
    {"token",
     "token add|list|revoke [NAME]",
     "the HTTP API's tokens: add NAME --role R [--scope CIDR]..., list, revoke NAME",
     token_options,
     {{"ACTION", true, "add, list or revoke"}, {"NAME", false, "the token's name"}},
     token,
     kTokenHelp},
};

std::string command_list() {
    std::string text = "commands:\n";
    for (const auto& s : kSubcommands) {
        const std::string head = s.synopsis;
        text += "  " + head + std::string(head.size() < 29 ? 29 - head.size() : 1, ' ') + s.summary + "\n";
    }
    return text + "\n'portcullisctl COMMAND --help' shows a command's options.\n";
}

const Subcommand* find_subcommand(const std::string& name) {
    for (const auto& s : kSubcommands)
        if (name == s.name) return &s;
    return nullptr;
}

// Parses a subcommand's arguments and runs it. Throws Usage for bad arguments.
int run(const Subcommand& sc, const std::vector<std::string>& args, const std::string& socket, bool as_json,
        bool& connected) {
    const std::string name = sc.name;
    po::options_description visible(name + " options");
    visible.add_options()("help,h", "this help");
    sc.options(visible);
    po::options_description all;
    all.add(visible);
    po::positional_options_description pos;
    for (const auto& p : sc.positionals) {
        all.add_options()(p.name, po::value<std::string>(), p.help);
        pos.add(p.name, 1);
    }
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw Usage(name + ": " + e.what());
    }
    if (vm.count("help")) {
        std::cout << "usage: portcullisctl [--socket PATH] [--json] " << sc.synopsis << "\n\n"
                  << visible << "\n";
        if (sc.more_help) std::cout << sc.more_help;
        return 0;
    }
    for (const auto& p : sc.positionals)
        if (p.required && !vm.count(p.name))
            throw Usage(name + ": missing " + p.name + " (see portcullisctl " + name + " --help)");
    Ctx ctx(name, std::move(vm), socket, as_json);
    try {
        return sc.run(ctx);
    } catch (...) {
        connected = ctx.connected();
        throw;
    }
}

}  // namespace

int main(int argc, char** argv) {
    po::options_description global("portcullisctl options");
    const char* env_socket = std::getenv("PORTCULLIS_SOCKET");
    global.add_options()("help,h", "this help")(
        "socket,s",
        po::value<std::string>()->default_value(env_socket ? env_socket : "/run/portcullis/portcullis.sock"),
        "the daemon's control socket (or $PORTCULLIS_SOCKET)")("json", "print the daemon's JSON replies");
    po::options_description hidden;
    hidden.add_options()("command", po::value<std::string>())("args", po::value<std::vector<std::string>>());
    po::options_description all;
    all.add(global).add(hidden);
    po::positional_options_description pos;
    pos.add("command", 1).add("args", -1);

    po::variables_map vm;
    std::vector<std::string> sub;
    try {
        auto parsed =
            po::command_line_parser(argc, argv).options(all).positional(pos).allow_unregistered().run();
        po::store(parsed, vm);
        sub = po::collect_unrecognized(parsed.options, po::include_positional);
    } catch (const po::error& e) {
        std::fprintf(stderr, "portcullisctl: %s\n", e.what());
        return 2;
    }
    if (!vm.count("command")) {
        if (vm.count("help")) {
            std::cout << "usage: portcullisctl [options] COMMAND [ARGS]\n\n"
                      << global << "\n"
                      << command_list();
            return 0;
        }
        std::fprintf(stderr, "portcullisctl: missing command (see portcullisctl --help)\n");
        return 2;
    }
    const auto name = vm["command"].as<std::string>();
    if (!sub.empty() && sub.front() == name) sub.erase(sub.begin());
    if (vm.count("help")) sub.push_back("--help");

    bool connected = false;
    try {
        const Subcommand* sc = find_subcommand(name);
        if (!sc) throw Usage("unknown command '" + printable(name, 40) + "'");
        return run(*sc, sub, vm["socket"].as<std::string>(), vm.count("json") > 0, connected);
    } catch (const Usage& e) {
        std::fprintf(stderr, "portcullisctl: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "portcullisctl: %s\n", e.what());
        return connected ? 1 : 3;
    }
}
