"""The gateway's own DPDK telemetry commands, in the namespace lab: the telemetry socket lists them next to
ethdev's, /portcullis/counters carries a refusal the rack's unapproved server just met, and /portcullis/status
says the gateway is up (what dpdk-telemetry.py and Telegraf's dpdk input read)."""
import json
import socket
import time

import portcullis_lab
from portcullis_lab import MX_V4, RACK_V4


def telemetry(lab, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(f"/var/run/dpdk/{lab.prefix}/dpdk_telemetry.v2")
    try:
        json.loads(s.recv(1 << 16))  # the greeting: version, pid, max_output_len
        s.send(cmd.encode())
        return json.loads(s.recv(1 << 20))
    finally:
        s.close()


def test_the_socket_lists_the_gateways_commands(lab):
    cmds = telemetry(lab, "/")["/"]
    assert "/portcullis/counters" in cmds and "/portcullis/status" in cmds
    assert "/ethdev/stats" in cmds


def test_counters_carry_a_refusal_and_status_says_up(lab):
    before = telemetry(lab, "/portcullis/counters")["/portcullis/counters"]
    code, _, _ = lab.swaks(RACK_V4["unapproved"], MX_V4, timeout=5)
    assert code != 0
    after = telemetry(lab, "/portcullis/counters")["/portcullis/counters"]
    assert after["refused_unapproved_syn"] > before["refused_unapproved_syn"]
    assert after["rx_inside"] > before["rx_inside"]
    portcullis_lab.wait_for("the status copy", lambda: telemetry(lab, "/portcullis/status")["/portcullis/status"],
                            timeout=5)
    status = telemetry(lab, "/portcullis/status")["/portcullis/status"]
    assert status["ready"] == 1 and status["workers"] == 1 and status["store"] == "local"
    t0 = status["uptime_s"]
    time.sleep(2.2)
    assert telemetry(lab, "/portcullis/status")["/portcullis/status"]["uptime_s"] > t0
