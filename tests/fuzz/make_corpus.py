#!/usr/bin/python3
"""Writes the seed corpora of the text fuzz targets (tests/fuzz/corpus/<target>/): real request lines for every
control command (docs/control.md), the shipped configurations, the shipped rules and a few of each rule shape,
export lines, and state directories (snapshot + journal) as the store writes them. The frame target's seeds
come from the unit tests' frame builder: build/tests/fuzz/frame_seeds tests/fuzz/corpus/frame.

The files are committed; run this again (from the repository root) after a format changes:
    tests/fuzz/make_corpus.py
It rewrites the files it owns and leaves any other file in the corpus directories alone."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def req(cmd, **args):
    return json.dumps({"v": 1, "cmd": cmd, **args}, separators=(",", ":"))


# control_line: one request per file for every command, then sequences (one connection's worth of lines).
CONTROL = {
    "status": [req("status")],
    "stats": [req("stats")],
    "approve": [req("approve", addr="198.51.100.10", hostname="mail.example.com", domains=["example.com",
                    "example.org"], max_concurrent=5, rate_per_min=30, daily=2000, ticket="T-1042",
                    reason="invoices", expires=4102444800)],
    "approve_v6": [req("approve", addr="2001:db8:100:7::/64", hostname="mx.example.net")],
    "suspend": [req("suspend", addr="198.51.100.10", reason="customer toggle")],
    "resume": [req("resume", addr="198.51.100.10")],
    "revoke": [req("revoke", addr="198.51.100.10", ticket="T-7")],
    "revoke_ban": [req("revoke", addr="198.51.100.20", ban=True, reason="spam complaints")],
    "list": [req("list")],
    "list_state": [req("list", state="banned")],
    "show": [req("show", addr="198.51.100.70")],
    "show_v6": [req("show", addr="2001:db8:100::/48")],
    "export": [req("export")],
    "managed_list": [req("managed", action="list")],
    "managed_add": [req("managed", action="add", prefix="192.0.2.0/24")],
    "managed_del": [req("managed", action="del", prefix="198.51.100.0/24")],
    "relay_list": [req("relay", action="list")],
    "relay_add": [req("relay", action="add", prefix="2001:db8:25::53")],
    "relay_del": [req("relay", action="del", prefix="203.0.113.5")],
    "monitor": [req("monitor")],
    "monitor_on": [req("monitor", enable=True)],
    "monitor_off": [req("monitor", enable=False)],
    "limits": [req("limits")],
    "limits_set": [req("limits", max_concurrent=20, rate_per_min=120, daily=5000)],
    "rules_show": [req("rules", action="show")],
    "rules_reload": [req("rules", action="reload")],
    "import": [req("import_begin"),
               req("import_chunk", first_line=1, lines=[
                   "# exported", "",
                   "198.51.100.30 hostname=mail.example.com domains=example.com,example.org max_concurrent=5 "
                   "rate=30/min daily=2000",
                   '2001:db8:100:7::/64 state=suspended ticket=T-1042 reason="invoices from the billing panel"',
                   "198.51.100.31 expires=2030-12-31T18:00:00Z"]),
               req("import_chunk", lines=["198.51.100.40/30 state=banned reason=abuse"]),
               req("import_commit")],
    "import_bad": [req("import_begin"), req("import_chunk", lines=["198.51.100.7/33"]), req("import_commit")],
    "lifecycle": [req("approve", addr="198.51.100.11", hostname="mail.example.com"),
                  req("suspend", addr="198.51.100.11"), req("resume", addr="198.51.100.11"),
                  req("show", addr="198.51.100.11"), req("revoke", addr="198.51.100.11", ban=True),
                  req("approve", addr="198.51.100.11"), req("approve", addr="198.51.100.0/24"),
                  req("list", state="approved"), req("export")],
    "carve_out": [req("revoke", addr="198.51.100.70"), req("show", addr="198.51.100.70"),
                  req("suspend", addr="198.51.100.71")],
    "crlf": [req("status") + "\r", req("stats") + "\r"],
    "malformed": ["{not json", "[1,2]", '{"cmd":"status"}', '{"v":2,"cmd":"status"}', '{"v":1}',
                  '{"v":1,"cmd":7}', '{"v":1,"cmd":"frobnicate"}', req("approve"),
                  req("approve", addr="198.51.100.7", daily="lots"),
                  req("approve", addr="198.51.100.7", hostname="localhost"),
                  req("approve", addr="198.51.100.7", expires=5), req("managed", action="swap"),
                  req("rules", action="compile"), req("import_commit"), req("import_chunk", lines=[1])],
}
for name, lines in CONTROL.items():
    write("control_line", name, "\n".join(lines) + "\n")

# config: the shipped configurations and a few single-key variations around them.
for src in ["configs/lab.conf", "configs/portcullis.conf.example", "configs/bench.conf"]:
    write("config", Path(src).name, (ROOT / src).read_text())
MINIMAL = "inside = 0\noutside = 1\nmanaged_prefixes = 198.51.100.0/24\n"
CONFIGS = {
    "minimal": MINIMAL,
    "lists": MINIMAL + "managed_prefixes = 2001:db8:100::/48, 192.0.2.0/25\napproved = 198.51.100.10, "
             "2001:db8:100::10\nblocked_ports = 25\nblocked_ports = 2525\nrelay_hosts = 203.0.113.53\n",
    "actions": MINIMAL + "action_unapproved = smtp\naction_limit = rst\naction_payload = drop\n"
               "smtp_other_ports = refuse\nehlo_allow_literal = true\nmonitor = true\n",
    "replies": MINIMAL + "reply_unapproved = 550 5.7.1 ask us first\nreply_limit_concurrent = 421 4.7.0 slow "
               "down\nreply_limit_rate = 421 4.7.0 later\nreply_limit_daily = 421 4.7.0 tomorrow\n"
               "reply_busy = 421 4.3.2 busy\nreply_payload = 550 5.7.1 no\n",
    "limits": MINIMAL + "max_concurrent = 3\nrate = 600/h\ndaily = 1000\nrelay_max_concurrent = 50\n"
              "relay_rate = 6000/h\nrelay_daily = 0\nmax_flows = 16\nmax_sources = 64\n",
    "inspection": MINIMAL + "inspect = false\nrules_dir = /tmp/rules\ninspect_bytes = 64\nmax_inspected = 16\n"
                  "inspect_stream_bytes = 1048576\n",
    "paths": MINIMAL + "ready_file = /run/portcullis/ready\ncontrol_socket = /run/pc.sock\ncontrol_group = "
             "portcullis\nstate_dir = /var/lib/pc\nlog_level = debug\nrx_desc = 64\ntx_desc = 16384\n"
             "mbufs = 1023\nstats_interval = 0\n",
    "timeouts": MINIMAL + "flow_timeout_half_open = 1\nflow_timeout_established = 604800\n"
                "flow_timeout_closing = 3600\nbench_prefill_flows = 16\n",
    "bad_prefix": MINIMAL + "approved = 198.51.100.7/33\n",
    "bad_port": MINIMAL + "open_ports = 25\n",
    "unknown_key": MINIMAL + "approve = 198.51.100.1\n",
    "section": "[portcullis]\n" + MINIMAL,
}
for name, text in CONFIGS.items():
    write("config", name, text)

# rules: the shipped set, and one file per rule shape.
write("rules", "default.rules", (ROOT / "rules/default.rules").read_text())
RULES = {
    "ehlo": '1001 ehlo refuse /localhost$/i "EHLO localhost is not a host name"\n',
    "mail_from": "2001 mail_from count /<[^>]*@example\\.invalid>/\n",
    "line": '3001 line refuse /^RCPT TO:<[^>]*%/i "percent hack"\n# comment\n\n',
    "classes": "4001 ehlo count /[a-z0-9-]+\\.(lan|home)[$]/ \n4002 line count /\\$[0-9]{2,4}/i\n",
    "errors": "0 ehlo refuse /x/\n",
    "duplicate": "7 ehlo count /a/\n7 ehlo count /b/\n",
    "bad_pattern": "8 line refuse /(unclosed/\n",
    "big_state": "9 line count /a.{0,200}b/\n10 line count /c.{20,300}d/i\n",
}
for name, text in RULES.items():
    write("rules", name, text)

# import_line: export lines of every key, comments, quoting, and typical mistakes.
IMPORTS = {
    "basic": "198.51.100.10 hostname=mail.example.com domains=example.com,example.org max_concurrent=5 "
             "rate=30/min daily=2000",
    "v6_suspended": '2001:db8:100:7::/64 state=suspended ticket=T-1042 reason="invoices from the billing panel"',
    "banned": "198.51.100.20 state=banned reason=abuse",
    "expires": "198.51.100.31 expires=2030-12-31T18:00:00Z rate=600/h",
    "expires_date": "198.51.100.32 expires=2030-12-31",
    "quoted": '198.51.100.33 ticket="A \\"quoted\\" \\\\ value" reason="tab\there"',
    "comment": "# a comment",
    "blank": "   ",
    "crlf": "198.51.100.34 hostname=mx.example.net\r",
    "bad_prefix": "198.51.100.7/33",
    "bad_key": "198.51.100.7 colour=blue",
    "unterminated": '198.51.100.7 reason="open',
}
for name, text in IMPORTS.items():
    write("import_line", name, text)


# journal: state directories as the store writes them. Before the 0x00: approvals.json; after: journal.jsonl.
def record(prefix, **kw):
    r = {"prefix": prefix, "state": "approved", "hostname": "", "domains": [], "max_concurrent": 0,
         "rate_per_min": 0, "daily": 0, "ticket": "", "reason": "", "operator": "alice",
         "created": 1767225600, "updated": 1767225600, "expires": 0}
    r.update(kw)
    return r


def dump(j):
    return json.dumps(j, separators=(",", ":"))


SNAPSHOT = dump({"format": 1, "seq": 3,
                 "records": [record("198.51.100.10", hostname="mail.example.com", domains=["example.com"],
                                    max_concurrent=5, rate_per_min=30, daily=2000, ticket="T-1"),
                             record("198.51.100.20", state="banned", reason="spam"),
                             record("2001:db8:100:7::/64", state="suspended", expires=1893456000)],
                 "managed_added": ["192.0.2.0/24"], "managed_removed": [], "relay_added": [],
                 "relay_removed": ["203.0.113.5"], "settings": {"monitor": True}}) + "\n"
JOURNAL = [
    dump({"seq": 4, "op": "put", "record": record("198.51.100.11", hostname="mx.example.org")}),
    dump({"seq": 5, "op": "overlay", "set": "managed", "add": False, "prefix": "198.51.100.0/24",
          "configured": True}),
    dump({"seq": 6, "op": "overlay", "set": "relay", "add": True, "prefix": "2001:db8:25::53",
          "configured": False}),
    dump({"seq": 7, "op": "setting", "name": "limits", "value": {"max_concurrent": 20, "rate_per_min": 120}}),
    dump({"seq": 8, "op": "setting", "name": "monitor", "value": False}),
]
write("journal", "snapshot_and_journal", SNAPSHOT + "\0" + "\n".join(JOURNAL) + "\n")
write("journal", "snapshot_only", SNAPSHOT + "\0")
write("journal", "journal_only", "\n".join(JOURNAL) + "\n")
write("journal", "torn_last_line", SNAPSHOT + "\0" + "\n".join(JOURNAL) + '\n{"seq":9,"op":"pu')
write("journal", "old_entries", SNAPSHOT + "\0" + dump({"seq": 2, "op": "put",
                                                          "record": record("198.51.100.99")}) + "\n")
write("journal", "empty", "")


# session: scripts of segments both ways (the format is described at the top of tests/fuzz/session.cpp).
SYN, SYNACK, ACK, PSH, FIN, RST, RSTACK = range(7)  # the target's flag table (kFlags)
M_SEQ, M_ACK, M_OPTS, M_BADSUM, M_WINDOW, M_TIME, M_FAR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
O_TS, O_OLDTS, O_WS, O_MD5, O_TFO, O_BROKEN, O_LOWTTL, O_MSS = 1, 2, 4, 8, 16, 32, 64, 128
C_ADVANCE, C_FULL_SWEEP, C_QUIET, C_SWAP_RULES, C_SWEEP, C_ADVANCE_ONLY = 0, 3, 4, 5, 6, 7


def tup(client=0, server=0, port=0):
    """client: 0 approved v4, 1 unapproved v4, 2 approved v6, 3 unapproved v6; server: 0 MX:25, 1 MX:587,
    2 MX:2525, 3 relay:25; port: the client port's index (0-15)."""
    return client | server << 2 | port << 4


