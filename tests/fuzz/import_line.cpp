// Fuzz target: one line of the import/export format (docs/control.md), as `portcullisctl import` sends it
// and import_chunk parses it with parse_line() (api/approval.hpp). The input is the line.
// Properties: parse_line() returns a record, or nothing with an empty reason (blank or comment line), or
// nothing with a one-line reason. With PORTCULLIS_FUZZ_ROUNDTRIP on (the default; =0 turns it off), a
// record that parses also survives both its text forms unchanged:
// - to_line(a) is one line, and parse_line(to_line(a)) == a (what `export` writes, `import` reads back);
// - approval_from_json(to_json(a)) == a (what the store writes, it reads back at the next start).
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/approval.hpp"
#include "tests/fuzz/fuzz_util.hpp"

#ifndef PORTCULLIS_FUZZ_ROUNDTRIP
#define PORTCULLIS_FUZZ_ROUNDTRIP 1
#endif

using namespace portcullis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool roundtrip =
        fuzz::env_switch("PORTCULLIS_FUZZ_ROUNDTRIP", PORTCULLIS_FUZZ_ROUNDTRIP != 0);
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    std::string why;
    std::optional<Approval> a;
    try {
        a = parse_line(line, &why);
    } catch (const std::exception& e) {
        fuzz::fail("parse_line() threw: %s", e.what());
    }
    if (fuzz::verbose()) std::fprintf(stderr, "  -> %s\n", a ? to_line(*a).c_str() : why.c_str());
    if (!a) {
        if (why.find('\n') != std::string::npos && line.find('\n') == std::string_view::npos)
            fuzz::fail("a reason spans lines: %s", why.c_str());
        return 0;
    }
    if (!why.empty()) fuzz::fail("a record and a reason: %s", why.c_str());
    if (!roundtrip) return 0;

    const std::string text = to_line(*a);
    if (text.find_first_of("\r\n") != std::string::npos)
        fuzz::fail("the export line of a record spans lines: '%s'", text.c_str());
    std::string why2;
    const auto back = parse_line(text, &why2);
    if (!back) fuzz::fail("export line '%s' does not import: %s", text.c_str(), why2.c_str());
    if (!(*back == *a)) fuzz::fail("export line '%s' imports as '%s'", text.c_str(), to_line(*back).c_str());

    nlohmann::json j;
    try {
        j = to_json(*a);
        if (!(approval_from_json(j) == *a)) fuzz::fail("the JSON form changes the record: %s", text.c_str());
    } catch (const std::exception& e) {
        fuzz::fail("the store could not read back the record it writes for '%s': %s", text.c_str(), e.what());
    }
    return 0;
}
