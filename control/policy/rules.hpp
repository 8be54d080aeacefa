// The operator's inspection rules: `*.rules` files in rules_dir, one rule a line, compiled into one Hyperscan
// streaming database (dataplane/inspect.hpp). The line format (rules/README.md):
//
//   ID  TARGET  ACTION  /PATTERN/FLAGS  ["MESSAGE"]
//   1001 ehlo refuse /localhost(\.localdomain)?$/i "EHLO localhost is not a host name"
//
// TARGET is ehlo (the EHLO/HELO argument), mail_from (what follows MAIL FROM:) or line (any command line);
// the pattern is anchored at the start of its target, and `$` is the end of the line. ACTION is refuse or
// count. FLAGS: i (caseless). A refusal answers "550 5.7.1 MESSAGE". A bad rule is reported as file:line with
// the reason (Hyperscan's own message for a pattern it cannot compile), and nothing of the set is used.
//
// Compiling is Hyperscan's work and grows faster than the number of rules (docs/benchmarks.md): the daemon
// compiles in a child process (control/policy/rules_compiler.hpp), never on the control loop, and refuses a
// set of more than max_rules. compile_rules() here is the same work in-process (the child runs
// build_rules()).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/inspect.hpp"

namespace portcullis {

struct RulesResult {
    std::shared_ptr<const InspectDb> db;  // null on error
    std::string error;                    // "file:line: why"
    size_t rules = 0;                     // on error: how many were read, where known
    double seconds = 0;                   // how long the compile took (wall clock)
};

using RuleFiles = std::vector<std::pair<std::string, std::string>>;  // (name, text), in order

// files: (name, text) pairs, in order. workers: how many scratch spaces to clone. stream_limit: the stream
// state each inspected flow may use (0: no limit). max_rules: more rules than this in all files is an error
// naming the file with the most (0: no limit).
RulesResult compile_rules(const RuleFiles& files, unsigned workers, size_t stream_limit,
                          size_t max_rules = 0);
// Every *.rules file in dir, by name. A missing directory is an error; an empty one is no rules.
RulesResult load_rules(const std::string& dir, unsigned workers, size_t stream_limit, size_t max_rules = 0);

// compile_rules() in steps, for the compiler child and its parent (control/rules_compiler.*):
// reads every *.rules file in dir by name ("" or the error);
std::string read_rules_dir(const std::string& dir, RuleFiles& out);
// parses and compiles into `out` (its databases, rules, source, stream_bytes; no scratch); on_parsed is told
// the number of rules before Hyperscan starts ("" or the error; out.rules holds what was parsed either way);
std::string build_rules(const RuleFiles& files, size_t stream_limit, size_t max_rules, InspectDb& out,
                        const std::function<void(size_t)>& on_parsed = {});
// allocates one scratch per worker for db's databases ("" or the error).
std::string add_scratch(InspectDb& db, unsigned workers);

// n distinct rules of the kinds an operator writes (EHLO names, sender domains, command lines), for the
// rules benchmark (tools/rules_bench.cpp) and the compiler's tests.
std::string synthetic_rules(size_t n);

// The Hyperscan expression a rule's pattern becomes for its target (exposed for tests). Compiled with
// HS_FLAG_MULTILINE: the target's prefix starts at a line start. A `$` is the end of the line (`\r?$`),
// except that a `$` ending the pattern becomes `\r?\n`: the same matches (a multiline `$` waits for the
// newline anyway, and nothing follows it), compiled faster and with less stream state (10,000 rules: 18 s
// instead of 28, 90 bytes a session instead of 1,241; docs/benchmarks.md).
std::string rule_expression(RuleTarget target, const std::string& pattern);

}  // namespace portcullis