class Script:
    def __init__(self, monitor=False, rules=False, names=False, max_concurrent=0, other="limit",
                 small_budget=False, action_limit="smtp", action_payload="smtp", inspect=True, rate=False,
                 daily=False, literal=False):
        actions = {"rst": 0, "drop": 1, "smtp": 2}
        h0 = (monitor | rules << 1 | names << 2 | max_concurrent << 3 |
              {"allow": 0, "limit": 1, "refuse": 2}[other] << 5 | small_budget << 7)
        h1 = (actions[action_limit] | actions[action_payload] << 2 | (not inspect) << 4 | rate << 5 |
              daily << 6 | literal << 7)
        self.b = bytearray([h0, h1])
        self.t = None

    def seg(self, side, flags, t, payload=b"", seq=None, ack=None, opts=None, bad=False, window=None,
            time=None, far=False):
        """side: "c" (client) or "s" (server); seq/ack: deltas from what each end has sent."""
        if isinstance(payload, str):
            payload = payload.encode()
        assert len(payload) < 200
        m = ((seq is not None) * M_SEQ | (ack is not None) * M_ACK | (opts is not None) * M_OPTS |
             bad * M_BADSUM | (window is not None) * M_WINDOW | (time is not None) * M_TIME | far * M_FAR)
        same = t == self.t
        op = (0 if side == "c" else 2) | flags << 2 | same << 5 | (m != 0) << 6 | (len(payload) > 0) << 7
        self.b.append(op)
        if not same:
            self.b.append(t)
        self.t = t
        if m:
            self.b.append(m)
        for v in (seq, ack):
            if v is not None:
                self.b.append(v & 0xff)
        for v in (opts, window, time):
            if v is not None:
                self.b.append(v)
        if payload:
            self.b.append(len(payload))
            self.b += payload
        return self

    def c(self, text, t=None, flags=PSH, **kw):
        return self.seg("c", flags, self.t if t is None else t, text, **kw)

    def s(self, text, t=None, flags=PSH, **kw):
        return self.seg("s", flags, self.t if t is None else t, text, **kw)

    def handshake(self, t, **kw):
        return self.seg("c", SYN, t, **kw).seg("s", SYNACK, t).seg("c", ACK, t)

    def close(self):
        return self.seg("c", FIN, self.t).seg("s", FIN, self.t).seg("c", ACK, self.t)

    def ctl(self, op, arg=0):
        self.b += bytes([3 | op << 2, arg])
        return self

    def bytes(self):
        return bytes(self.b)


