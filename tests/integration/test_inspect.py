"""SMTP session inspection with swaks against a real server: an approved sender is held to the host name and the
sending domains its approval names (a 550 5.7.1 line naming the reason, the session closed on both sides); a
rule from rules/ refuses EHLO localhost; a session that turns to STARTTLS is not read past it and delivers; and a
rules reload with a broken file names file:line and keeps the rules in force."""
import json
import shutil

import pytest

import portcullis_lab
from portcullis_lab import MX_V4, MX_V6, RACK_V4, RACK_V6

HOST = "mail.customer.example"


@pytest.fixture(scope="module")
def lab():
    lab = portcullis_lab.Lab("pctinsp")
    try:
        lab.create()
        rules = lab.workdir / "rules"
        shutil.copytree(lab.repo / "rules", rules)
        lab.rules = rules
        lab.start_mx(tls=True)
        lab.start_gateway(extra=["--rules_dir", str(rules)])
        for addr in (RACK_V4["approved"], RACK_V6["approved"]):
            lab.ctl("approve", addr, "--hostname", HOST, "--domain", "customer.example", "--ticket", "T-INSPECT")
        yield lab
    finally:
        lab.cleanup()


def counters(lab):
    return json.loads(lab.ctl("stats").stdout)["counters"]


def delivered_from(lab, addr):
    return [m for m in lab.delivered() if m["peer"] == addr]


@pytest.mark.parametrize("rack,mx", [(RACK_V4, MX_V4), (RACK_V6, MX_V6)], ids=["ipv4", "ipv6"])
def test_the_approved_name_and_domain_deliver(lab, rack, mx):
    rc, _, out = lab.swaks(rack["approved"], mx, 25, helo=HOST, mail_from="billing@customer.example")
    assert rc == 0, out


@pytest.mark.parametrize("rack,mx", [(RACK_V4, MX_V4), (RACK_V6, MX_V6)], ids=["ipv4", "ipv6"])
def test_another_ehlo_name_is_refused_with_the_reason(lab, rack, mx):
    before = len(delivered_from(lab, rack["approved"]))
    rc, secs, out = lab.swaks(rack["approved"], mx, 25, helo="other.customer.example")
    assert rc != 0
    assert "550 5.7.1 EHLO name is not the host name approved for this address" in out, out
    assert secs < 5
    assert len(delivered_from(lab, rack["approved"])) == before


def test_a_mail_from_outside_the_approved_domains_is_refused(lab):
    before = counters(lab)
    rc, _, out = lab.swaks(RACK_V4["approved"], MX_V4, 25, helo=HOST, mail_from="news@elsewhere.example")
    assert rc != 0
    assert "550 5.7.1 Sender domain is not approved for this address" in out, out
    after = counters(lab)
    assert after["refused_payload"] == before["refused_payload"] + 1
    assert after["rst_sent_server"] == before["rst_sent_server"] + 1, "the server's side is reset too"


def test_the_null_sender_may_always_send(lab):
    rc, _, out = lab.swaks(RACK_V4["approved"], MX_V4, 25, helo=HOST, mail_from="<>")
    assert rc == 0, out


def test_a_shipped_rule_refuses_ehlo_localhost_on_submission_too(lab):
    # Port 587 from an unapproved server: no built-in name checks (a client's EHLO is not a server's name), but
    # the operator's rules apply.
    rc, _, out = lab.swaks(RACK_V4["unapproved"], MX_V4, 587, helo="localhost")
    assert rc != 0
    assert "550 5.7.1 EHLO localhost is not this server's host name" in out, out
    rc, _, out = lab.swaks(RACK_V4["unapproved"], MX_V4, 587, helo="laptop")
    assert rc == 0, out


def test_starttls_ends_inspection_and_the_session_delivers(lab):
    # After STARTTLS the commands are encrypted: the MAIL FROM that would be refused in clear is not seen.
    before = counters(lab)
    rc, _, out = lab.swaks(RACK_V4["approved"], MX_V4, 25, helo=HOST, mail_from="news@elsewhere.example",
                           extra=["-tls"])
    assert rc == 0, out
    assert "STARTTLS" in out
    after = counters(lab)
    assert after["inspect_ended_starttls"] > before["inspect_ended_starttls"]
    assert after["refused_payload"] == before["refused_payload"]


