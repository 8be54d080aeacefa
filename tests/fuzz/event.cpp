// Fuzz target: the event stream's lines (control/daemon/event_log.hpp) from whatever a worker's event and
// the control side's context hold: the first 64 bytes are a RefusalEvent as a ring would carry it (any
// reason, flags, addresses), the rest three texts split at NULs (the EHLO name and MAIL FROM domain a client
// chose, a rule's reply line). Properties: the line is one valid JSON object (no raw newline, valid UTF-8
// whatever the texts), its event_type and reason are among the schema's, and the per-source figures and the
// last minute's top take the event without failing.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "control/daemon/event_log.hpp"
#include "control/daemon/source_stats.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace portcullis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < sizeof(RefusalEvent)) return 0;
    RefusalEvent e;
    std::memcpy(&e, data, sizeof e);
    std::string rest(reinterpret_cast<const char*>(data) + sizeof e, size - sizeof e);
    EventContext ctx;
    std::string* texts[] = {&ctx.helo, &ctx.mail_from, &ctx.signature};
    size_t at = 0;
    for (auto* t : texts) {
        const size_t nul = rest.find('\0', at);
        *t = rest.substr(at, nul == std::string::npos ? std::string::npos : nul - at);
        if (nul == std::string::npos) break;
        at = nul + 1;
    }
    if (e.flags & 4) ctx.approval = {{"prefix", ctx.helo}, {"state", "banned"}, {"ticket", ctx.signature}};
    int64_t when = 0;
    std::memcpy(&when, data + 32, sizeof when);
    const std::string line =
        format_event(e, when, ctx, "gw").dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (line.find('\n') != std::string::npos) fuzz::fail("an event spans lines: %s", line.c_str());
    if (!nlohmann::json::accept(line)) fuzz::fail("an event is not valid JSON: %s", line.c_str());
    const auto j = nlohmann::json::parse(line);
    const std::string type = j["event_type"];
    if (type != "refusal" && type != "limit_refusal" && type != "payload_refusal")
        fuzz::fail("event_type %s", type.c_str());
    static SourceStats stats;
    stats.record(e, when / 1'000'000);
    (void)stats.top_recent(3, when / 1'000'000);
    return 0;
}
