// Rules compiled in a child process (the daemon spawned as a compiler): the result is the same rule set the
// in-process compile gives, errors name file:line, a compile past its timeout is killed (and no child is
// left), and the control loop's poll() never blocks.
#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "control/policy/rules_compiler.hpp"

using namespace portcullis;
using namespace std::chrono_literals;

namespace {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/portcullis-rules-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    void write(const std::string& name, const std::string& text) const { std::ofstream(path / name) << text; }
    std::string str() const { return path.string(); }
};

RulesJob job_for(const std::string& dir, unsigned workers = 2) {
    RulesJob j;
    j.dir = dir;
    j.workers = workers;
    j.stream_limit = 2048;
    j.max_rules = 100000;
    j.timeout = 60s;
    return j;
}

// What the control loop does: poll() every few milliseconds until the result comes.
RulesResult poll_until_done(RulesCompiler& c, std::chrono::seconds limit = 60s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        const auto t0 = std::chrono::steady_clock::now();
        auto r = c.poll();
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms) << "poll() must not block";
        if (r) return *r;
        std::this_thread::sleep_for(5ms);
    }
    ADD_FAILURE() << "no result";
    return {};
}

// This process's children (zombies included).
int children() {
    int n = 0;
    const std::string me = std::to_string(getpid());
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        std::ifstream stat(e.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        std::string state, ppid;
        rest >> state >> ppid;
        n += ppid == me;
    }
    return n;
}

TEST(RulesCompiler, CompilesTheShippedRulesLikeTheInProcessCompile) {
    RulesCompiler c(PORTCULLIS_EXE);
    EXPECT_FALSE(c.busy());
    EXPECT_FALSE(c.poll());
    ASSERT_TRUE(c.start(job_for(std::string(PORTCULLIS_SOURCE_DIR) + "/rules")));
    EXPECT_TRUE(c.busy());
    EXPECT_GE(c.fd(), 0) << "a pidfd to wake the control loop";
    EXPECT_FALSE(c.start(job_for("/nonexistent"))) << "one compile at a time";
    const auto r = poll_until_done(c);
    EXPECT_FALSE(c.busy());
    EXPECT_EQ(c.fd(), -1);
    ASSERT_TRUE(r.db) << r.error;
    const auto local = load_rules(std::string(PORTCULLIS_SOURCE_DIR) + "/rules", 2, 2048);
    ASSERT_TRUE(local.db) << local.error;
    EXPECT_EQ(r.rules, local.rules);
    EXPECT_EQ(r.db->stream_bytes, local.db->stream_bytes);
    EXPECT_EQ(r.db->source, local.db->source);
    ASSERT_EQ(r.db->rules.size(), local.db->rules.size());
    for (size_t i = 0; i < r.db->rules.size(); ++i) {
        EXPECT_EQ(r.db->rules[i].id, local.db->rules[i].id);
        EXPECT_EQ(r.db->rules[i].target, local.db->rules[i].target);
        EXPECT_EQ(r.db->rules[i].refuse, local.db->rules[i].refuse);
        EXPECT_EQ(r.db->rules[i].reply, local.db->rules[i].reply);
        EXPECT_EQ(r.db->rules[i].where, local.db->rules[i].where);
    }
    EXPECT_EQ(r.db->scratch.size(), 2u) << "one scratch per worker, allocated by the parent";
    ASSERT_TRUE(r.db->db && r.db->probe);

    // The deserialised database reports the rule's index, through the inspector as the workers use it.
    Inspector insp(4, 2048);
    Counters counters;
    InspectPolicy pol;
    pol.db = r.db.get();
    pol.worker = 1;
    const std::string session = "EHLO localhost\r\n";
    const uint32_t slot = insp.open(1);
    const auto v = insp.feed(slot, reinterpret_cast<const uint8_t*>(session.data()),
                             static_cast<uint32_t>(session.size()), 1, pol, counters);
    insp.close(slot);
    EXPECT_EQ(v.kind, InspectResult::Violation);
    EXPECT_EQ(v.rule, 1001u);
    const std::string probe = "EHLO mail.example.com\r\n";
    EXPECT_TRUE(probe_smtp(*r.db, 0, reinterpret_cast<const uint8_t*>(probe.data()),
                           static_cast<uint16_t>(probe.size())));
    EXPECT_EQ(children(), 0);
}

