"""Per-source SMTP limits with real mail tools: postfix's smtp-source opening 20 sessions at once against
smtp-sink never has more than the limit open at the sink, and the sessions over it read the 421 line; per-approval
limits win over the defaults; half-open connections (a scapy SYN burst nobody answers) hold a sender's slots only
until the half-open timeout; the default limits change live and survive a restart; and when everything is over,
no connection is left counted against anyone."""
import json
import subprocess
import time

import pytest
from scapy.all import IP, TCP, Ether

import portcullis_lab
from portcullis_lab import MX_V4, RACK_V4

LINE_421 = "421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later"
EXTRA_SENDER = "198.51.100.11"  # approved in the test with its own limit
HALF_OPEN_S = 3


@pytest.fixture(scope="module")
def lab():
    lab = portcullis_lab.Lab("pctlimit")
    try:
        lab.create()
        lab.ns(lab.ns_rack, "ip", "addr", "add", f"{EXTRA_SENDER}/24", "dev", "rack0")
        lab.start_mx(ports="587,2525")
        # smtp-sink on 25 holds every session at least a second (-w 1), so that sessions overlap.
        lab.spawn_in(lab.ns_net, ["smtp-sink", "-u", "postfix", "-w", "1", f"{MX_V4}:25", "256"], "sink.out")
        lab.start_gateway(extra=["--rate", "0", "--flow_timeout_half_open", str(HALF_OPEN_S)])
        yield lab
    finally:
        lab.cleanup()


def sessions_at_sink(lab):
    res = lab.ns(lab.ns_net, "ss", "-Htn", "state", "established", "( sport = :25 )")
    return len([line for line in res.stdout.splitlines() if line.strip()])


def live(lab, addr):
    return json.loads(lab.ctl("show", addr).stdout)["limits"]


def counters(lab):
    return json.loads(lab.ctl("stats").stdout)["counters"]


def wait_released(lab, addr, timeout=15):
    portcullis_lab.wait_for(f"{addr}'s connections to be released",
                            lambda: live(lab, addr)["live"]["concurrent"] == 0, timeout=timeout)


def smtp_source_storm(lab, src, seconds):
    """smtp-source -s 20 from `src`, started again whenever it ends (it gives up at the first 421), for
    `seconds`, while the sink's established sessions are sampled. Returns (most seen at once, outputs)."""
    lab.ns(lab.ns_rack, "ip", "route", "replace", "203.0.113.0/24", "dev", "rack0", "src", src)
    cmd = ["ip", "netns", "exec", lab.ns_rack, "smtp-source", "-s", "20", "-m", "100", "-M", "mail.customer.example", "-f",
           "bulk@customer.example", "-t", "someone@example.net", f"{MX_V4}:25"]
    most, outputs, proc = 0, [], None
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if proc is None or proc.poll() is not None:
                if proc is not None:
                    outputs.append(proc.stdout.read())
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            most = max(most, sessions_at_sink(lab))
            time.sleep(0.02)
    finally:
        if proc is not None:
            proc.kill()
            outputs.append(proc.communicate()[0])
        lab.ns(lab.ns_rack, "ip", "route", "replace", "203.0.113.0/24", "dev", "rack0", "src", RACK_V4["approved"])
    return most, "".join(outputs)


def test_twenty_sessions_never_more_than_ten_at_the_sink(lab):
    before = counters(lab)
    most, out = smtp_source_storm(lab, RACK_V4["approved"], 6)
    assert most <= 10, f"{most} sessions open at the sink at once"
    assert most >= 8, f"the limit was never approached ({most}): the test proves nothing"
    assert LINE_421 in out, out[-2000:]
    after = counters(lab)
    assert after["refused_concurrency"] > before["refused_concurrency"]
    # Every session ended, however it ended (QUIT, the client's RST, our 421): nothing stays counted.
    wait_released(lab, RACK_V4["approved"])


def test_an_approvals_own_limit_wins(lab):
    lab.ctl("approve", EXTRA_SENDER, "--max-concurrent", "3", "--ticket", "T-LIMIT")
    assert live(lab, EXTRA_SENDER)["max_concurrent"] == 3
    most, out = smtp_source_storm(lab, EXTRA_SENDER, 4)
    assert 1 <= most <= 3, most
    assert LINE_421 in out
    wait_released(lab, EXTRA_SENDER)


def test_half_open_syns_hold_no_slots_and_expire(lab):
    """SYNs cost their sender nothing, so they claim nothing: a source's slot (and its concurrency units) is taken
    only when a handshake completes. Ten SYNs nobody answers leave the sender free to deliver at once."""
    sender = RACK_V4["approved"]
    wait_released(lab, sender)
    before = counters(lab)
    syns = [Ether(src="02:00:00:00:0a:01", dst="02:00:00:00:0a:02") / IP(src=sender, dst="203.0.113.99") /
            TCP(sport=50000 + i, dport=25, flags="S", seq=1000) for i in range(10)]
    lab.ns(lab.ns_rack, "/usr/bin/python3", str(lab.repo / "tools/lab/l2.py"), "rack0",
           *[bytes(f).hex() for f in syns])
    portcullis_lab.wait_for("the SYNs to be tracked as half-open",
                            lambda: counters(lab)["flows_half_open"] >= before["flows_half_open"] + 10)
    assert live(lab, sender)["live"]["concurrent"] == 0
    rc, _, out = lab.swaks(sender, MX_V4, 25)
    assert rc == 0, out
    portcullis_lab.wait_for("the half-open entries to expire",
                            lambda: counters(lab)["flows_expired_half_open"] >= before["flows_expired_half_open"] + 10,
                            timeout=HALF_OPEN_S + 10)


def test_default_limits_change_live_and_survive_a_restart(lab):
    addr = RACK_V4["unapproved"]  # limits apply to submission (587) from any managed source
    assert live(lab, addr)["max_concurrent"] == 10
    reply = json.loads(lab.ctl("limits", "--max-concurrent", "4", "--rate", "120/min").stdout)
    assert reply["defaults"] == {"max_concurrent": 4, "rate_per_min": 120, "daily": 0}
    assert live(lab, addr)["max_concurrent"] == 4
    assert live(lab, EXTRA_SENDER)["max_concurrent"] == 3, "an approval's own value still wins"
    lab.stop_gateway()
    lab.start_gateway(extra=["--rate", "0", "--flow_timeout_half_open", str(HALF_OPEN_S)])
    assert live(lab, addr)["max_concurrent"] == 4
    assert live(lab, addr)["rate_per_min"] == 120
    human = lab.ctl("limits", json_out=False).stdout
    assert "max concurrent:" in human and "4" in human
    rc, _, out = lab.swaks(addr, MX_V4, 587)
    assert rc == 0, out


def test_bad_limit_arguments_are_one_line_errors(lab):
    res = lab.ctl("limits", "--rate", "fast", check=False, json_out=False)
    assert res.returncode == 2
    assert "is not a rate" in res.stderr and len(res.stderr.strip().splitlines()) == 1
