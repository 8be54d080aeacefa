// Rules compiled in a child process (see rules_compiler.hpp).
#include "control/policy/rules_compiler.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

extern char** environ;

namespace portcullis {

namespace {

// The result file: a header the child writes first (so that a timeout can say how many rules it was
// compiling), the body once it is done, and a trailer that proves the body complete.
constexpr char kMagic[8] = {'P', 'C', 'R', 'U', 'L', 'E', 'S', '1'};
constexpr char kEnd[8] = {'P', 'C', 'R', 'U', 'L', 'E', 'N', 'D'};
constexpr off_t kCountAt = 8;
constexpr off_t kBodyAt = 16;
constexpr uint64_t kUnknown = ~uint64_t{0};
constexpr int kResultFd = 3;

bool write_all(int fd, const void* data, size_t n, off_t at) {
    const char* p = static_cast<const char*>(data);
    while (n) {
        const ssize_t w = pwrite(fd, p, n, at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
        at += w;
    }
    return true;
}

class Writer {
  public:
    void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u32(uint32_t v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
    void u64(uint64_t v) { out_.append(reinterpret_cast<const char*>(&v), sizeof v); }
    void str(std::string_view s) {
        u64(s.size());
        out_.append(s);
    }
    void raw(const char* p, size_t n) { out_.append(p, n); }
    const std::string& bytes() const { return out_; }

  private:
    std::string out_;
};

class Reader {
  public:
    Reader(const std::string& in, size_t at) : in_(in), at_(at) {}
    bool ok() const { return ok_; }
    uint8_t u8() { return static_cast<uint8_t>(take(1)[0]); }
    uint32_t u32() { return get<uint32_t>(); }
    uint64_t u64() { return get<uint64_t>(); }
    std::string str() {
        const uint64_t n = u64();
        if (!ok_ || n > in_.size() - at_) {
            ok_ = false;
            return {};
        }
        return std::string(take(n), n);
    }
    bool at_end_marker() {
        const char* p = take(sizeof kEnd);
        return ok_ && std::memcmp(p, kEnd, sizeof kEnd) == 0;
    }

  private:
    template <class T>
    T get() {
        T v{};
        std::memcpy(&v, take(sizeof v), sizeof v);
        return v;
    }
    const char* take(size_t n) {
        static const char zeros[16] = {};
        if (!ok_ || n > in_.size() - at_) {
            ok_ = false;
            return zeros;
        }
        const char* p = in_.data() + at_;
        at_ += n;
        return p;
    }
    const std::string& in_;
    size_t at_;
    bool ok_ = true;
};

std::string serialize_db(const hs_database_t* db, std::string& out) {
    out.clear();
    if (!db) return {};
    char* bytes = nullptr;
    size_t n = 0;
    if (hs_serialize_database(db, &bytes, &n) != HS_SUCCESS) return "rules: cannot serialise the database";
    out.assign(bytes, n);
    std::free(bytes);
    return {};
}

std::string deserialize_db(const std::string& bytes, hs_database_t** db) {
    *db = nullptr;
    if (bytes.empty()) return {};
    if (hs_deserialize_database(bytes.data(), bytes.size(), db) != HS_SUCCESS)
        return "rules: the compiled database does not load";
    return {};
}

std::string seconds_text(std::chrono::milliseconds ms) {
    char buf[32];
    if (ms.count() % 1000 == 0)
        std::snprintf(buf, sizeof buf, "%lld s", static_cast<long long>(ms.count() / 1000));
    else
        std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms.count()) / 1000);
    return buf;
}

}  // namespace

RulesJob rules_job(const Config& cfg, unsigned workers) {
    RulesJob j;
    j.dir = cfg.rules_dir;
    j.workers = workers;
    j.stream_limit = cfg.inspect_stream_bytes;
    j.max_rules = cfg.max_rules;
    j.timeout = std::chrono::seconds(cfg.rules_compile_timeout);
    return j;
}

// ---- the child ----

int rules_compiler_main(int argc, char** argv) {
    // argv: exe, --rules-compiler, dir, stream_limit, max_rules, parent pid
    if (argc != 6) {
        std::fprintf(stderr, "portcullis: %s is internal to the daemon\n", kRulesCompilerArg);
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != static_cast<pid_t>(std::strtol(argv[5], nullptr, 10))) return 1;  // the parent is gone
    // Below the control loop on its core; first to go if memory runs out.
    setpriority(PRIO_PROCESS, 0, 10);
    if (FILE* f = std::fopen("/proc/self/oom_score_adj", "w")) {
        std::fputs("1000", f);
        std::fclose(f);
    }
    const std::string dir = argv[2];
    const size_t stream_limit = std::strtoull(argv[3], nullptr, 10);
    const size_t max_rules = std::strtoull(argv[4], nullptr, 10);

    uint64_t count = kUnknown;
    if (!write_all(kResultFd, kMagic, sizeof kMagic, 0) ||
        !write_all(kResultFd, &count, sizeof count, kCountAt))
        return 1;
    InspectDb db;
    RuleFiles files;
    std::string err = read_rules_dir(dir, files);
    if (err.empty())
        err = build_rules(files, stream_limit, max_rules, db, [](size_t n) {
            const uint64_t c = n;
            write_all(kResultFd, &c, sizeof c, kCountAt);
        });
    std::string main_db, probe_db;
    if (err.empty()) err = serialize_db(db.db, main_db);
    if (err.empty()) err = serialize_db(db.probe, probe_db);

    Writer w;
    w.u8(err.empty() ? 1 : 0);
    w.str(err);
    w.u64(db.rules.size());
    w.u64(db.stream_bytes);
    w.str(db.source);
    if (err.empty()) {
        w.u64(db.rules.size());
        for (const auto& r : db.rules) {
            w.u32(r.id);
            w.u8(static_cast<uint8_t>(r.target));
            w.u8(r.refuse ? 1 : 0);
            w.str(r.reply);
            w.str(r.where);
        }
        w.str(main_db);
        w.str(probe_db);
    }
    w.raw(kEnd, sizeof kEnd);
    return write_all(kResultFd, w.bytes().data(), w.bytes().size(), kBodyAt) ? 0 : 1;
}

// ---- the parent ----

RulesCompiler::RulesCompiler(std::string exe) : exe_(std::move(exe)) {}

RulesCompiler::~RulesCompiler() {
    cancel();
    for (pid_t pid : killed_) waitpid(pid, nullptr, 0);
}

bool RulesCompiler::start(const RulesJob& job) {
    if (busy()) return false;
    reap_killed();
    job_ = job;
    started_ = std::chrono::steady_clock::now();
    deadline_ = started_ + job.timeout;
    auto failed = [&](const std::string& why) {
        pending_ = RulesResult{nullptr, "rules: cannot start the compiler process: " + why, 0, 0};
        if (memfd_ >= 0) ::close(memfd_);
        memfd_ = -1;
        return true;
    };
    memfd_ = memfd_create("portcullis-rules", MFD_CLOEXEC);
    if (memfd_ < 0) return failed(std::strerror(errno));
    if (memfd_ == kResultFd) {  // dup2 onto itself would keep close-on-exec: move it out of the way
        const int moved = fcntl(memfd_, F_DUPFD_CLOEXEC, kResultFd + 1);
        ::close(memfd_);
        memfd_ = moved;
        if (memfd_ < 0) return failed(std::strerror(errno));
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, memfd_, kResultFd);
    // Nothing else of the daemon's (the control socket, the EAL's files) reaches the child.
    posix_spawn_file_actions_addclosefrom_np(&fa, kResultFd + 1);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    const std::string stream = std::to_string(job.stream_limit), max = std::to_string(job.max_rules),
                      parent = std::to_string(getpid());
    std::vector<char*> args = {const_cast<char*>("portcullis-rules-compiler"),
                               const_cast<char*>(kRulesCompilerArg),
                               const_cast<char*>(job.dir.c_str()),
                               const_cast<char*>(stream.c_str()),
                               const_cast<char*>(max.c_str()),
                               const_cast<char*>(parent.c_str()),
                               nullptr};
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, exe_.c_str(), &fa, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) return failed(exe_ + ": " + std::strerror(rc));
    pid_ = pid;
    running_ = true;
    pidfd_ =
        static_cast<int>(syscall(SYS_pidfd_open, pid, 0));  // -1 on kernels before 5.3: poll() still works
    return true;
}

