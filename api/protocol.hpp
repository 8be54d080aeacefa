// The control protocol between portcullisctl (or any client) and the daemon: its version and the names of
// its commands and envelope keys, shared by both ends so that neither spells them on its own. One JSON
// object a line each way: requests {"v": 1, "cmd": NAME, ...}, replies {"v": 1, "ok": true, ...} or
// {"v": 1, "ok": false, "error": "one line"} (api/wire.hpp). docs/control.md lists every command's arguments.
#pragma once

namespace portcullis {

inline constexpr int kProtocolVersion = 1;

// The envelope's keys.
namespace key {
inline constexpr const char* kVersion = "v";
inline constexpr const char* kCmd = "cmd";
inline constexpr const char* kOk = "ok";
inline constexpr const char* kError = "error";
inline constexpr const char* kCode = "code";  // an error's kind, when it has one (err:: below)
}  // namespace key

// An error reply's kinds ("code"), where the kind matters to a client (the HTTP API's status: 409, 404,
// 403); an error without one is a bad request.
namespace err {
inline constexpr const char* kBanned = "banned";            // the address is banned (409)
inline constexpr const char* kConflict = "conflict";        // the record's state does not allow it (409)
inline constexpr const char* kNotFound = "not_found";       // no such record or token (404)
inline constexpr const char* kForbidden = "forbidden";      // not for this caller (403)
inline constexpr const char* kUnavailable = "unavailable";  // a service it needs is not there now (503)
}  // namespace err

// Command names.
namespace cmd {
// reports
inline constexpr const char* kStatus = "status";
inline constexpr const char* kStats = "stats";
inline constexpr const char* kList = "list";
inline constexpr const char* kShow = "show";
inline constexpr const char* kExport = "export";
// approvals
inline constexpr const char* kApprove = "approve";
inline constexpr const char* kSuspend = "suspend";
inline constexpr const char* kResume = "resume";
inline constexpr const char* kRevoke = "revoke";
inline constexpr const char* kUnban = "unban";
inline constexpr const char* kRequest = "request";
inline constexpr const char* kRequests = "requests";
inline constexpr const char* kDeny = "deny";
inline constexpr const char* kComplaint = "complaint";
inline constexpr const char* kImportBegin = "import_begin";
inline constexpr const char* kImportChunk = "import_chunk";
inline constexpr const char* kImportCommit = "import_commit";
// settings
inline constexpr const char* kManaged = "managed";
inline constexpr const char* kRelay = "relay";
inline constexpr const char* kMonitor = "monitor";
inline constexpr const char* kLimits = "limits";
inline constexpr const char* kRules = "rules";
// The fleet (store = etcd); the CLI's word for both.
inline constexpr const char* kFleet = "fleet";
inline constexpr const char* kFleetInit = "fleet_init";
inline constexpr const char* kFleetAdopt = "fleet_adopt";
// The HTTP API's bearer tokens (portcullisctl token add|list|revoke).
inline constexpr const char* kTokenAdd = "token_add";
inline constexpr const char* kTokenList = "token_list";
inline constexpr const char* kTokenRevoke = "token_revoke";
// Tests only (allow_test_hooks = true): {"worker": N, "ms": M} stalls a worker (the watchdog's test).
inline constexpr const char* kTestStallWorker = "test_stall_worker";
}  // namespace cmd

}  // namespace portcullis
