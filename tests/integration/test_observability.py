"""Observability in the namespace lab, against real traffic (swaks through the gateway to the lab's MX):
/metrics carries the refusal by reason, sums exactly and passes `promtool check metrics`; the event file has a
line per refusal that validates against docs/events.schema.json, naming the source and port 25; after logrotate's
move and SIGHUP the next event goes to a new file; systemd's notify protocol (a real datagram socket the test
reads, as systemd's would be) gets READY=1 and watchdog pings that stop while a worker is stalled (the test
hook) and come back after; the telemetry socket lists the gateway's commands."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import jsonschema
import pytest

import portcullis_lab
from portcullis_lab import MX_V4, MX_V6, RACK_V4, RACK_V6

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "events.schema.json").read_text())
METRICS = "127.0.0.1:9464"
HOST = "mail.rack.example"


@pytest.fixture(scope="module")
def olab():
    lab = portcullis_lab.Lab("pctobsv")
    notify = None
    try:
        lab.create()
        lab.start_mx()
        notify, env = lab.notify_socket()
        notify.settimeout(0.2)
        # Read at once, as systemd does: (arrival time, message) for the whole run.
        lab.notes = []
        lab.notify_open = True

        def reader():
            while lab.notify_open:
                try:
                    lab.notes.append((time.monotonic(), notify.recv(4096).decode()))
                except (socket.timeout, OSError):
                    pass
        threading.Thread(target=reader, daemon=True).start()
        lab.events = lab.workdir / "events.json"
        lab.start_gateway(extra=["--metrics_listen", METRICS, "--events_file", str(lab.events),
                                 "--allow_test_hooks", "true", "--worker_stall_ms", "1000"],
                          env={**env, "WATCHDOG_USEC": "1000000"})
        yield lab
    finally:
        lab.cleanup()
        if notify:
            lab.notify_open = False
            notify.close()


def metrics(lab):
    res = lab.ns(lab.ns_gw, "curl", "-sS", "--max-time", "5", f"http://{METRICS}/metrics")
    return res.stdout


def samples(text, name):
    """{labels-string: value} of one metric family's samples."""
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def notifications(lab, seconds):
    """The notify messages that arrive within the next `seconds`, with their arrival times."""
    start = time.monotonic()
    time.sleep(seconds)
    return [(t, m) for t, m in lab.notes if t >= start]


