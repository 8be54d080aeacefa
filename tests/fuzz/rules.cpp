// Fuzz target: the operator's inspection rule files (rules/README.md), compiled by compile_rules()
// (control/policy/rules.hpp) into Hyperscan databases, as `portcullisctl rules reload` and the daemon's start
// do. The input is one file's text ("fuzz.rules"), at most 4 KiB (Hyperscan's compiler is slow on large
// inputs); one worker, a stream-state limit of 512 bytes (the default inspect_stream_bytes).
// Properties: compile_rules() returns; either a database with one scratch and one rule record per rule line,
// or no database and a "file:line: why" (or "rules: why") error on one line.
#include <cstddef>
#include <cstdint>
#include <string>

#include "control/policy/rules.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace portcullis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > 4096) return 0;
    const std::string text(reinterpret_cast<const char*>(data), size);
    RulesResult r;
    try {
        r = compile_rules({{"fuzz.rules", text}}, 1, 512);
    } catch (const std::exception& e) {
        fuzz::fail("compile_rules() threw: %s", e.what());
    }
    if (fuzz::verbose())
        std::fprintf(stderr, "  -> %zu rule(s), %s\n", r.rules, r.db ? "compiled" : r.error.c_str());
    if (r.db) {
        if (!r.error.empty()) fuzz::fail("a database and an error: %s", r.error.c_str());
        if (r.db->scratch.size() != 1 || !r.db->probe) fuzz::fail("a database without its scratch or probe");
        if (r.rules != r.db->rules.size())
            fuzz::fail("%zu rules counted, %zu kept", r.rules, r.db->rules.size());
        if ((r.rules == 0) != (r.db->db == nullptr)) fuzz::fail("a streaming database iff there are rules");
        if (r.db->stream_bytes > 512)
            fuzz::fail("stream state of %zu bytes over the limit", r.db->stream_bytes);
        for (const auto& rule : r.db->rules) {
            if (rule.id == 0 || !rule.reply.starts_with("550 5.7.1 "))
                fuzz::fail("a rule without id or reply");
            for (char ch : rule.reply)
                if (ch < 0x20 || ch > 0x7e) fuzz::fail("a reply with byte 0x%02x", ch & 0xff);
        }
    } else {
        if (r.error.empty()) fuzz::fail("no database and no error");
        if (!r.error.starts_with("fuzz.rules:") && !r.error.starts_with("rules"))
            fuzz::fail("an error that does not name the file: %s", r.error.c_str());
    }
    return 0;
}
