// Replays fuzz inputs without libFuzzer: links with one target's LLVMFuzzerTestOneInput and runs it over
// every file in the directories (or the files) named on the command line, in name order. A missing directory
// is skipped (a target may have no regression cases yet); names starting with '.' are skipped. A failing
// input aborts, as under libFuzzer, after its path is printed. Registered as the meson suite `fuzz`, so every
// seed and every kept crash runs on each `tools/test`, also under ASan and UBSan.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

int main(int argc, char** argv) {
    size_t total = 0;
    for (int i = 1; i < argc; ++i) {
        const fs::path arg = argv[i];
        std::vector<fs::path> files;
        std::error_code ec;
        if (fs::is_directory(arg, ec)) {
            for (const auto& e : fs::directory_iterator(arg, ec))
                if (e.is_regular_file() && !e.path().filename().string().starts_with("."))
                    files.push_back(e.path());
            std::sort(files.begin(), files.end());
        } else if (fs::is_regular_file(arg, ec)) {
            files.push_back(arg);
        } else {
            std::printf("%s: none (skipped)\n", arg.c_str());
            continue;
        }
        for (const auto& f : files) {
            std::ifstream in(f, std::ios::binary);
            if (!in) {
                std::fprintf(stderr, "%s: cannot read\n", f.c_str());
                return 1;
            }
            const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            std::fprintf(stderr, "replaying %s\n", f.c_str());
            LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
        }
        std::printf("%s: %zu input(s)\n", arg.c_str(), files.size());
        total += files.size();
    }
    std::printf("replayed %zu input(s), all passed\n", total);
    return 0;
}
