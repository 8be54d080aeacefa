// Compiling the operator's rules beside the control loop, never on it: a child process parses rules_dir and
// runs Hyperscan's compiler (seconds for thousands of rules, docs/benchmarks.md), writes the databases
// (hs_serialize_database) into a memory file the parent gave it, and exits; the parent deserialises them and
// allocates one scratch per worker. A compile that outlives its timeout is killed (SIGKILL): it stops, and
// whatever was in force stays.
//
// Why a child process and not a thread: a thread cannot be stopped (Hyperscan's compiler has no cancel), so a
// runaway compile would burn the control core until it finished, and its memory would be the gateway's. Why
// posix_spawn of the daemon itself and not fork(): after the EAL has started threads, a forked child may only
// call async-signal-safe functions, and a compiler allocates; posix_spawn execs at once (clone + exec), so
// the child is a fresh process running the same binary (/proc/self/exe, the very version that is running,
// even if the file was replaced since), which enters rules_compiler_main() before anything else in main().
// The child runs niced (10), with oom_score_adj 1000 (if memory runs out, the kernel kills the compile, not
// the gateway), dies with its parent (PR_SET_PDEATHSIG), and inherits the spawning thread's CPU set: in the
// daemon, the control lcore's, so a compile never takes a worker's core.
//
// Use (the control loop calls poll() every pass, or wakes on fd()):
//
//   RulesCompiler compiler;                          // one per daemon
//   compiler.start(rules_job(cfg, workers));         // false: a compile is already under way
//   ...
//   if (auto r = compiler.poll()) { r->db ? use(r->db) : report(r->error); }
//
// Every start() that returns true yields exactly one result from poll() (or wait()): the rules, a rule's
// error as file:line, the timeout, or the child's failure. Not thread-safe: one control thread uses it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "control/config.hpp"
#include "control/policy/rules.hpp"

namespace portcullis {

// What to compile, and the limits.
struct RulesJob {
    std::string dir;          // every *.rules file in it
    unsigned workers = 1;     // scratch spaces allocated with the result (one per worker)
    size_t stream_limit = 0;  // inspect_stream_bytes: a set needing more is refused (0: no limit)
    size_t max_rules = 0;     // more rules than this is refused before compiling (0: no limit)
    std::chrono::milliseconds timeout{60'000};  // the child is killed after this
};

// The job the configuration asks for: rules_dir, inspect_stream_bytes, max_rules, rules_compile_timeout.
RulesJob rules_job(const Config& cfg, unsigned workers);

class RulesCompiler {
  public:
    // exe: the program to spawn, which must call rules_compiler_main() for kRulesCompilerArg (the daemon
    // does).
    explicit RulesCompiler(std::string exe = "/proc/self/exe");
    ~RulesCompiler();  // kills a compile under way and reaps it
    RulesCompiler(const RulesCompiler&) = delete;
    RulesCompiler& operator=(const RulesCompiler&) = delete;

    // Starts compiling. False, and nothing changes, when a compile is under way. A child that cannot be
    // started is reported by the next poll() like any other failure.
    bool start(const RulesJob& job);
    // A compile is under way: its result has not been returned yet.
    bool busy() const { return running_ || pending_.has_value(); }
    // A descriptor that becomes readable (POLLIN) when the child has exited (a pidfd); -1 when none is
    // running. Optional: poll() alone, called every pass of the control loop, is enough (a result waits at
    // most a pass).
    int fd() const { return pidfd_; }
    // Never blocks: the result once the child is done (or overdue: then it is killed), else nothing. Cheap
    // (a waitpid and a clock read) while the child works.
    std::optional<RulesResult> poll();
    // Blocks until the result (start-up, tests). Without a start(), an error result.
    RulesResult wait();
    // Kills a compile under way; its result is dropped.
    void cancel();
    // Rules the child has read so far (known once parsed, before Hyperscan runs); 0 when unknown.
    size_t rules_seen() const;

  private:
    RulesResult finish(int status, bool exited);
    void kill_child();
    void reap_killed();

    std::string exe_;
    RulesJob job_;
    bool running_ = false;
    pid_t pid_ = -1;
    int pidfd_ = -1;
    int memfd_ = -1;
    std::chrono::steady_clock::time_point started_, deadline_;
    std::optional<RulesResult> pending_;  // a result known at start() (the child could not be started)
    std::vector<pid_t> killed_;           // killed children not reaped yet
};

// The first argument that makes the daemon a rules compiler child: `portcullis --rules-compiler DIR
// STREAM_LIMIT MAX_RULES` (writes its result to fd 3). Not for operators.
inline constexpr const char* kRulesCompilerArg = "--rules-compiler";
int rules_compiler_main(int argc, char** argv);

}  // namespace portcullis