def events(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_an_unapproved_attempt_is_in_metrics_and_promtool_is_clean(olab):
    code, _, _ = olab.swaks(RACK_V4["unapproved"], MX_V4, timeout=5)
    assert code != 0
    portcullis_lab.wait_for("the refusal in /metrics",
                            lambda: samples(metrics(olab), "portcullis_refusals_total")
                            .get('{reason="unapproved"}', 0) >= 1, timeout=10)
    text = metrics(olab)
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout == "" and check.stderr == "", check.stdout + check.stderr
    assert samples(text, "portcullis_frames_received_total")['{port="inside"}'] > 0
    assert samples(text, "portcullis_flows_capacity")[""] > 0
    # No address in any label: per-address detail is the event stream's.
    assert "198.51.100." not in text and "2001:db8" not in text


def test_refusals_by_reason_sum_exactly_to_the_total(olab):
    olab.ctl("approve", RACK_V4["approved"], "--hostname", HOST, "--ticket", "T-OBS")
    olab.swaks(RACK_V6["unapproved"], MX_V6, timeout=5)                      # unapproved, IPv6
    code, _, _ = olab.swaks(RACK_V4["approved"], MX_V4, helo="other.example", timeout=5)  # payload
    assert code != 0

    def settled():
        text = metrics(olab)
        by_reason = samples(text, "portcullis_refusals_total")
        total = samples(text, "portcullis_refusal_events_total").get("", -1)
        return by_reason.get('{reason="payload"}', 0) >= 1 and sum(by_reason.values()) == total
    portcullis_lab.wait_for("the payload refusal counted, the sum equal to the total", settled, timeout=10)
    by_reason = samples(metrics(olab), "portcullis_refusals_total")
    assert by_reason['{reason="unapproved"}'] >= 2


def test_the_event_file_names_the_source_and_validates(olab):
    portcullis_lab.wait_for("events", lambda: len(events(olab.events)) >= 3, timeout=10)
    checker = jsonschema.FormatChecker()
    evs = events(olab.events)
    for ev in evs:
        jsonschema.validate(ev, SCHEMA, format_checker=checker)
    unapproved = [e for e in evs if e["src_ip"] == RACK_V4["unapproved"]]
    assert unapproved and unapproved[0]["dest_port"] == 25 and unapproved[0]["event_type"] == "refusal"
    assert unapproved[0]["reason"] == "unapproved" and unapproved[0]["dest_ip"] == MX_V4
    assert any(e["src_ip"] == RACK_V6["unapproved"] and e["ip_version"] == 6 for e in evs)
    payload = [e for e in evs if e["event_type"] == "payload_refusal"]
    assert payload and payload[0]["src_ip"] == RACK_V4["approved"]
    assert payload[0]["smtp"]["helo"] == "other.example"
    assert payload[0]["approval"]["ticket"] == "T-OBS"
    # The stream's figures are in /metrics too.
    assert samples(metrics(olab), "portcullis_events_written_total")[""] >= len(evs)


def test_after_a_move_and_sighup_the_next_event_goes_to_a_new_file(olab):
    rotated = olab.events.with_name("events.json.1")
    os.rename(olab.events, rotated)
    before = len(events(rotated))
    olab.gateway.send_signal(signal.SIGHUP)
    portcullis_lab.wait_for("the reopen", lambda: "reopened" in olab.gateway_output(), timeout=10)
    olab.swaks(RACK_V4["unapproved"], MX_V4, port=25, timeout=5)
    portcullis_lab.wait_for("an event in the new file", lambda: len(events(olab.events)) >= 1, timeout=10)
    assert events(olab.events)[0]["src_ip"] == RACK_V4["unapproved"]
    assert len(events(rotated)) == before, "nothing more went to the moved file"
    assert olab.gateway.poll() is None, "SIGHUP does not stop the daemon"


def test_systemd_hears_ready_and_pings_that_stop_while_a_worker_is_stalled(olab):
    first = notifications(olab, 2.5)
    texts = "\n".join(m for _, m in first)
    # READY=1 came at start (it may have been read with the first pings) and the pings keep coming.
    assert texts.count("WATCHDOG=1") >= 2, texts
    # The hook is in the protocol only (no portcullisctl command for it).
    s = portcullis_lab.control_connect(str(olab.socket))
    s.sendall(json.dumps({"v": 1, "cmd": "test_stall_worker", "worker": 0, "ms": 4000}).encode() + b"\n")
    assert portcullis_lab.read_reply(s)["ok"] is True
    s.close()
    t0 = time.monotonic()
    during = notifications(olab, 3.5)
    # Within worker_stall_ms (1 s) plus a pass, the pings stop, and a STATUS line says why.
    late_pings = [t - t0 for t, m in during if "WATCHDOG=1" in m and t - t0 > 1.5]
    assert not late_pings, f"pings went on while worker 0 was stalled: {late_pings}"
    assert any("STATUS=worker 0 stalled" in m for _, m in during), during
    after = notifications(olab, 3.0)
    assert any("WATCHDOG=1" in m for _, m in after), "the pings come back once the worker beats again"


def test_ready_was_sent_once_forwarding(olab):
    ready = [m for _, m in olab.notes if "READY=1" in m]
    assert len(ready) == 1 and "STATUS=forwarding" in ready[0], olab.notes[:5]
    assert f"MAINPID={olab.gateway.pid}" in ready[0] or "MAINPID=" in ready[0]


def test_top_once_shows_the_refused_source_of_the_last_minute(olab):
    olab.swaks(RACK_V4["unapproved"], MX_V4, timeout=5)
    frame = olab.ctl("top", "--once", "--interval", "0.5", json_out=False).stdout
    assert "\x1b[" not in frame, "--once prints no terminal codes"
    minute = frame.split("REFUSED MOST IN THE LAST MINUTE", 1)[1]
    assert RACK_V4["unapproved"] in minute, frame
    assert "unapproved" in frame and "inside" in frame


def test_hostile_scrapers_are_dropped_and_metrics_keep_answering(olab):
    """Slow clients holding connections half-sent, garbage, an oversized request: /metrics still answers at
    once, the slow ones are dropped within the request timeout, and mail still flows."""
    script = r"""
import socket, sys, time
host, port = sys.argv[1].split(":")
slow = []
for _ in range(2):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"GET /metr")
    slow.append(s)
g = socket.create_connection((host, int(port)), timeout=10)
g.sendall(bytes(range(256)) * 8 + b"\r\n\r\n")
try:
    g.recv(100)
except OSError:
    pass
big = socket.create_connection((host, int(port)), timeout=10)
try:
    big.sendall(b"GET /metrics HTTP/1.1\r\nX-A: " + b"a" * 65536 + b"\r\n\r\n")
    print("big:", big.recv(64)[:12])
except OSError as e:
    print("big: dropped", e)
t = time.monotonic()
ok = socket.create_connection((host, int(port)), timeout=10)
ok.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
print("scrape:", ok.recv(12), round(time.monotonic() - t, 2))
for s in slow:
    t = time.monotonic()
    try:
        data = s.recv(100)
    except OSError:
        data = b""
    print("slow closed after", round(time.monotonic() - t + 0.0, 1), data[:12])
"""
    res = olab.ns(olab.ns_gw, "/usr/bin/python3", "-c", script, METRICS, timeout=60)
    lines = res.stdout.splitlines()
    scrape = [line for line in lines if line.startswith("scrape:")][0]
    assert "200" in scrape and float(scrape.split()[-1]) < 2.0, res.stdout
    assert not any(line.startswith("big:") and "200" in line for line in lines), res.stdout
    slow = [line for line in lines if line.startswith("slow closed after")]
    assert len(slow) == 2 and all(float(line.split()[3]) <= 8.0 for line in slow), res.stdout
    assert olab.gateway.poll() is None
    code, _, out = olab.swaks(RACK_V4["approved"], MX_V4, helo=HOST, timeout=10)
    assert code == 0, out


def test_the_telemetry_socket_lists_the_gateways_commands(olab):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(f"/var/run/dpdk/{olab.prefix}/dpdk_telemetry.v2")
    try:
        json.loads(s.recv(1 << 16))
        s.send(b"/")
        cmds = json.loads(s.recv(1 << 20))["/"]
    finally:
        s.close()
    assert "/portcullis/counters" in cmds and "/portcullis/status" in cmds
