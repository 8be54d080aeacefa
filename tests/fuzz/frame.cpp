// Fuzz target: a frame as a worker receives it from either port (a customer server may send anything). The
// input is the frame's bytes, at most 2048 (one mbuf's data room: the gateway takes single-segment frames).
// It goes through what the per-packet path does with it:
// - parse_frame() (dataplane/parse.hpp) over exactly the input's bytes, so that a read past the frame is
//   caught by AddressSanitizer; every offset it reports must lie inside the frame;
// - classify_outbound() against a policy built from a small configuration (a first fragment of TCP to an SMTP
//   port from a managed source is never forwarded);
// - for a TCP segment, every responder (dataplane/respond.hpp) on a copy in a buffer of one mbuf's room, as
//   the worker calls them: the RST, the stateless SMTP answer (also with the acknowledgement numbers a client
//   that completed the cookie handshake would send), the SMTP close, the FIN's ACK, and the RST forwarded to
//   the server in a separate buffer; each answer must parse again as a TCP segment of the same flow;
// - the payload's command lines through the SMTP command parser and name checks (dataplane/smtp_command.hpp),
//   whole and as a line cut short;
// - the payload through an Inspector (dataplane/inspect.hpp) as a session read from its start: its first half
//   as the client's bytes, then all of it as the server's, then its second half as the client's again; every
//   verdict must be one of the kinds, with a reply where one is due.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "control/policy/policy_builder.hpp"
#include "dataplane/classify.hpp"
#include "dataplane/inspect.hpp"
#include "dataplane/parse.hpp"
#include "dataplane/respond.hpp"
#include "dataplane/smtp_command.hpp"
#include "tests/fuzz/fuzz_util.hpp"

using namespace portcullis;

