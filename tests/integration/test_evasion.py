"""The red team's attacks on session inspection and connection tracking, as regression tests, end to end in the
namespace lab against real SMTP servers (tools/lab/mx.py): each drives a client, with a kernel socket or with
crafted segments (tools/lab/tcp_craft.py), from a source approved only for EHLO good.example.com and sending
domain good.example, and tries to get a message with EHLO evil.example.org or MAIL FROM:<spam@evil.example>
accepted. Each asserts what matters to an operator: the server never accepted (logged) such a message, the
session was refused (the client got a 550/421 line, or was reset), and the concurrency limit held.

    1 reading stops on the client's word: STARTTLS the server refuses, DATA the server rejects, BDAT to a
      server without CHUNKING, a first byte 0x16;
    2 reading stops when it runs out: the byte budget, an overlong line the server accepts, a segment far
      ahead of the window, a full inspector pool;
    3 the gateway and the server see different bytes: a segment with a bad TCP checksum;
    4 the tracker believes a client RST the server ignores (outside the window);
    5 data on a SYN (TCP Fast Open) reaches the server unread;
    6 table exhaustion: a SYN flood to 587 and one-segment "EHLO" flows to high ports from spoofed managed
      sources must not lock honest senders out, nor stop a session on a high port being read.
And an honest session (STARTTLS, PIPELINING, two messages in one session) still delivers.

Servers: 203.0.113.25 (25, 587, 2525; STARTTLS, PIPELINING) and 203.0.113.26 (25; no STARTTLS, command lines up
to 4096 bytes); TCP Fast Open is on for every listener of the net namespace. Crafted sessions come from
198.51.100.12, approved but not configured in the rack: its kernel never answers them (tcp_craft.py).
"""
import json
import shutil
import threading
import time
from pathlib import Path

import pytest

import portcullis_lab
import tcp_craft
from portcullis_lab import MX_V4, MX_V6, RACK_V4

# ---- the setup --------------------------------------------------------------------------------------------
GOOD_HOST, GOOD_DOMAIN, GOOD_FROM = "good.example.com", "good.example", "a@good.example"
EVIL_HOST, EVIL_FROM = "evil.example.org", "spam@evil.example"
RCPT = "someone@example.net"
BODY = b"Subject: evasion test\r\n\r\nThis message must never be accepted.\r\n.\r\n"

SENDER = RACK_V4["approved"]  # 198.51.100.10: kernel sockets, swaks
CRAFT = "198.51.100.12"  # approved, not on rack0: crafted sessions only
FRESH = "198.51.100.30"  # managed, never used before the flood tests, not approved
MX_PLAIN = "203.0.113.26"  # no STARTTLS, long command lines
MAX_CONCURRENT = 10

# Gateway options the tests assume (the integrator keeps them, or scales the constants below with them).
INSPECT_BYTES = 1024  # inspect_bytes: 2a sends twice this in NOOPs; 2b's long line (600 bytes) stays below it
MAX_INSPECTED = 16  # max_inspected (its minimum): 2d holds this many sessions open
MAX_FLOWS = 4096  # max_flows per worker: the floods of class 6 are sized against it
MAX_SOURCES = 4096  # max_sources
GATEWAY_ARGS = ["--rate", "0", "--inspect_bytes", str(INSPECT_BYTES), "--max_inspected", str(MAX_INSPECTED),
                "--max_flows", str(MAX_FLOWS), "--max_sources", str(MAX_SOURCES)]

# Class 6 sizes: spoofed sources (one frame each), and how fast they go out.
FLOOD_SOURCES = 2 * MAX_FLOWS
FLOOD_CHUNK, FLOOD_PAUSE = 128, 0.002
SPOOF_PREFIX = "2001:db8:100:1::"  # managed (2001:db8:100::/48), and no route back from the net namespace
LONG_PAD = 600  # 2b: padding that makes a command line longer than 512 bytes
GAP = 100000  # 2c: how far ahead of the window the stray segment is

EVASION_RULE = ('9901 ehlo refuse /evil\\.example\\.org$/i '
                '"EHLO evil.example.org is refused on any port (evasion tests)"\n')
LINE_421_CONCURRENT = "421 4.7.0 Too many concurrent"


