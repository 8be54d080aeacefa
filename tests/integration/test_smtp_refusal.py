"""action_unapproved = smtp: the gateway completes the refused client's handshake itself (a stateless cookie)
and answers with an SMTP reply line, so the customer's MTA logs why it was refused instead of a bare
"connection refused". Nothing reaches the destination server; a forged ACK gets nothing."""
import json
import time

import pytest
from scapy.all import IP, TCP, Ether

import portcullis_lab
from portcullis_lab import MX_V4, MX_V6, RACK_V4, RACK_V6

LINE = "550 5.7.1 Direct-to-MX mail (port 25) from this address is not approved by the provider"


@pytest.fixture(scope="module")
def lab():
    lab = portcullis_lab.Lab("pctsmtp")
    try:
        lab.create()
        lab.start_mx()
        lab.start_gateway(extra=["--action_unapproved", "smtp"])
        yield lab
    finally:
        lab.cleanup()


def counters(lab):
    return json.loads(lab.ctl("stats").stdout)["counters"]


@pytest.mark.parametrize("rack,mx", [(RACK_V4, MX_V4), (RACK_V6, MX_V6)], ids=["ipv4", "ipv6"])
def test_unapproved_client_reads_the_policy_in_an_smtp_reply(lab, rack, mx):
    rc, secs, out = lab.swaks(rack["unapproved"], mx, 25)
    assert rc != 0, out
    assert LINE in out, out
    assert secs < 2.0
    assert not [m for m in lab.delivered() if m["peer"] == rack["unapproved"]]


def test_approved_server_still_delivers(lab):
    rc, _, out = lab.swaks(RACK_V4["approved"], MX_V4, 25)
    assert rc == 0, out


def test_the_exchange_closes_cleanly(lab):
    """After the reply and FIN the client either closes (its FIN is acknowledged) or says QUIT (it is reset):
    each of its segments is answered, none is taken for forged, none reaches the server."""
    before = counters(lab)
    lab.swaks(RACK_V4["unapproved"], MX_V4, 25)
    closed = lambda c: (c["smtp_finack_sent"] + c["rst_sent"]) > (before["smtp_finack_sent"] + before["rst_sent"])
    deadline = time.monotonic() + 5
    after = counters(lab)
    while not closed(after) and time.monotonic() < deadline:
        time.sleep(0.1)
        after = counters(lab)
    assert after["smtp_synack_sent"] == before["smtp_synack_sent"] + 1
    assert after["smtp_reply_sent"] == before["smtp_reply_sent"] + 1
    assert closed(after), after
    assert after["smtp_forged"] == before["smtp_forged"]


def test_a_forged_ack_gets_nothing(lab):
    before = counters(lab)["smtp_forged"]
    forged = Ether(src="02:00:00:00:0b:01", dst="02:00:00:00:0b:02") / IP(src=RACK_V4["unapproved"], dst=MX_V4) / \
        TCP(sport=43000, dport=25, flags="A", seq=1, ack=0x12345678)
    res = lab.ns(lab.ns_rack, "/usr/bin/python3", str(lab.repo / "tools/lab/l2.py"), "rack0", bytes(forged).hex(),
                 "--expect", "--timeout", "1")
    assert res.stdout.strip() == "", "no answer to an ACK that acknowledges no cookie"
    assert counters(lab)["smtp_forged"] == before + 1
