#!/usr/bin/python3
"""The approved sender's mail during a SYN flood, in the namespace lab (tools/lab/portcullis_lab.py): real kernel
TCP on both ends and the gateway bridging them through net_af_packet, where the pcap benchmark (tools/bench
--scenario synflood) can run no TCP session.

  1. baseline: the approved sender sends messages with swaks in a loop for --baseline seconds, no flood;
  2. flood: a raw sender in the rack namespace puts prebuilt IPv6 SYNs to 25 and 587 on the wire (AF_PACKET,
     sendmmsg() through ctypes, batches of --batch) for --seconds, from --sources spoofed sources in the lab's
     managed 2001:db8:100::/48 (each in its own /64, none in the approved sender's 2001:db8:100::/64, none with a
     route back from the MX's namespace: the MX's SYN-ACKs go nowhere, so no handshake ever completes), while
     the approved sender's swaks loop goes on;
  3. after: one more message once the flood stops.

Prints the flood rate (frames the sender put on the wire, frames the gateway received), the messages delivered
and their latency (swaks's wall clock, process start to exit: p50 and max), and the gateway's counters over the
flood. The gateway keeps the lab's configuration (configs/lab.conf) with --max_flows (default 65,536, so that the
flood overflows it within seconds and early drop is exercised) and --rate 0 (the sender's loop would otherwise
meet the default 60 connections a minute). The lab is removed at the end, whatever happened.

Run it alone (it starts DPDK in a namespace): on a shared machine under the integration lock."""
import argparse
import ctypes
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools" / "lab"))
import portcullis_lab  # noqa: E402
import tcp_craft  # noqa: E402
from portcullis_lab import MX_V4, MX_V6, RACK_V4, RACK_V6  # noqa: E402

# The approved sender's messages, in turn: the flood's family and ports, and IPv4 port 25.
JOBS = [(RACK_V6["approved"], MX_V6, 25), (RACK_V6["approved"], MX_V6, 587), (RACK_V4["approved"], MX_V4, 25)]
FLOOD_COUNTERS = ("rx_inside", "flows_half_open", "flows_early_dropped", "half_open_capped", "flow_table_full",
                  "refused_unapproved_syn", "rst_sent", "flows_opened", "flows_expired_half_open",
                  "tcp_bad_checksum", "tx_full_outside", "tx_full_inside", "refused_rate", "refused_concurrency",
                  "source_table_full")


