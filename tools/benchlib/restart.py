#!/usr/bin/python3
"""How long the racks are cut off when the gateway dies: kill -9 to forwarding again, in the namespace lab.

The lab's gateway runs as systemd would run it (Type=notify: NOTIFY_SOCKET, the READY=1 message read here);
a prober in the rack connects to the lab's MX on 587 (an open port: forwarded, never refused) every 20 ms.
Each repetition kills the daemon with SIGKILL, starts it again at once (what Restart=always does, after
RestartSec), and reports: when READY=1 came, and when the first connection through the gateway succeeded,
both from the kill. Add RestartSec (1 s in the shipped unit) for the outage under systemd. Prints figures;
asserts nothing. Run as root: tools/restart-timing [--reps N]."""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "lab"))
import portcullis_lab  # noqa: E402
from portcullis_lab import MX_V4, RACK_V4  # noqa: E402

PROBE = r"""
import socket, sys, time
while True:
    s = socket.socket(); s.settimeout(0.02)
    s.bind((sys.argv[1], 0))
    try:
        s.connect((sys.argv[2], 587)); print(f"{time.monotonic():.4f} ok", flush=True)
    except OSError:
        print(f"{time.monotonic():.4f} fail", flush=True)
    finally:
        s.close()
    time.sleep(0.02)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    lab = portcullis_lab.Lab("pcrestart")
    try:
        lab.create()
        lab.start_mx()
        notify, env = lab.notify_socket()
        lab.start_gateway(env=env)
        log = lab.workdir / "probe.log"
        probe = subprocess.Popen(["ip", "netns", "exec", lab.ns_rack, "/usr/bin/python3", "-c", PROBE,
                                  RACK_V4["approved"], MX_V4], stdout=open(log, "w"))
        lab.extra.append(probe)
        time.sleep(1.0)
        ready_s, forward_s = [], []
        for _ in range(args.reps):
            notify.setblocking(False)
            try:
                while notify.recv(4096):
                    pass
            except BlockingIOError:
                pass
            t_kill = time.monotonic()
            lab.kill_gateway()
            # Started again at once: the outage systemd adds is RestartSec.
            proc = subprocess.Popen(lab.gateway_command(extra=()), stdout=open(lab.gateway_log, "w"),
                                    stderr=subprocess.STDOUT, env={**os.environ, **env})
            lab.gateway = proc
            notify.settimeout(60)
            while b"READY=1" not in notify.recv(4096):
                pass
            t_ready = time.monotonic()
            deadline = time.monotonic() + 30
            t_fwd = None
            while time.monotonic() < deadline and t_fwd is None:
                time.sleep(0.05)
                for line in log.read_text().splitlines():
                    t, what = line.split()
                    if what == "ok" and float(t) > t_kill + 0.05:
                        t_fwd = float(t)
                        break
            ready_s.append(t_ready - t_kill)
            forward_s.append((t_fwd or float("nan")) - t_kill)
            time.sleep(1.0)
        print(f"kill -9 to READY=1:              median {statistics.median(ready_s):.2f} s "
              f"(each: {', '.join(f'{x:.2f}' for x in ready_s)})")
        print(f"kill -9 to a connection through: median {statistics.median(forward_s):.2f} s "
              f"(each: {', '.join(f'{x:.2f}' for x in forward_s)})")
        print("under systemd add RestartSec (1 s in configs/portcullis.service) for the restart's delay")
    finally:
        lab.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