def test_a_broken_rules_file_is_named_and_the_old_rules_stay(lab):
    bad = lab.rules / "zz-local.rules"
    bad.write_text("# local additions\n9001 ehlo refuse /blocked\\.customer\\.example$/i \"blocked\"\n"
                   "9002 ehlo refuse /unclosed(/ \"oops\"\n")
    res = lab.ctl("rules", "reload", check=False, json_out=False)
    assert res.returncode == 1
    assert f"{bad}:3: Missing close parenthesis" in res.stderr, res.stderr
    assert "the rules in force are unchanged" in res.stderr
    rc, _, out = lab.swaks(RACK_V4["unapproved"], MX_V4, 587, helo="blocked.customer.example")
    assert rc == 0, "9001 is not in force: the whole new set was refused"
    rc, _, out = lab.swaks(RACK_V4["unapproved"], MX_V4, 587, helo="localhost")
    assert rc != 0 and "EHLO localhost" in out, "the old set is still in force"

    bad.write_text("9001 ehlo refuse /blocked\\.customer\\.example$/i \"blocked by a local rule\"\n")
    reply = json.loads(lab.ctl("rules", "reload").stdout)
    assert any(r["id"] == 9001 for r in reply["list"])
    rc, _, out = lab.swaks(RACK_V4["unapproved"], MX_V4, 587, helo="blocked.customer.example")
    assert rc != 0 and "550 5.7.1 blocked by a local rule" in out, out


HOLD = """
import socket, sys, time
c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=5, source_address=(sys.argv[1], 0))
c.recv(512)
c.sendall(b"EHLO mail.customer.example\\r\\n")
c.recv(512)
open(sys.argv[4], "w").close()
time.sleep(600)
"""


def test_smtp_on_port_2525_is_found_by_its_commands_and_limited(lab):
    sender = RACK_V4["approved"]
    lab.ctl("approve", sender, "--hostname", HOST, "--domain", "customer.example", "--max-concurrent", "1")
    before = counters(lab)
    ready = lab.workdir / "hold2525.ready"
    holder = lab.spawn_in(lab.ns_rack, ["/usr/bin/python3", "-c", HOLD, sender, MX_V4, "2525", str(ready)],
                          "hold2525.out")
    lab.wait_file(ready, holder)
    assert json.loads(lab.ctl("show", sender).stdout)["limits"]["live"]["concurrent"] == 1
    rc, _, out = lab.swaks(sender, MX_V4, 2525, helo=HOST)
    assert rc != 0
    assert "421 4.7.0 Too many concurrent SMTP connections from this IP address" in out, out
    after = counters(lab)
    assert after["smtp_other_port"] >= before["smtp_other_port"] + 2
    holder.kill()
    holder.wait()
    portcullis_lab.wait_for("the held session to be released",
                            lambda: json.loads(lab.ctl("show", sender).stdout)["limits"]["live"]["concurrent"] == 0,
                            timeout=10)
    rc, _, out = lab.swaks(sender, MX_V4, 2525, helo=HOST)
    assert rc == 0, out
    lab.ctl("approve", sender, "--hostname", HOST, "--domain", "customer.example")


def test_show_gives_the_names_and_domains_a_source_used(lab):
    lab.swaks(RACK_V4["approved"], MX_V4, 25, helo=HOST, mail_from="billing@customer.example")
    seen = json.loads(lab.ctl("show", RACK_V4["approved"]).stdout)["seen"]
    assert seen["ehlo"][0] == HOST and "other.customer.example" in seen["ehlo"]
    assert seen["mail_from_domains"][0] == "customer.example" and "elsewhere.example" in seen["mail_from_domains"]
    human = lab.ctl("show", RACK_V4["approved"], json_out=False).stdout
    assert "EHLO names seen:" in human and HOST in human


def test_a_long_rules_reload_keeps_the_socket_and_the_mail_going(lab):
    """3,000 rules take seconds to compile: the reload compiles in a child process, `status` and mail go on
    meanwhile, a second reload is told one is under way, and the new set is in force when the reply comes."""
    import subprocess
    import time

    big = lab.rules / "zz-big.rules"
    big.write_text("".join(f'{200000 + i} ehlo refuse /spam-host-{i}\\.example$/i "EHLO spam-host-{i}"\n'
                           for i in range(3000)))
    cmd = [str(lab.build_dir / "tools" / "portcullisctl"), "--socket", str(lab.socket), "--json", "rules", "reload"]
    reload = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        portcullis_lab.wait_for("the compile to be under way",
                                lambda: json.loads(lab.ctl("rules").stdout).get("reloading") is True, timeout=10)
        start = time.monotonic()
        assert json.loads(lab.ctl("status").stdout)["ready"] is True
        assert time.monotonic() - start < 2, "the socket answers while the rules compile"
        second = lab.ctl("rules", "reload", check=False, json_out=False)
        assert second.returncode == 1 and "already under way" in second.stderr, second.stderr
        rc, _, _ = lab.swaks(RACK_V4["approved"], MX_V4, 25, helo=HOST)
        assert rc == 0, "mail goes on during the compile"
        out, err = reload.communicate(timeout=120)
    finally:
        if reload.poll() is None:
            reload.kill()
        big.unlink()
    assert reload.returncode == 0, err
    assert json.loads(out)["rules"] >= 3000
    rc, _, out = lab.swaks(RACK_V4["unapproved"], MX_V4, 587, helo="spam-host-42.example")
    assert rc != 0 and "EHLO spam-host-42" in out, out