# ---- the raw sender (a child process in the rack namespace) ----------------------------------------------------
class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(IoVec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


def spoofed(i):
    """Source i: its own /64 of 2001:db8:100::/48 (2001:db8:100:1:: to 2001:db8:100:ffff::), any host part."""
    return f"2001:db8:100:{i % 0xFFFF + 1:x}::{i // 0xFFFF + 1:x}"


def sender(args):
    """Builds the frames, says so, waits for a line on stdin, sends for args.seconds, prints what it did."""
    src_mac, dst_mac = args.send_macs.split(",")
    frames = [tcp_craft.frame(src_mac, dst_mac, spoofed(i), MX_V6, 1024 + (i * 7) % 64000, 25 if i % 2 == 0 else 587,
                              seq=i * 7919, flags=tcp_craft.SYN) for i in range(args.sources)]
    blob = ctypes.create_string_buffer(b"".join(frames))
    n = len(frames)
    iov = (IoVec * n)()
    vec = (MMsgHdr * n)()
    off = 0
    for i, f in enumerate(frames):
        iov[i].base = ctypes.addressof(blob) + off
        iov[i].len = len(f)
        off += len(f)
        vec[i].hdr.iov = ctypes.pointer(iov[i])
        vec[i].hdr.iovlen = 1
    # Protocol 0: the socket sends and receives nothing (the RSTs and SYN-ACKs need not be read).
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((args.send_iface, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    fd, base, size = sock.fileno(), ctypes.addressof(vec), ctypes.sizeof(MMsgHdr)
    print("ready", flush=True)
    sys.stdin.readline()
    sent = refused = calls = 0
    i = 0
    start = time.monotonic()
    deadline = start + args.seconds
    while True:
        batch = min(args.batch, n - i)
        r = libc.sendmmsg(fd, base + i * size, batch, 0)
        calls += 1
        if r < 0:  # ENOBUFS: the receiving end's backlog was full; that frame is lost, go on with the next
            refused += 1
            r = 1
        else:
            sent += r
        i = (i + r) % n
        if calls % 16 == 0 and time.monotonic() >= deadline:
            break
    elapsed = time.monotonic() - start
    print(json.dumps({"sent": sent, "refused": refused, "seconds": elapsed, "distinct": n}), flush=True)
    return 0


# ---- the measurement -------------------------------------------------------------------------------------------
def counters(lab):
    return json.loads(lab.ctl("stats").stdout)["counters"]


def link_drops(lab):
    """The veth pair's drops between the sender and the gateway: frames the kernel could not hand on (rack0's
    tx_dropped, gwin's rx_dropped: its backlog or the af_packet socket's ring full)."""
    def read(ns, dev, what):
        return int(lab.ns(ns, "cat", f"/sys/class/net/{dev}/statistics/{what}").stdout)
    return read(lab.ns_rack, "rack0", "tx_dropped") + read(lab.ns_gw, "gwin", "rx_dropped")


def port_stats(lab, port):
    """The inside port's ethdev counters, through the daemon's DPDK telemetry socket: imissed is what the
    kernel dropped before the gateway could read it (af_packet's receive ring full)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(f"/var/run/dpdk/{lab.prefix}/dpdk_telemetry.v2")
        s.recv(4096)
        s.send(f"/ethdev/stats,{port}".encode())
        return json.loads(s.recv(1 << 16))["/ethdev/stats"]
    finally:
        s.close()


class MailLoop(threading.Thread):
    """The approved sender: one swaks after another until stopped; (start offset, seconds, ok, job) each."""

    def __init__(self, lab, t0):
        super().__init__(daemon=True)
        self.lab, self.t0 = lab, t0
        self.stop = threading.Event()
        self.results = []

    def run(self):
        k = 0
        while not self.stop.is_set():
            src, server, port = JOBS[k % len(JOBS)]
            at = time.monotonic() - self.t0
            rc, secs, out = self.lab.swaks(src, server, port, helo="mail.customer.example",
                                           mail_from="billing@customer.example", timeout=30)
            self.results.append((at, secs, rc == 0, (src, server, port), "" if rc == 0 else out[-300:]))
            k += 1


def summary(results):
    ok = [r[1] for r in results if r[2]]
    if not ok:
        return f"{len(results)} tried, 0 delivered"
    return (f"{len(ok)} delivered of {len(results)} tried; latency p50 {statistics.median(ok) * 1000:.0f} ms, "
            f"max {max(ok) * 1000:.0f} ms")


def measure(args):
    build = Path(args.build)
    lab = portcullis_lab.Lab(args.prefix, build_dir=build)

    def on_term(*_):
        raise SystemExit("terminated")

    signal.signal(signal.SIGTERM, on_term)
    flood = None
    try:
        lab.create()
        lab.start_mx(ports="25,587")
        lab.start_gateway(extra=["--max_flows", str(args.max_flows), "--rate", "0"])
        rack_mac, net_mac = tcp_craft.mac_of(lab.ns_rack, "rack0"), tcp_craft.mac_of(lab.ns_net, "net0")
        # The flood sender: built first (a few seconds), started on a line, pinned to CPU 0 (the worker is lcore 1).
        flood = subprocess.Popen(
            ["ip", "netns", "exec", lab.ns_rack, "taskset", "-c", "0", "/usr/bin/python3", __file__,
             "--send-iface", "rack0", "--send-macs", f"{rack_mac},{net_mac}", "--sources", str(args.sources),
             "--seconds", str(args.seconds), "--batch", str(args.batch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        lab.extra.append(flood)
        if flood.stdout.readline().strip() != "ready":
            raise portcullis_lab.LabError("the flood sender did not start")

        t0 = time.monotonic()
        base = MailLoop(lab, t0)
        base.start()
        time.sleep(args.baseline)
        base.stop.set()
        base.join()

        before, port_before, drops_before = counters(lab), port_stats(lab, 0), link_drops(lab)
        during = MailLoop(lab, time.monotonic())
        flood.stdin.write("go\n")
        flood.stdin.flush()
        t_flood = time.monotonic()
        during.start()
        report = json.loads(flood.stdout.readline())
        t_end = time.monotonic()
        after_flood, port_after, drops_after = counters(lab), port_stats(lab, 0), link_drops(lab)
        during.stop.set()
        during.join()  # the message under way when the flood ended is counted with the flood's
        flood.wait(timeout=10)
        # What the message under way at the flood's end met afterwards is counted too.
        t_mail_end, after_mail = time.monotonic(), counters(lab)
        rc, secs, out = lab.swaks(*JOBS[0][:2], port=JOBS[0][2], helo="mail.customer.example",
                                  mail_from="billing@customer.example", timeout=30)
        status = json.loads(lab.ctl("status").stdout)
        delta = {k: after_flood.get(k, 0) - before.get(k, 0) for k in after_flood}
        missed = port_after.get("imissed", 0) - port_before.get("imissed", 0)
        flood_s = t_end - t_flood

        print(f"\nmachine: {os.cpu_count()} cores; gateway --no-huge, one worker lcore (CPU 1), net_af_packet on veth; "
              f"max_flows {status['flows']['max']:,}; flood sender and swaks on CPU 0")
        kpps = report["sent"] / report["seconds"] / 1e3
        print(f"flood: {report['sent']:,} SYNs sent in {report['seconds']:.2f} s = {kpps:.0f} "
              f"kpps ({report['distinct']:,} distinct, from as many spoofed /64s, alternately to 25 and 587; "
              f"{report['refused']:,} sendmmsg calls refused for a full backlog)")
        print(f"  gateway received {delta['rx_inside']:,} frames meanwhile "
              f"({delta['rx_inside'] / flood_s / 1e3:.0f} kpps over {flood_s:.2f} s); the inside port's imissed "
              f"rose by {missed:,}, the veth pair's drops by {drops_after - drops_before:,}; the rest of what was sent "
              f"was lost by the kernel on its way to the gateway's af_packet ring "
              f"({1 - delta['rx_inside'] / max(1, report['sent']):.0%})")
        print(f"baseline ({args.baseline:.0f} s, no flood): {summary(base.results)}")
        print(f"during the flood ({flood_s:.1f} s): {summary(during.results)}")
        print(f"after the flood: {'delivered' if rc == 0 else 'FAILED'} in {secs * 1000:.0f} ms")
        print("gateway counters over the flood:")
        for k in FLOOD_COUNTERS:
            print(f"  {k:<26}{delta.get(k, 0):>12,}")
        others = {k: v for k, v in delta.items() if v and k not in FLOOD_COUNTERS}
        print("  and the others that moved: " + ", ".join(f"{k} {v:,}" for k, v in others.items()))
        later = {k: after_mail[k] - after_flood.get(k, 0) for k in after_mail if after_mail[k] != after_flood.get(k, 0)}
        print(f"  from the flood's end to the last flood-time message's end ({t_mail_end - t_end:.1f} s "
              "later, before the message after the flood): " + ", ".join(f"{k} {v:,}" for k, v in later.items()))
        print(f"  flow table at the end: {status['flows']['tracked']:,} tracked of {status['flows']['max']:,}")
        failed = [r for r in base.results + during.results if not r[2]]
        print("the approved sender's messages during the flood (start offset, seconds, delivered, to):")
        for r in during.results:
            print(f"  {r[0]:5.2f} s  {r[1]:6.2f} s  {'yes' if r[2] else 'NO '}  [{r[3][0]}]:{r[3][2]} -> {r[3][1]}")
        for r in failed[:5]:
            print(f"  failed at {r[0]:.1f} s ({r[3]}): {r[4]}")
        delivered = len(lab.delivered())
        sent_ok = sum(r[2] for r in base.results + during.results) + (rc == 0)
        print(f"the MX logged {delivered} messages; swaks reported {sent_ok} delivered")
        return 0 if not failed and rc == 0 else 1
    finally:
        if flood is not None and flood.poll() is None:
            flood.kill()
        lab.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--seconds", type=float, default=5.0, help="how long the flood lasts")
    ap.add_argument("--baseline", type=float, default=5.0, help="seconds of mail before the flood")
    ap.add_argument("--sources", type=int, default=262144, help="distinct spoofed sources (one SYN frame each)")
    ap.add_argument("--max-flows", type=int, default=65536, help="the gateway's max_flows")
    ap.add_argument("--batch", type=int, default=256, help="frames per sendmmsg() call")
    ap.add_argument("--prefix", default="pctflood", help="the lab's name prefix (namespaces, DPDK file prefix)")
    ap.add_argument("--send-iface", help=argparse.SUPPRESS)  # the sender child's own arguments
    ap.add_argument("--send-macs", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.send_iface:
        return sender(args)
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())
