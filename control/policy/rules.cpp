// Rule files to a Hyperscan database (see rules.hpp).
#include "control/policy/rules.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace portcullis {

namespace {

struct RuleLine {
    InspectRule rule;
    std::string pattern;
    unsigned flags = 0;
};

std::string next_token(std::string_view& s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    size_t n = 0;
    while (n < s.size() && s[n] != ' ' && s[n] != '\t') ++n;
    std::string t(s.substr(0, n));
    s.remove_prefix(n);
    return t;
}

// One rule line; returns the reason it is wrong, or "".
std::string parse_rule(std::string_view line, RuleLine& out) {
    const std::string id = next_token(line);
    if (id.empty() || id.size() > 9 ||
        !std::all_of(id.begin(), id.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return "the rule id must be a number (1-999999999), got '" + id + "'";
    out.rule.id = static_cast<uint32_t>(std::stoul(id));
    if (out.rule.id == 0) return "the rule id must not be 0";
    const std::string target = next_token(line);
    if (target == "ehlo")
        out.rule.target = RuleTarget::Ehlo;
    else if (target == "mail_from")
        out.rule.target = RuleTarget::MailFrom;
    else if (target == "line")
        out.rule.target = RuleTarget::Line;
    else
        return "target '" + target + "' is not one of ehlo, mail_from, line";
    const std::string action = next_token(line);
    if (action == "refuse")
        out.rule.refuse = true;
    else if (action == "count")
        out.rule.refuse = false;
    else
        return "action '" + action + "' is not one of refuse, count";
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.empty() || line.front() != '/') return "the pattern must be written /PATTERN/FLAGS";
    size_t end = 1;
    for (; end < line.size(); ++end) {
        if (line[end] == '\\') {
            ++end;
            continue;
        }
        if (line[end] == '/') break;
    }
    if (end >= line.size()) return "the pattern has no closing /";
    out.pattern = std::string(line.substr(1, end - 1));
    if (out.pattern.empty()) return "the pattern is empty";
    line.remove_prefix(end + 1);
    while (!line.empty() && line.front() != ' ' && line.front() != '\t') {
        if (line.front() != 'i') return std::string("unknown flag '") + line.front() + "' (only i, caseless)";
        out.flags |= HS_FLAG_CASELESS;
        line.remove_prefix(1);
    }
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    std::string message = "rejected by the provider's rule " + id;
    if (!line.empty()) {
        if (line.size() < 2 || line.front() != '"' || line.back() != '"')
            return "the message must be in double quotes, at the end of the line";
        message = std::string(line.substr(1, line.size() - 2));
        if (message.empty() || message.size() > 300 ||
            !std::all_of(message.begin(), message.end(),
                         [](char c) { return c >= 0x20 && c < 0x7f && c != '"'; }))
            return "the message must be 1-300 printable ASCII characters without quotes";
    }
    out.rule.reply = "550 5.7.1 " + message;
    return {};
}

}  // namespace

std::string synthetic_rules(size_t n) {
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        const std::string id = std::to_string(100000 + i), k = std::to_string(i);
        switch (i % 4) {
            case 0:
                out += id + " ehlo refuse /spam-host-" + k + "\\.example$/i \"EHLO spam-host-" + k + "\"\n";
                break;
            case 1:
                out += id + " mail_from refuse /<[^>@]*@bulk-" + k + "\\.example>/i\n";
                break;
            case 2:
                out += id + " line count /XCLIENT[ \\t]+NAME=evil" + k + "/i\n";
                break;
            default:
                out += id + " ehlo count /(mx|smtp)[0-9]*\\.victim" + k + "\\.test$/\n";
        }
    }
    return out;
}

std::string rule_expression(RuleTarget target, const std::string& pattern) {
    // The target's prefix anchors the pattern; a leading ^ of the pattern's own is the same anchor. `$`
    // (outside a class, unescaped) becomes the end of the line: lines end in CR LF, and the CR is not part of
    // the target. A `$` that ends the pattern consumes the newline instead of looking ahead at it: nothing
    // follows it, so the same lines match (in a stream a multiline `$` is only known when the newline comes),
    // and Hyperscan compiles a trailing newline far faster than a multiline end anchor.
    std::string p;
    size_t i = pattern.size() && pattern[0] == '^' ? 1 : 0;
    bool in_class = false;
    for (; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            p += c;
            p += pattern[++i];
            continue;
        }
        if (c == '[') in_class = true;
        if (c == ']') in_class = false;
        if (c == '$' && !in_class)
            p += i + 1 == pattern.size() ? "\\r?\\n" : "\\r?$";
        else
            p += c;
    }
    const char* prefix = target == RuleTarget::Ehlo       ? "^(?i:EHLO|HELO)[ \\t]+"
                         : target == RuleTarget::MailFrom ? "^(?i:MAIL[ \\t]+FROM:)[ \\t]*"
                                                          : "^";
    return std::string(prefix) + "(?:" + p + ")";
}