@pytest.fixture(scope="module")
def lab(request):
    prefix = "pct" + Path(request.module.__file__).stem.replace("test_", "")[:4]
    lab = portcullis_lab.Lab(prefix)
    try:
        lab.create()
        lab.ns(lab.ns_net, "ip", "addr", "add", f"{MX_PLAIN}/24", "dev", "net0")
        lab.ns(lab.ns_rack, "ip", "addr", "add", f"{FRESH}/24", "dev", "rack0")
        # TCP Fast Open for every listener, no cookie needed (server | no cookie | no socket option): set
        # before the servers listen.
        lab.ns(lab.ns_net, "sysctl", "-qw", f"net.ipv4.tcp_fastopen={0x1 | 0x2 | 0x200 | 0x400}")
        lab.rack_mac = tcp_craft.mac_of(lab.ns_rack, "rack0")
        lab.net_mac = tcp_craft.mac_of(lab.ns_net, "net0")
        lab.ns(lab.ns_net, "ip", "neigh", "replace", CRAFT, "lladdr", lab.rack_mac, "dev", "net0", "nud",
               "permanent")
        rules = lab.workdir / "rules"
        shutil.copytree(lab.repo / "rules", rules)
        (rules / "zz-evasion.rules").write_text(EVASION_RULE)
        lab.gateway_args = [*GATEWAY_ARGS, "--rules_dir", str(rules)]
        lab.start_mx(tls=True, addresses=[MX_V4, MX_V6], extra=["--pipelining"])
        lab.start_mx(ports="25", addresses=[MX_PLAIN], name="mx-plain", extra=["--command-size-limit", "4096"])
        lab.start_gateway(extra=lab.gateway_args)
        for addr in (SENDER, CRAFT):
            approve(lab, addr)
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture(scope="module")
def wire(lab):
    with tcp_craft.Wire(lab.ns_rack, "rack0", lab.rack_mac, lab.net_mac) as w:
        yield w


def approve(lab, addr, max_concurrent=MAX_CONCURRENT):
    lab.ctl("approve", addr, "--hostname", GOOD_HOST, "--domain", GOOD_DOMAIN, "--max-concurrent",
            str(max_concurrent), "--ticket", "T-EVASION")


def counters(lab):
    return json.loads(lab.ctl("stats").stdout)["counters"]


def concurrent(lab, addr):
    return json.loads(lab.ctl("show", addr).stdout)["limits"]["live"]["concurrent"]


def foreign(record):
    return EVIL_HOST in (record.get("helo") or "") or (record.get("mail_from") or "").endswith("evil.example")


def established_at(lab, server, port, client):
    res = lab.ns(lab.ns_net, "ss", "-Htn", "state", "established", f"( sport = :{port} )", "src", server,
                 "dst", client)
    return len([line for line in res.stdout.splitlines() if line.strip()])


def is_refusal(code, text):
    """What the gateway answers a refused session with: a 550 5.7.1 or 421 line, or the end of the connection
    (RST, or its FIN after the line). The servers here never send those lines themselves."""
    return code is None or text.startswith("550 5.7.1") or code == 421


def converse(c, lines, pending=0):
    """Reads `pending` replies, then sends each line (BODY: the message) and reads its reply, until the
    gateway refuses. Returns (refused, transcript)."""
    transcript = []

    def reply(sent):
        code, text = c.read_reply()
        transcript.append(f"{sent!r} -> {code} {text.strip()!r}")
        return is_refusal(code, text)

    for _ in range(pending):
        if reply("(waiting)"):
            return True, transcript
    for line in lines:
        if line is BODY:
            c.send(BODY)
        else:
            c.send(line.encode() + b"\r\n")
        if reply(line if len(line) < 80 else line[:60] + f"...({len(line)} bytes)"):
            return True, transcript
    return False, transcript


FOREIGN_TAIL = [f"MAIL FROM:<{EVIL_FROM}>", f"RCPT TO:<{RCPT}>", "DATA", BODY]


def assert_refused_and_not_delivered(lab, before, refused, transcript):
    new = lab.delivered()[before:]
    bad = [r for r in new if foreign(r)]
    shown = "\n  ".join(transcript)
    assert not bad, f"the server accepted a message the approval forbids: {bad}\n  {shown}"
    assert refused, f"the session was never refused:\n  {shown}"


