"""The approval lifecycle in the namespace lab, with real mail (swaks through the gateway to the lab's MX):
a request is refused until approved, and the approval takes the request's host name, which the gateway then
enforces on EHLO; a denial refuses an early request with the date a new one is allowed; three abuse
complaints ban a sending server, whose next message is refused."""
import json
import time

from portcullis_lab import MX_V4, RACK_V4

HOST = "mail.rack.example"


def test_a_request_then_approve_delivers_with_the_requests_host_name(lab):
    src = RACK_V4["unapproved"]
    lab.ctl("request", src, "--hostname", HOST, "--domain", "customer.example", "--service-id", "SRV-1",
            "--volume-daily", "200", "--ticket", "T-REQ")
    code, _, _ = lab.swaks(src, MX_V4, helo=HOST, mail_from="a@customer.example", timeout=5)
    assert code != 0, "a pending request is still refused"
    pending = json.loads(lab.ctl("requests").stdout)["requests"]
    assert [r["prefix"] for r in pending] == [src]
    rec = json.loads(lab.ctl("approve", src).stdout)["record"]
    assert rec["hostname"] == HOST and rec["daily"] == 200
    before = len(lab.delivered())
    code, _, out = lab.swaks(src, MX_V4, helo=HOST, mail_from="a@customer.example", timeout=10)
    assert code == 0, out
    assert len(lab.delivered()) == before + 1
    code, _, out = lab.swaks(src, MX_V4, helo="other.example", mail_from="a@customer.example", timeout=10)
    assert code != 0 and "5.7.1" in out, "the request's host name is enforced on EHLO"
    lab.ctl("revoke", src)


def test_a_denial_refuses_an_early_request_with_the_date(lab):
    src = "2001:db8:100::21"
    lab.ctl("request", src, "--hostname", HOST)
    denied = json.loads(lab.ctl("deny", src, "--reason", "no rDNS").stdout)["record"]
    res = lab.ctl("request", src, "--hostname", HOST, check=False)
    assert res.returncode == 1
    date = denied["retry_after"]
    assert "a new request is allowed from" in res.stderr and "no rDNS" in res.stderr, res.stderr
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(date)) in res.stderr
    show = lab.ctl("show", src, json_out=False).stdout
    assert "denied" in show and "new request from:" in show


def test_three_complaints_ban_the_sender(lab):
    src = RACK_V4["approved"]
    code, _, out = lab.swaks(src, MX_V4, helo=HOST, timeout=10)
    assert code == 0, out
    for i in range(1, 3):
        lab.ctl("complaint", src, "--ref", f"ABUSE-{i}", "--reason", "spam run")
    code, _, out = lab.swaks(src, MX_V4, helo=HOST, timeout=10)
    assert code == 0, "two complaints do not ban"
    res = lab.ctl("complaint", src, "--ref", "FBL-3", json_out=False)
    assert "banned: 3 abuse complaints within 30 days" in res.stdout
    code, _, _ = lab.swaks(src, MX_V4, helo=HOST, timeout=5)
    assert code != 0, "banned: refused"
    show = json.loads(lab.ctl("show", src).stdout)
    assert show["record"]["state"] == "banned"
    assert [c["ref"] for c in show["record"]["complaints"]] == ["ABUSE-1", "ABUSE-2", "FBL-3"]
