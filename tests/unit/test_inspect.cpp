// SMTP session inspection, the client's side: the built-in checks and the operator's Hyperscan rules give the
// same verdict however the client's bytes are cut into segments (whole, at every split point, one byte at a
// time), over pipelined commands, bare LF line ends, NUL bytes, over-long lines, retransmissions, gaps and
// STARTTLS; and rule files are parsed and compiled with file:line errors. What the server's replies change is
// in test_inspect_server.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "control/policy/rules.hpp"
#include "dataplane/inspect.hpp"

using namespace portcullis;
using namespace std::string_literals;

namespace {

struct Outcome {
    InspectResult::Kind kind = InspectResult::Continue;
    std::string reply;
    uint32_t rule = 0;
    bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
    return os << "{kind " << int(o.kind) << ", rule " << o.rule << ", '" << o.reply << "'}";
}

class Inspect : public ::testing::Test {
  protected:
    Inspector insp{64, 4096};
    Counters c;
    InspectPolicy pol;
    std::shared_ptr<const InspectDb> rules;

    void use_rules(const std::string& text) {
        auto r = compile_rules({{"test.rules", text}}, 1, 4096);
        ASSERT_TRUE(r.db) << r.error;
        rules = r.db;
        pol.db = rules.get();
    }
    // Feeds `session` cut at the given offsets; returns the first verdict other than Continue (or Continue).
    Outcome run(const std::string& session, const std::vector<size_t>& cuts) {
        const uint32_t slot = insp.open(1000);
        EXPECT_NE(slot, Inspector::kNone);
        Outcome out;
        size_t from = 0;
        std::vector<size_t> ends = cuts;
        ends.push_back(session.size());
        for (size_t to : ends) {
            if (to <= from) continue;
            const auto r =
                insp.feed(slot, reinterpret_cast<const uint8_t*>(session.data()) + from,
                          static_cast<uint32_t>(to - from), 1000 + static_cast<uint32_t>(from), pol, c);
            from = to;
            if (r.kind != InspectResult::Continue) {
                out = {r.kind, r.reply ? *r.reply : "", r.rule};
                break;
            }
        }
        insp.close(slot);
        EXPECT_EQ(insp.in_use(), 0u);
        return out;
    }
    // The verdict must not depend on segmentation: whole, every single split, one byte at a time.
    Outcome same_every_way(const std::string& session) {
        const Outcome whole = run(session, {});
        for (size_t cut = 1; cut < session.size(); ++cut)
            EXPECT_EQ(run(session, {cut}), whole) << "cut at " << cut;
        std::vector<size_t> bytes;
        for (size_t i = 1; i < session.size(); ++i) bytes.push_back(i);
        EXPECT_EQ(run(session, bytes), whole) << "one byte a segment";
        return whole;
    }
};

TEST_F(Inspect, DataWaitsForItsReply) {
    const std::string session =
        "EHLO mail.customer.example\r\nMAIL FROM:<billing@customer.example> SIZE=1200\r\n"
        "RCPT TO:<someone@example.net>\r\nDATA\r\n";
    EXPECT_EQ(same_every_way(session).kind, InspectResult::Continue) << "DATA alone ends nothing";
    const auto o = same_every_way(session + "Subject: EHLO localhost\r\n");
    EXPECT_EQ(o.kind, InspectResult::Ended)
        << "bytes before DATA's reply: no longer readable, no need to read";
    EXPECT_GT(c.get(Ctr::inspect_ended_unreadable), 0u);
}

TEST_F(Inspect, EhloMustBeAnFqdn) {
    for (const char* bad : {"EHLO localhost\r\n", "HELO mailserver\r\n", "ehlo 192.0.2.7\r\n",
                            "EHLO -bad.example\r\n", "EHLO [192.0.2.7]\r\n", "EHLO\r\n"}) {
        const auto o = same_every_way(bad);
        EXPECT_EQ(o.kind, InspectResult::Violation) << bad;
        EXPECT_EQ(o.rule, 0u);
    }
    pol.allow_literal = true;
    EXPECT_EQ(run("EHLO [192.0.2.7]\r\nQUIT\r\n", {}).kind, InspectResult::Continue);
    EXPECT_EQ(run("EHLO [IPv6:2001:db8::7]\r\n", {}).kind, InspectResult::Continue);
}

TEST_F(Inspect, ApprovalNamesItsHostAndDomains) {
    ApprovalNames names{"mail.customer.example", {"customer.example", "customer.example.org"}};
    pol.names = &names;
    EXPECT_EQ(same_every_way("EHLO other.customer.example\r\n").reply,
              "550 5.7.1 EHLO name is not the host name approved for this address");
    EXPECT_EQ(
        same_every_way("EHLO MAIL.Customer.Example.\r\nMAIL FROM:<a@customer.example.org>\r\nDATA\r\n").kind,
        InspectResult::Continue)
        << "names compare without case, a trailing dot ignored";
    EXPECT_EQ(same_every_way("EHLO mail.customer.example\r\nMAIL FROM:<a@elsewhere.example>\r\n").reply,
              "550 5.7.1 Sender domain is not approved for this address");
    EXPECT_EQ(same_every_way("EHLO mail.customer.example\r\nMAIL FROM:<>\r\nDATA\r\n").kind,
              InspectResult::Continue)
        << "the null sender (bounces) always may";
}

TEST_F(Inspect, PipelinedCommandsAreReadInOrder) {
    ApprovalNames names{"", {"customer.example"}};
    pol.names = &names;
    // RFC 2920: the whole transaction in one segment; the bad MAIL FROM decides, before DATA is reached.
    const auto o = same_every_way(
        "EHLO mail.customer.example\r\nMAIL FROM:<x@spam.example>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n");
    EXPECT_EQ(o.kind, InspectResult::Violation);
}

TEST_F(Inspect, BareLfAndNulBytes) {
    EXPECT_EQ(same_every_way("EHLO localhost\n").kind, InspectResult::Violation);
    EXPECT_EQ(same_every_way("NOOP\n\nEHLO mail.customer.example\nDATA\n").kind, InspectResult::Continue);
    EXPECT_EQ(same_every_way("EHLO mail.cust\0omer.example\r\n"s).kind, InspectResult::Violation)
        << "a NUL inside the name";
    EXPECT_EQ(same_every_way("NOOP \0\0\r\nEHLO mail.customer.example\r\nDATA\r\n"s).kind,
              InspectResult::Continue);
}

TEST_F(Inspect, OverlongLinesAreSkippedInBoundedMemory) {
    const std::string junk(20000, 'A');
    pol.budget = 1 << 20;
    const auto o = run(junk + "\r\nEHLO localhost\r\n", {1000, 5000, 19999});
    EXPECT_EQ(o.kind, InspectResult::Violation) << "the next line is read normally";
    EXPECT_EQ(c.get(Ctr::inspect_overlong_lines), 1u);
    // An EHLO whose line is too long to hold is not judged by the built-in check (the server refuses it
    // anyway), in a session that need not be read.
    EXPECT_EQ(run("EHLO " + junk + "\r\nDATA\r\n", {}).kind, InspectResult::Continue);
}

TEST_F(Inspect, StartTlsWithoutItsReplyIsNotTheEnd) {
    // Without the server's 220 the bytes after STARTTLS are a protocol break: a session that need not be read
    // ends there, unread; one that must be read is unreadable.
    const std::string session = "EHLO mail.customer.example\r\nSTARTTLS\r\n\x16\x03\x01 EHLO localhost\r\n";
    EXPECT_EQ(same_every_way(session).kind, InspectResult::Ended);
    EXPECT_EQ(c.get(Ctr::inspect_ended_starttls), 0u);
    ApprovalNames names{"mail.customer.example", {}};
    pol.names = &names;
    const auto o = same_every_way(session);
    EXPECT_EQ(o.kind, InspectResult::Unreadable);
    EXPECT_EQ(o.reply, "503 5.5.1 Commands sent before the reply to STARTTLS or DATA (RFC 2920, RFC 3207)");
}

TEST_F(Inspect, RetransmissionsReadOnceAndGapsEnd) {
    const uint32_t slot = insp.open(5000);
    const std::string a = "EHLO mail.customer.example\r\nMA", b = "IL FROM:<a@customer.example>\r\n";
    auto feed = [&](const std::string& s, uint32_t seq) {
        return insp
            .feed(slot, reinterpret_cast<const uint8_t*>(s.data()), static_cast<uint32_t>(s.size()), seq, pol,
                  c)
            .kind;
    };
    EXPECT_EQ(feed(a, 5000), InspectResult::Continue);
    EXPECT_EQ(feed(a, 5000), InspectResult::Continue);                 // a retransmission: nothing new
    EXPECT_EQ(feed(a.substr(20) + b, 5020), InspectResult::Continue);  // overlapping: only the new bytes
    EXPECT_EQ(c.get(Ctr::inspect_mail_from), 1u);
    EXPECT_EQ(c.get(Ctr::inspect_ehlo), 1u);
    EXPECT_EQ(feed("RCPT TO:<x@y.example>\r\n", 9999), InspectResult::Ended) << "a gap";
    insp.close(slot);
}

TEST_F(Inspect, ByteBudget) {
    pol.budget = 64;
    EXPECT_EQ(run(std::string(30, 'N') + "\r\n" + std::string(40, 'N') + "\r\nEHLO localhost\r\n", {}).kind,
              InspectResult::Ended);
    EXPECT_EQ(c.get(Ctr::inspect_ended_budget), 1u);
}

TEST_F(Inspect, RulesMatchAcrossAnySegmentation) {
    use_rules(
        "# test rules\n"
        "1001 ehlo refuse /localhost$/i \"EHLO localhost is not a host name\"\n"
        "2001 mail_from refuse /<[^>]*@bulk-mailer\\.example>/i \"bulk-mailer.example is not allowed\"\n"
        "3001 line count /XCLIENT/\n");
    auto o = same_every_way("EHLO LocalHost\r\n");
    EXPECT_EQ(o.rule, 1001u) << "an operator's rule outranks the built-in FQDN check";
    EXPECT_EQ(o.reply, "550 5.7.1 EHLO localhost is not a host name");
    pol.builtin = false;  // submission: rules only
    o = same_every_way("EHLO laptop\r\nMAIL FROM:<news@Bulk-Mailer.example> BODY=8BITMIME\r\n");
    EXPECT_EQ(o.rule, 2001u);
    EXPECT_EQ(same_every_way("EHLO laptop\r\nXCLIENT ADDR=1\r\nMAIL FROM:<a@ok.example>\r\nDATA\r\n").kind,
              InspectResult::Continue);
    EXPECT_GT(c.get(Ctr::inspect_rule_counted), 0u);
    EXPECT_EQ(same_every_way("EHLO localhost.example.com\r\nDATA\r\n").kind, InspectResult::Continue)
        << "$ is the end of the line: localhost.example.com is not localhost";
}

TEST(Rules, BadRulesNameFileAndLine) {
    auto err = [](const std::string& text) { return compile_rules({{"r.rules", text}}, 1, 0).error; };
    EXPECT_EQ(err("\n# c\n1 ehlo refuse /a(/\n"),
              "r.rules:3: Missing close parenthesis for group started at index 21. (the pattern as compiled: "
              "^(?i:EHLO|HELO)[ \\t]+(?:a())");
    EXPECT_EQ(err("x ehlo refuse /a/\n"), "r.rules:1: the rule id must be a number (1-999999999), got 'x'");
    EXPECT_EQ(err("1 body refuse /a/\n"), "r.rules:1: target 'body' is not one of ehlo, mail_from, line");
    EXPECT_EQ(err("1 ehlo block /a/\n"), "r.rules:1: action 'block' is not one of refuse, count");
    EXPECT_EQ(err("1 ehlo refuse a\n"), "r.rules:1: the pattern must be written /PATTERN/FLAGS");
    EXPECT_EQ(err("1 ehlo refuse /a/x\n"), "r.rules:1: unknown flag 'x' (only i, caseless)");
    EXPECT_EQ(err("1 ehlo refuse /a/ \"unterminated\n"),
              "r.rules:1: the message must be in double quotes, at the end of the line");
    EXPECT_EQ(err("1 ehlo refuse /a/\n1 line count /b/\n"), "r.rules:2: rule id 1 is used twice");
    EXPECT_TRUE(compile_rules({{"empty.rules", "# nothing\n"}}, 1, 0).db) << "no rules is a valid set";
}

TEST(Rules, ShippedDefaultSetCompiles) {
    const auto r = load_rules(std::string(PORTCULLIS_SOURCE_DIR) + "/rules", 2, 2048);
    ASSERT_TRUE(r.db) << r.error;
    EXPECT_GE(r.rules, 4u);
    EXPECT_EQ(r.db->scratch.size(), 2u) << "one scratch per worker";
    EXPECT_LE(r.db->stream_bytes, 2048u);
}

TEST(Rules, DollarIsTheEndOfTheLine) {
    EXPECT_EQ(rule_expression(RuleTarget::Ehlo, "^a$"), "^(?i:EHLO|HELO)[ \\t]+(?:a\\r?\\n)")
        << "a $ ending the pattern takes the newline";
    EXPECT_EQ(rule_expression(RuleTarget::Ehlo, "a$|b"), "^(?i:EHLO|HELO)[ \\t]+(?:a\\r?$|b)")
        << "elsewhere it looks ahead at it";
    EXPECT_EQ(rule_expression(RuleTarget::Line, "[$]\\$"), "^(?:[$]\\$)");
    EXPECT_EQ(rule_expression(RuleTarget::Line, "\\\\$"), "^(?:\\\\\\r?\\n)");
}

// The expression as it was compiled before a trailing $ took the newline: every $ a multiline end anchor.
std::string lookahead_expression(RuleTarget target, const std::string& pattern) {
    std::string e = rule_expression(target, pattern);
    const std::string tail = "\\r?\\n)";
    if (!pattern.empty() && pattern.back() == '$' && e.size() > tail.size() &&
        e.compare(e.size() - tail.size(), tail.size(), tail) == 0)
        e = e.substr(0, e.size() - tail.size()) + "\\r?$)";
    return e;
}

// How often each expression matches `input` fed `step` bytes at a time, read by the inspector as a worker
// reads it (streaming, the stream closed without end-of-data matches): one count-only rule per database.
std::vector<uint64_t> inspector_matches(const std::vector<std::string>& exprs, const std::string& input,
                                        size_t step) {
    std::vector<uint64_t> out;
    for (const auto& e : exprs) {
        InspectDb db;
        hs_compile_error_t* err = nullptr;
        EXPECT_EQ(hs_compile(e.c_str(), HS_FLAG_MULTILINE | HS_FLAG_CASELESS, HS_MODE_STREAM, nullptr, &db.db,
                             &err),
                  HS_SUCCESS)
            << e << ": " << (err ? err->message : "");
        hs_free_compile_error(err);
        db.rules.push_back({1, RuleTarget::Line, false, "", "t:1"});
        EXPECT_EQ(add_scratch(db, 1), "");
        Inspector insp(1, 4096);
        Counters c;
        InspectPolicy pol;
        pol.db = &db;
        pol.builtin = false;
        pol.budget = 1 << 20;
        const uint32_t slot = insp.open(0);
        for (size_t at = 0; at < input.size(); at += step)
            insp.feed(slot, reinterpret_cast<const uint8_t*>(input.data()) + at,
                      static_cast<uint32_t>(std::min(step, input.size() - at)), static_cast<uint32_t>(at),
                      pol, c);
        insp.close(slot);
        out.push_back(c.get(Ctr::inspect_rule_counted));
    }
    return out;
}

TEST(Rules, TrailingDollarMatchesWhatTheLookaheadMatched) {
    const std::vector<std::pair<RuleTarget, std::string>> rules = {
        {RuleTarget::Ehlo, "localhost$"},
        {RuleTarget::Ehlo, "(localhost|localhost\\.localdomain)$"},
        {RuleTarget::Ehlo, "(mx|smtp)[0-9]*\\.example$"},
        {RuleTarget::Ehlo, "a*$"},
        {RuleTarget::Ehlo, "$"},
        {RuleTarget::Ehlo, "x|y$"},
        {RuleTarget::Ehlo, "\\[\\$\\]$"},
        {RuleTarget::MailFrom, "<[^>]*@bulk\\.example>$"},
        {RuleTarget::MailFrom, "<>$"},
        {RuleTarget::Line, "$"},
        {RuleTarget::Line, "QUIT$"},
        {RuleTarget::Line, "[^ ]* \\\\$"},
        {RuleTarget::Line, "RSET\\s*$"},
        {RuleTarget::Ehlo, "a$|b$"},
    };
    std::vector<std::string> fast, slow;
    for (const auto& [t, p] : rules) {
        fast.push_back(rule_expression(t, p));
        slow.push_back(lookahead_expression(t, p));
        ASSERT_NE(fast.back(), slow.back()) << p;
    }
    const std::vector<std::string> sessions = {
        "EHLO localhost\r\n",
        "EHLO localhost.localdomain\r\nEHLO LOCALHOST\n",
        "EHLO localhost.example.com\r\n",
        "EHLO localhost",  // no line end yet: neither matches
        "HELO mx12.example\r\nHELO smtp.example.org\r\n",
        "EHLO aaa\r\nEHLO \r\nEHLO a\rb\r\n",
        "EHLO [$]\r\nEHLO x\r\nEHLO y\r\nEHLO yy\r\n",
        "MAIL FROM:<news@bulk.example>\r\nMAIL FROM:<news@bulk.example> SIZE=10\r\nMAIL FROM:<>\r\n",
        "\r\n\n\r\nQUIT\r\nquit \r\nRSET  \r\nRSET \t\r\n",
        "X \\\r\nX \\\\\r\n",
        "EHLO a\r\nEHLO b\r\nEHLO ab\r\n",
        "EHLO a\0b\r\nEHLO localhost\r\r\n"s,
    };
    for (const auto& s : sessions)
        for (size_t step : {s.size() + 1, size_t{1}, size_t{3}}) {
            const auto want = inspector_matches(slow, s, step);
            EXPECT_EQ(inspector_matches(fast, s, step), want) << "'" << s << "' in steps of " << step;
        }
    // And they do match: the comparison is not between nothing and nothing.
    const auto hits = inspector_matches(fast, sessions[0] + sessions[4] + sessions[8], 1);
    EXPECT_EQ(std::count_if(hits.begin(), hits.end(), [](uint64_t n) { return n > 0; }), 6);
}

// The control thread reads how much of a worker's pool is in use (status, show) while the worker opens and
// closes slots. The count is an atomic (relaxed): a plain integer here was a data race, which the
// ThreadSanitizer pass of tools/test reports.
TEST(InspectorPool, InUseIsReadWhileTheWorkerOpensAndCloses) {
    Inspector insp{64, 4096};
    std::atomic<bool> done{false}, reading{false};
    std::thread worker([&] {
        while (!reading.load()) std::this_thread::yield();  // the reader runs before the work starts
        for (uint32_t i = 0; i < 20'000; ++i) {
            const uint32_t a = insp.open(i), b = insp.open(i + 1);
            if (a != Inspector::kNone) insp.close(a);
            if (b != Inspector::kNone) insp.close(b);
        }
        done.store(true);
    });
    uint32_t most = 0, reads = 0;
    reading.store(true);
    do {  // at least once, however the threads are scheduled on a loaded machine
        most = std::max(most, insp.in_use());
        ++reads;
    } while (!done.load());
    worker.join();
    EXPECT_LE(most, 2u) << "never more than the worker holds at once";
    EXPECT_GT(reads, 0u);
    EXPECT_EQ(insp.in_use(), 0u);
}

}  // namespace
