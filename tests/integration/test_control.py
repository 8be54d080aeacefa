"""Live approvals on a running gateway, as operators use them: portcullisctl changes what swaks meets,
nothing acknowledged is lost to kill -9, bulk imports apply whole, and a misbehaving control client never
disturbs forwarding or other clients."""
import json
import os
import socket
import stat
import time


import portcullis_lab
from portcullis_lab import MX_V4, RACK_V4, RELAY_V4, run

SRC = RACK_V4["unapproved"]  # starts unapproved in configs/lab.conf


def refused(lab, src=SRC, server=MX_V4):
    rc, secs, out = lab.swaks(src, server, 25, timeout=5)
    return rc != 0 and "Connection refused" in out


def delivers(lab, src=SRC, server=MX_V4):
    # As the approval below names them: inspection holds the session to that host name and domain.
    rc, _, out = lab.swaks(src, server, 25, timeout=10, helo="mail.customer.example",
                           mail_from="noreply@customer.example")
    return rc == 0


def ctl_json(lab, *args):
    return json.loads(lab.ctl(*args).stdout)


def test_approve_suspend_resume(lab):
    assert refused(lab)
    rec = ctl_json(lab, "approve", SRC, "--hostname", "mail.customer.example", "--domain", "customer.example",
                   "--ticket", "T-100", "--reason", "contact forms")["record"]
    assert rec["state"] == "approved" and rec["operator"] == "root"
    assert delivers(lab), "approve must take effect as soon as it is acknowledged"
    lab.ctl("suspend", SRC)
    assert refused(lab)
    lab.ctl("resume", SRC)
    assert delivers(lab)


def test_kill_9_after_acknowledged_approve_keeps_it(lab):
    other = RACK_V4["approved"]  # approved by config; carve it out, then approve a new address
    lab.ctl("revoke", other, "--reason", "testing the store")
    lab.ctl("approve", "198.51.100.21")
    lab.kill_gateway()
    lab.start_gateway()
    assert refused(lab, other), "the revocation must survive the crash"
    shown = ctl_json(lab, "show", "198.51.100.21")
    assert shown["verdict"] == "may send on blocked ports" and shown["record"]["source"] == "store"
    assert delivers(lab), "the approval from the first test must survive the crash"


def test_revoke_ban_refuses_later_approvals_with_the_reason(lab):
    lab.ctl("revoke", SRC, "--ban", "--reason", "spam complaints", "--ticket", "ABUSE-7")
    assert refused(lab)
    res = lab.ctl("approve", SRC, check=False, json_out=False)
    assert res.returncode == 1
    assert "banned" in res.stderr and "spam complaints" in res.stderr and "ABUSE-7" in res.stderr
    assert refused(lab)
    listed = ctl_json(lab, "list", "--state", "banned")["records"]
    assert [r["prefix"] for r in listed] == [SRC]


def test_expiry_stops_an_approval_without_an_operator(lab):
    lab.ctl("approve", "198.51.100.22", "--expires", "+3s")
    assert delivers(lab, "198.51.100.22") if _add_addr(lab, "198.51.100.22") else False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not refused(lab, "198.51.100.22"):
        time.sleep(0.5)
    assert refused(lab, "198.51.100.22")
    assert "expired" in ctl_json(lab, "show", "198.51.100.22")["verdict"]


def _add_addr(lab, addr):
    lab.ns(lab.ns_rack, "ip", "addr", "replace", f"{addr}/24", "dev", "rack0")
    return True


def test_managed_and_relay_lists_change_live(lab):
    _add_addr(lab, "198.51.100.23")
    assert refused(lab, "198.51.100.23")
    lab.ctl("relay", "add", MX_V4)
    assert delivers(lab, "198.51.100.23"), "a relay is reachable by everyone"
    lab.ctl("relay", "del", MX_V4)
    assert refused(lab, "198.51.100.23")
    res = lab.ctl("managed", "del", "198.51.100.0/25", check=False, json_out=False)
    assert res.returncode == 1 and "--force" in res.stderr, "lifting the policy from a prefix needs --force"
    assert refused(lab, "198.51.100.23")
    lab.ctl("managed", "del", "198.51.100.0/25", "--force")
    assert delivers(lab, "198.51.100.23"), "outside the managed prefixes the policy does not apply"
    lab.ctl("managed", "add", "198.51.100.0/25")
    assert refused(lab, "198.51.100.23")
    assert delivers(lab, "198.51.100.23", RELAY_V4)