TEST(RulesCompiler, ABadRuleIsReportedAsFileAndLine) {
    TempDir dir;
    dir.write("a.rules", "1 ehlo refuse /ok$/\n");
    dir.write("b.rules", "# comment\n2 ehlo refuse /broken(/\n");
    RulesCompiler c(PORTCULLIS_EXE);
    ASSERT_TRUE(c.start(job_for(dir.str())));
    const auto r = c.wait();
    EXPECT_FALSE(r.db);
    EXPECT_EQ(r.error.rfind(dir.str() + "/b.rules:2: Missing close parenthesis", 0), 0u) << r.error;

    dir.write("b.rules", "2 ehlo block /x/\n");
    ASSERT_TRUE(c.start(job_for(dir.str())));
    EXPECT_EQ(poll_until_done(c).error, dir.str() + "/b.rules:1: action 'block' is not one of refuse, count");

    ASSERT_TRUE(c.start(job_for(dir.str() + "/missing")));
    EXPECT_EQ(c.wait().error, "rules_dir: '" + dir.str() + "/missing' is not a directory");
    EXPECT_EQ(children(), 0);
}

TEST(RulesCompiler, MaxRulesNamesTheFileAndTheCount) {
    TempDir dir;
    dir.write("a.rules", synthetic_rules(3));
    dir.write("b.rules", "9 line count /X/\n");
    RulesCompiler c(PORTCULLIS_EXE);
    auto job = job_for(dir.str());
    job.max_rules = 2;
    ASSERT_TRUE(c.start(job));
    auto r = c.wait();
    EXPECT_FALSE(r.db);
    EXPECT_EQ(r.error, dir.str() + "/a.rules: 3 rules, 4 in all, exceed max_rules = 2");
    EXPECT_EQ(r.rules, 4u);
    job.max_rules = 4;
    ASSERT_TRUE(c.start(job));
    r = c.wait();
    EXPECT_TRUE(r.db) << r.error;
    EXPECT_EQ(compile_rules({{"x.rules", synthetic_rules(5)}}, 1, 0, 4).error,
              "x.rules: 5 rules exceed max_rules = 4");
}

TEST(RulesCompiler, ACompilePastItsTimeoutIsKilledAndTheNextOneRuns) {
    TempDir dir;
    dir.write("big.rules", synthetic_rules(5000));  // about 5 s of Hyperscan here
    RulesCompiler c(PORTCULLIS_EXE);
    auto job = job_for(dir.str());
    job.timeout = 1s;
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(c.start(job));
    const auto r = poll_until_done(c);
    const auto took = std::chrono::steady_clock::now() - t0;
    EXPECT_FALSE(r.db);
    EXPECT_EQ(r.error, "rules: compiling 5000 rules took longer than rules_compile_timeout = 1 s");
    EXPECT_EQ(r.rules, 5000u);
    EXPECT_LT(took, 3s);
    EXPECT_FALSE(c.busy());
    // The next compile runs at once, and the killed child does not linger.
    dir.write("big.rules", synthetic_rules(8));
    job.timeout = 60s;
    ASSERT_TRUE(c.start(job));
    const auto next = c.wait();
    EXPECT_TRUE(next.db) << next.error;
    EXPECT_EQ(next.rules, 8u);
    // SIGKILL is not instant (the child unmaps its memory): each poll() reaps what has exited since.
    for (int i = 0; i < 200 && children() > 0; ++i) {
        EXPECT_FALSE(c.poll());
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_EQ(children(), 0) << "the killed compile was reaped";
}

TEST(RulesCompiler, DestroyingItKillsACompileUnderWay) {
    TempDir dir;
    dir.write("big.rules", synthetic_rules(5000));
    {
        RulesCompiler c(PORTCULLIS_EXE);
        ASSERT_TRUE(c.start(job_for(dir.str())));
        std::this_thread::sleep_for(100ms);
        EXPECT_FALSE(c.poll());
        EXPECT_EQ(children(), 1);
    }
    EXPECT_EQ(children(), 0);
    RulesCompiler c(PORTCULLIS_EXE);
    ASSERT_TRUE(c.start(job_for(dir.str())));
    c.cancel();
    EXPECT_FALSE(c.busy());
    EXPECT_FALSE(c.poll()) << "a cancelled compile has no result";
}

TEST(RulesCompiler, AChildThatCannotStartIsAResult) {
    RulesCompiler c("/nonexistent/portcullis");
    ASSERT_TRUE(c.start(job_for("/tmp")));
    EXPECT_TRUE(c.busy());
    const auto r = c.poll();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->error,
              "rules: cannot start the compiler process: /nonexistent/portcullis: No such file or directory");
    EXPECT_FALSE(c.busy());
}

TEST(RulesCompiler, JobFromTheConfiguration) {
    Config cfg;
    cfg.rules_dir = "/srv/rules";
    cfg.inspect_stream_bytes = 1024;
    cfg.max_rules = 42;
    cfg.rules_compile_timeout = 7;
    const auto j = rules_job(cfg, 3);
    EXPECT_EQ(j.dir, "/srv/rules");
    EXPECT_EQ(j.workers, 3u);
    EXPECT_EQ(j.stream_limit, 1024u);
    EXPECT_EQ(j.max_rules, 42u);
    EXPECT_EQ(j.timeout, 7s);
}

}  // namespace
