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
