// The control protocol's wire form, bounded and never throwing: a request line in (size and nesting capped,
// parse errors reported without echoing the raw bytes), a reply line out (invalid UTF-8 replaced, never an
// exception), and `printable()` for quoting client text inside an error message.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "api/protocol.hpp"

namespace portcullis {

// Deeper requests are refused before nlohmann sees them: every request is at most two levels deep, and
// recursive serialisation of a deep value (in an error message, say) would overflow the stack.
inline constexpr size_t kMaxRequestDepth = 16;

// Parses one request line: the JSON value, or nullopt with *why (a one-line reason quoting no raw bytes).
std::optional<nlohmann::json> parse_request(std::string_view line, std::string* why);
// One reply line, '\n'-terminated. Invalid UTF-8 in any string is replaced (U+FFFD), never thrown.
std::string reply_line(const nlohmann::json& reply);
// The two reply envelopes: {"v": 1, "ok": true, ...body} and {"v": 1, "ok": false, "error": why}. An error
// may say what kind it is, for the HTTP API's status (api/protocol.hpp's error codes): "code": kind.
nlohmann::json ok_reply(nlohmann::json body = nlohmann::json::object());
nlohmann::json error_reply(const std::string& why, const char* code = nullptr);
// Client text made safe to quote in a one-line message: invalid UTF-8 and control characters become '?',
// and anything past `max` bytes is cut with "...".
std::string printable(std::string_view text, size_t max = 80);
bool valid_utf8(std::string_view text);

}  // namespace portcullis