std::string build_rules(const RuleFiles& files, size_t stream_limit, size_t max_rules, InspectDb& out,
                        const std::function<void(size_t)>& on_parsed) {
    std::vector<std::string> exprs;
    std::vector<unsigned> flags, ids;
    std::set<uint32_t> seen;
    std::string source;
    std::pair<size_t, const std::string*> most{0, nullptr};  // the file with the most rules
    for (const auto& [name, text] : files) {
        const size_t before = out.rules.size();
        std::istringstream in(text);
        std::string raw;
        size_t line_no = 0;
        while (std::getline(in, raw)) {
            ++line_no;
            std::string_view line = raw;
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
                line.remove_suffix(1);
            size_t lead = 0;
            while (lead < line.size() && (line[lead] == ' ' || line[lead] == '\t')) ++lead;
            if (lead == line.size() || line[lead] == '#') continue;
            const std::string where = name + ":" + std::to_string(line_no);
            RuleLine r;
            if (auto why = parse_rule(line, r); !why.empty()) return where + ": " + why;
            if (!seen.insert(r.rule.id).second)
                return where + ": rule id " + std::to_string(r.rule.id) + " is used twice";
            r.rule.where = where;
            exprs.push_back(rule_expression(r.rule.target, r.pattern));
            flags.push_back(HS_FLAG_MULTILINE | r.flags);
            ids.push_back(static_cast<unsigned>(out.rules.size()));
            out.rules.push_back(std::move(r.rule));
        }
        if (out.rules.size() - before > most.first) most = {out.rules.size() - before, &name};
        source += (source.empty() ? "" : ", ") + name;
    }
    out.source = source;
    if (max_rules && out.rules.size() > max_rules) {
        const std::string all = out.rules.size() == most.first
                                    ? std::string()
                                    : ", " + std::to_string(out.rules.size()) + " in all,";
        return *most.second + ": " + std::to_string(most.first) + " rules" + all +
               " exceed max_rules = " + std::to_string(max_rules);
    }
    if (on_parsed) on_parsed(out.rules.size());
    if (!exprs.empty()) {
        std::vector<const char*> ptrs;
        ptrs.reserve(exprs.size());
        for (const auto& e : exprs) ptrs.push_back(e.c_str());
        hs_compile_error_t* err = nullptr;
        if (hs_compile_multi(ptrs.data(), flags.data(), ids.data(), static_cast<unsigned>(ptrs.size()),
                             HS_MODE_STREAM, nullptr, &out.db, &err) != HS_SUCCESS) {
            std::string why = err && err->message ? err->message : "cannot compile";
            const int at = err ? err->expression : -1;
            hs_free_compile_error(err);
            if (at >= 0 && static_cast<size_t>(at) < out.rules.size()) {
                const auto i = static_cast<size_t>(at);
                return out.rules[i].where + ": " + why + " (the pattern as compiled: " + exprs[i] + ")";
            }
            return "rules: " + why;
        }
        hs_stream_size(out.db, &out.stream_bytes);
        if (stream_limit && out.stream_bytes > stream_limit)
            return "rules need " + std::to_string(out.stream_bytes) +
                   " bytes of stream state per inspected flow; inspect_stream_bytes is " +
                   std::to_string(stream_limit);
    }
    // The any-port probe: a first payload that is an EHLO/HELO line or a MAIL FROM command.
    const char* probe[] = {"^(?i:EHLO|HELO)[ \\t]+[!-~]+\\r?\\n",
                           "^(?i:MAIL[ \\t]+FROM:)[ \\t]*<[^>\\r\\n]*>"};
    const unsigned pflags[] = {HS_FLAG_SINGLEMATCH, HS_FLAG_SINGLEMATCH};
    const unsigned pids[] = {0, 1};
    hs_compile_error_t* err = nullptr;
    if (hs_compile_multi(probe, pflags, pids, 2, HS_MODE_BLOCK, nullptr, &out.probe, &err) != HS_SUCCESS) {
        hs_free_compile_error(err);
        return "rules: cannot compile the SMTP probe";
    }
    return {};
}

std::string add_scratch(InspectDb& db, unsigned workers) {
    hs_scratch_t* proto = nullptr;
    if ((db.probe && hs_alloc_scratch(db.probe, &proto) != HS_SUCCESS) ||
        (db.db && hs_alloc_scratch(db.db, &proto) != HS_SUCCESS)) {
        if (proto) hs_free_scratch(proto);
        return "rules: cannot allocate scratch";
    }
    for (unsigned w = 0; w < std::max(workers, 1u); ++w) {
        hs_scratch_t* s = nullptr;
        if (hs_clone_scratch(proto, &s) != HS_SUCCESS) {
            hs_free_scratch(proto);
            return "rules: cannot clone scratch";
        }
        db.scratch.push_back(s);
    }
    hs_free_scratch(proto);
    return {};
}

RulesResult compile_rules(const RuleFiles& files, unsigned workers, size_t stream_limit, size_t max_rules) {
    const auto t0 = std::chrono::steady_clock::now();
    auto db = std::make_shared<InspectDb>();
    RulesResult out;
    std::string err = build_rules(files, stream_limit, max_rules, *db);
    if (err.empty()) err = add_scratch(*db, workers);
    out.rules = db->rules.size();
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (err.empty())
        out.db = std::move(db);
    else
        out.error = std::move(err);
    return out;
}

std::string read_rules_dir(const std::string& dir, RuleFiles& files) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return "rules_dir: '" + dir + "' is not a directory";
    std::vector<fs::path> paths;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file() && e.path().extension() == ".rules") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths) {
        std::ifstream in(p);
        if (!in) return p.string() + ": cannot read";
        std::ostringstream text;
        text << in.rdbuf();
        files.emplace_back(p.string(), text.str());
    }
    return {};
}

RulesResult load_rules(const std::string& dir, unsigned workers, size_t stream_limit, size_t max_rules) {
    RuleFiles files;
    if (auto err = read_rules_dir(dir, files); !err.empty()) return {nullptr, err, 0, 0};
    return compile_rules(files, workers, stream_limit, max_rules);
}

}  // namespace portcullis