size_t RulesCompiler::rules_seen() const {
    if (memfd_ < 0) return 0;
    uint64_t count = kUnknown;
    if (pread(memfd_, &count, sizeof count, kCountAt) != sizeof count || count == kUnknown) return 0;
    return count;
}

void RulesCompiler::kill_child() {
    if (!running_) return;
    kill(pid_, SIGKILL);
    // Reaped later (a big compile takes a moment to unmap): never wait here.
    if (waitpid(pid_, nullptr, WNOHANG) == 0) killed_.push_back(pid_);
    running_ = false;
    pid_ = -1;
    if (pidfd_ >= 0) ::close(pidfd_);
    pidfd_ = -1;
}

void RulesCompiler::reap_killed() {
    std::erase_if(killed_, [](pid_t pid) { return waitpid(pid, nullptr, WNOHANG) != 0; });
}

void RulesCompiler::cancel() {
    kill_child();
    pending_.reset();
    if (memfd_ >= 0) ::close(memfd_);
    memfd_ = -1;
}

std::optional<RulesResult> RulesCompiler::poll() {
    reap_killed();
    if (pending_) {
        auto r = std::move(*pending_);
        pending_.reset();
        return r;
    }
    if (!running_) return std::nullopt;
    int status = 0;
    const pid_t w = waitpid(pid_, &status, WNOHANG);
    if (w == pid_ || (w < 0 && errno == ECHILD)) {  // ECHILD: SIGCHLD ignored, reaped by the kernel
        running_ = false;
        pid_ = -1;
        if (pidfd_ >= 0) ::close(pidfd_);
        pidfd_ = -1;
        auto r = finish(status, w == pid_);
        ::close(memfd_);
        memfd_ = -1;
        return r;
    }
    if (std::chrono::steady_clock::now() < deadline_) return std::nullopt;
    const size_t n = rules_seen();
    kill_child();
    ::close(memfd_);
    memfd_ = -1;
    RulesResult r;
    r.rules = n;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    r.error =
        (n ? "rules: compiling " + std::to_string(n) + " rules" : std::string("rules: reading ") + job_.dir) +
        " took longer than rules_compile_timeout = " + seconds_text(job_.timeout);
    return r;
}