def smtp_to_data(sc, ehlo="mail.example.com", sender="a@example.com"):
    return (sc.s("220 mx.example.net ESMTP\r\n").c(f"EHLO {ehlo}\r\n")
            .s("250-mx.example.net\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 CHUNKING\r\n")
            .c(f"MAIL FROM:<{sender}>\r\n").s("250 2.1.0 Ok\r\n").c("RCPT TO:<b@example.net>\r\n")
            .s("250 2.1.5 Ok\r\n"))


SESSIONS = {}
# An honest session from an approved source whose approval names its host and domain, rules in force.
sc = Script(rules=True, names=True, max_concurrent=2).handshake(tup(0, 0, 0))
smtp_to_data(sc).c("DATA\r\n").s("354 End data with <CR><LF>.<CR><LF>\r\n")
sc.c("Subject: hello\r\n\r\nA message.\r\n.\r\n").s("250 2.0.0 Ok: queued\r\n").c("QUIT\r\n").s("221 2.0.0 Bye\r\n")
SESSIONS["honest"] = sc.close().ctl(C_QUIET).bytes()
# The same over IPv6, with timestamps and window scaling, to the submission port, pipelined, BDAT chunks.
sc = Script(rules=True, names=True).seg("c", SYN, tup(2, 1, 3), opts=O_TS | O_WS | O_MSS)
sc.seg("s", SYNACK, sc.t, opts=O_TS | O_WS).seg("c", ACK, sc.t, opts=O_TS)
sc.s("220 mx.example.net ESMTP\r\n", opts=O_TS).c("EHLO mail.example.com\r\n", opts=O_TS)
sc.s("250-mx.example.net\r\n250-PIPELINING\r\n250 CHUNKING\r\n", opts=O_TS)
sc.c("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nBDAT 5 LAST\r\nhello", opts=O_TS)
sc.s("250 Ok\r\n250 Ok\r\n250 Ok\r\n", opts=O_TS).c("QUIT\r\n", opts=O_TS).s("221 Bye\r\n", opts=O_TS)
SESSIONS["v6_bdat_timestamps"] = sc.close().bytes()
# STARTTLS refused by the server: the session goes on in clear text; then one the server accepts (TLS).
sc = Script(rules=True).handshake(tup(0, 0, 1))
smtp_to_data(sc).c("RSET\r\n").s("250 Ok\r\n").c("STARTTLS\r\n").s("454 4.7.0 TLS not available\r\n")
sc.c("QUIT\r\n").s("221 Bye\r\n")
SESSIONS["starttls_refused"] = sc.close().bytes()
sc = Script(rules=True, names=True).handshake(tup(0, 0, 2)).s("220 mx ESMTP\r\n").c("EHLO mail.example.com\r\n")
sc.s("250-mx\r\n250 STARTTLS\r\n").c("STARTTLS\r\n").s("220 2.0.0 Ready to start TLS\r\n")
sc.c(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00").s(b"\x16\x03\x03\x00\x02\x02\x00")
SESSIONS["starttls_accepted"] = sc.close().bytes()
# A RST outside the window (ignored: RFC 5961), then one with a wrong checksum, then data read on, then a
# RST at the next sequence number.
sc = Script(rules=True).handshake(tup(1, 1, 4)).s("220 mx ESMTP\r\n")
sc.seg("c", RST, sc.t, seq=5, far=True).seg("c", RST, sc.t, bad=True).c("EHLO mail.example.com\r\n")
sc.s("250 mx\r\n").seg("c", RST, sc.t)
SESSIONS["rst_outside_window"] = sc.ctl(C_QUIET).bytes()
# A RST on a half-open connection: with a wrong checksum (the server never sees it), then a low TTL.
sc = Script(rules=True).seg("c", SYN, tup(0, 0, 5)).seg("c", RST, tup(0, 0, 5), bad=True)
sc.seg("c", RST, sc.t, opts=O_LOWTTL).seg("s", SYNACK, sc.t).seg("c", ACK, sc.t).s("220 mx ESMTP\r\n")
sc.c("EHLO localhost\r\n")
SESSIONS["rst_half_open"] = sc.bytes()
# A SYN flood: one unapproved source's SYNs fill the table (early drop, the per-source half-open cap), then
# an honest session from another source finds room.
sc = Script(max_concurrent=1, rules=True)
for port in range(16):
    sc.seg("c", SYN, tup(1, 1, port))
for port in range(8):
    sc.seg("c", SYN, tup(3, 1, port), time=1)
sc.handshake(tup(0, 0, 0)).s("220 mx ESMTP\r\n").c("EHLO mail.example.com\r\n").s("250 mx\r\n")
sc.handshake(tup(0, 1, 1)).ctl(C_ADVANCE, 0x82).handshake(tup(1, 1, 0))
SESSIONS["syn_flood"] = sc.ctl(C_QUIET).bytes()
# Concurrency and rate limits at the handshake, with the daily limit counting messages.
sc = Script(max_concurrent=1, rate=True, daily=True, rules=True, action_limit="rst")
for port in range(4):
    sc.handshake(tup(0, 1, port))
sc.s("220 mx\r\n", t=tup(0, 1, 0)).c("EHLO mail.example.com\r\n").s("250 mx\r\n")
for n in range(3):
    sc.c("MAIL FROM:<a@example.com>\r\n").s("250 Ok\r\n").c("RSET\r\n").s("250 Ok\r\n")
SESSIONS["limits"] = sc.bytes()
# SMTP found on port 2525: a candidate (the server acknowledges it: confirmed), from an approved source; an
# unapproved source's with smtp_other_ports refuse; a candidate the server never answers (evicted).
sc = Script(rules=True)
sc.seg("c", SYN, tup(0, 2, 0)).seg("s", SYNACK, sc.t).seg("c", ACK, sc.t).s("220 mx ESMTP\r\n")
sc.c("EHLO mail.example.com\r\n").seg("s", PSH, sc.t, "250 mx\r\n").c("MAIL FROM:<a@example.com>\r\n")
sc.s("250 Ok\r\n").c("QUIT\r\n").s("221 Bye\r\n")
sc.c("EHLO mail.example.com\r\n", t=tup(2, 2, 1)).c("EHLO mail.example.com\r\n", t=tup(0, 2, 2))
sc.c("MAIL FROM:<a@example.com>\r\n", t=tup(2, 2, 3))
SESSIONS["candidate_2525"] = sc.close().ctl(C_QUIET).bytes()
sc = Script(rules=True, other="refuse").c("EHLO mail.example.com\r\n", t=tup(1, 2, 0))
sc.c("HELO mail.example.com\r\n", t=tup(3, 2, 1))
SESSIONS["candidate_refused"] = sc.bytes()
# A refused EHLO (a rule), a refused sender domain (the approval), monitor mode, rules reloaded mid-session.
sc = Script(rules=True, names=True).handshake(tup(0, 0, 6)).s("220 mx\r\n").c("EHLO localhost\r\n")
sc.c("QUIT\r\n", flags=FIN)
SESSIONS["ehlo_refused"] = sc.bytes()
sc = Script(rules=True, names=True, monitor=True, max_concurrent=1).handshake(tup(2, 0, 7)).s("220 mx\r\n")
sc.c("EHLO mail.example.com\r\n").s("250 mx\r\n").c("MAIL FROM:<a@example.org>\r\n").s("250 Ok\r\n")
sc.handshake(tup(2, 0, 8)).ctl(C_SWAP_RULES, 1).c("XEXPS\r\n").ctl(C_SWAP_RULES, 2).c("NOOP\r\n")
SESSIONS["monitor_reload"] = sc.ctl(C_QUIET).bytes()
# Segments the normaliser drops: out of order, past the window, an old timestamp, a signature, low TTL.
sc = Script(rules=True).seg("c", SYN, tup(0, 3, 9), opts=O_TS).seg("s", SYNACK, tup(0, 3, 9), opts=O_TS,
                                                                   window=1)
sc.seg("c", ACK, sc.t, opts=O_TS).s("220 relay\r\n").c("EHLO mail.example.com\r\n", seq=10, opts=O_TS)
sc.c("EHLO mail.example.com\r\n", seq=-23, opts=O_TS | O_OLDTS).c("EHLO mail.example.com\r\n", seq=-46,
                                                                    opts=O_MD5)
sc.c("EHLO mail.example.com\r\n", seq=-69, opts=O_LOWTTL).c("EHLO mail.example.com\r\n", seq=-92, bad=True)
sc.c(b"x" * 150, time=0x45)
SESSIONS["normaliser"] = sc.ctl(C_FULL_SWEEP).bytes()
for name, data in SESSIONS.items():
    write("session", name, data)