namespace {

constexpr uint32_t kRoom = 2048;  // RTE_MBUF_DEFAULT_DATAROOM
constexpr uint64_t kSlot = 27'000'000;

const Policy& policy() {
    static const std::unique_ptr<Policy> pol = [] {
        Config c;
        c.managed_prefixes = {*parse_prefix("198.51.100.0/24"), *parse_prefix("2001:db8:100::/48")};
        c.approved = {*parse_prefix("198.51.100.64/28"), *parse_prefix("2001:db8:100:7::/64")};
        c.relay_hosts = {*parse_prefix("203.0.113.5")};
        c.blocked_ports = {25};
        c.open_ports = {465, 587};
        c.action_unapproved = Action::Smtp;
        c.replies = {"550 5.7.1 not approved", "421 4.7.0 too many connections",
                     "421 4.7.0 too fast",     "421 4.7.0 daily limit",
                     "421 4.3.2 busy",         "550 5.7.1 policy"};
        c.cookie_key = {0x0123456789abcdefull, 0xfedcba9876543210ull};
        auto built = build_policy(c, nullptr, 0);
        built.policy->cookie_key = c.cookie_key;
        return std::move(built.policy);
    }();
    return *pol;
}

// Every offset a TCP parse reports lies inside the frame.
void check_parse(const Parsed& p, uint32_t len, const char* what) {
    if (p.kind != L3Kind::Tcp) return;
    if (p.l3_off < 14 || p.l4_off < p.l3_off + 20u || p.l4_off + 20u > len)
        fuzz::fail("%s: TCP header offsets %u/%u outside a %u-byte frame", what, p.l3_off, p.l4_off, len);
    if (p.payload_off < p.l4_off + 20u || p.payload_off + uint32_t{p.payload_len} > len)
        fuzz::fail("%s: payload [%u, +%u) outside a %u-byte frame", what, p.payload_off, p.payload_len, len);
    if (p.ip_version != 4 && p.ip_version != 6) fuzz::fail("%s: IP version %u", what, p.ip_version);
}

// An answer is a TCP segment of the same connection, reversed (or, for the server's RST, the same way).
void check_answer(const uint8_t* frame, uint32_t len, uint32_t room, const Parsed& from, bool reversed,
                  const char* what) {
    if (len == 0) return;
    if (len > room) fuzz::fail("%s: answer of %u bytes in a %u-byte buffer", what, len, room);
    auto copy = std::make_unique<uint8_t[]>(len);  // exactly the answer: ASan catches reads past it
    std::memcpy(copy.get(), frame, len);
    const Parsed a = parse_frame(copy.get(), len);
    if (a.kind != L3Kind::Tcp) fuzz::fail("%s: the answer does not parse as TCP", what);
    check_parse(a, len, what);
    const bool same =
        reversed ? (a.src == from.dst && a.dst == from.src && a.sport == from.dport && a.dport == from.sport)
                 : (a.src == from.src && a.dst == from.dst && a.sport == from.sport && a.dport == from.dport);
    if (!same) fuzz::fail("%s: the answer belongs to another connection", what);
    if (a.vlan_tags != from.vlan_tags) fuzz::fail("%s: the answer lost its VLAN tags", what);
}

void store_ack(uint8_t* frame, const Parsed& p, uint32_t ack) {
    const uint32_t be = __builtin_bswap32(ack);
    std::memcpy(frame + p.l4_off + 8, &be, 4);
}

void run_responders(const uint8_t* data, uint32_t size, const Parsed& p, const Policy& pol) {
    // The mbuf's whole data room, allocated exactly: a write past the room is caught.
    auto buf = std::make_unique<uint8_t[]>(kRoom);
    auto fresh = [&] {
        std::memcpy(buf.get(), data, size);
        return buf.get();
    };

    check_answer(buf.get(), make_rst_in_place(fresh(), p), kRoom, p, true, "make_rst_in_place");

    for (unsigned r = 0; r < kReplyReasons; ++r) {
        const auto reason = static_cast<ReplyReason>(r);
        auto a = smtp_answer_in_place(fresh(), kRoom, p, pol.cookie_key, kSlot, reason, pol.replies);
        check_answer(buf.get(), a.len, kRoom, p, true, "smtp_answer_in_place");
        // What a client that completed the handshake acknowledges: the cookie + 1 (the reply comes next),
        // then past our reply line (and FIN).
        const uint32_t cookie = syn_cookie(pol.cookie_key, p, kSlot, reason);
        const uint32_t reply = static_cast<uint32_t>(pol.replies[r].size()) + 2;
        for (uint32_t ack : {cookie + 1, cookie + 1 + reply, cookie + 1 + reply + 1}) {
            uint8_t* f = fresh();
            store_ack(f, p, ack);
            a = smtp_answer_in_place(f, kRoom, p, pol.cookie_key, kSlot, reason, pol.replies);
            check_answer(buf.get(), a.len, kRoom, p, true, "smtp_answer_in_place (cookie)");
        }
    }

    check_answer(buf.get(), smtp_close_in_place(fresh(), kRoom, p, pol.replies[5]), kRoom, p, true,
                 "smtp_close_in_place");
    check_answer(buf.get(), ack_fin_in_place(fresh(), p), kRoom, p, true, "ack_fin_in_place");

    auto out = std::make_unique<uint8_t[]>(kRoom);
    check_answer(out.get(), make_forward_rst(data, p, out.get(), kRoom), kRoom, p, false, "make_forward_rst");
}

void read_commands(const uint8_t* payload, uint16_t len) {
    (void)looks_like_smtp_command(payload, len);
    const std::string_view text(reinterpret_cast<const char*>(payload), len);
    for (auto line : fuzz::split_lines(text)) {
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        const CommandLine c = parse_command(line);
        if (c.arg.data() && !c.arg.empty() &&
            (c.arg.data() < line.data() || c.arg.data() + c.arg.size() > line.data() + line.size()))
            fuzz::fail("parse_command: the argument lies outside its line");
        const CommandLine cut = parse_command(line, true);
        if (cut.arg.data() && !cut.arg.empty() &&
            (cut.arg.data() < line.data() || cut.arg.data() + cut.arg.size() > line.data() + line.size()))
            fuzz::fail("parse_command (cut): the argument lies outside its line");
        if (cut.whole && cut.cmd != c.cmd)
            fuzz::fail("parse_command: a cut line read whole is another command");
        if (c.cmd == SmtpCommand::Helo) {
            (void)is_fqdn(c.arg);
            (void)is_address_literal(c.arg);
            (void)same_name(c.arg, "mail.example.com");
        } else if (c.cmd == SmtpCommand::MailFrom) {
            const auto domain = domain_of(c.arg);
            if (!domain.empty() && domain.size() > c.arg.size())
                fuzz::fail("domain_of: longer than its address");
            (void)same_name(domain, "example.com.");
        }
    }
}

void check_verdict(const InspectResult& r, const char* what) {
    if (r.kind > InspectResult::Unreadable) fuzz::fail("%s: verdict kind %d", what, int(r.kind));
    if ((r.kind == InspectResult::Violation || r.kind == InspectResult::Unreadable) && !r.reply)
        fuzz::fail("%s: a refusal without a reply", what);
    if (r.kind == InspectResult::Unreadable && static_cast<size_t>(r.cause) >= kUnreadableCauses)
        fuzz::fail("%s: cause %d", what, int(r.cause));
}

void inspect(const uint8_t* payload, uint16_t len) {
    static Inspector insp(1, 512);
    static const ApprovalNames names{"mail.example.com", {"example.com"}};
    Counters c;
    InspectPolicy ip;
    ip.names = &names;
    ip.budget = 1024;
    const uint32_t slot = insp.open(1000, 5000);
    if (slot == Inspector::kNone) fuzz::fail("Inspector::open: the pool leaks");
    const uint32_t half = len / 2u;
    check_verdict(insp.feed(slot, payload, half, 1000, ip, c), "feed");
    check_verdict(insp.feed_server(slot, payload, len, 5000, ip, c), "feed_server");
    check_verdict(insp.feed(slot, payload + half, len - half, 1000 + half, ip, c), "feed again");
    insp.close(slot);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size > kRoom) return 0;
    const Policy& pol = policy();
    // Exactly the frame's bytes on the heap: a read past them is caught.
    auto frame = std::make_unique<uint8_t[]>(size);
    if (size) std::memcpy(frame.get(), data, size);
    const auto len = static_cast<uint32_t>(size);