def real_attack(lab, server, lines):
    before = len(lab.delivered())
    c = tcp_craft.SmtpConn(lab.ns_rack, SENDER, server, 25)
    try:
        refused, transcript = converse(c, lines, pending=1)
    finally:
        c.close()
    assert_refused_and_not_delivered(lab, before, refused, transcript)


def crafted_attack(lab, wire, server, steps):
    """A crafted session from CRAFT: connect, banner, then steps(session) -> (refused, transcript)."""
    before = len(lab.delivered())
    s = wire.session(CRAFT, server, 25)
    try:
        assert s.connect(), "no handshake"
        refused, transcript = steps(s)
    finally:
        s.close()
    assert_refused_and_not_delivered(lab, before, refused, transcript)
    return s


# ---- honest mail ------------------------------------------------------------------------------------------
def test_honest_session_with_starttls_and_pipelining_delivers(lab):
    before = len(lab.delivered())
    rc, _, out = lab.swaks(SENDER, MX_V4, 25, helo=GOOD_HOST, mail_from=GOOD_FROM, extra=["-tls", "--pipeline"])
    assert rc == 0, out
    assert "STARTTLS" in out and "PIPELINING" in out, out
    new = lab.delivered()[before:]
    assert [(r["helo"], r["mail_from"]) for r in new] == [(GOOD_HOST, GOOD_FROM)]


