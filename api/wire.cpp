// Control protocol wire form (see wire.hpp).
#include "api/wire.hpp"

namespace portcullis {

namespace {

// Nesting depth of a JSON text, counting brackets outside strings; stops counting past `limit`.
size_t nesting_depth(std::string_view s, size_t limit) {
    size_t depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max && (max = depth) > limit) return max;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return max;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0.
size_t utf8_len(std::string_view s, size_t i) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t min, cp;
    if (b < 0x80) return 1;
    if ((b & 0xe0) == 0xc0) {
        n = 2, min = 0x80, cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
        n = 3, min = 0x800, cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, cp = b & 0x07;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
        const auto c = static_cast<unsigned char>(s[i + k]);
        if ((c & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

}  // namespace

std::string printable(std::string_view text, size_t max) {
    std::string out;
    out.reserve(std::min(text.size(), max) + 3);
    for (size_t i = 0; i < text.size();) {
        const size_t n = utf8_len(text, i);
        if (out.size() + std::max<size_t>(n, 1) > max) {
            out += "...";
            break;
        }
        const auto b = static_cast<unsigned char>(text[i]);
        if (n == 0 || (n == 1 && (b < 0x20 || b == 0x7f))) {
            out += '?';
            ++i;
        } else {
            out.append(text.substr(i, n));
            i += n;
        }
    }
    return out;
}

bool valid_utf8(std::string_view text) {
    for (size_t i = 0; i < text.size();) {
        const size_t n = utf8_len(text, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::optional<nlohmann::json> parse_request(std::string_view line, std::string* why) {
    if (nesting_depth(line, kMaxRequestDepth) > kMaxRequestDepth) {
        *why = "malformed request: nested deeper than " + std::to_string(kMaxRequestDepth) + " levels";
        return std::nullopt;
    }
    try {
        return nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
        // nlohmann's message quotes the bytes it last read: those may be anything.
        *why = "malformed JSON at byte " + std::to_string(e.byte) + ": " + printable(e.what(), 160);
    } catch (const std::exception& e) {
        *why = "malformed JSON: " + printable(e.what(), 160);
    } catch (...) {
        *why = "malformed JSON";
    }
    return std::nullopt;
}

std::string reply_line(const nlohmann::json& reply) {
    try {
        return reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } catch (...) {  // only a value nested past the stack could get here; replies are built shallow
        return R"({"v":1,"ok":false,"error":"internal error: unprintable reply"})"
               "\n";
    }
}

nlohmann::json ok_reply(nlohmann::json body) {
    body[key::kVersion] = kProtocolVersion;
    body[key::kOk] = true;
    return body;
}

nlohmann::json error_reply(const std::string& why, const char* code) {
    nlohmann::json j = {{key::kVersion, kProtocolVersion}, {key::kOk, false}, {key::kError, why}};
    if (code) j[key::kCode] = code;
    return j;
}

}  // namespace portcullis
