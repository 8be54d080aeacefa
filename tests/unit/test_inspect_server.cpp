// SMTP session inspection with the server's replies: whole sessions, client and server bytes in the order the
// gateway sees them, each step cut at every position (and one byte at a time), the verdict the same every
// way. STARTTLS, DATA and BDAT end nothing until the server confirms them; message bodies and BDAT chunks are
// passed over exactly; implicit TLS is TLS only when the server answers in TLS; a session that must be read
// and cannot be (budget, long lines, gaps, commands before an awaited reply, broken TLS, replies pairing with
// nothing) is Unreadable, for its cause.
#include <gtest/gtest.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <string>
#include <vector>

#include "dataplane/events.hpp"
#include "dataplane/inspect.hpp"

using namespace portcullis;
using namespace std::string_literals;

namespace {

struct Step {
    bool server;
    std::string bytes;
};
Step C(std::string s) {
    return {false, std::move(s)};
}
Step S(std::string s) {
    return {true, std::move(s)};
}
using Steps = std::vector<Step>;
Steps operator+(Steps a, const Steps& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

constexpr uint32_t kClientIsn = 0xfffffc00u;  // both sequences wrap during the longer sessions
constexpr uint32_t kServerIsn = 0xffffffe0u;

struct Outcome {
    InspectResult::Kind kind = InspectResult::Continue;
    std::string reply;
    Unreadable cause = Unreadable::Budget;
    size_t step = 0;  // the step that gave the verdict; the number of steps: none did
    uint32_t messages = 0;
    bool operator==(const Outcome&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
    return os << "{kind " << int(o.kind) << ", cause " << unreadable_name(o.cause) << ", step " << o.step
              << ", messages " << o.messages << ", '" << o.reply << "'}";
}

const std::string kGreeting = "220 mx.example.net ESMTP\r\n";
const std::string kEhlo = "EHLO mail.customer.example\r\n";
const std::string kMailOk = "MAIL FROM:<billing@customer.example>\r\n";
const std::string kMailForeign = "MAIL FROM:<x@foreign.example>\r\n";
const std::string kRcpt = "RCPT TO:<someone@example.net>\r\n";
const std::string kDomainReply = "550 5.7.1 Sender domain is not approved for this address";

// The greeting, EHLO and its reply (with or without CHUNKING).
Steps hello(bool chunking = false) {
    return {S(kGreeting), C(kEhlo),
            S("250-mx.example.net Hello\r\n250-PIPELINING\r\n"s + (chunking ? "250-CHUNKING\r\n" : "") +
              "250 STARTTLS\r\n")};
}

// A ClientHello record (48 bytes of record: the handshake type and 47 more), then a ChangeCipherSpec.
const std::string kClientHello = "\x16\x03\x01\x00\x30\x01"s + std::string(47, '\x42');
const std::string kChangeCipherSpec = "\x14\x03\x03\x00\x01\x01"s;
const std::string kServerHello = "\x16\x03\x03\x00\x04\x02\x00\x00\x00"s;

class InspectServer : public ::testing::Test {
  protected:
    Inspector insp{8, 4096};
    Counters c;
    InspectPolicy pol;
    ApprovalNames names{"mail.customer.example", {"customer.example"}};
    bool from_start = true;  // opened before the greeting (else mid-way)

    InspectServer() { pol.names = &names; }

    // Plays the steps in order, step k cut at cuts(k, its length); each side's sequence numbers run on.
    template <class Cuts>
    Outcome play(const Steps& steps, Cuts cuts, Counters& ctr) {
        const uint32_t slot = from_start ? insp.open(kClientIsn, kServerIsn) : insp.open(kClientIsn);
        EXPECT_NE(slot, Inspector::kNone);
        uint32_t cseq = kClientIsn, sseq = from_start ? kServerIsn : 777777u;
        Outcome out;
        out.step = steps.size();
        for (size_t k = 0; k < steps.size() && out.step == steps.size(); ++k) {
            const Step& st = steps[k];
            std::vector<size_t> ends = cuts(k, st.bytes.size());
            ends.push_back(st.bytes.size());
            size_t from = 0;
            for (size_t to : ends) {
                if (to <= from) continue;
                uint32_t& seq = st.server ? sseq : cseq;
                const auto* p = reinterpret_cast<const uint8_t*>(st.bytes.data()) + from;
                const auto n = static_cast<uint32_t>(to - from);
                const InspectResult r = st.server ? insp.feed_server(slot, p, n, seq, pol, ctr)
                                                  : insp.feed(slot, p, n, seq, pol, ctr);
                seq += n;
                from = to;
                out.messages += r.messages;
                if (r.kind != InspectResult::Continue) {
                    out.kind = r.kind;
                    out.reply = r.reply ? *r.reply : "";
                    if (r.kind == InspectResult::Unreadable) out.cause = r.cause;
                    out.step = k;
                    break;
                }
            }
        }
        insp.close(slot);
        EXPECT_EQ(insp.in_use(), 0u);
        return out;
    }
    Outcome whole(const Steps& steps, Counters& ctr) {
        return play(
            steps, [](size_t, size_t) { return std::vector<size_t>{}; }, ctr);
    }
    Outcome whole(const Steps& steps) { return whole(steps, c); }
    // The verdict must not depend on segmentation: whole, every step cut at every point, one byte at a time.
    Outcome same_every_way(const Steps& steps) {
        const Outcome w = whole(steps);
        for (size_t k = 0; k < steps.size(); ++k)
            for (size_t at = 1; at < steps[k].bytes.size(); ++at) {
                const auto cut = [&](size_t s, size_t) {
                    return s == k ? std::vector<size_t>{at} : std::vector<size_t>{};
                };
                EXPECT_EQ(play(steps, cut, c), w) << "step " << k << " cut at " << at;
            }
        const auto bytes = [](size_t, size_t len) {
            std::vector<size_t> v;
            for (size_t i = 1; i < len; ++i) v.push_back(i);
            return v;
        };
        EXPECT_EQ(play(steps, bytes, c), w) << "one byte a segment";
        return w;
    }
};

TEST_F(InspectServer, MustRead) {
    InspectPolicy p;
    EXPECT_FALSE(p.must_read());
    ApprovalNames none;
    p.names = &none;
    EXPECT_FALSE(p.must_read()) << "an approval naming nothing";
    ApprovalNames host{"mail.customer.example", {}};
    p.names = &host;
    EXPECT_TRUE(p.must_read());
    ApprovalNames domains{"", {"customer.example"}};
    p.names = &domains;
    EXPECT_TRUE(p.must_read());
    InspectDb empty;
    p = {};
    p.db = &empty;
    EXPECT_FALSE(p.must_read()) << "a rule set without rules";
}

TEST_F(InspectServer, CausesHaveNamesCountersAndReplies) {
    for (size_t i = 0; i < kUnreadableCauses; ++i) {
        const auto u = static_cast<Unreadable>(i);
        EXPECT_EQ("inspect_unreadable_"s + unreadable_name(u),
                  kCounterInfo[static_cast<size_t>(unreadable_counter(u))].name);
        const std::string& reply = unreadable_reply(u);
        const bool capacity = u == Unreadable::Budget || u == Unreadable::PoolFull || u == Unreadable::Gap ||
                              u == Unreadable::ServerGap || u == Unreadable::Desync;
        EXPECT_EQ(reply[0], capacity ? '4' : '5') << reply;
        EXPECT_EQ(reply.substr(3, 3), capacity ? " 4." : " 5.") << reply;
        EXPECT_EQ(reply.find_first_of("\r\n"), std::string::npos);
    }
    Counters fresh;
    const InspectResult r = unreadable(Unreadable::PoolFull, pol, fresh);
    EXPECT_EQ(r.kind, InspectResult::Unreadable);
    EXPECT_EQ(*r.reply, "421 4.7.0 Too many sessions being inspected, closing; try again later");
    EXPECT_EQ(fresh.get(Ctr::inspect_unreadable_pool_full), 1u);
    pol.names = nullptr;
    EXPECT_EQ(unreadable(Unreadable::PoolFull, pol, fresh).kind, InspectResult::Ended) << "need not be read";
    EXPECT_EQ(fresh.get(Ctr::inspect_pool_empty), 1u);
}

TEST_F(InspectServer, StartTlsRefusedThenForeignMailFrom) {
    const auto o = same_every_way(
        hello() + Steps{C("STARTTLS\r\n"), S("454 4.7.0 TLS not available\r\n"), C(kMailForeign)});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    EXPECT_EQ(o.reply, kDomainReply);
    EXPECT_EQ(o.step, 5u);
    EXPECT_EQ(c.get(Ctr::inspect_ended_starttls), 0u);
    // 502: the same.
    EXPECT_EQ(whole(hello() + Steps{C("STARTTLS\r\n"), S("502 5.5.1 Unknown\r\n"), C(kMailForeign)}).kind,
              InspectResult::Violation);
}

TEST_F(InspectServer, StartTlsAcceptedEnds) {
    const auto o = same_every_way(hello() + Steps{C("STARTTLS\r\n"), S("220 2.0.0 Ready to start TLS\r\n"),
                                                  C(kClientHello + "EHLO localhost\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Ended);
    EXPECT_EQ(o.step, 4u);
    Counters fresh;
    whole(hello() + Steps{C("STARTTLS\r\n"), S("220 2.0.0 Ready\r\n")}, fresh);
    EXPECT_EQ(fresh.get(Ctr::inspect_ended_starttls), 1u);
}

TEST_F(InspectServer, StartTlsMustBeLastInItsGroup) {
    const auto o = same_every_way(hello() + Steps{C("STARTTLS\r\n" + kMailForeign)});
    EXPECT_EQ(o.kind, InspectResult::Unreadable);
    EXPECT_EQ(o.cause, Unreadable::Protocol);
}

TEST_F(InspectServer, DataRejectedThenForeignMailFrom) {
    const auto o = same_every_way(
        hello() + Steps{C(kMailOk), S("250 2.1.0 Ok\r\n"), C(kRcpt), S("554 5.7.1 Relay access denied\r\n"),
                        C("DATA\r\n"), S("554 5.5.1 Error: no valid recipients\r\n"), C(kMailForeign)});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    EXPECT_EQ(o.reply, kDomainReply);
    EXPECT_EQ(o.step, 9u);
    EXPECT_EQ(o.messages, 1u) << "the second MAIL FROM";
}

TEST_F(InspectServer, ClientBytesWhileDataReplyAwaitedAreUnreadable) {
    const auto o =
        same_every_way(hello() + Steps{C(kMailOk), S("250 2.1.0 Ok\r\n"), C(kRcpt), S("250 2.1.5 Ok\r\n"),
                                       C("DATA\r\n"), C("Subject: hi\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Unreadable);
    EXPECT_EQ(o.cause, Unreadable::Protocol);
    EXPECT_EQ(o.step, 8u);
    EXPECT_EQ(o.reply, "503 5.5.1 Commands sent before the reply to STARTTLS or DATA (RFC 2920, RFC 3207)");
    pol.names = nullptr;  // need not be read: the reading just ends
    EXPECT_EQ(whole(hello() + Steps{C("DATA\r\nSubject: hi\r\n")}).kind, InspectResult::Ended);
    EXPECT_GT(c.get(Ctr::inspect_ended_unreadable), 0u);
}

TEST_F(InspectServer, BodyIsPassedOverThenTheNextTransactionIsRead) {
    const std::string body =
        "From: <billing@customer.example>\r\nSubject: test\r\n\r\nMAIL FROM:<x@foreign.example>\r\n"
        "EHLO localhost\r\n..\r\n.x\r\n";
    const Steps first = hello() + Steps{C(kMailOk),    S("250 2.1.0 Ok\r\n"),
                                        C(kRcpt),      S("250 2.1.5 Ok\r\n"),
                                        C("DATA\r\n"), S("354 End data with <CR><LF>.<CR><LF>\r\n"),
                                        C(body)};
    auto o = same_every_way(first + Steps{C(".\r\n"), S("250 2.0.0 Ok: queued\r\n"), C(kMailForeign)});
    EXPECT_EQ(o.kind, InspectResult::Violation) << "the second transaction's MAIL FROM is read";
    EXPECT_EQ(o.step, 12u);
    EXPECT_EQ(o.messages, 1u);
    // The end of the body pairs with its reply: a STARTTLS afterwards is confirmed by the right reply.
    o = same_every_way(first + Steps{C(".\r\n"), S("250 2.0.0 Ok: queued\r\n"), C("STARTTLS\r\n"),
                                     S("220 2.0.0 Ready\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Ended);
    EXPECT_EQ(o.step, 13u);
    Counters fresh;
    whole(first + Steps{C(".\r\n")}, fresh);
    EXPECT_EQ(fresh.get(Ctr::inspect_bodies), 1u);
    EXPECT_EQ(fresh.get(Ctr::inspect_mail_from), 1u) << "the body's MAIL FROM line is not read";
}

TEST_F(InspectServer, PipelinedTransactionWithRepliesSplitAcrossSegments) {
    const Steps steps = hello() + Steps{C(kMailOk + kRcpt + "DATA\r\n"),
                                        S("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n"),
                                        C("Subject: x\r\n\r\n" + kMailForeign + ".\r\n" + kMailForeign)};
    const auto o = same_every_way(steps);
    EXPECT_EQ(o.kind, InspectResult::Violation) << "the body passed over; after its end, commands again";
    EXPECT_EQ(o.step, 5u);
    // One more reply in the same segment than commands awaiting one: the pairing is broken.
    const auto d = same_every_way(hello() + Steps{C(kMailOk + kRcpt), S("250 Ok\r\n250 Ok\r\n250 Ok\r\n")});
    EXPECT_EQ(d.kind, InspectResult::Unreadable);
    EXPECT_EQ(d.cause, Unreadable::Desync);
}

TEST_F(InspectServer, BodyEndsOnEveryLineEndSomeServerTakes) {
    const Steps start = hello() + Steps{C(kMailOk),      S("250 Ok\r\n"), C(kRcpt),
                                        S("250 Ok\r\n"), C("DATA\r\n"),   S("354 Go ahead\r\n")};
    // SMTP smuggling: a server that takes a bare LF (or CR) end reads what follows as commands; so does the
    // inspection, whatever the real server does.
    for (const std::string end : {"\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r", "\r.\r\n", "\r\n.\r"}) {
        const auto o = same_every_way(start + Steps{C("Subject: x\r\n\r\nhello" + end + kMailForeign)});
        EXPECT_EQ(o.kind, InspectResult::Violation) << testing::PrintToString(end);
        EXPECT_EQ(o.step, 9u);
    }
    // A body starting with the end: an empty message.
    EXPECT_EQ(whole(start + Steps{C(".\r\n" + kMailForeign)}).kind, InspectResult::Violation);
    // Dot-stuffed lines and dots inside lines end nothing.
    EXPECT_EQ(same_every_way(start + Steps{C("..\r\n.x\r\nx.\r\n \r\n.\t\r\n" + kMailForeign)}).kind,
              InspectResult::Continue);
}

TEST_F(InspectServer, BdatWithChunkingSkipsExactlyItsChunk) {
    const std::string chunk = kMailForeign;  // looks like a command, but is message data
    const Steps steps =
        hello(true) + Steps{C(kMailOk),
                            S("250 Ok\r\n"),
                            C(kRcpt),
                            S("250 Ok\r\n"),
                            C("BDAT " + std::to_string(chunk.size()) + " LAST\r\n" + chunk + kMailOk),
                            S("250 2.0.0 Message accepted\r\n250 2.1.0 Sender Ok\r\n"),
                            C("STARTTLS\r\n"),
                            S("220 2.0.0 Ready\r\n")};
    const auto o = same_every_way(steps);
    EXPECT_EQ(o.kind, InspectResult::Ended) << "the chunk passed over, the replies paired";
    EXPECT_EQ(o.step, 10u);
    EXPECT_EQ(o.messages, 1u) << "the MAIL FROM right after the chunk is read whole";
    // Chunks in pieces, BDAT 0 LAST, a 64-bit size.
    EXPECT_EQ(
        same_every_way(hello(true) + Steps{C("BDAT 5\r\n12345BDAT 3\r\nabcBDAT 0 LAST\r\n" + kMailForeign)})
            .kind,
        InspectResult::Violation);
    EXPECT_EQ(whole(hello(true) + Steps{C("BDAT 18446744073709551615\r\n" + kMailForeign)}).kind,
              InspectResult::Continue)
        << "the chunk goes on";
    // Unparsable sizes are not chunks: what follows is read as commands.
    for (const char* bad :
         {"BDAT 18446744073709551616\r\n", "BDAT +31\r\n", "BDAT 0x1f\r\n", "BDAT 31 MORE\r\n", "BDAT\r\n"})
        EXPECT_EQ(whole(hello(true) + Steps{C(bad + kMailForeign)}).kind, InspectResult::Violation) << bad;
}

TEST_F(InspectServer, BdatWithoutChunkingIsReadOn) {
    const std::string bdat = "BDAT " + std::to_string(kMailForeign.size()) + " LAST\r\n" + kMailForeign;
    auto o = same_every_way(hello(false) + Steps{C(bdat)});
    EXPECT_EQ(o.kind, InspectResult::Violation) << "a server without CHUNKING reads the chunk as commands";
    // CHUNKING in the greeting line (the server's name) or in a refused EHLO is no advertisement.
    o = whole(Steps{S(kGreeting), C(kEhlo), S("250 CHUNKING\r\n"), C(bdat)});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    o = whole(Steps{S(kGreeting), C(kEhlo), S("550-x\r\n550 CHUNKING\r\n"), C(bdat)});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    o = whole(Steps{S(kGreeting), C(kEhlo), S("250-x\r\n250-CHUNKINGX\r\n250 OK\r\n"), C(bdat)});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    // BDAT sent before the EHLO reply came: the client cannot know; read on.
    o = whole(Steps{S(kGreeting), C(kEhlo + bdat)});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    // A later EHLO's reply decides.
    o = whole(hello(true) + Steps{C(kEhlo), S("250-mx\r\n250 SIZE\r\n"), C(bdat)});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    o = whole(Steps{S(kGreeting), C(kEhlo), S("250-mx\r\n250 chunking\r\n"), C(bdat)});
    EXPECT_EQ(o.kind, InspectResult::Continue) << "CHUNKING in any case, on the last line";
}

TEST_F(InspectServer, FakeTlsFirstByteIsReadAsCommands) {
    auto o = same_every_way(Steps{C("\x16 hello\r\nEHLO foreign.example\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    EXPECT_EQ(o.reply, "550 5.7.1 EHLO name is not the host name approved for this address");
    // A record header that is not a ClientHello's, or that breaks off: commands.
    for (const std::string& start : {"\x16\x03\x01\x00\x30\x02"s, "\x16\x03\x05\x00\x30\x01"s,
                                     "\x16\x03\x01\x48\x01\x01"s, "\x16\x03\x01\x00\x00\x01"s, "\x16\x02"s}) {
        o = same_every_way(Steps{C(start + "\r\nEHLO foreign.example\r\n")});
        EXPECT_EQ(o.kind, InspectResult::Violation) << testing::PrintToString(start);
    }
    // A ClientHello after the server spoke is not TLS either.
    o = same_every_way(Steps{S(kGreeting), C(kClientHello + "\r\nEHLO foreign.example\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Violation);
}

TEST_F(InspectServer, ImplicitTlsIsConfirmedByTheServer) {
    auto o = same_every_way(Steps{C(kClientHello), C(kChangeCipherSpec), S(kServerHello), C("EHLO x\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Ended);
    EXPECT_EQ(o.step, 2u);
    EXPECT_GT(c.get(Ctr::inspect_ended_tls), 0u);
    o = same_every_way(Steps{C(kClientHello), S("\x15\x03\x03\x00\x02\x02\x28"s)});
    EXPECT_EQ(o.kind, InspectResult::Ended) << "a TLS alert is TLS too";
    // Cleartext from the server: it did not take the bytes as TLS; what comes next cannot be read.
    o = same_every_way(Steps{C(kClientHello), S(kGreeting), C(kEhlo)});
    EXPECT_EQ(o.kind, InspectResult::Unreadable);
    EXPECT_EQ(o.cause, Unreadable::Tls);
    EXPECT_EQ(o.step, 1u);
    o = same_every_way(Steps{C(kClientHello), S("\x16\x02")});
    EXPECT_EQ(o.cause, Unreadable::Tls);
    // Client bytes while waiting must keep the record framing.
    o = same_every_way(Steps{C(kClientHello + "EHLO foreign.example\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Unreadable);
    EXPECT_EQ(o.cause, Unreadable::Tls);
    EXPECT_EQ(same_every_way(Steps{C(kClientHello + "\x17\x03\x03\x48\x01")}).cause, Unreadable::Tls)
        << "a record longer than 2^14 + 2048";
    pol.names = nullptr;
    EXPECT_EQ(whole(Steps{C(kClientHello), S(kGreeting)}).kind, InspectResult::Ended) << "need not be read";
    // Mid-way (the server may have spoken): never taken as TLS.
    from_start = false;
    pol.names = &names;
    o = same_every_way(Steps{C(kClientHello + "\r\nEHLO foreign.example\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Violation);
}

TEST_F(InspectServer, QuitAcceptedEnds) {
    auto o = same_every_way(hello() + Steps{C("QUIT\r\n"), S("221 2.0.0 Bye\r\n"), C(kMailForeign)});
    EXPECT_EQ(o.kind, InspectResult::Ended);
    EXPECT_EQ(o.step, 4u);
    EXPECT_GT(c.get(Ctr::inspect_ended_quit), 0u);
    o = same_every_way(hello() + Steps{C("QUIT now\r\n"), S("501 5.5.4 Syntax: QUIT\r\n"), C(kMailForeign)});
    EXPECT_EQ(o.kind, InspectResult::Violation) << "a QUIT the server did not take ends nothing";
}

TEST_F(InspectServer, BudgetCountsCommandsPerTransaction) {
    pol.budget = 64;
    Steps noops{S(kGreeting)};
    for (int i = 0; i < 12; ++i) noops = noops + Steps{C("NOOP\r\n"), S("250 2.0.0 Ok\r\n")};
    auto o = same_every_way(noops);
    EXPECT_EQ(o.kind, InspectResult::Unreadable);
    EXPECT_EQ(o.cause, Unreadable::Budget);
    EXPECT_EQ(o.step, 21u) << "the 11th NOOP: bytes 61-66";
    EXPECT_EQ(o.reply, "421 4.7.0 Too many commands in one transaction to inspect, closing; try again later");
    pol.names = nullptr;
    o = whole(noops);
    EXPECT_EQ(o.kind, InspectResult::Ended) << "need not be read";
    EXPECT_EQ(o.step, 21u);
    EXPECT_GT(c.get(Ctr::inspect_ended_budget), 0u);

    // Three messages of 63 command bytes each (and the EHLO): the budget starts again with each, and bodies
    // do not count.
    pol.names = &names;
    pol.budget = 100;
    Steps three = Steps{S(kGreeting), C("EHLO mail.customer.example\r\n"), S("250 mx\r\n")};
    const std::string mail = "MAIL FROM:<a@customer.example>\r\n";
    const std::string rcpt = "RCPT TO:<b@example.net>\r\n";
    ASSERT_EQ(mail.size() + rcpt.size() + 6, 63u);
    for (int i = 0; i < 3; ++i)
        three = three + Steps{C(mail + rcpt + "DATA\r\n"), S("250 Ok\r\n250 Ok\r\n354 Go\r\n"),
                              C(std::string(500, 'b') + "\r\n.\r\n"), S("250 Ok\r\n")};
    EXPECT_EQ(same_every_way(three).kind, InspectResult::Continue);
    pol.budget = 90;  // the first transaction (EHLO + 63) is over it
    EXPECT_EQ(whole(three).cause, Unreadable::Budget);
}

TEST_F(InspectServer, LongLinesAreReadByTheirNameOrRefused) {
    pol.budget = 32768;
    const Steps start = hello();
    // Inside the kept 1024 bytes, padding changes nothing: the path is read.
    auto o =
        same_every_way(start + Steps{C("MAIL FROM:" + std::string(600, ' ') + "<x@foreign.example>\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    // Padding that pushes the verb, the name or the path past them: unreadable.
    for (const std::string& line : {"MAIL FROM:" + std::string(1100, ' ') + "<x@foreign.example>\r\n",
                                    "MAIL" + std::string(1100, ' ') + "FROM:<x@foreign.example>\r\n",
                                    "MAIL FROM:<" + std::string(1100, 'x') + "@foreign.example>\r\n",
                                    std::string(1100, ' ') + "MAIL FROM:<x@foreign.example>\r\n",
                                    "EHLO" + std::string(1100, '\t') + "foreign.example\r\n",
                                    "BDAT" + std::string(1100, ' ') + "31 LAST\r\n"}) {
        o = whole(start + Steps{C(line)});
        EXPECT_EQ(o.kind, InspectResult::Unreadable) << line.substr(0, 12);
        EXPECT_EQ(o.cause, Unreadable::Overlong);
        EXPECT_EQ(o.reply, "500 5.5.2 Line too long to be inspected");
    }
    // Past kMaxLine: unreadable as soon as it is, before its end.
    o = same_every_way(start + Steps{C(std::string(Inspector::kMaxLine + 1, 'A'))});
    EXPECT_EQ(o.cause, Unreadable::Overlong);
    EXPECT_EQ(o.step, 3u);
    // A SASL response line of 12288 bytes is fine.
    o = whole(start + Steps{C("AUTH PLAIN\r\n"), S("334 \r\n"), C(std::string(12288, 'Q') + "\r\n"),
                            S("235 2.7.0 Authentication successful\r\n"), C(kMailForeign)});
    EXPECT_EQ(o.kind, InspectResult::Violation);
    // Leading white space is skipped, as servers skip it.
    EXPECT_EQ(same_every_way(start + Steps{C(" \t\vMAIL FROM :  <x@foreign.example>\r\n")}).kind,
              InspectResult::Violation);
}

TEST_F(InspectServer, HonestLongMailFromIsFine) {
    std::string mail = "MAIL FROM:<billing@customer.example> SIZE=120000 BODY=8BITMIME ENVID=";
    mail += std::string(2000 - mail.size() - 2, 'e') + "\r\n";
    ASSERT_EQ(mail.size(), 2000u);
    Counters fresh;
    const auto o = whole(hello() + Steps{C(mail), S("250 2.1.0 Ok\r\n"), C(kRcpt)}, fresh);
    EXPECT_EQ(o.kind, InspectResult::Continue);
    EXPECT_EQ(fresh.get(Ctr::inspect_mail_from), 1u);
    EXPECT_EQ(fresh.get(Ctr::inspect_overlong_lines), 1u);
    EXPECT_EQ(same_every_way(hello() + Steps{C(mail), S("250 2.1.0 Ok\r\n"), C(kRcpt)}).kind,
              InspectResult::Continue);
}

TEST_F(InspectServer, GapsAndRetransmissions) {
    const uint32_t slot = insp.open(1000, 5000);
    auto feed = [&](bool server, const std::string& s, uint32_t seq) {
        const auto* p = reinterpret_cast<const uint8_t*>(s.data());
        const auto n = static_cast<uint32_t>(s.size());
        return server ? insp.feed_server(slot, p, n, seq, pol, c) : insp.feed(slot, p, n, seq, pol, c);
    };
    EXPECT_EQ(feed(true, kGreeting, 5000).kind, InspectResult::Continue);
    EXPECT_EQ(feed(true, kGreeting, 5000).kind, InspectResult::Continue) << "a retransmission: skipped";
    EXPECT_EQ(feed(false, "STARTTLS\r\n", 1000).kind, InspectResult::Continue);
    EXPECT_EQ(feed(false, "STARTTLS\r\n", 1000).kind, InspectResult::Continue) << "a retransmission: skipped";
    const auto next = 5000 + static_cast<uint32_t>(kGreeting.size());
    EXPECT_EQ(feed(true, "220 Go\r\n", next + 1).cause, Unreadable::ServerGap);
    EXPECT_EQ(feed(false, "x", 2000).cause, Unreadable::ServerGap) << "the verdict stays";
    insp.close(slot);

    const uint32_t s2 = insp.open(1000);
    EXPECT_EQ(insp.feed(s2, reinterpret_cast<const uint8_t*>("NOOP\r\n"), 6, 1001, pol, c).cause,
              Unreadable::Gap);
    insp.close(s2);
    EXPECT_EQ(c.get(Ctr::inspect_unreadable_gap), 1u);
    EXPECT_EQ(c.get(Ctr::inspect_unreadable_server_gap), 1u);
}

TEST_F(InspectServer, RepliesThatPairWithNothing) {
    for (const Steps& steps :
         {Steps{S(kGreeting + "250 Ok\r\n")}, Steps{S("hello\r\n")}, Steps{S("22\r\n")},
          Steps{S("220_mx\r\n")}, Steps{S(kGreeting), C("NOOP\r\n"), S("250 Ok\r\n421 Bye\r\n")}}) {
        const auto o = same_every_way(steps);
        EXPECT_EQ(o.kind, InspectResult::Unreadable);
        EXPECT_EQ(o.cause, Unreadable::Desync);
    }
    // Multi-line replies are one reply; a bare "250" line is a final one.
    EXPECT_EQ(
        same_every_way(hello() + Steps{C("NOOP\r\nNOOP\r\n"), S("250\r\n250-a\n250-b\r\n250 c\r\n")}).kind,
        InspectResult::Continue);
}

TEST_F(InspectServer, MidWayOpenPairsWithCommandsReadFromThere) {
    from_start = false;
    auto o = same_every_way(
        Steps{C(kEhlo), S("250-mx\r\n250 STARTTLS\r\n"), C("STARTTLS\r\n"), S("220 2.0.0 Ready\r\n")});
    EXPECT_EQ(o.kind, InspectResult::Ended);
    EXPECT_EQ(o.step, 3u);
}

}  // namespace

// A receiver's refusal (a 5xx reply: the greeting, RCPT TO, a multi-line one, one of pipelined replies) is
// read the same way however the server's bytes are cut: once per reply, its first line, as written.
TEST_F(InspectServer, ReceiversRefusalsAreReadOnceEachWhateverTheSegmentation) {
    rte_ring* ring = rte_ring_create_elem("insp_remote", sizeof(ObservationEvent), 1024, SOCKET_ID_ANY,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
    ASSERT_NE(ring, nullptr);
    insp.set_observations(ring);
    const IpAddr src = *parse_addr("198.51.100.20");
    pol.source = &src;
    const Steps steps = hello() + Steps{C(kMailOk),
                                        S("250 2.1.0 Ok\r\n"),
                                        C(kRcpt),
                                        S("550-5.7.1 Service unavailable; client host [198.51.100.20]\r\n"
                                          "550 5.7.1 blocked using zen.spamhaus.example\r\n"),
                                        C(kRcpt + kRcpt),
                                        S("554 5.7.1 Relay access denied\r\n250 2.1.5 Ok\r\n")};
    const std::vector<std::string> expected = {"550-5.7.1 Service unavailable; client host [198.51.100.20]",
                                               "554 5.7.1 Relay access denied"};
    auto observed = [&] {
        std::vector<std::string> out;
        ObservationEvent ev[16];
        unsigned n;
        while ((n = rte_ring_dequeue_burst_elem(ring, ev, sizeof ev[0], 16, nullptr)) > 0)
            for (unsigned i = 0; i < n; ++i)
                if (ev[i].kind == kObservedRemoteRefusal) {
                    EXPECT_EQ(ev[i].source(), src);
                    out.emplace_back(ev[i].text, ev[i].len);
                }
        return out;
    };
    Counters ctr;
    EXPECT_EQ(whole(steps, ctr).kind, InspectResult::Continue);
    EXPECT_EQ(observed(), expected);
    EXPECT_EQ(ctr.get(Ctr::inspect_remote_refusals), 2u);
    for (size_t k = 0; k < steps.size(); ++k) {
        if (!steps[k].server) continue;
        for (size_t at = 1; at < steps[k].bytes.size(); ++at) {
            const auto cut = [&](size_t s, size_t) {
                return s == k ? std::vector<size_t>{at} : std::vector<size_t>{};
            };
            play(steps, cut, ctr);
            EXPECT_EQ(observed(), expected) << "step " << k << " cut at " << at;
        }
    }
    const auto bytes = [](size_t, size_t len) {
        std::vector<size_t> v;
        for (size_t i = 1; i < len; ++i) v.push_back(i);
        return v;
    };
    play(steps, bytes, ctr);
    EXPECT_EQ(observed(), expected) << "one byte a segment";
    // A refusing greeting; a long reply is kept to its first kReplyKeep bytes.
    const std::string long_text = "554 " + std::string(300, 'x');
    whole(
        Steps{S("554 5.3.2 mx.example.net not accepting mail from you\r\n"), C(kEhlo), S(long_text + "\r\n")},
        ctr);
    const auto got = observed();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], "554 5.3.2 mx.example.net not accepting mail from you");
    EXPECT_EQ(got[1], long_text.substr(0, Inspector::kReplyKeep));
    insp.set_observations(nullptr);
    rte_ring_free(ring);
}
