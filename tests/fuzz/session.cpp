// Fuzz target: SEQUENCES of TCP segments, both ways, through one worker's connection tracker (FlowTracker)
// and its inspector (Inspector), as dataplane/worker.cpp drives them. The frame target reads one frame at a
// time; the state machines (handshake confirmation, normalisation, early drop, candidates on other ports,
// command reading, reply pairing, DATA/BDAT/STARTTLS/TLS) are only reached by sequences.
//
// The input is a small session script (tests/fuzz/make_corpus.py writes seeds in this format):
//   header: 2 bytes of policy knobs (see Knobs below: monitor, rules, approval names, limits, other-ports
//           mode, inspect_bytes, actions, inspection on/off, EHLO literals)
//   steps, each an op byte:
//     bits 0-1  kind: 0, 1 a client segment (inside -> outside), 2 a server segment, 3 a control step
//     bits 2-4  segment: which flags (kFlags; 7: a raw flags byte follows); control: which step (Control)
//     bit 5     segment: same 4-tuple as the previous step (else a tuple byte follows)
//     bit 6     segment: a modifier byte follows (Mod)
//     bit 7     segment: a payload follows (a length byte < 200 and that many bytes, or 200..255: a filler
//               line of (len - 199) * 24 bytes ending in CR LF)
//   then, for a segment, in this order: [tuple] [raw flags] [mod] [seq delta] [ack delta] [options]
//   [window] [time advance] [payload]. Control steps take one argument byte.
// A tuple byte: client (bits 0-1: an approved and an unapproved IPv4 source, the same in IPv6), server
// (bits 2-3: an MX on 25, 587, 2525, a relay on 25), client port (bits 4-7). Sequence numbers are relative
// to what each end has sent so far (a SYN: to the end's ISN), so "delta 0" is the honest next segment; the
// acknowledgement number is what the other end has sent. Checksums are right unless the script says not.
//
// Each client segment goes where the worker sends it: classify_outbound(), then FlowTracker::outbound()
// (and unknown() for a segment of no flow), or, for a port that is not an SMTP port, outbound_other() when
// other_port() says so. A server segment goes to FlowTracker::inbound() when its port is an SMTP port or one
// with sessions found by their commands. Every step sweeps one table entry; time steps sweep more.
//
// Properties checked (abort, so libFuzzer keeps the input):
// - every flow in the table belongs to one of the script's 4-tuples, and the table's size counts them;
// - the inspector's in_use() is the number of flows holding an inspector slot (no two the same slot);
// - every source's concurrency count in the SourceTable is the number of flows holding one of its units,
//   and, outside monitor mode, at most its limit (max_concurrent, or the table's per-source cap);
// - half-open entries (SYN seen, SYN-ACK seen, candidates) hold no source unit; half-open connections and
//   closed or refused flows hold no inspector either (candidates may);
// - a RefuseSession answered with an SMTP reply has the reply; a Refuse has no Forward in it;
// - a client segment with a wrong checksum that carries something (data, SYN, FIN, RST) is not forwarded
//   once its flow exists (pure ACKs change nothing the tracker reads; a closed flow's retransmissions pass);
// - outside monitor mode, client data is forwarded only on a confirmed flow or a candidate (data on a SYN or
//   a RST, which no server takes as data, aside);
// - after the last step (and at a control step that asks for it), with time past every timeout and a full
//   sweep: the table is empty, the inspector's pool is all free, every source's concurrency count is 0, and
//   no port is watched for sessions found by their commands.
#include <algorithm>
#include <array>
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "control/policy/policy_builder.hpp"
#include "control/policy/rules.hpp"
#include "dataplane/classify.hpp"
#include "dataplane/flow_tracker.hpp"
#include "dataplane/inspect.hpp"
#include "dataplane/parse.hpp"
#include "dataplane/source_table.hpp"
#include "dataplane/tcp_segment.hpp"
#include "tests/fuzz/fuzz_util.hpp"
#include "tests/unit/frames.hpp"

using namespace portcullis;

