// An approval record: who may send on blocked ports, under which names and limits, and in which state.
// Also its two text forms: JSON (the store and the control protocol) and the one-line import/export format:
//   PREFIX [key=value ...]     e.g. 198.51.100.10 hostname=mail.example.com domains=example.com,example.org
//                                   max_concurrent=5 rate=30/min daily=2000 ticket=T-1042 reason="invoices"
// Values containing spaces, quotes, backslashes or control characters are double-quoted, with backslash
// escapes (\" \\ \n \r \t \xHH), so an export line is always one line and `import` of an `export`
// round-trips.
// '#' starts a comment line.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/net_addr.hpp"

namespace portcullis {

enum class ApprovalState : uint8_t {
    Approved,   // may send
    Suspended,  // switched off for now (by the customer or an operator); resume switches it back on
    Revoked,    // taken away; a later approve may grant it again
    Banned,     // revoked for good after abuse: approve refuses it
    Pending,    // a customer's request, waiting for staff's review (refused meanwhile)
    Denied,     // a request turned down: a new one only after retry_after (request_cooldown), or --force
};
inline constexpr int kStates = 6;

// Bounds on a record's fields, the same for the CLI, the protocol, import lines and the store.
inline constexpr int64_t kMaxTime = 253402300799;  // 9999-12-31T23:59:59Z: a date every tool can print
inline constexpr size_t kMaxTicket = 128, kMaxReason = 1024, kMaxDomains = 64;
inline constexpr int64_t kMaxConcurrent = 1'000'000, kMaxRatePerMin = 1'000'000, kMaxDaily = 100'000'000;
inline constexpr size_t kMaxFact = 1024, kMaxComplaints = 100, kMaxComplaintRef = 128;

// The request template's facts (seed 004), beyond the host name and domains the record holds: what staff
// review. Keys from kFactKeys only; volume_daily and volume_monthly are whole numbers.
inline constexpr const char* kFactKeys[] = {
    "service_id", "software",    "mail_type", "volume_daily",   "volume_monthly",
    "recipients", "list_source", "use_case",  "abuse_controls", "spf",
    "dkim",       "dmarc",       "rdns",      "website",        "why_not_submission"};
bool is_fact_key(std::string_view k);
// "" or why the value does not do for the key (length, a number for the volumes).
std::string check_fact(std::string_view key, std::string_view value);

// One abuse complaint against the record's addresses (an abuse desk's id, or a feedback-loop report's).
struct Complaint {
    std::string ref;     // the id: 1 to 128 printable characters, no space or comma
    int64_t at = 0;      // unix seconds
    std::string reason;  // may be empty
    std::string operator_name;
    bool operator==(const Complaint&) const = default;
};
bool valid_complaint_ref(std::string_view ref);

const char* state_name(ApprovalState s);
std::optional<ApprovalState> parse_state(std::string_view s);

struct Approval {
    Prefix prefix;
    ApprovalState state = ApprovalState::Approved;
    std::string hostname;              // the EHLO name the server must use (empty: any FQDN)
    std::vector<std::string> domains;  // MAIL FROM domains it may use (empty: any)
    uint32_t max_concurrent = 0;       // per-source limits; 0: the configured default
    uint32_t rate_per_min = 0;
    uint32_t daily = 0;
    std::string ticket, reason, operator_name;
    int64_t created = 0, updated = 0;  // unix seconds
    int64_t expires = 0;               // unix seconds; 0: never
    // The approval lifecycle (docs/workflow.md).
    std::map<std::string, std::string> facts;  // the request's template (kFactKeys)
    int64_t requested = 0;                     // when the last request was made (pending since)
    int64_t retry_after = 0;                   // Denied: when a new request is allowed
    std::vector<Complaint> complaints;         // the newest kMaxComplaints, oldest first
    nlohmann::json dns;                        // the last DNS check of the host name (null: none)

    // Does this record let its sources send at time `now`?
    bool grants(int64_t now) const {
        return state == ApprovalState::Approved && (expires == 0 || now < expires);
    }
    bool operator==(const Approval&) const = default;
};

nlohmann::json to_json(const Approval& a);
nlohmann::json complaints_json(const std::vector<Complaint>& list);
// Throws std::runtime_error naming the field at fault.
Approval approval_from_json(const nlohmann::json& j);

std::string to_line(const Approval& a);
// Parses one import line. Returns nullopt for blank and comment lines with *why empty, or with *why set.
std::optional<Approval> parse_line(std::string_view line, std::string* why);

// Strict total order on prefixes: family, first address, then length (shorter, i.e. wider, first).
struct PrefixLess {
    bool operator()(const Prefix& a, const Prefix& b) const;
};

// "2026-12-31", "2026-12-31T18:00:00Z", "+30d", "+12h", "+10m", "+90s" -> unix seconds (nullopt if
// unreadable).
std::optional<int64_t> parse_time(std::string_view text, int64_t now);
std::string format_time(int64_t t);

// Strict validators shared by the CLI and the daemon.
// "" or why operator text (a ticket, a reason) is refused: longer than `max` bytes. Any text is kept as it
// is; the export line escapes control characters and the CLI prints them as '?'.
std::string check_text(const char* field, std::string_view v, size_t max);
bool valid_hostname(std::string_view h);                    // a fully qualified domain name
std::optional<uint32_t> parse_rate(std::string_view text);  // "30/min", "600/h", "30" -> per minute

}  // namespace portcullis
