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
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/inspect.hpp"

namespace portcullis {

struct RulesResult {
    std::shared_ptr<const InspectDb> db;  // null on error
    std::string error;                    // "file:line: why"
    size_t rules = 0;
};

// files: (name, text) pairs, in order. workers: how many scratch spaces to clone. stream_limit: the stream
// state each inspected flow may use (0: no limit).
RulesResult compile_rules(const std::vector<std::pair<std::string, std::string>>& files, unsigned workers,
                          size_t stream_limit);
// Every *.rules file in dir, by name. A missing directory is an error; an empty one is no rules.
RulesResult load_rules(const std::string& dir, unsigned workers, size_t stream_limit);

// The Hyperscan expression a rule's pattern becomes for its target (exposed for tests).
std::string rule_expression(RuleTarget target, const std::string& pattern);

}  // namespace portcullis
