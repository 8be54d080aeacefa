"""The DNS check of an approval's host name (forward-confirmed reverse DNS), in the namespace lab against a real
DNS server (Debian's dnsmasq, on the gateway namespace's loopback) serving a matching PTR/A pair and a
mismatching one: require_fcrdns refuses the mismatch naming what DNS said, a request keeps the result for
review, --skip-dns-check is audited, and a DNS server that does not answer refuses within dns_timeout_ms."""
import json
import subprocess
import time

import pytest

import portcullis_lab
from portcullis_lab import MX_V4, RACK_V4

GOOD, LIAR = "mail.rack.example", "liar.rack.example"


@pytest.fixture(scope="module")
def dlab():
    lab = portcullis_lab.Lab("pctdns")
    try:
        lab.create()
        lab.start_mx()
        lab.dns = lab.spawn_in(lab.ns_gw, [
            "dnsmasq", "--no-daemon", "-C", "/dev/null", "--no-resolv", "--no-hosts", "--no-poll",
            "--port=53", "--listen-address=127.0.0.1", "--bind-interfaces", "--user=root",
            f"--pid-file={lab.workdir / 'dnsmasq.pid'}",
            f"--host-record={GOOD},{RACK_V4['approved']}",
            "--ptr-record=20.100.51.198.in-addr.arpa,elsewhere.example",
            f"--host-record={LIAR},192.0.2.99"], "dnsmasq.out")
        portcullis_lab.wait_for("dnsmasq", lambda: "started" in (lab.workdir / "dnsmasq.out").read_text(),
                                timeout=10, proc=lab.dns, log=lab.workdir / "dnsmasq.out")
        lab.start_gateway(extra=["--dns_check", "true", "--dns_servers", "127.0.0.1:53",
                                 "--dns_timeout_ms", "1500"])
        yield lab
    finally:
        lab.cleanup()


def test_a_forward_confirmed_name_is_approved_and_shown(dlab):
    rec = json.loads(dlab.ctl("approve", RACK_V4["approved"], "--hostname", GOOD, "--require-fcrdns").stdout)
    assert rec["record"]["dns"]["fcrdns"] is True, rec
    assert rec["record"]["dns"]["ptr"] == [GOOD] and rec["record"]["dns"]["forward"] == [RACK_V4["approved"]]
    show = dlab.ctl("show", RACK_V4["approved"], json_out=False).stdout
    assert f"forward-confirmed: PTR of {RACK_V4['approved']} is {GOOD}" in show, show
    code, _, out = dlab.swaks(RACK_V4["approved"], MX_V4, helo=GOOD, timeout=10)
    assert code == 0, out


def test_require_fcrdns_refuses_a_mismatch_naming_what_dns_said(dlab):
    src = RACK_V4["unapproved"]
    res = dlab.ctl("approve", src, "--hostname", LIAR, "--require-fcrdns", check=False)
    assert res.returncode == 1, res.stdout
    assert f"PTR of {src} is elsewhere.example, not {LIAR}" in res.stderr, res.stderr
    assert f"{LIAR} resolves to 192.0.2.99, not {src}" in res.stderr, res.stderr
    code, _, _ = dlab.swaks(src, MX_V4, helo=LIAR, timeout=5)
    assert code != 0, "still refused"
    assert json.loads(dlab.ctl("show", src).stdout)["record"] is None


def test_a_request_keeps_the_result_for_review_and_skip_is_audited(dlab):
    src = RACK_V4["unapproved"]
    rec = json.loads(dlab.ctl("request", src, "--hostname", LIAR).stdout)["record"]
    assert rec["state"] == "pending" and rec["dns"]["fcrdns"] is False
    assert "elsewhere.example" in rec["dns"]["said"]
    rec = json.loads(dlab.ctl("approve", src, "--skip-dns-check").stdout)["record"]
    assert rec["state"] == "approved" and rec["dns"]["skipped"] is True
    audit = [json.loads(line) for line in (dlab.workdir / "state" / "audit.log").read_text().splitlines()]
    last = [a for a in audit if a["cmd"] == "approve"][-1]
    assert last["args"]["skip_dns_check"] is True
    dlab.ctl("revoke", src)


def test_a_silent_dns_server_refuses_within_the_timeout(dlab):
    dlab.dns.kill()
    dlab.dns.wait()
    # A server that takes the queries and never answers.
    hole = dlab.spawn_in(dlab.ns_gw, ["/usr/bin/python3", "-c",
                                      "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                      "s.bind(('127.0.0.1', 53))\nprint('bound', flush=True)\n"
                                      "while True: s.recvfrom(4096)"], "hole.out")
    portcullis_lab.wait_for("the silent server", lambda: "bound" in (dlab.workdir / "hole.out").read_text(),
                            timeout=10, proc=hole, log=dlab.workdir / "hole.out")
    t0 = time.monotonic()
    waiting = subprocess.Popen([str(dlab.build_dir / "tools" / "portcullisctl"), "--socket", str(dlab.socket),
                                "approve", "198.51.100.30", "--hostname", GOOD, "--require-fcrdns"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    t1 = time.monotonic()
    assert dlab.ctl("status", check=False).returncode == 0
    assert time.monotonic() - t1 < 1.0, "others are served while DNS is awaited"
    _, err = waiting.communicate(timeout=30)
    took = time.monotonic() - t0
    assert waiting.returncode == 1 and "timeout" in err, err
    assert 1.0 < took < 5, took
