"""The control plane under hostile input and a full disk, on a running gateway: control lines that used to end
the daemon (bytes that are not UTF-8, numbers out of range, deep nesting) get one-line errors while mail keeps
flowing through; client floods do not lock the operator out; and with state_dir on a small tmpfs that fills,
every acknowledged approval survives a crash and a restart, every refused one is absent, and the daemon starts."""
import json
import threading
import time
from pathlib import Path

import pytest

import portcullis_lab
from portcullis_lab import MX_V4, RACK_V4, run

HOSTILE_LINES = [
    b"\xff\xfe\n",
    b'{"v":1,"cmd":"\xff"}\n',
    b'{"v":1,"cmd":"approve","addr":"\xc3\x28"}\n',
    b'{"v":1e999,"cmd":"status"}\n',
    b'{"v":18446744073709551616,"cmd":"status"}\n',
    b'{"v":1,"cmd":"approve","addr":"198.51.100.77","expires":9223372036854775807}\n',
    b'{"v":1,"cmd":"approve","addr":"198.51.100.77","max_concurrent":1e300}\n',
    b"[" * 100_000 + b"\n",
    b'{"v":' + b"[" * 100_000 + b"\n",
    b'{"a":' * 30_000 + b"\n",
    b'{"v":1,"cmd":"approve","addr":"198.51.100.77","domains":[' + b"[" * 20 + b"]" * 20 + b"]}\n",
    b'{"v":1,"cmd":"' + b"c" * 200_000 + b'"}\n',
    b'{"v":1,"cmd":"approve","addr":"0.0.0.0/0"}\n',
    b'{"v":1,"cmd":"revoke","addr":"::/0","ban":true}\n',
]


def _connect(lab, timeout=10):
    return portcullis_lab.control_connect(lab.socket, timeout)


_reply = portcullis_lab.read_reply


def _mail_ok(lab, src=RACK_V4["approved"]):
    rc, _, out = lab.swaks(src, MX_V4, 25, timeout=10)
    return rc == 0


def test_hostile_lines_get_errors_and_the_daemon_lives(lab):
    s = _connect(lab)
    for line in HOSTILE_LINES:
        s.sendall(line)
        r = _reply(s)
        assert r is not None and r["ok"] is False, line[:60]
        assert len(json.dumps(r)) < 600, "errors quote at most a bounded excerpt"
    s.sendall(b'{"v":1,"cmd":"status"}\n')
    assert _reply(s)["ok"] is True, "the same connection goes on"
    s.close()
    assert lab.gateway.poll() is None, lab.gateway_output()[-2000:]
    prefixes = {r["prefix"] for r in json.loads(lab.ctl("list").stdout)["records"]}
    assert not prefixes & {"0.0.0.0/0", "::/0", "198.51.100.77"}, "nothing of the hostile lines was applied"


def test_forwarding_continues_while_the_socket_is_abused(lab):
    stop = threading.Event()
    errors = []

    def abuse():
        held = []
        try:
            while not stop.is_set():
                # Idle clients, half lines, newline-only keep-alives, oversized lines and every hostile class.
                for _ in range(20):
                    c = _connect(lab)
                    c.sendall(b'{"v":1,"cmd":"sta')
                    held.append(c)
                k = _connect(lab)
                k.sendall(b"\n" * 1000)
                held.append(k)
                for line in HOSTILE_LINES:
                    c = _connect(lab)
                    c.sendall(line)
                    _reply(c)
                    c.close()
                for c in held[:-40]:
                    c.close()
                held = held[-40:]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
        finally:
            for c in held:
                c.close()

    t = threading.Thread(target=abuse)
    t.start()
    try:
        delivered = 0
        status_ok = 0
        for _ in range(6):
            delivered += _mail_ok(lab)
            # The operator still gets through, however many idle clients there are.
            status_ok += lab.ctl("status", check=False).returncode == 0
    finally:
        stop.set()
        t.join(timeout=60)
    assert not errors, errors
    assert delivered == 6, "mail through the gateway while the control socket is abused"
    assert status_ok == 6, "portcullisctl status always answers"
    assert lab.gateway.poll() is None


@pytest.fixture(scope="module")
def full_disk_lab():
    """The lab with state_dir on a 256 KiB tmpfs. A leftover mount of a killed run is removed first."""
    lab = portcullis_lab.Lab("pcthdisk")
    state = lab.workdir / "state"
    run(["umount", "-l", str(state)], check=False)
    try:
        lab.create()
        state.mkdir()
        run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(state)])
        lab.start_mx()
        lab.start_gateway()
        yield lab
    finally:
        if lab.gateway is not None and lab.gateway.poll() is None:
            lab.stop_gateway()
        run(["umount", "-l", str(state)], check=False)
        lab.cleanup()


def test_disk_full_loses_nothing_acknowledged_and_keeps_nothing_refused(full_disk_lab):
    lab = full_disk_lab
    acked, refused = {}, set()
    reason = "r" * 1000
    for i in range(200):
        addr = f"198.51.100.{i + 21}" if i < 100 else f"192.0.2.{i - 100 + 11}"
        res = lab.ctl("approve", addr, "--reason", f"{i} {reason}", check=False)
        if res.returncode == 0:
            acked[addr] = f"{i} {reason}"
        else:
            assert "not saved" in res.stderr, res.stderr
            if addr not in acked:
                refused.add(addr)
        if len(refused) >= 10:
            break
    assert refused, "the disk never filled"
    assert acked, "nothing was acknowledged before the disk filled"
    assert _mail_ok(lab), "forwarding goes on with the disk full"

    lab.kill_gateway()  # a crash with the disk still full
    lab.start_gateway()  # and the daemon starts
    records = {r["prefix"]: r for r in json.loads(lab.ctl("list").stdout)["records"] if r["source"] == "store"}
    for addr, why in acked.items():
        assert addr in records, f"{addr} was acknowledged and is gone"
        assert records[addr]["reason"] == why
    for addr in refused:
        assert addr not in records, f"{addr} was refused and is present"
    assert not list(Path(lab.workdir / "state").glob("*.tmp")), "no temporary left behind"
    assert _mail_ok(lab)
