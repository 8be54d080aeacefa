// Fuzz target: the daemon's INI configuration file (--config PATH), read by Boost.Program_options and
// validated by parse_config() (control/config.hpp). The input is the file's text; it is written to a
// temporary file and parsed with `--config PATH` alone, so the required keys come from the file too.
// Properties: parse_config() returns (never throws); an accepted configuration holds what the daemon relies
// on (distinct ports, managed prefixes, reply lines that fit one printable line); a refusal names a reason.
#include <cstddef>
#include <cstdint>
#include <string>

#include "control/config.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace portcullis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::filesystem::path path = fuzz::make_temp_dir("config") / "portcullis.conf";
    fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
    ConfigResult r;
    try {
        r = parse_config({"--config", path.string()});
    } catch (const std::exception& e) {
        fuzz::fail("parse_config() threw: %s", e.what());
    }
    if (fuzz::verbose())
        std::fprintf(stderr, "  -> %s\n", r.status == ConfigResult::Status::Run ? "run" : r.message.c_str());
    switch (r.status) {
        case ConfigResult::Status::Error:
            if (r.message.empty()) fuzz::fail("a refused configuration without a reason");
            if (r.message.find('\n') != std::string::npos)
                fuzz::fail("the reason spans lines: %s", r.message.c_str());
            break;
        case ConfigResult::Status::Exit:  // help or version: a file cannot ask for them
            fuzz::fail("a configuration file made parse_config() answer Exit");
        case ConfigResult::Status::Run: {
            const Config& c = r.config;
            if (c.inside_port == c.outside_port) fuzz::fail("inside and outside are the same port");
            if (c.managed_prefixes.empty()) fuzz::fail("accepted without managed_prefixes");
            for (const auto& line : c.replies) {
                if (line.size() < 4 || line.size() > 400)
                    fuzz::fail("a reply line of %zu bytes", line.size());
                for (char ch : line)
                    if (ch < 0x20 || ch > 0x7e) fuzz::fail("a reply line with byte 0x%02x", ch & 0xff);
            }
            for (auto p : c.blocked_ports)
                if (p == 0) fuzz::fail("blocked port 0");
            if (c.state_dir.empty() || c.control_socket.empty()) fuzz::fail("an empty path");
            if (c.inspect_bytes < 64 || c.max_flows < 16) fuzz::fail("a size below its minimum");
            break;
        }
    }
    return 0;
}