namespace {

constexpr uint32_t kMaxFlows = 16;       // the flow table: early drop and a full table are within reach
constexpr uint32_t kHalfOpenCap = 4;     // half-open connections per source under pressure
constexpr uint32_t kInspectSlots = 4;    // the inspector pool (a quarter of it: one candidate)
constexpr size_t kStreamBlock = 512;     // Hyperscan stream state per inspected flow
constexpr uint32_t kSources = 64;        // SourceTable slots
constexpr uint32_t kSourceMaxFlows = 6;  // a source's connections when its limits set no concurrency limit
constexpr FlowTimeouts kTimeouts{3'000, 60'000, 5'000};
constexpr uint32_t kMaxSteps = 512;
constexpr uint32_t kMaxPayload = 1400;
constexpr uint32_t kTuples = 256;
constexpr uint32_t kFullSweepEvery = 3'600'000;  // ms: the worker sweeps its whole table far more often
const CookieKey kKey{0x0123456789abcdefull, 0xfedcba9876543210ull};

// The script's addresses. Clients: approved IPv4, unapproved IPv4, approved IPv6, unapproved IPv6 (each its
// own source: a different /64). Servers per family: an MX (ports 25, 587, 2525) and a relay (port 25).
struct Addrs {
    IpAddr client[4];
    IpAddr mx[2], relay[2];  // [v6]
};
const Addrs& addrs() {
    static const Addrs a = [] {
        Addrs x;
        x.client[0] = *parse_addr("198.51.100.10");
        x.client[1] = *parse_addr("198.51.100.20");
        x.client[2] = *parse_addr("2001:db8:100:7::10");
        x.client[3] = *parse_addr("2001:db8:100::20");
        x.mx[0] = *parse_addr("203.0.113.25");
        x.mx[1] = *parse_addr("2001:db8:ff::25");
        x.relay[0] = *parse_addr("203.0.113.5");
        x.relay[1] = *parse_addr("2001:db8:25::53");
        return x;
    }();
    return a;
}
constexpr uint16_t kServerPorts[4] = {25, 587, 2525, 25};

struct Tuple {
    uint8_t client;
    IpAddr src, dst;  // the client's and the server's
    uint16_t cport, sport;
};
Tuple tuple(uint8_t t) {
    const Addrs& a = addrs();
    Tuple x;
    x.client = t & 3;
    x.src = a.client[x.client];
    const bool v6 = x.src.v6;
    const unsigned server = (t >> 2) & 3;
    x.dst = server == 3 ? a.relay[v6] : a.mx[v6];
    x.sport = kServerPorts[server];
    x.cport = static_cast<uint16_t>(40000 + (t >> 4));
    return x;
}

// A frame with the given header fields, checksums right (or the TCP checksum off by one).
struct Seg {
    IpAddr src, dst;
    uint16_t sport = 0, dport = 0;
    uint8_t flags = 0;
    uint32_t seq = 0, ack = 0;
    uint16_t window = 65535;
    uint8_t ttl = 64;
    std::vector<uint8_t> options;  // padded with NOPs to 4 bytes
    std::string payload;
    bool bad_checksum = false;
};
std::vector<uint8_t> build(const Seg& s) {
    using test::put16;
    using test::put32;
    std::vector<uint8_t> l4;
    l4.reserve(60 + s.payload.size());
    put16(l4, s.sport);
    put16(l4, s.dport);
    put32(l4, s.seq);
    put32(l4, s.ack);
    std::vector<uint8_t> opts = s.options;
    while (opts.size() % 4) opts.push_back(1);
    l4.push_back(static_cast<uint8_t>(((20 + opts.size()) / 4) << 4));
    l4.push_back(s.flags);
    put16(l4, s.window);
    put16(l4, 0);
    put16(l4, 0);
    l4.insert(l4.end(), opts.begin(), opts.end());
    l4.insert(l4.end(), s.payload.begin(), s.payload.end());
    const uint16_t sum =
        static_cast<uint16_t>(test::tcp_checksum(s.src, s.dst, l4) + (s.bad_checksum ? 1 : 0));
    l4[16] = static_cast<uint8_t>(sum >> 8);
    l4[17] = static_cast<uint8_t>(sum);

    std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0xbb, 0x02, 0, 0, 0, 0, 0xaa};
    put16(f, s.src.v6 ? 0x86dd : 0x0800);
    if (!s.src.v6) {
        const size_t h = f.size();
        f.push_back(0x45);
        f.push_back(0);
        put16(f, static_cast<uint16_t>(20 + l4.size()));
        put16(f, 1);
        put16(f, 0x4000);  // DF
        f.push_back(s.ttl);
        f.push_back(6);
        put16(f, 0);
        put32(f, s.src.v4);
        put32(f, s.dst.v4);
        uint32_t acc = 0;
        for (size_t i = 0; i < 20; i += 2) acc += (uint32_t{f[h + i]} << 8) | f[h + i + 1];
        while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
        f[h + 10] = static_cast<uint8_t>(~acc >> 8);
        f[h + 11] = static_cast<uint8_t>(~acc);
    } else {
        put32(f, 0x60000000);
        put16(f, static_cast<uint16_t>(l4.size()));
        f.push_back(6);
        f.push_back(s.ttl);
        const auto sb = v6_to_bytes(s.src.v6addr), db = v6_to_bytes(s.dst.v6addr);
        f.insert(f.end(), sb.begin(), sb.end());
        f.insert(f.end(), db.begin(), db.end());
    }
    f.insert(f.end(), l4.begin(), l4.end());
    return f;
}

// The flow key of every tuple, as the tracker computes it from a client segment.
const std::array<FlowKey, kTuples>& tuple_keys() {
    static const std::array<FlowKey, kTuples> keys = [] {
        std::array<FlowKey, kTuples> k{};
        for (uint32_t t = 0; t < kTuples; ++t) {
            const Tuple x = tuple(static_cast<uint8_t>(t));
            Seg s;
            s.src = x.src;
            s.dst = x.dst;
            s.sport = x.cport;
            s.dport = x.sport;
            s.flags = tcpflag::SYN;
            const auto f = build(s);
            const Parsed p = parse_frame(f.data(), static_cast<uint32_t>(f.size()));
            if (p.kind != L3Kind::Tcp) fuzz::fail("harness: the frame of tuple %u does not parse", t);
            k[t] = flow_key(p, true);
        }
        return k;
    }();
    return keys;
}

// Two small rule sets, compiled once (as `rules reload` does, one worker's scratch): the script swaps them.
std::shared_ptr<const InspectDb> compile(const char* name, const char* text) {
    auto r = compile_rules({{name, text}}, 1, kStreamBlock);
    if (!r.db) fuzz::fail("harness: rules %s do not compile: %s", name, r.error.c_str());
    return r.db;
}
const std::shared_ptr<const InspectDb>& rules_a() {
    static const auto db =
        compile("a.rules",
                "1001 ehlo refuse /(localhost|localhost\\.localdomain)$/i \"EHLO localhost\"\n"
                "1002 ehlo count /[^ ]*\\.(local|lan|home)$/i\n"
                "2001 mail_from refuse /[^\\r\\n]*%0[ad]/i \"encoded line break\"\n"
                "3001 line refuse /RCPT TO:<[^>]*%/i \"percent hack\"\n"
                "3002 line count /VRFY /i\n");
    return db;
}
const std::shared_ptr<const InspectDb>& rules_b() {
    static const auto db = compile("b.rules", "5001 line refuse /XEXPS/i \"no XEXPS\"\n");
    return db;
}

// The policy every input starts from (the knobs are set per input).
Policy& policy() {
    static const std::unique_ptr<Policy> pol = [] {
        Config c;
        c.managed_prefixes = {*parse_prefix("198.51.100.0/24"), *parse_prefix("2001:db8:100::/48")};
        c.approved = {*parse_prefix("198.51.100.10"), *parse_prefix("2001:db8:100:7::/64")};
        c.relay_hosts = {*parse_prefix("203.0.113.5"), *parse_prefix("2001:db8:25::53")};
        c.blocked_ports = {25};
        c.open_ports = {465, 587};
        c.replies = {"550 5.7.1 not approved", "421 4.7.0 too many connections",
                     "421 4.7.0 too fast",     "421 4.7.0 daily limit",
                     "421 4.3.2 busy",         "550 5.7.1 policy"};
        c.cookie_key = kKey;
        auto built = build_policy(c, nullptr, 0);
        built.policy->cookie_key = c.cookie_key;
        return std::move(built.policy);
    }();
    return *pol;
}

// The approvals' names: the approved sources' host name and sending domain.
AddrMap<ApprovalNames> approval_names() {
    AddrMap<ApprovalNames> m;
    const ApprovalNames n{"mail.example.com", {"example.com"}};
    const Addrs& a = addrs();
    m.assign(false, {{u128{a.client[0].v4}, u128{a.client[0].v4}, n}});
    const u128 net = a.client[2].v6addr & ~((u128{1} << 64) - 1);
    m.assign(true, {{net, net | ((u128{1} << 64) - 1), n}});
    return m;
}

// The two header bytes.
struct Knobs {
    bool monitor, rules, names, small_budget, inspect, literal, rate, daily;
    uint32_t max_concurrent;
    OtherPorts other;
    Action action_limit, action_payload;
};
Knobs knobs(uint8_t h0, uint8_t h1) {
    static constexpr Action kActions[4] = {Action::Rst, Action::Drop, Action::Smtp, Action::Smtp};
    static constexpr OtherPorts kOther[4] = {OtherPorts::Allow, OtherPorts::Limit, OtherPorts::Refuse,
                                             OtherPorts::Limit};
    Knobs k;
    k.monitor = h0 & 0x01;
    k.rules = h0 & 0x02;
    k.names = h0 & 0x04;
    k.max_concurrent = (h0 >> 3) & 3;
    k.other = kOther[(h0 >> 5) & 3];
    k.small_budget = h0 & 0x80;
    k.action_limit = kActions[h1 & 3];
    k.action_payload = kActions[(h1 >> 2) & 3];
    k.inspect = !(h1 & 0x10);
    k.rate = h1 & 0x20;
    k.daily = h1 & 0x40;
    k.literal = h1 & 0x80;
    return k;
}

void apply(Policy& pol, const Knobs& k) {
    pol.monitor = k.monitor;
    pol.rules = k.rules ? rules_a() : nullptr;
    static const AddrMap<ApprovalNames> with = approval_names(), without;
    pol.names = k.names ? with : without;
    pol.default_limits = Limits{k.max_concurrent, k.rate ? 3u : 0u, k.daily ? 2u : 0u};
    pol.relay_limits = pol.default_limits;  // a source's units are one count, whichever limits admitted them
    pol.smtp_other_ports = k.other;
    pol.inspect_bytes = k.small_budget ? 64 : 32768;
    pol.action_limit = k.action_limit;
    pol.action_payload = k.action_payload;
    pol.action_unreadable.fill(k.action_payload);
    pol.inspect = k.inspect;
    pol.ehlo_allow_literal = k.literal;
}

constexpr uint8_t kFlags[7] = {
    tcpflag::SYN,
    tcpflag::SYN | tcpflag::ACK,
    tcpflag::ACK,
    tcpflag::PSH | tcpflag::ACK,
    tcpflag::FIN | tcpflag::ACK,
    tcpflag::RST,
    tcpflag::RST | tcpflag::ACK,
};

namespace mod {
inline constexpr uint8_t kSeq = 0x01;      // a seq delta byte (signed) follows
inline constexpr uint8_t kAck = 0x02;      // an ack delta byte (signed) follows
inline constexpr uint8_t kOptions = 0x04;  // an options byte follows (opt::)
inline constexpr uint8_t kBadSum = 0x08;   // the TCP checksum is wrong
inline constexpr uint8_t kWindow = 0x10;   // a window byte follows (window = byte * 257)
inline constexpr uint8_t kTime = 0x20;     // a time advance byte follows (before the segment)
inline constexpr uint8_t kFar = 0x40;      // the seq delta is in units of 65536
}  // namespace mod
namespace opt {
inline constexpr uint8_t kTs = 0x01;      // timestamps (the sender's clock)
inline constexpr uint8_t kOldTs = 0x02;   // ... an old one (PAWS)
inline constexpr uint8_t kWs = 0x04;      // window scale 7
inline constexpr uint8_t kMd5 = 0x08;     // a TCP MD5 signature
inline constexpr uint8_t kTfo = 0x10;     // a TCP Fast Open cookie
inline constexpr uint8_t kBroken = 0x20;  // an option running past the header
inline constexpr uint8_t kLowTtl = 0x40;  // a TTL below the SYN's
inline constexpr uint8_t kMss = 0x80;     // MSS (harmless)
}  // namespace opt

enum Control : uint8_t {
    kAdvance0,     // advance time, sweep half the table
    kAdvance1,     // the same
    kAdvance2,     // the same
    kFullSweep,    // sweep every entry
    kQuiet,        // advance past every timeout, sweep everything, check that nothing is left
    kSwapRules,    // a rules reload: arg % 3 = a, b, none
    kSweepSome,    // sweep (arg % 64) entries
    kAdvanceOnly,  // advance time, no sweep
};

// Milliseconds for a time byte: (b & 63) units of 1 ms, 50 ms, 2 s or 500 s.
uint32_t advance_ms(uint8_t b) {
    static constexpr uint32_t kUnit[4] = {1, 50, 2'000, 500'000};
    return (b & 63u) * kUnit[b >> 6];
}

class Reader {
  public:
    Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
    bool more() const { return i_ < n_; }
    uint8_t byte() { return i_ < n_ ? d_[i_++] : 0; }
    std::string bytes(size_t n) {
        n = std::min(n, n_ - i_);
        std::string s(reinterpret_cast<const char*>(d_ + i_), n);
        i_ += n;
        return s;
    }