RulesResult RulesCompiler::wait() {
    for (;;) {
        if (auto r = poll()) return *r;
        if (!running_) return {nullptr, "rules: no compile was started", 0, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline_ - std::chrono::steady_clock::now());
        const int ms = static_cast<int>(std::clamp<long long>(left.count() + 1, 1, 100));
        if (pidfd_ >= 0) {
            pollfd p{pidfd_, POLLIN, 0};
            ::poll(&p, 1, ms);
        } else {
            usleep(static_cast<useconds_t>(std::min(ms, 10)) * 1000);
        }
    }
}

RulesResult RulesCompiler::finish(int status, bool exited) {
    RulesResult r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    struct stat st {};
    std::string bytes;
    if (fstat(memfd_, &st) == 0 && st.st_size > kBodyAt) {
        bytes.resize(static_cast<size_t>(st.st_size));
        if (pread(memfd_, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) bytes.clear();
    }
    Reader in(bytes, kBodyAt);
    const bool ok = in.u8() == 1;
    std::string error = in.str();
    const size_t rules = in.u64();
    auto db = std::make_shared<InspectDb>();
    db->stream_bytes = in.u64();
    db->source = in.str();
    if (ok) {
        const uint64_t n = in.u64();
        for (uint64_t i = 0; i < n && in.ok(); ++i) {
            InspectRule rule;
            rule.id = in.u32();
            rule.target = static_cast<RuleTarget>(in.u8());
            rule.refuse = in.u8() == 1;
            rule.reply = in.str();
            rule.where = in.str();
            db->rules.push_back(std::move(rule));
        }
        const std::string main_db = in.str(), probe_db = in.str();
        if (in.ok() && in.at_end_marker()) {
            error = deserialize_db(main_db, &db->db);
            if (error.empty()) error = deserialize_db(probe_db, &db->probe);
            if (error.empty()) error = add_scratch(*db, job_.workers);
            r.rules = db->rules.size();
            if (error.empty()) r.db = std::move(db);
            r.error = std::move(error);
            return r;
        }
    } else if (in.ok() && in.at_end_marker()) {
        r.rules = rules;
        r.error = std::move(error);
        return r;
    }
    // No complete result: the child died.
    r.rules = rules_seen();
    std::string how = "ended without a result";
    if (exited && WIFSIGNALED(status))
        how = "was killed by signal " + std::to_string(WTERMSIG(status)) +
              (WTERMSIG(status) == SIGKILL ? " (out of memory?)" : "");
    else if (exited && WIFEXITED(status) && WEXITSTATUS(status) != 0)
        how = "exited with status " + std::to_string(WEXITSTATUS(status));
    r.error = "rules: the compiler process " + how;
    return r;
}

}  // namespace portcullis
