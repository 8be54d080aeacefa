// portcullisctl: the operators' CLI. Approvals, revocations, limits, managed prefixes and relays on a running
// gateway, through its control socket. Human tables by default, --json for scripts. Exit codes: 0 done,
// 1 the daemon refused (its reason on stderr), 2 bad usage, 3 the daemon could not be reached.
#include <boost/program_options.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "control/approval.hpp"
#include "control/wire.hpp"
#include "tools/portcullisctl/client.hpp"
#include "tools/portcullisctl/render.hpp"

namespace po = boost::program_options;
using nlohmann::json;
using namespace portcullis;

namespace {

struct Usage : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr const char* kCommands =
    "commands:\n"
    "  status                       is the gateway up; ports, workers, headline counters\n"
    "  stats                        every counter\n"
    "  approve ADDR|CIDR [options]  approve a server (or prefix) for outbound port 25\n"
    "  suspend ADDR|CIDR            switch an approval off for now (resume switches it back on)\n"
    "  resume ADDR|CIDR             switch a suspended approval back on\n"
    "  revoke ADDR|CIDR [--ban]     take an approval away; --ban: for good, approve will refuse it\n"
    "  unban ADDR|CIDR --reason R   lift a ban made in error (audited); the record becomes revoked\n"
    "  list [--state S]             approval records (approved, suspended, revoked, banned)\n"
    "  show ADDR|CIDR               the record that applies to an address and the verdict\n"
    "  import FILE                  apply a file of records, one per line, all or nothing\n"
    "  export                       print every stored record in the import format\n"
    "  managed list|add|del [CIDR]  the provider's prefixes the policy applies to\n"
    "  relay list|add|del [CIDR]    the provider's relays, reachable by everyone\n"
    "  monitor [on|off]             report would-be refusals without refusing (no argument: show)\n"
    "  limits [options]             the default per-source SMTP limits (no option: show); stored\n"
    "  rules [show|reload]          the inspection rules in force; reload rereads rules_dir\n"
    "\n'portcullisctl COMMAND --help' shows a command's options.\n";

int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

po::variables_map parse_sub(const std::string& cmd, const std::vector<std::string>& args,
                            po::options_description& desc, const std::vector<std::string>& positional_names,
                            bool& help) {
    desc.add_options()("help,h", "this help");
    po::options_description all;
    all.add(desc);
    po::positional_options_description pos;
    for (const auto& n : positional_names) {
        all.add_options()(n.c_str(), po::value<std::string>(), n.c_str());
        pos.add(n.c_str(), 1);
    }
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw Usage(cmd + ": " + e.what());
    }
    help = vm.count("help") > 0;
    if (!help)
        for (const auto& n : positional_names)
            if (!vm.count(n)) throw Usage(cmd + ": missing " + n + " (see portcullisctl " + cmd + " --help)");
    return vm;
}

void print_help(const std::string& usage, const po::options_description& desc) {
    std::cout << "usage: portcullisctl [--socket PATH] [--json] " << usage << "\n\n" << desc << "\n";
}

// Fails with the daemon's reason when it refused.
json checked(const json& reply) {
    if (!reply.value("ok", false)) throw std::runtime_error(reply.value("error", std::string("refused")));
    return reply;
}