  private:
    const uint8_t* d_;
    size_t n_, i_ = 0;
};

// What each end of a tuple has sent: the next sequence number of an honest sender.
struct Ends {
    uint32_t cli_isn, srv_isn, cli_nxt, srv_nxt;
};

const char* verdict_name(Verdict v) {
    static constexpr const char* kNames[] = {"Forward",       "Refuse",  "Untracked",
                                             "RefuseSession", "Refused", "Drop"};
    return static_cast<size_t>(v) < std::size(kNames) ? kNames[static_cast<size_t>(v)] : "?";
}

class Session {
  public:
    explicit Session(const Knobs& k)
        : knobs_(k),
          pol_(policy()),
          sources_(kSources, kKey, 64, kSourceMaxFlows),
          insp_(kInspectSlots, kStreamBlock),
          flows_(kMaxFlows, kKey, &sources_, kTimeouts, &insp_, 0, kHalfOpenCap) {
        apply(pol_, k);
        now_at(0);
        for (uint32_t t = 0; t < kTuples; ++t) {
            Ends& e = ends_[t];
            // ISNs spread over the sequence space; a few just before it wraps.
            e.cli_isn = (t >> 4) == 15 ? 0xfffffff0u : 0x10000000u * (t & 15) + 1000u * (t >> 4);
            e.srv_isn =
                (t >> 4) == 14 ? 0xffffffe0u : 0x80000000u + 0x01000000u * (t & 15) + 7000u * (t >> 4);
            e.cli_nxt = e.cli_isn + 1;
            e.srv_nxt = e.srv_isn + 1;
        }
    }