def test_monitor_mode_reports_without_refusing(lab):
    _add_addr(lab, "198.51.100.24")
    assert refused(lab, "198.51.100.24")
    lab.ctl("monitor", "on")
    assert ctl_json(lab, "status")["monitor"] is True
    before = ctl_json(lab, "stats")["counters"]["monitor_passed"]
    assert delivers(lab, "198.51.100.24"), "monitor mode refuses nothing"
    assert ctl_json(lab, "stats")["counters"]["monitor_passed"] > before, "but counts what it would have refused"
    lab.ctl("monitor", "off")
    assert refused(lab, "198.51.100.24")


def test_import_of_100000_entries_applies_whole(lab, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("# bulk\n10.0.0.1 hostname=a.example.com\n10.0.0.2 hostname=localhost\n")
    res = lab.ctl("import", str(bad), check=False, json_out=False)
    assert res.returncode == 1 and "line 3" in res.stderr and "nothing imported" in res.stderr
    before = ctl_json(lab, "status")["records"]

    big = tmp_path / "big.txt"
    with open(big, "w") as f:
        f.write("# 100,000 approvals\n")
        for i in range(100_000):
            f.write(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255} hostname=h{i}.example.com ticket=T-{i}\n")
    start = time.monotonic()
    reply = ctl_json(lab, "import", str(big))
    took = time.monotonic() - start
    assert reply["applied"] == 100_000
    assert ctl_json(lab, "status")["records"] == before + 100_000
    assert ctl_json(lab, "show", "10.1.134.159")["record"]["hostname"] == "h99999.example.com"
    assert took < 120, f"import took {took:.1f}s"
    assert delivers(lab, RACK_V4["unmanaged"]), "forwarding goes on"


def _connect(lab, timeout=10):
    return portcullis_lab.control_connect(lab.socket, timeout)


_reply = portcullis_lab.read_reply


def test_misbehaving_control_clients_do_not_disturb_anyone(lab):
    # An idle client holding a connection, a flood of clients, garbage, an oversized line.
    idle = _connect(lab)
    idle.sendall(b'{"v":1,"cmd":"sta')  # never finished
    crowd = [_connect(lab) for _ in range(80)]
    told = [(lambda r: r is not None and r.get("error", ""))(_try_reply(s)) for s in crowd + [idle]]
    assert any(t and ("too many" in t or "to make room" in t) for t in told), \
        "past the client cap, new clients are refused or idle ones make room, and are told so"
    for s in crowd:
        s.close()

    s = _connect(lab)
    s.sendall(b"this is not json\n")
    assert "malformed JSON" in _reply(s)["error"]
    s.sendall(b'{"v":1,"cmd":"approve","addr":12}\n')
    assert _reply(s)["error"] == "'addr' must be a string"
    s.sendall(b'{"v":9,"cmd":"status"}\n')
    assert "unsupported protocol version" in _reply(s)["error"]
    s.sendall(b'{"v":1,"cmd":"status"}\n')
    assert _reply(s)["ok"] is True, "the same connection goes on after errors"
    s.close()

    big = _connect(lab)
    try:
        big.sendall(b"x" * (2 << 20))
    except (BrokenPipeError, ConnectionResetError):
        pass
    r = _reply(big)
    assert r is not None and "over 1048576 bytes" in r["error"]
    big.close()

    assert ctl_json(lab, "status")["ready"] is True
    assert delivers(lab, RACK_V4["unmanaged"])
    idle.close()


def _try_reply(s):
    s.settimeout(0.5)
    try:
        return _reply(s)
    except (socket.timeout, json.JSONDecodeError, ConnectionResetError):
        return None


def test_socket_and_state_permissions(lab):
    assert stat.S_IMODE(os.stat(lab.socket).st_mode) == 0o660
    assert stat.S_IMODE(os.stat(lab.workdir / "state").st_mode) == 0o750
    audit = (lab.workdir / "state" / "audit.log").read_text().splitlines()
    entry = json.loads(audit[0])
    assert {"time", "uid", "pid", "user", "cmd", "before", "after", "result"} <= set(entry)


def test_cli_usage_errors_and_unreachable_daemon(lab):
    exe = str(lab.build_dir / "tools" / "portcullisctl")
    res = run([exe, "--socket", str(lab.socket), "approve"], check=False)
    assert res.returncode == 2 and "missing ADDR" in res.stderr
    res = run([exe, "--socket", str(lab.socket), "approve", "198.51.100.9", "--rate", "fast"], check=False)
    assert res.returncode == 2 and "--rate" in res.stderr
    res = run([exe, "--socket", "/nonexistent/portcullis.sock", "status"], check=False)
    assert res.returncode == 3 and "cannot reach portcullis" in res.stderr
    for sub in ("approve", "suspend", "resume", "revoke", "list", "show", "import", "export", "status", "stats",
                "managed", "relay", "monitor"):
        assert run([exe, sub, "--help"], check=False).returncode == 0, sub