    const Parsed p = parse_frame(frame.get(), len);
    check_parse(p, len, "parse_frame");
    if (p.kind == L3Kind::Malformed && p.malformation == Malformation::None)
        fuzz::fail("malformed without a reason");
    if (p.kind != L3Kind::Malformed && p.malformation != Malformation::None)
        fuzz::fail("a reason without malformed");
    if ((p.fragment == Fragment::NonFirst) != (p.frag_offset != 0))
        fuzz::fail("fragment offset %u for a fragment kind %d", p.frag_offset, static_cast<int>(p.fragment));
    if (p.kind == L3Kind::Tcp && p.fragment == Fragment::NonFirst)
        fuzz::fail("a non-first fragment parsed as TCP");
    const Decision d = classify_outbound(p, pol);
    // No first fragment of TCP to an SMTP port from a managed source is forwarded (docs/security.md).
    if (p.kind == L3Kind::Tcp && p.fragment != Fragment::None && pol.smtp_ports.test(p.dport) &&
        pol.managed(p.src) && d.verdict != Verdict::Drop)
        fuzz::fail("a first fragment to SMTP port %u from a managed source was not dropped", p.dport);
    if (p.kind != L3Kind::Tcp) return 0;

    run_responders(frame.get(), len, p, pol);
    read_commands(frame.get() + p.payload_off, p.payload_len);
    inspect(frame.get() + p.payload_off, p.payload_len);
    return 0;
}
