"""The receivers' verdicts as evidence, in the namespace lab: a receiver (aiosmtpd) that answers RCPT TO with a
550 blocklist text; the gateway reads the server's replies of the sessions it inspects, so `show` lists that
text, the event stream carries it (valid against docs/events.schema.json), and with remote_refusals_suspend = 2
the second refusal suspends the source's approval, with the replies as the reason: its next message is refused
by the gateway itself."""
import json
from pathlib import Path

import jsonschema
import pytest

import portcullis_lab
from portcullis_lab import MX_V4, RACK_V4

REPO = Path(__file__).resolve().parents[2]
BLOCKED = "550 5.7.1 Service unavailable; client host [198.51.100.10] blocked using zen.spamhaus.example"


@pytest.fixture(scope="module")
def rlab():
    lab = portcullis_lab.Lab("pctrecv")
    try:
        lab.create()
        lab.start_mx(extra=["--reject-rcpt", BLOCKED])
        lab.events = lab.workdir / "events.json"
        lab.start_gateway(extra=["--remote_refusals_suspend", "2", "--remote_refusals_window", "600",
                                 "--events_file", str(lab.events)])
        yield lab
    finally:
        lab.cleanup()


def show(lab, addr):
    return json.loads(lab.ctl("show", addr).stdout)


def test_a_receivers_refusal_is_shown_and_streamed(rlab):
    src = RACK_V4["approved"]
    code, _, out = rlab.swaks(src, MX_V4, helo="mail.rack.example", timeout=10)
    assert code != 0 and "blocked using" in out, out
    portcullis_lab.wait_for("the refusal in show", lambda: show(rlab, src)["seen"]["remote_refused"] >= 1, timeout=10)
    seen = show(rlab, src)["seen"]
    assert seen["remote_refusals"][0]["reply"] == BLOCKED
    text = rlab.ctl("show", src, json_out=False).stdout
    assert "receivers refused:" in text and "zen.spamhaus.example" in text
    assert show(rlab, src)["record"]["state"] == "approved", "one refusal suspends nothing"
    schema = json.loads((REPO / "docs" / "events.schema.json").read_text())
    portcullis_lab.wait_for("the event", lambda: rlab.events.exists() and "remote_refusal" in rlab.events.read_text(),
                            timeout=10)
    events = [json.loads(line) for line in rlab.events.read_text().splitlines()]
    remote = [e for e in events if e["event_type"] == "remote_refusal"]
    assert remote[0]["src_ip"] == src and remote[0]["smtp"]["reply"] == BLOCKED
    for e in events:
        jsonschema.validate(e, schema, format_checker=jsonschema.FormatChecker())


def test_the_threshold_suspends_the_source_with_the_replies_as_reason(rlab):
    src = RACK_V4["approved"]
    code, _, _ = rlab.swaks(src, MX_V4, helo="mail.rack.example", timeout=10)
    assert code != 0
    portcullis_lab.wait_for("the suspension", lambda: (show(rlab, src)["record"] or {}).get("state") == "suspended",
                            timeout=10)
    rec = show(rlab, src)["record"]
    assert rec["operator"] == "portcullis" and "2 receiver refusals within 600 s" in rec["reason"]
    assert "blocked using zen.spamhaus.example" in rec["reason"]
    assert RACK_V4["approved"] in rec["prefix"], "the address's own record (the config approves it)"
    code, _, out = rlab.swaks(src, MX_V4, helo="mail.rack.example", timeout=5)
    assert code != 0 and "blocked using" not in out, "refused by the gateway now, not by the receiver"
    audit = [json.loads(line) for line in (rlab.workdir / "state" / "audit.log").read_text().splitlines()]
    assert any(a["cmd"] == "auto_suspend" and a["user"] == "portcullis" for a in audit)
    rlab.ctl("resume", src)
    assert show(rlab, src)["record"]["state"] == "approved"
