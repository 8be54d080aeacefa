"""The policy as a customer's MTA meets it: swaks from the rack namespace to a real SMTP server (aiosmtpd) in
the "internet" namespace, through the gateway on net_af_packet."""
import pytest

from portcullis_lab import MX_V4, MX_V6, RACK_V4, RACK_V6, RELAY_V4, RELAY_V6, Lab

FAMILIES = {
    "ipv4": (RACK_V4, MX_V4, RELAY_V4),
    "ipv6": (RACK_V6, MX_V6, RELAY_V6),
}


def delivered_from(lab, src, server, port):
    return [m for m in lab.delivered() if m["peer"] == src and m["local"] == server and m["port"] == port]


@pytest.mark.parametrize("family", FAMILIES)
def test_unapproved_source_is_refused_on_25_within_2s(lab, family):
    rack, mx, _ = FAMILIES[family]
    rc, secs, out = lab.swaks(rack["unapproved"], mx, 25)
    assert rc != 0, out
    assert "Connection refused" in out, out
    assert secs < 2.0, f"refusal took {secs:.2f}s: the client should fail at once, not time out"
    assert not delivered_from(lab, rack["unapproved"], mx, 25)


@pytest.mark.parametrize("family", FAMILIES)
def test_approved_source_delivers_on_25(lab, family):
    rack, mx, _ = FAMILIES[family]
    rc, _, out = lab.swaks(rack["approved"], mx, 25)
    assert rc == 0, out
    assert len(delivered_from(lab, rack["approved"], mx, 25)) == 1


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("who", ["approved", "unapproved"])
def test_submission_587_delivers_from_everyone(lab, family, who):
    rack, mx, _ = FAMILIES[family]
    rc, _, out = lab.swaks(rack[who], mx, 587)
    assert rc == 0, out
    assert len(delivered_from(lab, rack[who], mx, 587)) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_source_outside_managed_prefixes_reaches_25(lab, family):
    rack, mx, _ = FAMILIES[family]
    rc, _, out = lab.swaks(rack["unmanaged"], mx, 25)
    assert rc == 0, out
    assert len(delivered_from(lab, rack["unmanaged"], mx, 25)) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_relay_host_is_reachable_on_25_by_unapproved_sources(lab, family):
    rack, _, relay = FAMILIES[family]
    rc, _, out = lab.swaks(rack["unapproved"], relay, 25)
    assert rc == 0, out
    assert len(delivered_from(lab, rack["unapproved"], relay, 25)) == 1


def test_inbound_port_25_is_never_touched(lab):
    """A server in the rack receiving mail on 25 (an inbound connection) works, even from an unapproved address."""
    ready = lab.workdir / "rack-mx.ready"
    log = lab.workdir / "rack-mx.jsonl"
    proc = lab.spawn_in(lab.ns_rack, ["/usr/bin/python3", str(lab.repo / "tools/lab/mx.py"), "--ports", "25",
                                      "--log", str(log), "--ready", str(ready)], "rack-mx.out")
    try:
        lab.wait_file(ready, proc)
        res = lab.ns(lab.ns_net, "swaks", "--server", RACK_V4["unapproved"], "--port", "25",
                     "--local-interface", MX_V4, "--from", "someone@example.net",
                     "--to", "customer@customer.example", "--timeout", "10", check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        assert log.read_text().count("\n") == 1
    finally:
        proc.terminate()
        proc.wait()


def test_refusals_are_reported_per_source(lab):
    """The operator can see who is being refused, how often and where to, without reading packet captures."""
    import json
    import time

    def attempts():
        return json.loads(lab.ctl("show", RACK_V4["unapproved"]).stdout)["refusals"]["attempts"]

    before = attempts()
    rc, _, _ = lab.swaks(RACK_V4["unapproved"], MX_V4, 25)
    assert rc != 0
    deadline = time.monotonic() + 5  # the control loop drains refusal events every 100 ms
    while attempts() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    shown = json.loads(lab.ctl("show", RACK_V4["unapproved"]).stdout)["refusals"]
    assert shown["attempts"] == before + 1 and shown["last_port"] == 25
    top = json.loads(lab.ctl("stats").stdout)["top_refused_sources"]
    assert RACK_V4["unapproved"] in [e["addr"] for e in top]
    assert RACK_V6["unapproved"] in [e["addr"] for e in top]
    assert json.loads(lab.ctl("show", RACK_V4["approved"]).stdout)["refusals"]["refused"] == 0


def test_sigterm_stops_cleanly_and_reports_refusals(lab: Lab):
    """Runs last in this module: the counters the operator sees at exit match what the tests did."""
    code = lab.stop_gateway()
    out = lab.gateway_output()
    assert code == 0, out
    counters = lab.final_counters()
    assert counters["refused_unapproved_syn"] >= 2, out
    assert counters["rst_sent"] >= 2, out
    assert counters["pass_approved"] > 0 and counters["pass_relay"] > 0 and counters["pass_unmanaged"] > 0
    assert counters["tx_full_outside"] == 0 and counters["tx_full_inside"] == 0
