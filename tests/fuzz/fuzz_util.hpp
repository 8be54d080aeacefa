// Helpers shared by the fuzz targets: temporary files and directories that go away at exit, switches read
// from the environment, a property failure that libFuzzer (and the replay runner) reports as a crash, and a
// DPDK EAL for the targets that need its heap (rte_zmalloc, for the policy publisher's RCU state).
#pragma once

#include <rte_eal.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace portcullis::fuzz {

// "1"/"0" from the environment, else `dflt`.
inline bool env_switch(const char* name, bool dflt) {
    const char* v = std::getenv(name);
    if (!v || !*v) return dflt;
    return !(std::strcmp(v, "0") == 0 || std::strcmp(v, "off") == 0 || std::strcmp(v, "false") == 0);
}

// PORTCULLIS_FUZZ_VERBOSE=1: the targets print what each input came to (to see what a seed exercises).
inline bool verbose() {
    static const bool v = env_switch("PORTCULLIS_FUZZ_VERBOSE", false);
    return v;
}

// PORTCULLIS_FUZZ_NOTHROW=0: an exception out of the code under test is ignored instead of failing the input,
// to explore past a known bug of that kind (the default, 1, is the property the code must hold).
inline bool nothrow_checked() {
    static const bool v = env_switch("PORTCULLIS_FUZZ_NOTHROW", true);
    return v;
}

// A property the target checks does not hold: say which, then abort (libFuzzer saves the input).
[[noreturn]] inline void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline void fail(const char* fmt, ...) {
    std::fputs("\n== fuzz property failed: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputs("\n", stderr);
    std::fflush(stderr);
    std::abort();
}

// Removes `dir` (and what it holds) at exit.
inline void remove_at_exit(const std::filesystem::path& dir) {
    static std::vector<std::filesystem::path> dirs;
    if (dirs.empty())
        std::atexit([] {
            std::error_code ec;
            for (const auto& d : dirs) std::filesystem::remove_all(d, ec);
        });
    dirs.push_back(dir);
}

// A fresh directory under $PORTCULLIS_FUZZ_TMP, else /dev/shm (the store syncs every change: tmpfs keeps
// that cheap), else /tmp; removed at exit.
inline std::filesystem::path make_temp_dir(const char* what) {
    std::string base;
    if (const char* t = std::getenv("PORTCULLIS_FUZZ_TMP"); t && *t)
        base = t;
    else if (::access("/dev/shm", W_OK) == 0)
        base = "/dev/shm";
    else
        base = "/tmp";
    // A crashed run (abort: no exit handlers) leaves its directory behind: the name carries the process id,
    // so that the next run removes those of processes that are gone.
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
        const std::string name = e.path().filename().string();
        if (!name.starts_with("portcullis-fuzz-")) continue;
        const size_t dash = name.rfind('-');
        const size_t before = dash == std::string::npos ? 0 : name.rfind('-', dash - 1);
        const long pid = before ? std::atol(name.c_str() + before + 1) : 0;
        if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
            std::filesystem::remove_all(e.path(), ec);
    }
    std::string tmpl = base + "/portcullis-fuzz-" + what + "-" + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) fail("mkdtemp %s: %s", tmpl.c_str(), std::strerror(errno));
    remove_at_exit(tmpl);
    return tmpl;
}

inline void write_file(const std::filesystem::path& path, std::string_view data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!out) fail("cannot write %s", path.c_str());
}

// The input's lines, split on '\n' (the last one may lack it).
inline std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> out;
    size_t start = 0;
    while (start < text.size()) {
        const size_t nl = text.find('\n', start);
        if (nl == std::string_view::npos) {
            out.push_back(text.substr(start));
            break;
        }
        out.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

// The EAL, as the unit tests start it (no hugepages, no PCI, no shared config, a file prefix of its own),
// once per process. The EAL pins the calling thread to its lcore: the thread's CPU set is given back
// afterwards.
inline void init_eal_once() {
    static const bool done = [] {
        cpu_set_t cpus;
        const bool saved = sched_getaffinity(0, sizeof cpus, &cpus) == 0;
        std::vector<std::string> args = {"portcullis-fuzz",
                                         "-l",
                                         "0",
                                         "--no-huge",
                                         "--no-pci",
                                         "-m",
                                         "64",
                                         "--no-shconf",
                                         "--file-prefix=pcfuzz" + std::to_string(getpid()),
                                         "--no-telemetry",
                                         "--log-level=error"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) fail("rte_eal_init failed");
        if (saved) sched_setaffinity(0, sizeof cpus, &cpus);
        // /var/run/dpdk/PREFIX, made even with --no-shconf: no other process attaches to this one, and
        // removed now it is not left behind by a crash.
        std::error_code ec;
        std::filesystem::remove_all(rte_eal_get_runtime_dir(), ec);
        return true;
    }();
    (void)done;
}

}  // namespace portcullis::fuzz