def test_honest_cleartext_session_with_two_messages_delivers(lab):
    before = len(lab.delivered())
    res = lab.ns(lab.ns_rack, "smtp-source", "-d", "-m", "2", "-s", "1", "-M", GOOD_HOST, "-f", GOOD_FROM, "-t",
                 RCPT, f"{MX_V4}:25", check=False, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    new = [r for r in lab.delivered()[before:] if r["peer"] == SENDER]
    assert len(new) == 2 and all(r["mail_from"] == GOOD_FROM for r in new), new


def test_honest_session_on_the_plain_server_delivers(lab):
    # The server the class-1 and -2 attacks use: honest mail goes through it too (no STARTTLS offered).
    before = len(lab.delivered())
    rc, _, out = lab.swaks(SENDER, MX_PLAIN, 25, helo=GOOD_HOST, mail_from=GOOD_FROM)
    assert rc == 0, out
    assert len(lab.delivered()) == before + 1


def test_the_attack_is_refused_when_nothing_evades(lab, wire):
    # The baseline every attack below evades: the same foreign commands, plainly sent, are refused, from a
    # kernel socket and from the crafted client alike.
    real_attack(lab, MX_PLAIN, [f"EHLO {EVIL_HOST}", *FOREIGN_TAIL])
    real_attack(lab, MX_PLAIN, [f"EHLO {GOOD_HOST}", *FOREIGN_TAIL])
    for server, ehlo in ((MX_PLAIN, EVIL_HOST), (MX_V4, GOOD_HOST)):
        crafted_attack(lab, wire, server, lambda s: converse(s, [f"EHLO {ehlo}", *FOREIGN_TAIL], pending=1))


# ---- 1: reading stops on the client's word ----------------------------------------------------------------
def test_1a_starttls_the_server_refuses_does_not_end_reading(lab):
    # The server offers no STARTTLS and answers 454: the session stays in clear text.
    real_attack(lab, MX_PLAIN, [f"EHLO {GOOD_HOST}", "STARTTLS", f"EHLO {EVIL_HOST}", *FOREIGN_TAIL])


def test_1b_data_the_server_rejects_does_not_end_reading(lab):
    # DATA with no accepted recipient: 503 from the server, and no message began.
    real_attack(lab, MX_PLAIN, [f"EHLO {GOOD_HOST}", f"MAIL FROM:<{GOOD_FROM}>", "DATA", "RSET",
                                f"EHLO {EVIL_HOST}", *FOREIGN_TAIL])


def test_1c_bdat_to_a_server_without_chunking_does_not_end_reading(lab):
    real_attack(lab, MX_PLAIN, [f"EHLO {GOOD_HOST}", "BDAT 0 LAST", f"EHLO {EVIL_HOST}", *FOREIGN_TAIL])


def test_1d_a_first_byte_0x16_that_is_no_tls_does_not_end_reading(lab):
    # Looks like a TLS record; the server answers 500 and goes on in clear text.
    real_attack(lab, MX_PLAIN, ["\x16\x03\x01", f"EHLO {EVIL_HOST}", *FOREIGN_TAIL])


# ---- 2: reading stops when it runs out --------------------------------------------------------------------
def test_2a_a_byte_budget_used_up_by_noops_does_not_end_reading(lab):
    noop = "NOOP " + "x" * 100
    noops = [noop] * (2 * INSPECT_BYTES // len(noop) + 1)
    real_attack(lab, MX_PLAIN, [f"EHLO {GOOD_HOST}", *noops, *FOREIGN_TAIL])


@pytest.mark.parametrize("which", ["ehlo", "mail_from"])
def test_2b_a_command_line_longer_than_512_bytes_is_read(lab, which):
    pad = " " * LONG_PAD
    if which == "ehlo":  # the rest of the session is as approved: only the long line breaks the approval
        lines = [f"EHLO {EVIL_HOST}{pad}", f"MAIL FROM:<{GOOD_FROM}>", *FOREIGN_TAIL[1:]]
    else:
        lines = [f"EHLO {GOOD_HOST}", f"MAIL FROM:<{EVIL_FROM}>{pad}", *FOREIGN_TAIL[1:]]
    real_attack(lab, MX_PLAIN, lines)


@pytest.mark.parametrize("where", ["after_ehlo", "first"])
def test_2c_a_segment_far_ahead_of_the_window_does_not_end_reading(lab, wire, where):
    def steps(s):
        refused, t1 = converse(s, [f"EHLO {GOOD_HOST}"] if where == "after_ehlo" else [], pending=1)
        if refused:
            return refused, t1
        s.send(b"NOOP\r\n", seq=s.snd_nxt + GAP, advance=False)  # the server drops it (and says so: an ACK)
        wire.pump(0.2)
        refused, t2 = converse(s, ([] if where == "after_ehlo" else [f"EHLO {EVIL_HOST}"]) + FOREIGN_TAIL)
        return refused, t1 + [f"(a segment {GAP} bytes ahead)"] + t2

    crafted_attack(lab, wire, MX_PLAIN, steps)


HOLD_MAX_CONCURRENT = 3 * MAX_INSPECTED


def test_2d_a_full_inspector_pool_does_not_let_sessions_through_unread(lab):
    # The sender holds max_inspected sessions open mid-way (each read, none ended), then opens one more.
    approve(lab, SENDER, max_concurrent=HOLD_MAX_CONCURRENT)
    held = []
    try:
        for _ in range(MAX_INSPECTED):
            c = tcp_craft.SmtpConn(lab.ns_rack, SENDER, MX_PLAIN, 25)
            held.append(c)
            refused, transcript = converse(c, [f"EHLO {GOOD_HOST}"], pending=1)
            assert not refused, transcript
        before = counters(lab)
        real_attack(lab, MX_PLAIN, [f"EHLO {EVIL_HOST}", *FOREIGN_TAIL])
    finally:
        for c in held:
            c.close()
        approve(lab, SENDER)
        if "before" in locals():
            print("inspect_pool_empty:", before.get("inspect_pool_empty"), "->",
                  counters(lab).get("inspect_pool_empty"))
        portcullis_lab.wait_for("the held sessions to be released", lambda: concurrent(lab, SENDER) == 0,
                                timeout=15)


# ---- 3: the gateway and the server see different bytes ----------------------------------------------------
def test_3_a_segment_with_a_bad_checksum_is_not_read_as_the_session(lab, wire):
    good = f"EHLO {GOOD_HOST}\r\nMAIL FROM:<{GOOD_FROM}>\r\n".encode()
    evil = f"EHLO {EVIL_HOST}\r\nMAIL FROM:<{EVIL_FROM}>\r\n".encode()

    def steps(s):
        refused, t1 = converse(s, [], pending=1)
        if refused:
            return refused, t1
        s.send(good, bad_checksum=True)  # the server's kernel drops it
        wire.pump(0.2)
        s.send(evil)  # the segment the server reads, at the same sequence number
        t1.append(f"{good!r} with a bad checksum, then {evil!r} at the same sequence number")
        refused, t2 = converse(s, FOREIGN_TAIL[1:], pending=2)
        return refused, t1 + t2

    crafted_attack(lab, wire, MX_PLAIN, steps)


# ---- 4: the tracker believes any client RST ---------------------------------------------------------------
def test_4_a_rst_the_server_ignores_does_not_free_a_slot(lab, wire):
    at_mx = lambda: established_at(lab, MX_V4, 25, CRAFT)  # noqa: E731
    sessions, banners = [], []
    try:
        for _ in range(MAX_CONCURRENT):
            s = wire.session(CRAFT, MX_V4, 25)
            sessions.append(s)
            assert s.connect()
            code, text = s.read_reply()
            assert code == 220, f"session {len(sessions)} was not admitted: {code} {text!r}"
        portcullis_lab.wait_for("the sessions at the server", lambda: at_mx() == MAX_CONCURRENT, timeout=5)
        # The limit holds for crafted sessions: one more is refused.
        extra = wire.session(CRAFT, MX_V4, 25)
        sessions.append(extra)
        code, text = extra.read_reply() if extra.connect() else (None, "no handshake")
        assert code == 421 and LINE_421_CONCURRENT in text, (code, text)
        for s in sessions:
            s.rst(seq=s.snd_nxt + 2**31)  # half the sequence space away: outside any window
        wire.pump(0.3)
        assert at_mx() == MAX_CONCURRENT, "the server took the RSTs: the test proves nothing"
        released = concurrent(lab, CRAFT)
        for _ in range(15):
            s = wire.session(CRAFT, MX_V4, 25)
            sessions.append(s)
            if s.connect():
                banners.append(s.read_reply())
            else:
                banners.append((None, "reset" if s.reset else "no answer"))
        wire.pump(0.3)
        most = at_mx()
        admitted = [b for b in banners if b[0] == 220]
        assert most <= MAX_CONCURRENT, (f"{most} sessions established at the server at once (limit "
                                        f"{MAX_CONCURRENT}); the gateway counted {released} after the RSTs; "
                                        f"{len(admitted)} of 15 more admitted")
        assert not admitted, banners
        assert all(c == 421 and LINE_421_CONCURRENT in t or c is None for c, t in banners), banners
    finally:
        for s in sessions:
            s.close()
        portcullis_lab.wait_for("the crafted sessions to end at the server", lambda: at_mx() == 0, timeout=10)


# ---- 5: data on a SYN -------------------------------------------------------------------------------------
def test_5_data_on_a_syn_is_not_delivered_unread(lab, wire):
    before = len(lab.delivered())
    s = wire.session(CRAFT, MX_V4, 25)
    syn_data = f"EHLO {EVIL_HOST}\r\nMAIL FROM:<{EVIL_FROM}>\r\n".encode()
    try:
        connected = s.connect(payload=syn_data)
        acked = connected and s.syn_data_acked
        if connected:
            refused, transcript = converse(s, FOREIGN_TAIL[1:], pending=3)
        else:
            refused, transcript = True, ["no handshake: " + ("reset" if s.reset else "no answer")]
        transcript.insert(0, f"SYN carrying {syn_data!r}; the SYN-ACK acknowledged it: {acked}")
    finally:
        s.close()
    assert_refused_and_not_delivered(lab, before, refused, transcript)


# ---- 6: table exhaustion ----------------------------------------------------------------------------------
@pytest.fixture
def fresh_gateway(lab):
    """A gateway with empty tables before the test, and again after it (a flood's entries outlive it)."""
    lab.stop_gateway()
    lab.start_gateway(extra=lab.gateway_args)
    try:
        yield lab
    finally:
        lab.stop_gateway()
        lab.start_gateway(extra=lab.gateway_args)


def spoofed(i):
    return f"{SPOOF_PREFIX}{(i >> 16) + 1:x}:{i & 0xFFFF:x}"


def flood(lab, wire, frames):
    start = time.monotonic()
    wire.send_many(frames, FLOOD_CHUNK, FLOOD_PAUSE)
    # Wait until the gateway has taken every frame in (or stopped taking them).
    last = [-1]

    def settled():
        rx = counters(lab)["rx_inside"]
        done = rx == last[0]
        last[0] = rx
        return done

    portcullis_lab.wait_for("the flood to be taken in", settled, timeout=30)
    return time.monotonic() - start


def honest_senders_deliver(lab, also=()):
    """Approved on 25 and 587, a fresh managed sender on 587, at once (and `also`: (src, server, port, helo)).
    Returns the failures."""
    jobs = [(SENDER, MX_V4, 25, GOOD_HOST), (SENDER, MX_V4, 587, GOOD_HOST), (FRESH, MX_V4, 587, "laptop"),
            *also]
    results = [None] * len(jobs)

    def one(i, src, server, port, helo):
        results[i] = lab.swaks(src, server, port, helo=helo, mail_from=GOOD_FROM, timeout=10)

    threads = [threading.Thread(target=one, args=(i, *j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [f"{j[0]} -> {j[1]}:{j[2]}: rc {r[0]}\n{r[2][-600:]}" for j, r in zip(jobs, results) if r[0] != 0]


def test_6a_a_syn_flood_from_spoofed_managed_sources_leaves_room_for_honest_senders(fresh_gateway, wire):
    lab = fresh_gateway
    frames = [tcp_craft.frame(lab.rack_mac, lab.net_mac, spoofed(i), MX_V6, 1024 + i % 60000, 587,
                              seq=i * 7919, flags=tcp_craft.SYN) for i in range(FLOOD_SOURCES)]
    before = counters(lab)
    took = flood(lab, wire, frames)
    after = counters(lab)
    effect = {k: after.get(k, 0) - before.get(k, 0) for k in
              ("rx_inside", "flows_opened", "flow_table_full", "source_table_full")}
    failures = honest_senders_deliver(lab)
    assert not failures, f"flood of {FLOOD_SOURCES} SYNs in {took:.1f} s ({effect}):\n" + "\n".join(failures)


def test_6b_one_segment_flows_to_high_ports_leave_room_to_read_and_to_deliver(fresh_gateway, wire):
    lab = fresh_gateway
    # Before the flood: a foreign EHLO on 2525 is found, read and refused (the evasion rule).
    c = tcp_craft.SmtpConn(lab.ns_rack, SENDER, MX_V4, 2525)
    refused, transcript = converse(c, [f"EHLO {EVIL_HOST}"], pending=1)
    c.close()
    assert refused and "550 5.7.1" in transcript[-1], transcript
    delivered = len(lab.delivered())

    frames = [tcp_craft.frame(lab.rack_mac, lab.net_mac, spoofed(i), MX_V6, 1024 + i % 60000,
                              10000 + i % 50000, seq=i * 7919, ack=1, flags=tcp_craft.PSH | tcp_craft.ACK,
                              payload=b"EHLO x\r\n") for i in range(FLOOD_SOURCES)]
    before = counters(lab)
    took = flood(lab, wire, frames)
    after = counters(lab)
    effect = {k: after.get(k, 0) - before.get(k, 0) for k in
              ("rx_inside", "smtp_other_port", "flows_opened", "flow_table_full", "source_table_full",
               "inspect_pool_empty")}
    what = f"flood of {FLOOD_SOURCES} one-segment flows in {took:.1f} s ({effect})"

    c = tcp_craft.SmtpConn(lab.ns_rack, SENDER, MX_V4, 2525)
    refused, transcript = converse(c, [f"EHLO {EVIL_HOST}", *FOREIGN_TAIL], pending=1)
    c.close()
    assert not [r for r in lab.delivered()[delivered:] if foreign(r)], f"{what}: delivered:\n  " + \
        "\n  ".join(transcript)
    assert refused and "550 5.7.1" in transcript[-1], f"{what}: the session on 2525 was not read:\n  " + \
        "\n  ".join(transcript)
    failures = honest_senders_deliver(lab, also=[(SENDER, MX_V4, 2525, GOOD_HOST)])
    assert not failures, f"{what}:\n" + "\n".join(failures)