int run(ctl::Client& client, const std::string& cmd, const std::vector<std::string>& args, bool as_json,
        const std::string& socket_path, bool& connected) {
    auto connect = [&] {
        if (auto err = client.connect(socket_path); !err.empty()) {
            std::fprintf(stderr, "portcullisctl: %s\n", err.c_str());
            std::exit(3);
        }
        connected = true;
    };
    auto out = [&](const json& reply, const std::string& human) {
        if (as_json)
            std::cout << reply.dump(2) << "\n";
        else
            std::cout << human;
        return 0;
    };
    bool help = false;

    if (cmd == "status" || cmd == "stats" || cmd == "export") {
        po::options_description d(cmd + " options");
        parse_sub(cmd, args, d, {}, help);
        if (help) return print_help(cmd, d), 0;
        connect();
        const json r = checked(client.call({{"cmd", cmd}}));
        if (cmd == "status") return out(r, ctl::render_status(r));
        if (cmd == "stats") return out(r, ctl::render_counters(r));
        std::string text;
        for (const auto& l : r["lines"]) text += l.get<std::string>() + "\n";
        return out(r, text);
    }
    if (cmd == "approve") {
        po::options_description d("approve options");
        d.add_options()("hostname", po::value<std::string>(), "the FQDN its EHLO must name (its rDNS)")(
            "domain", po::value<std::vector<std::string>>(), "a sending domain for MAIL FROM (repeatable)")(
            "max-concurrent", po::value<unsigned>(), "concurrent SMTP connections allowed")(
            "rate", po::value<std::string>(), "new SMTP connections allowed, e.g. 30/min or 600/h")(
            "daily", po::value<unsigned>(), "messages per day")("ticket", po::value<std::string>(),
                                                                "support ticket or service id")(
            "reason", po::value<std::string>(), "why it is approved")(
            "expires", po::value<std::string>(),
            "when it stops applying: 2026-12-31, 2026-12-31T18:00:00Z, +30d")(
            "force", "approve a prefix wider than /24 (IPv6 /48) or one covering a whole managed prefix");
        auto vm = parse_sub(cmd, args, d, {"ADDR"}, help);
        if (help) return print_help("approve ADDR|CIDR [options]", d), 0;
        json req = {{"cmd", "approve"}, {"addr", vm["ADDR"].as<std::string>()}};
        if (vm.count("hostname")) {
            const auto h = vm["hostname"].as<std::string>();
            if (!valid_hostname(h))
                throw Usage("approve: --hostname '" + h + "' is not a fully qualified domain name");
            req["hostname"] = h;
        }
        if (vm.count("domain")) {
            for (const auto& dn : vm["domain"].as<std::vector<std::string>>())
                if (!valid_hostname(dn)) throw Usage("approve: --domain '" + dn + "' is not a domain name");
            req["domains"] = vm["domain"].as<std::vector<std::string>>();
        }
        if (vm.count("max-concurrent")) req["max_concurrent"] = vm["max-concurrent"].as<unsigned>();
        if (vm.count("rate")) {
            auto r = parse_rate(vm["rate"].as<std::string>());
            if (!r || *r == 0)
                throw Usage("approve: --rate '" + vm["rate"].as<std::string>() +
                            "' is not a rate such as 30/min");
            req["rate_per_min"] = *r;
        }
        if (vm.count("daily")) req["daily"] = vm["daily"].as<unsigned>();
        if (vm.count("ticket")) req["ticket"] = vm["ticket"].as<std::string>();
        if (vm.count("reason")) req["reason"] = vm["reason"].as<std::string>();
        if (vm.count("expires")) {
            auto t = parse_time(vm["expires"].as<std::string>(), now_s());
            if (!t)
                throw Usage("approve: --expires '" + vm["expires"].as<std::string>() +
                            "' is not a date such as 2026-12-31 or +30d");
            req["expires"] = *t;
        }
        if (vm.count("force")) req["force"] = true;
        connect();
        const json r = checked(client.call(req));
        std::string human = "approved " + r["record"]["prefix"].get<std::string>() + "\n";
        if (r.contains("note")) human += "note: " + r["note"].get<std::string>() + "\n";
        return out(r, human + ctl::render_record(r["record"]));
    }
    if (cmd == "suspend" || cmd == "resume" || cmd == "revoke") {
        po::options_description d(cmd + " options");
        d.add_options()("reason", po::value<std::string>(), "why")("ticket", po::value<std::string>(),
                                                                   "ticket id");
        if (cmd == "revoke")
            d.add_options()("ban", "revoke for good (after abuse): approve will refuse it")(
                "force", "ban a prefix wider than /24 (IPv6 /48) or one covering a whole managed prefix");
        auto vm = parse_sub(cmd, args, d, {"ADDR"}, help);
        if (help) return print_help(cmd + " ADDR|CIDR [options]", d), 0;
        json req = {{"cmd", cmd}, {"addr", vm["ADDR"].as<std::string>()}};
        if (vm.count("reason")) req["reason"] = vm["reason"].as<std::string>();
        if (vm.count("ticket")) req["ticket"] = vm["ticket"].as<std::string>();
        if (vm.count("ban")) req["ban"] = true;
        if (vm.count("force")) req["force"] = true;
        connect();
        const json r = checked(client.call(req));
        return out(r, r["record"]["prefix"].get<std::string>() + " is now " +
                          r["record"]["state"].get<std::string>() + "\n");
    }
    if (cmd == "unban") {
        po::options_description d("unban options");
        d.add_options()("reason", po::value<std::string>(), "why the ban is lifted (required; audited)")(
            "ticket", po::value<std::string>(), "ticket id");
        auto vm = parse_sub(cmd, args, d, {"ADDR"}, help);
        if (help) return print_help("unban ADDR|CIDR --reason R", d), 0;
        if (!vm.count("reason")) throw Usage("unban: --reason is required (it is kept in the audit log)");
        json req = {{"cmd", "unban"},
                    {"addr", vm["ADDR"].as<std::string>()},
                    {"reason", vm["reason"].as<std::string>()}};
        if (vm.count("ticket")) req["ticket"] = vm["ticket"].as<std::string>();
        connect();
        const json r = checked(client.call(req));
        return out(r, r["record"]["prefix"].get<std::string>() + " is no longer banned (now " +
                          r["record"]["state"].get<std::string>() + "; approve it to let it send)\n");
    }
    if (cmd == "list") {
        po::options_description d("list options");
        d.add_options()("state", po::value<std::string>(),
                        "only records in this state: approved, suspended, revoked, banned");
        auto vm = parse_sub(cmd, args, d, {}, help);
        if (help) return print_help("list [--state S]", d), 0;
        json req = {{"cmd", "list"}};
        if (vm.count("state")) req["state"] = vm["state"].as<std::string>();
        connect();
        const json r = checked(client.call(req));
        return out(r, ctl::render_records(r["records"]));
    }
    if (cmd == "show") {
        po::options_description d("show options");
        auto vm = parse_sub(cmd, args, d, {"ADDR"}, help);
        if (help) return print_help("show ADDR|CIDR", d), 0;
        connect();
        const json r = checked(client.call({{"cmd", "show"}, {"addr", vm["ADDR"].as<std::string>()}}));
        return out(r, ctl::render_show(r));
    }
    if (cmd == "import") {
        po::options_description d("import options");
        d.add_options()("force", "accept records approving or banning wide prefixes (see approve --force)");
        auto vm = parse_sub(cmd, args, d, {"FILE"}, help);
        if (help) {
            print_help("import FILE", d);
            std::cout << "FILE: one record a line, as 'export' prints them:\n"
                         "  PREFIX [state=S] [hostname=H] [domains=D1,D2] [max_concurrent=N] [rate=N/min] "
                         "[daily=N]\n"
                         "         [expires=DATE] [ticket=T] [reason=\"...\"]\n"
                         "Blank lines and lines starting with # are skipped. Nothing is applied unless every "
                         "line is.\n";
            return 0;
        }
        const auto path = vm["FILE"].as<std::string>();
        std::ifstream in(path == "-" ? "/dev/stdin" : path);
        if (!in) throw Usage("import: cannot read '" + path + "'");
        connect();
        checked(client.call({{"cmd", "import_begin"}}));
        std::string line;
        json chunk = json::array();
        size_t line_no = 0, first = 1;
        auto flush = [&] {
            try {
                checked(client.call({{"cmd", "import_chunk"}, {"first_line", first}, {"lines", chunk}}));
            } catch (const std::runtime_error& e) {
                throw std::runtime_error(path + ": " + e.what());
            }
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
        json r;
        try {
            json commit = {{"cmd", "import_commit"}};
            if (vm.count("force")) commit["force"] = true;
            r = checked(client.call(commit, 300));
        } catch (const std::runtime_error& e) {
            throw std::runtime_error(path + ": " + e.what());
        }
        return out(r, "imported " + r["applied"].dump() + " record(s) from " + path + "; the store holds " +
                          r["records"].dump() + "\n");
    }
    if (cmd == "managed" || cmd == "relay") {
        po::options_description d(cmd + " options");
        d.add_options()("ACTION", po::value<std::string>(), "list, add or del")(
            "PREFIX", po::value<std::string>(), "CIDR");
        po::positional_options_description pos;
        pos.add("ACTION", 1).add("PREFIX", 1);
        d.add_options()("help,h", "this help")(
            "force", cmd == "managed" ? "del: lift the policy from a whole managed prefix"
                                      : "add: a relay wider than /24 (IPv6 /48)");
        po::variables_map vm;
        try {
            po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
        } catch (const po::error& e) {
            throw Usage(cmd + ": " + e.what());
        }
        if (vm.count("help")) return print_help(cmd + " list|add|del [CIDR]", d), 0;
        const std::string action = vm.count("ACTION") ? vm["ACTION"].as<std::string>() : "list";
        if (action != "list" && action != "add" && action != "del")
            throw Usage(cmd + ": '" + action + "' is not one of list, add, del");
        json req = {{"cmd", cmd}, {"action", action}};
        if (action != "list") {
            if (!vm.count("PREFIX")) throw Usage(cmd + " " + action + ": missing CIDR");
            req["prefix"] = vm["PREFIX"].as<std::string>();
        }
        if (vm.count("force")) req["force"] = true;
        connect();
        const json r = checked(client.call(req));
        std::string text;
        for (const auto& p : r["prefixes"]) text += p.get<std::string>() + "\n";
        return out(r, text);
    }
    if (cmd == "limits") {
        po::options_description d("limits options (0: unlimited)");
        d.add_options()("max-concurrent", po::value<unsigned>(), "open SMTP connections per source at once")(
            "rate", po::value<std::string>(), "new SMTP connections per source, e.g. 60/min or 600/h")(
            "daily", po::value<unsigned>(), "SMTP messages per source per UTC day");
        auto vm = parse_sub(cmd, args, d, {}, help);
        if (help) return print_help("limits [--max-concurrent N] [--rate R] [--daily N]", d), 0;
        json req = {{"cmd", "limits"}};
        if (vm.count("max-concurrent")) req["max_concurrent"] = vm["max-concurrent"].as<unsigned>();
        if (vm.count("daily")) req["daily"] = vm["daily"].as<unsigned>();
        if (vm.count("rate")) {
            const auto text = vm["rate"].as<std::string>();
            const auto r = text == "0" ? std::optional<uint32_t>(0) : parse_rate(text);
            if (!r) throw Usage("limits: --rate '" + text + "' is not a rate such as 60/min or 600/h");
            req["rate_per_min"] = *r;
        }
        connect();
        const json r = checked(client.call(req));
        return out(r, ctl::render_limits(r));
    }
    if (cmd == "rules") {
        po::options_description d("rules options");
        d.add_options()("help,h", "this help")("ACTION", po::value<std::string>(), "show or reload");
        po::positional_options_description pos;
        pos.add("ACTION", 1);
        po::variables_map vm;
        try {
            po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
        } catch (const po::error& e) {
            throw Usage(cmd + ": " + e.what());
        }
        if (vm.count("help")) return print_help("rules [show|reload]", d), 0;
        const std::string action = vm.count("ACTION") ? vm["ACTION"].as<std::string>() : "show";
        if (action != "show" && action != "reload")
            throw Usage("rules: '" + action + "' is not show or reload");
        connect();
        const json r = checked(client.call({{"cmd", "rules"}, {"action", action}}));
        std::string text = (action == "reload" ? "reloaded: " : "") + r["rules"].dump() + " rule(s) from " +
                           r.value("rules_dir", std::string()) + "\n";
        for (const auto& rule : r.value("list", json::array()))
            text += "  " + rule["id"].dump() + "  " + rule["where"].get<std::string>() + "  " +
                    (rule["refuse"].get<bool>() ? rule["reply"].get<std::string>()
                                                : std::string("(count only)")) +
                    "\n";
        return out(r, text);
    }
    if (cmd == "monitor") {
        po::options_description d("monitor options");
        d.add_options()("help,h", "this help")("STATE", po::value<std::string>(), "on or off");
        po::positional_options_description pos;
        pos.add("STATE", 1);
        po::variables_map vm;
        try {
            po::store(po::command_line_parser(args).options(d).positional(pos).run(), vm);
        } catch (const po::error& e) {
            throw Usage(cmd + ": " + e.what());
        }
        if (vm.count("help")) return print_help("monitor [on|off]", d), 0;
        json req = {{"cmd", "monitor"}};
        if (vm.count("STATE")) {
            const auto st = vm["STATE"].as<std::string>();
            if (st != "on" && st != "off") throw Usage("monitor: '" + st + "' is not on or off");
            req["enable"] = st == "on";
        }
        connect();
        const json r = checked(client.call(req));
        return out(r, std::string("monitor mode is ") +
                          (r["monitor"].get<bool>() ? "on: nothing is refused, "
                                                      "would-be refusals are counted"
                                                    : "off: the policy is enforced") +
                          "\n");
    }
    throw Usage("unknown command '" + cmd + "'");
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
            std::cout << "usage: portcullisctl [options] COMMAND [ARGS]\n\n" << global << "\n" << kCommands;
            return 0;
        }
        std::fprintf(stderr, "portcullisctl: missing command (see portcullisctl --help)\n");
        return 2;
    }
    const auto cmd = vm["command"].as<std::string>();
    if (!sub.empty() && sub.front() == cmd) sub.erase(sub.begin());
    if (vm.count("help")) sub.push_back("--help");

    ctl::Client client;
    bool connected = false;
    try {
        return run(client, cmd, sub, vm.count("json") > 0, vm["socket"].as<std::string>(), connected);
    } catch (const Usage& e) {
        std::fprintf(stderr, "portcullisctl: %s\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "portcullisctl: %s\n", e.what());
        return connected ? 1 : 3;
    }
}
