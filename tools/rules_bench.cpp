// rules-bench: how long N rules take to compile, the way the daemon does it and the way it did before.
//
//   build/tools/rules-bench [--exe build/control/portcullis] [--before-max 10000] [--inprocess-max 10000]
//                           [--max-rules 5000] [--timeout 60] N...
//
// For each N it writes N distinct rules (EHLO names, sender domains, command lines, a quarter of each kind,
// half of them ending in `$`) into a directory under /tmp and prints:
// - before: Hyperscan's compile of the expressions as they were before a trailing `$` took the newline
//   (every `$` a multiline end anchor), in this process (up to --before-max rules);
// - in-process: load_rules(), parse and compile as now (up to --inprocess-max rules);
// - daemon: the daemon's path (RulesCompiler: the daemon spawned as a compiler child, the result
// deserialised,
//   one scratch per worker) with max_rules and rules_compile_timeout as given, and the longest poll() the
//   control loop would have made meanwhile.
// Wall-clock and CPU seconds; the machine is shared, so CPU seconds are the steadier figure.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/policy/rules.hpp"
#include "control/policy/rules_compiler.hpp"

using namespace portcullis;
using Steady = std::chrono::steady_clock;

namespace {

double cpu_seconds(int who = RUSAGE_SELF) {
    rusage u{};
    getrusage(who, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double since(Steady::time_point t0) {
    return std::chrono::duration<double>(Steady::now() - t0).count();
}

// The expressions as compiled before: rule_expression() with the trailing `\r?\n` put back as `\r?$`.
void before(const std::string& file, size_t n) {
    std::vector<std::string> exprs;
    std::vector<unsigned> flags, ids;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, target;
        f >> id >> target;
        const auto a = line.find('/'), b = line.rfind('/');
        const std::string pat = line.substr(a + 1, b - a - 1);
        std::string e = rule_expression(target == "ehlo"        ? RuleTarget::Ehlo
                                        : target == "mail_from" ? RuleTarget::MailFrom
                                                                : RuleTarget::Line,
                                        pat);
        if (!pat.empty() && pat.back() == '$') e = e.substr(0, e.size() - std::strlen("\\r?\\n)")) + "\\r?$)";
        exprs.push_back(e);
        flags.push_back(HS_FLAG_MULTILINE | (line.compare(b + 1, 1, "i") == 0 ? HS_FLAG_CASELESS : 0));
        ids.push_back(static_cast<unsigned>(ids.size()));
    }
    std::vector<const char*> p;
    for (const auto& e : exprs) p.push_back(e.c_str());
    const double c0 = cpu_seconds();
    const auto t0 = Steady::now();
    hs_database_t* db = nullptr;
    hs_compile_error_t* err = nullptr;
    const bool ok = hs_compile_multi(p.data(), flags.data(), ids.data(), static_cast<unsigned>(p.size()),
                                     HS_MODE_STREAM, nullptr, &db, &err) == HS_SUCCESS;
    const double wall = since(t0), cpu = cpu_seconds() - c0;
    size_t stream = 0;
    if (ok) hs_stream_size(db, &stream);
    std::printf("  before      %7zu rules: %s %8.2f s wall %8.2f s cpu, stream state %zu bytes\n", n,
                ok ? "ok   " : "error", wall, cpu, stream);
    hs_free_compile_error(err);
    if (db) hs_free_database(db);
}

}  // namespace

int main(int argc, char** argv) {
    std::string exe = "build/control/portcullis";
    size_t before_max = 10000, inprocess_max = 10000, max_rules = 5000;
    unsigned timeout = 60;
    std::vector<size_t> counts;
    constexpr const char* kUsage =
        "usage: rules-bench [--exe PATH] [--before-max N] [--inprocess-max N] [--max-rules N] [--timeout S] "
        "[COUNT...]\n";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
        // A whole number, or one line and exit code 2.
        auto number = [&](const std::string& v) -> size_t {
            size_t used = 0;
            try {
                const auto n = std::stoul(v, &used);
                if (used == v.size()) return n;
            } catch (const std::exception&) {
            }
            std::fprintf(stderr, "rules-bench: '%s' is not a whole number\n%s", v.c_str(), kUsage);
            std::exit(2);
        };
        if (a == "--exe")
            exe = next();
        else if (a == "--before-max")
            before_max = number(next());
        else if (a == "--inprocess-max")
            inprocess_max = number(next());
        else if (a == "--max-rules")
            max_rules = number(next());
        else if (a == "--timeout")
            timeout = static_cast<unsigned>(number(next()));
        else
            counts.push_back(number(a));
    }
    if (counts.empty()) counts = {1000, 10000, 100000};
    for (size_t n : counts) {
        const std::string dir = "/tmp/portcullis-rules-bench/" + std::to_string(n);
        std::filesystem::create_directories(dir);
        std::ofstream(dir + "/gen.rules") << synthetic_rules(n);
        std::printf("%zu rules (%s)\n", n, dir.c_str());
        std::fflush(stdout);
        if (n <= before_max)
            before(dir + "/gen.rules", n);
        else
            std::printf("  before      %7zu rules: skipped (--before-max %zu)\n", n, before_max);
        if (n <= inprocess_max) {
            const double c0 = cpu_seconds();
            const auto t0 = Steady::now();
            const auto r = load_rules(dir, 1, 0);
            std::printf("  in-process  %7zu rules: %s %8.2f s wall %8.2f s cpu, stream state %zu bytes\n", n,
                        r.db ? "ok   " : "error", since(t0), cpu_seconds() - c0,
                        r.db ? r.db->stream_bytes : 0);
        } else {
            std::printf("  in-process  %7zu rules: skipped (--inprocess-max %zu)\n", n, inprocess_max);
        }
        RulesJob job;
        job.dir = dir;
        job.workers = 1;
        job.stream_limit = 512;
        job.max_rules = max_rules;
        job.timeout = std::chrono::seconds(timeout);
        const double c0 = cpu_seconds(RUSAGE_CHILDREN);
        const auto t0 = Steady::now();
        double waiting = 0, last = 0,
               wall = 0;  // the longest poll() while the child works; the one with the result
        std::optional<RulesResult> r;
        {
            RulesCompiler compiler(exe);
            compiler.start(job);
            for (;;) {
                const auto p0 = Steady::now();
                r = compiler.poll();
                (r ? last : waiting) = std::max(r ? last : waiting, since(p0));
                if (r) break;
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
            wall = since(t0);
        }  // a killed child is reaped here: its CPU time counts
        std::printf(
            "  daemon      %7zu rules: %s %8.2f s wall %8.2f s cpu (child); poll(): %.3f ms at most while it "
            "works, %.1f ms for the result%s%s\n",
            n, r->db ? "ok   " : "error", wall, cpu_seconds(RUSAGE_CHILDREN) - c0, waiting * 1e3, last * 1e3,
            r->db ? "" : ": ", r->error.c_str());
        std::fflush(stdout);
    }
}