    void run(Reader& in) {
        uint8_t t = 0;
        for (uint32_t step = 0; step < kMaxSteps && in.more(); ++step) {
            const uint8_t op = in.byte();
            const unsigned kind = op & 3;
            if (kind == 3) {
                control(static_cast<Control>((op >> 2) & 7), in.byte());
            } else {
                if (!(op & 0x20)) t = in.byte();
                segment(op, t, kind == 2, in);
            }
            flows_.sweep(now_, 1, c_);
            if (now_.ms - last_full_sweep_ >= kFullSweepEvery) full_sweep();
            check_tables();
        }
        quiet();
    }

  private:
    void now_at(uint64_t us) {
        // Starting 90 s before a UTC midnight: daily counts roll over within reach.
        static constexpr uint64_t kStartUnixUs = (20'000ull * 86'400 + 86'400 - 90) * 1'000'000;
        now_.us = us;
        now_.ms = static_cast<uint32_t>(us / 1000);
        now_.day = static_cast<uint32_t>((kStartUnixUs + us) / 86'400'000'000ull);
    }
    void advance(uint32_t ms) { now_at(now_.us + uint64_t{ms} * 1000); }
    void full_sweep() {
        // Round after round until one finds nothing: an entry that an erase moves back into the slot just
        // swept is seen on the next round (and every move brings an entry nearer its home slot).
        for (uint32_t round = 0; round <= kMaxFlows + 1; ++round) {
            const uint32_t before = flows_.table().size();
            flows_.sweep(now_, flows_.table().slots(), c_);
            if (flows_.table().size() == before) break;
        }
        last_full_sweep_ = now_.ms;
    }

    void control(Control op, uint8_t arg) {
        switch (op) {
            case kAdvance0:
            case kAdvance1:
            case kAdvance2:
                advance(advance_ms(arg));
                flows_.sweep(now_, flows_.table().slots() / 2, c_);
                break;
            case kFullSweep:
                full_sweep();
                break;
            case kQuiet:
                quiet();
                break;
            case kSwapRules:
                pol_.rules = arg % 3 == 0 ? rules_a() : arg % 3 == 1 ? rules_b() : nullptr;
                break;
            case kSweepSome:
                flows_.sweep(now_, arg % 64, c_);
                break;
            case kAdvanceOnly:
                advance(advance_ms(arg));
                break;
        }
        if (fuzz::verbose()) std::fprintf(stderr, "  control %d(%u) at %u ms\n", int(op), arg, now_.ms);
    }

    void segment(uint8_t op, uint8_t t, bool from_server, Reader& in) {
        const unsigned fi = (op >> 2) & 7;
        const uint8_t flags = fi == 7 ? in.byte() : kFlags[fi];
        const uint8_t m = (op & 0x40) ? in.byte() : 0;
        int64_t dseq = (m & mod::kSeq) ? static_cast<int8_t>(in.byte()) : 0;
        if (m & mod::kFar) dseq *= 65536;
        const int32_t dack = (m & mod::kAck) ? static_cast<int8_t>(in.byte()) : 0;
        const uint8_t o = (m & mod::kOptions) ? in.byte() : 0;
        const int window = (m & mod::kWindow) ? in.byte() * 257 : -1;
        if (m & mod::kTime) advance(advance_ms(in.byte()));
        std::string payload;
        if (op & 0x80) {
            const uint8_t len = in.byte();
            if (len < 200) {
                payload = in.bytes(len);
            } else {
                payload.assign(std::min<size_t>((len - 199u) * 24u, kMaxPayload) - 2, 'x');
                payload += "\r\n";
            }
        }

        const Tuple x = tuple(t);
        Ends& e = ends_[t];
        Seg s;
        s.flags = flags;
        s.payload = std::move(payload);
        s.bad_checksum = m & mod::kBadSum;
        if (!from_server) {
            s.src = x.src;
            s.dst = x.dst;
            s.sport = x.cport;
            s.dport = x.sport;
            s.seq = static_cast<uint32_t>(((flags & tcpflag::SYN) ? e.cli_isn : e.cli_nxt) + dseq);
            s.ack = (flags & tcpflag::ACK) ? e.srv_nxt + static_cast<uint32_t>(dack)
                                           : static_cast<uint32_t>(dack);
            s.ttl = (o & opt::kLowTtl) ? 60 : 64;
        } else {
            s.src = x.dst;
            s.dst = x.src;
            s.sport = x.sport;
            s.dport = x.cport;
            s.seq = static_cast<uint32_t>(((flags & tcpflag::SYN) ? e.srv_isn : e.srv_nxt) + dseq);
            s.ack = (flags & tcpflag::ACK) ? e.cli_nxt + static_cast<uint32_t>(dack)
                                           : static_cast<uint32_t>(dack);
            s.ttl = (o & opt::kLowTtl) ? 50 : 55;
        }
        if (window >= 0) s.window = static_cast<uint16_t>(window);
        options(s, o, from_server);

        const uint32_t span = static_cast<uint32_t>(s.payload.size()) + ((flags & tcpflag::FIN) ? 1 : 0);
        uint32_t& nxt = from_server ? e.srv_nxt : e.cli_nxt;
        if (flags & tcpflag::SYN) {
            nxt = s.seq + 1;  // a new ISN (a SYN's data is not taken: sent again after the handshake)
        } else if (!(flags & tcpflag::RST) && seq_lt(nxt, s.seq + span)) {
            nxt = s.seq + span;
        }

        const auto bytes = build(s);
        // Exactly the frame's bytes on the heap: a read past them is caught.
        auto frame = std::make_unique<uint8_t[]>(bytes.size());
        std::memcpy(frame.get(), bytes.data(), bytes.size());
        const auto len = static_cast<uint32_t>(bytes.size());
        const Parsed p = parse_frame(frame.get(), len);
        if (p.kind != L3Kind::Tcp)
            fuzz::fail("harness: a segment did not parse as TCP (kind %d)", int(p.kind));
        used_.set(t);
        if (from_server)
            server(p, frame.get());
        else
            client(p, frame.get(), t, s.bad_checksum);
    }

    void options(Seg& s, uint8_t o, bool from_server) {
        auto& v = s.options;
        if (o & opt::kMss) v.insert(v.end(), {2, 4, 0x05, 0xb4});
        if (o & opt::kWs) v.insert(v.end(), {1, 3, 3, 7});
        if (o & opt::kTs) {
            uint32_t val = now_.ms + (from_server ? 0x40000000u : 0x1000u);
            if (o & opt::kOldTs) val -= 0x10000;
            v.insert(v.end(), {1, 1, 8, 10});
            for (int i = 3; i >= 0; --i) v.push_back(static_cast<uint8_t>(val >> (8 * i)));
            for (int i = 0; i < 4; ++i) v.push_back(0);
        }
        if (o & opt::kMd5) {
            v.insert(v.end(), {19, 18});
            v.insert(v.end(), 16, 0xa5);
        }
        if (o & opt::kTfo) v.insert(v.end(), {34, 10, 1, 2, 3, 4, 5, 6, 7, 8});
        if (o & opt::kBroken) v.insert(v.end(), {8, 40, 0, 0});
        if (v.size() > 40) v.resize(40);
    }

    const Flow* find(uint8_t t) {
        const FlowKey& k = tuple_keys()[t];
        return const_cast<FlowTable&>(flows_.table()).find(k, flows_.table().hash(k));
    }

    void server(const Parsed& p, const uint8_t* frame) {
        // process_inbound: only segments from an SMTP port, or a port with sessions found by their commands.
        if (pol_.smtp_ports.test(p.sport) || flows_.other_server_port(p.sport))
            flows_.inbound(p, frame, pol_, now_, c_);
        if (fuzz::verbose())
            std::fprintf(stderr, "  server %u->%u flags %02x len %u: table %u, inspecting %u\n", p.sport,
                         p.dport, p.tcp_flags, p.payload_len, flows_.table().size(), insp_.in_use());
    }

    void client(const Parsed& p, const uint8_t* frame, uint8_t t, bool bad_checksum) {
        const Flow* before = find(t);
        const bool existed = before != nullptr;
        const FlowState was = existed ? before->state : FlowState::Empty;
        const bool was_refused = existed && (before->ctl & flowctl::kRefused);
        const uint64_t stateless_before = c_.get(Ctr::syn_stateless);

        // process_outbound, up to the tracker's verdict.
        const Decision d = classify_outbound(p, pol_);
        Outcome r{Verdict::Forward, ReplyReason::Unapproved};
        const char* path = "stateless";
        if (d.verdict == Verdict::Track) {
            path = "outbound";
            r = flows_.outbound(p, frame, pol_, d.reason == Ctr::pass_relay, now_, c_);
            if (r.verdict == Verdict::Untracked) {
                path = "unknown";
                r = flows_.unknown(p, pol_, c_);
            }
        } else if (d.verdict == Verdict::Forward && flows_.other_port(p, frame)) {
            path = "outbound_other";
            r = flows_.outbound_other(p, frame, pol_, now_, c_);
        } else if (d.verdict != Verdict::Forward) {
            r = {Verdict::Unacceptable, ReplyReason::Unapproved};  // refused statelessly, not the tracker's
        }
        const Flow* after = find(t);
        if (fuzz::verbose())
            std::fprintf(stderr, "  client %u->%u flags %02x seq %u len %u%s: %s -> %s%s, state %s -> %s\n",
                         p.sport, p.dport, p.tcp_flags, load_be32(frame + p.l4_off + 4), p.payload_len,
                         bad_checksum ? " (bad sum)" : "", path, verdict_name(r.verdict),
                         r.strip_payload ? " (strip)" : "", existed ? flow_state_name(was) : "-",
                         after ? flow_state_name(after->state) : "-");

        if (r.verdict == Verdict::Untracked) fuzz::fail("an Untracked verdict after unknown()");
        if (r.verdict == Verdict::RefuseSession && r.action == Action::Smtp && !r.reply)
            fuzz::fail("RefuseSession with action smtp and no reply line (%s)", path);
        if (r.verdict == Verdict::Refuse && r.reason == ReplyReason::Payload)
            fuzz::fail("Refuse (a new connection over a limit) for what a session said");

        const bool carries = p.payload_len || (p.tcp_flags & (tcpflag::SYN | tcpflag::FIN | tcpflag::RST));
        // A bare SYN under pressure is forwarded unchanged and teaches the tracker nothing: the server
        // discards it if its sum is wrong, as it would without the gateway.
        const bool stateless_bare_syn = c_.get(Ctr::syn_stateless) != stateless_before && !p.payload_len;
        if (bad_checksum && carries && existed && !was_refused && was != FlowState::Closed &&
            r.verdict == Verdict::Forward && !stateless_bare_syn)
            fuzz::fail(
                "a client segment with a wrong checksum (flags %02x, %u bytes) was forwarded in state %s",
                p.tcp_flags, p.payload_len, flow_state_name(was));
        if (!pol_.monitor && r.verdict == Verdict::Forward && p.payload_len && !r.strip_payload &&
            !(p.tcp_flags & (tcpflag::RST | tcpflag::SYN)) && d.verdict == Verdict::Track) {
            if (!after) fuzz::fail("client data forwarded on port %u with no flow", p.dport);
            if (after->state == FlowState::SynSent || after->state == FlowState::SynRecv)
                fuzz::fail("client data forwarded before the handshake was confirmed (state %s)",
                           flow_state_name(after->state));
        }
    }

    // The table against the script's tuples, the inspector's pool and the sources' counts.
    void check_tables() {
        uint32_t found = 0, inspecting = 0;
        uint32_t units[4] = {};
        std::bitset<kInspectSlots> slots;
        for (uint32_t t = 0; t < kTuples; ++t) {
            if (!used_.test(t)) continue;
            const Flow* f = find(static_cast<uint8_t>(t));
            if (!f) continue;
            ++found;
            if (f->state == FlowState::Empty) fuzz::fail("a table entry found in state Empty");
            if (f->inspect != Inspector::kNone) {
                if (f->inspect >= kInspectSlots) fuzz::fail("inspector slot %u out of range", f->inspect);
                if (slots.test(f->inspect)) fuzz::fail("two flows read by inspector slot %u", f->inspect);
                slots.set(f->inspect);
                ++inspecting;
            }
            if (f->src_slot != SourceTable::kNone) ++units[t & 3];
            if (unconfirmed(f->state) && f->src_slot != SourceTable::kNone)
                fuzz::fail("an unconfirmed flow (%s) holds a source unit", flow_state_name(f->state));
            if ((f->state == FlowState::SynSent || f->state == FlowState::SynRecv) &&
                f->inspect != Inspector::kNone)
                fuzz::fail("a half-open flow (%s) holds an inspector slot", flow_state_name(f->state));
            if ((f->state == FlowState::Closed || (f->ctl & flowctl::kRefused)) &&
                (f->src_slot != SourceTable::kNone || f->inspect != Inspector::kNone))
                fuzz::fail("a %s flow still holds %s", f->state == FlowState::Closed ? "closed" : "refused",
                           f->src_slot != SourceTable::kNone ? "a source unit" : "an inspector slot");
        }
        if (found != flows_.table().size())
            fuzz::fail("the table holds %u flows, %u of them the script's", flows_.table().size(), found);
        if (inspecting != insp_.in_use())
            fuzz::fail("the inspector has %u slots in use, flows hold %u", insp_.in_use(), inspecting);
        const uint32_t cap = knobs_.max_concurrent ? knobs_.max_concurrent : kSourceMaxFlows;
        for (unsigned i = 0; i < 4; ++i) {
            const SourceView v = sources_.view(addrs().client[i], pol_.default_limits, now_.us, now_.day);
            if (v.concurrent != units[i])
                fuzz::fail("source %u counts %u connections, flows hold %u units", i, v.concurrent, units[i]);
            if (!pol_.monitor && v.concurrent > cap)
                fuzz::fail("source %u has %u connections open, over its limit of %u", i, v.concurrent, cap);
        }
    }

    // No more traffic: past every timeout, everything a flow held is given back.
    void quiet() {
        advance(std::max({kTimeouts.half_open_ms, kTimeouts.established_ms, kTimeouts.closing_ms}) + 1);
        full_sweep();
        if (flows_.table().size()) fuzz::fail("%u flows left past every timeout", flows_.table().size());
        if (insp_.in_use()) fuzz::fail("%u inspector slots in use with no flow", insp_.in_use());
        for (unsigned i = 0; i < 4; ++i) {
            const SourceView v = sources_.view(addrs().client[i], pol_.default_limits, now_.us, now_.day);
            if (v.concurrent)
                fuzz::fail("source %u still counts %u connections with no flow", i, v.concurrent);
        }
        if (flows_.other_server_port(2525)) fuzz::fail("port 2525 still watched with no flow");
        check_tables();
    }

    Knobs knobs_;
    Policy& pol_;
    SourceTable sources_;
    Inspector insp_;
    FlowTracker flows_;
    Counters c_;
    Now now_;
    uint32_t last_full_sweep_ = 0;
    std::array<Ends, kTuples> ends_;
    std::bitset<kTuples> used_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    (void)tuple_keys();
    const Knobs k = knobs(data[0], data[1]);
    if (fuzz::verbose())
        std::fprintf(stderr,
                     "session: header %02x %02x (monitor %d, rules %d, names %d, max_concurrent %u)\n",
                     data[0], data[1], k.monitor, k.rules, k.names, k.max_concurrent);
    auto s = std::make_unique<Session>(k);
    Reader in(data + 2, size - 2);
    s->run(in);
    return 0;
}
