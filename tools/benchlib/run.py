#!/usr/bin/python3
"""The benchmark behind tools/bench: portcullis and dpdk-testpmd --forward-mode=io, one after the other on the same
virtual devices (net_pcap replaying a mix from memory with infinite_rx=1 into the worker, net_null as the sink),
each on one worker lcore. Rates come from each process's own ethdev counters read through its DPDK telemetry
socket, so both are measured the same way. Prints, per mix, the median over repetitions of: gateway Mpps,
testpmd Mpps, their ratio, and the gateway's cycles per packet (its worker spins: TSC Hz / packets per second).
Then the control-plane figures: a 100,000-entry import, and 1,000 approval changes a second against the replayed
mix, with the frames lost meanwhile.

--scenario picks one mix instead of all that: nonsmtp64, imix, or synflood (a SYN flood from a million spoofed
managed sources mixed into the imix, with configs/bench-synflood.conf; prints the flood's counters too); or fleet
(the imix through a gateway with store = etcd while another writes 1,000 changes a second to etcd); or
observability (imix and synflood with /metrics and the event stream on against both off; the events a second
the stream writes and drops); or api (the HTTP API's requests a second and latency on loopback, reads and
changes, HTTP and HTTPS, while the gateway forwards the imix replay, and the forwarding rate meanwhile)."""
import argparse
import json
import os
import shutil
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
from portcullis_lab import wait_for  # noqa: E402

WORK = Path("/tmp/portcullis-bench")


class Telemetry:
    def __init__(self, prefix):
        self.path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
        self.sock = None

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(self.path)
        s.recv(4096)
        self.sock = s

    def stats(self, port):
        self.sock.send(f"/ethdev/stats,{port}".encode())
        return json.loads(self.sock.recv(1 << 16))["/ethdev/stats"]

    def close(self):
        if self.sock:
            self.sock.close()


# What a run needs beyond the defaults (the synflood pcap holds more frames than 200,000 mbufs, and net_pcap's
# infinite_rx keeps every frame of it in an mbuf of the same pool the programs receive into).
MBUFS, MEMORY_MB = 200000, 2048
SCENARIO = {"config": REPO / "configs" / "bench.conf", "mbufs": MBUFS, "memory_mb": MEMORY_MB}


def memory_args(huge):
    mb = str(SCENARIO["memory_mb"])
    return ["--socket-mem", mb, "--huge-unlink=always"] if huge else ["--no-huge", "-m", mb]


def vdevs(pcap):
    return [f"--vdev=net_pcap0,rx_pcap={pcap},infinite_rx=1", "--vdev=net_null0,no-rx=1"]


def start(cmd, log):
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # Each process's DPDK runtime directory (telemetry socket, config) goes with it.
    prefix = next((a.split("=", 1)[1] for a in proc.args if a.startswith("--file-prefix=")), None)
    if prefix:
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)


def measure(prefix, proc, seconds, log):
    """Mpps received on port 0 over `seconds`, after a 1 s warm-up."""
    tel = Telemetry(prefix)
    wait_for(f"{prefix} telemetry", lambda: os.path.exists(tel.path), timeout=60, proc=proc, log=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            tel.connect()
            if tel.stats(0)["ipackets"] > 0:
                break
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            tel.close()
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{prefix} never started receiving; see {log}")
        time.sleep(0.2)
    time.sleep(1.0)
    a, t0 = tel.stats(0)["ipackets"], time.monotonic()
    time.sleep(seconds)
    b, t1 = tel.stats(0)["ipackets"], time.monotonic()
    tel.close()
    return (b - a) / (t1 - t0) / 1e6


def gateway_cmd(build, prefix, pcap, huge, extra=()):
    return [str(build / "control" / "portcullis"), "-l", "0-1", *memory_args(huge), "--no-pci",
            f"--file-prefix={prefix}", "--log-level=lib.eal:warning", *vdevs(pcap), "--",
            "--config", str(SCENARIO["config"]), "--mbufs", str(SCENARIO["mbufs"]),
            "--control_socket", str(WORK / f"{prefix}.sock"), "--state_dir", str(WORK / f"{prefix}-state"),
            "--rules_dir", str(REPO / "rules"), *extra]


def testpmd_cmd(prefix, pcap, huge):
    return ["dpdk-testpmd", "-l", "0-1", *memory_args(huge), "--no-pci", f"--file-prefix={prefix}",
            "--log-level=lib.eal:warning", *vdevs(pcap), "--", f"--total-num-mbufs={SCENARIO['mbufs']}",
            "--forward-mode=io",
            "-a", "--stats-period=3"]


def ctl(build, prefix, *args):
    res = subprocess.run([str(build / "tools" / "portcullisctl"), "--socket", str(WORK / f"{prefix}.sock"), "--json",
                          *args], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"portcullisctl {' '.join(args)}: {res.stderr.strip()}")
    return json.loads(res.stdout)


def run_gateway(build, prefix, pcap, huge, seconds, extra=(), status=None, stats=None):
    shutil.rmtree(WORK / f"{prefix}-state", ignore_errors=True)
    log = WORK / f"{prefix}.log"
    proc = start(gateway_cmd(build, prefix, pcap, huge, extra), log)
    try:
        mpps = measure(prefix, proc, seconds, log)
        st = ctl(build, prefix, "status")
        if status is not None:
            status.update(st)
        if stats is not None:
            stats.update(ctl(build, prefix, "stats")["counters"])
        tsc = st["tsc_hz"]
    finally:
        stop(proc)
    return mpps, tsc


def run_testpmd(prefix, pcap, huge, seconds):
    log = WORK / f"{prefix}.log"
    proc = start(testpmd_cmd(prefix, pcap, huge), log)
    try:
        return measure(prefix, proc, seconds, log)
    finally:
        stop(proc)


class ChangeStorm(threading.Thread):
    """Sends `rate` approve/revoke requests a second, pipelined on one connection, for `seconds`."""

    def __init__(self, sock_path, rate, seconds):
        super().__init__(daemon=True)
        self.sock_path, self.rate, self.seconds = sock_path, rate, seconds
        self.sent = self.acked = self.errors = 0
        self.elapsed = 0.0
        self.latencies = []

    def run(self):
        # Keep this load generator off the worker's core (lcore 1 = CPU 1): on a 2-core machine the scheduler
        # would otherwise preempt the worker with it, and the figure would measure that, not the gateway.
        os.sched_setaffinity(0, {0})
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(self.sock_path))
        s.setblocking(False)
        start = time.monotonic()
        sent_at = []
        buf = pending = b""
        total = int(self.rate * self.seconds)
        while self.acked + self.errors < total:
            now = time.monotonic()
            due = min(total, int((now - start) * self.rate) + 1)
            while self.sent < due:
                i = self.sent
                addr = f"198.51.100.{64 + i % 128}"
                req = {"v": 1, "cmd": "approve" if i % 2 == 0 else "revoke", "addr": addr}
                pending += (json.dumps(req) + "\n").encode()
                sent_at.append(time.monotonic())
                self.sent += 1
            if pending:
                try:
                    n = s.send(pending)
                    pending = pending[n:]
                except BlockingIOError:
                    pass
            try:
                buf += s.recv(1 << 16)
            except BlockingIOError:
                time.sleep(0.0005)
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                reply = json.loads(line)
                self.latencies.append(time.monotonic() - sent_at[self.acked + self.errors])
                if reply.get("ok"):
                    self.acked += 1
                else:
                    self.errors += 1
            if time.monotonic() - start > self.seconds + 30:
                break
        self.elapsed = time.monotonic() - start
        s.close()


def control_bench(build, pcap, huge, seconds):
    prefix = "benchctl"
    shutil.rmtree(WORK / f"{prefix}-state", ignore_errors=True)
    log = WORK / f"{prefix}.log"
    proc = start(gateway_cmd(build, prefix, pcap, huge), log)
    out = {}
    try:
        quiet = measure(prefix, proc, seconds, log)
        storm = ChangeStorm(WORK / f"{prefix}.sock", 1000, seconds + 1.5)
        storm.start()
        during = measure(prefix, proc, seconds, log)
        storm.join()
        out.update(quiet=quiet, during=during, sent=storm.sent, acked=storm.acked, errors=storm.errors,
                   rate=storm.acked / storm.elapsed,
                   p99_ms=1000 * statistics.quantiles(storm.latencies, n=100)[98] if storm.latencies else 0)
        lines = WORK / "import-100k.txt"
        with open(lines, "w") as f:
            for i in range(100_000):
                f.write(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255} hostname=h{i}.example.com ticket=T-{i}\n")
        t0 = time.monotonic()
        ctl(build, prefix, "import", str(lines))
        out["import_s"] = time.monotonic() - t0
        c = ctl(build, prefix, "stats")["counters"]
        out["counters"] = c
    finally:
        stop(proc)
    return out


ETCD_URL = "http://127.0.0.1:23790"


def fleet_bench(build, pcap, huge, seconds):
    """The imix replay through a gateway with store = etcd while another gateway of its fleet (fleet-bench
    --writer) writes 1,000 changes a second to etcd: the forwarding rate quiet and during, the revisions the
    gateway applied meanwhile, and the frames lost. etcd, the gateway and the writer run in a network namespace
    of their own (removed at the end, and first when a killed run left it)."""
    ns, prefix = "pcbench-etcd", "benchfleet"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    data = WORK / "etcd-data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(WORK / f"{prefix}-state", ignore_errors=True)
    etcd = start(["ip", "netns", "exec", ns, "etcd", "--name", "bench", "--data-dir", str(data),
                  "--listen-client-urls", ETCD_URL, "--advertise-client-urls", ETCD_URL,
                  "--listen-peer-urls", "http://127.0.0.1:23800", "--initial-advertise-peer-urls",
                  "http://127.0.0.1:23800", "--initial-cluster", "bench=http://127.0.0.1:23800",
                  "--log-level", "error"], WORK / "etcd.log")
    log = WORK / f"{prefix}.log"
    gw = None
    out = {}
    try:
        gw = start(["ip", "netns", "exec", ns, *gateway_cmd(build, prefix, pcap, huge, [
            "--store", "etcd", "--etcd_endpoints", ETCD_URL, "--gateway_name", "bench-gw"])], log)
        wait_for("the gateway's control socket", lambda: (WORK / f"{prefix}.sock").exists(), timeout=60, proc=gw,
                 log=log)
        wait_for("etcd", lambda: subprocess.run(["ip", "netns", "exec", ns, "env", "ETCDCTL_API=3", "etcdctl",
                                                 f"--endpoints={ETCD_URL}", "endpoint", "health"],
                                                capture_output=True).returncode == 0, timeout=30)
        wait_for("fleet init", lambda: subprocess.run(
            [str(build / "tools" / "portcullisctl"), "--socket", str(WORK / f"{prefix}.sock"), "fleet", "init"],
            capture_output=True).returncode == 0, timeout=30)
        wait_for("the gateway in sync", lambda: ctl(build, prefix, "status")["store"].get("in_sync"), timeout=30)
        out["quiet"] = measure(prefix, gw, seconds, log)
        rev0 = ctl(build, prefix, "status")["store"]["revision"]
        writer = subprocess.Popen(["ip", "netns", "exec", ns, str(build / "tools" / "fleet-bench"), "--writer",
                                   ETCD_URL, "--rate", "1000", "--seconds", str(seconds + 1.5)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out["during"] = measure(prefix, gw, seconds, log)
        out["writer"] = writer.communicate(timeout=120)[0].strip()
        time.sleep(0.5)
        st = ctl(build, prefix, "status")["store"]
        out["revisions"] = st["revision"] - rev0
        out["in_sync"] = st["in_sync"]
        out["counters"] = ctl(build, prefix, "stats")["counters"]
    finally:
        if gw is not None:
            stop(gw)
        etcd.kill()
        etcd.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
    return out


def print_losses(cnt):
    lost = cnt["tx_full_outside"] + cnt["tx_full_inside"] + cnt["multi_segment"]
    # Where a frame can end besides forwarded: answered, or dropped and counted (a refusal with no answer, a
    # malformed frame, a policed fragment, a segment the normaliser drops, e.g. tcp_unconfirmed: this replay
    # carries no server, so no handshake is ever confirmed).
    dropped = ("dropped_refused", "dropped_fragment_policed", "tcp_bad_checksum", "tcp_signed", "tcp_ttl_low",
               "tcp_paws", "tcp_out_of_order", "tcp_beyond_window", "tcp_unconfirmed", "smtp_quiet", "smtp_forged")
    answered = ("rst_sent", "smtp_synack_sent", "smtp_reply_sent", "smtp_finack_sent")
    accounted = (cnt["fwd_outbound"] + lost + sum(cnt.get(k, 0) for k in dropped + answered) +
                 sum(v for k, v in cnt.items() if k.startswith("malformed_")))
    # The counters are read while the worker runs: a burst (32 frames) may be counted as received and not yet as
    # sent. Loss is what the loss counters say; the difference within a burst is frames in flight.
    in_flight = cnt["rx_inside"] - accounted
    print(f"  frames received {cnt['rx_inside']}, forwarded or answered or counted {accounted} "
          f"(in flight at the reading: {in_flight}), lost (tx_full, multi_segment) {lost}")


def flow_bench(build, pcap, args):
    """The 64-byte non-SMTP mix again, with each worker's flow table holding a million synthetic SMTP flows
    (bench_prefill_flows): what a big table costs traffic that never touches it (the expiry sweep walks it)."""
    big = 1_000_000
    extra = ["--max_flows", str(big), "--bench_prefill_flows", str(big)]
    empty, full, ratio = [], [], []
    status = {}
    for _ in range(args.reps):
        e, _ = run_gateway(build, "benchgw", pcap, args.hugepages, args.seconds)
        f, tsc = run_gateway(build, "benchgw", pcap, args.hugepages, args.seconds, extra, status)
        empty.append(e)
        full.append(f)
        ratio.append(f / e)
    flows = status["flows"]
    print(f"\nflow tracking (nonsmtp64): gateway Mpps with an empty table {statistics.median(empty):.2f}, "
          f"with {flows['tracked']:,} SMTP flows tracked {statistics.median(full):.2f} "
          f"({statistics.median(ratio):.2f} of empty; {tsc / (statistics.median(full) * 1e6):.0f} cycles/pkt)")
    print(f"  memory: flow table {flows['table_bytes'] / 2**20:.0f} MiB for max_flows {flows['max']:,} = "
          f"{flows['table_bytes'] / flows['max']:.0f} bytes per tracked flow at capacity (64-byte entries, at most "
          f"3/4 full); per-source limit state {flows['source_table_bytes'] // flows['sources_max']} bytes per "
          f"source ({flows['source_table_bytes'] / 2**20:.0f} MiB for {flows['sources_max']:,} sources)")


def inspect_bench(build, pcap, args):
    """The IMIX mix (its SMTP sessions' commands are read) with inspection on and off: what reading costs."""
    on, off, status, stats = [], [], {}, {}
    for _ in range(args.reps):
        g, tsc = run_gateway(build, "benchgw", pcap, args.hugepages, args.seconds, (), status, stats)
        on.append(g)
        g, _ = run_gateway(build, "benchgw", pcap, args.hugepages, args.seconds, ["--inspect", "false"])
        off.append(g)
    m_on, m_off = statistics.median(on), statistics.median(off)
    c_on, c_off = tsc / (m_on * 1e6), tsc / (m_off * 1e6)
    share = stats["inspect_segments"] / stats["rx_inside"]
    flows = status["flows"]
    print(f"\ninspection (imix): gateway Mpps with inspection {m_on:.2f}, without {m_off:.2f} ({m_on / m_off:.2f}); "
          f"{share * 100:.1f}% of frames are read")
    if share > 0:
        print(f"  cycles per inspected segment: {(c_on - c_off) / share:.0f} "
              f"(({c_on:.0f} - {c_off:.0f} cycles/pkt) / {share:.3f})")
    else:
        # Since the policy-under-attack work a session is read only once its handshake is confirmed by the
        # server's SYN-ACK; this replay carries the clients' side alone, so nothing is read here.
        print("  no frame was read: the replay holds the clients' side only and sessions are read once the "
              "server's SYN-ACK confirms them (docs/benchmarks.md)")
    print(f"  state per inspected session: {flows['inspect_bytes_per_flow']} bytes (line assembler + a "
          f"Hyperscan stream block); the shipped rules' stream state is {flows['rules_stream_bytes']} bytes")


def pcap_frames(path):
    """The number of frames in a pcap (record headers only)."""
    n = 0
    with open(path, "rb") as f:
        f.seek(24)
        while hdr := f.read(16):
            f.seek(int.from_bytes(hdr[8:12], "little"), 1)
            n += 1
    return n


def synflood_pcap(build, flows):
    """The synflood mix, written once and cached under the build directory (about 130 MB: a few seconds to
    write), keyed by the generator's own text and the imix flow count."""
    import hashlib
    gen = REPO / "tools/benchlib/mix.py"
    key = hashlib.sha256(gen.read_bytes() + str(flows).encode()).hexdigest()[:12]
    cache = build / "bench-cache"
    pcap = cache / f"synflood-{key}.pcap"
    if not pcap.exists():
        cache.mkdir(parents=True, exist_ok=True)
        for old in cache.glob("synflood-*.pcap"):
            old.unlink()
        tmp = pcap.with_suffix(".tmp")
        subprocess.run(["/usr/bin/python3", str(gen), "synflood", str(tmp), "--flows", str(flows)], check=True)
        tmp.rename(pcap)
    return pcap


FLOOD_COUNTERS = ("flows_half_open", "syn_stateless", "flows_half_open_at_synack", "flows_early_dropped", "half_open_capped", "flow_table_full",
                  "refused_unapproved_syn", "rst_sent", "tcp_bad_checksum", "flows_opened", "flows_unknown_reset",
                  "source_table_full", "tx_full_outside", "tx_full_inside", "multi_segment")


def synflood_bench(build, args):
    pcap = synflood_pcap(build, args.flows)
    frames = pcap_frames(pcap)
    # Every stored frame holds an mbuf for the whole run; the rest is what is in flight (bursts, caches).
    SCENARIO.update(config=REPO / "configs" / "bench-synflood.conf", mbufs=frames + 65536)
    # An mbuf object is about 2.4 KB (2,176-byte data room, header, mempool overhead); the pool is one block, so
    # it needs generous room beside the tables (4 GB for 1.25 million mbufs is refused here, 6 GB is not).
    SCENARIO["memory_mb"] = max(MEMORY_MB, -(-(SCENARIO["mbufs"] * 2560 // 2**20 + 3072) // 512) * 512)
    mem = "hugepages" if args.hugepages else "--no-huge"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; memory: {mem} ({SCENARIO['memory_mb']} MB); one worker lcore; "
          f"{args.reps} repetitions of {args.seconds:.0f} s, medians")
    print(f"synflood: {pcap} ({frames:,} frames, {pcap.stat().st_size / 2**20:.0f} MiB; {SCENARIO['mbufs']:,} mbufs)")
    gw, ref, ratio, cyc, cyc_ref = [], [], [], [], []
    status, stats = {}, {}
    for _ in range(args.reps):
        g, tsc = run_gateway(build, "benchgw", pcap, args.hugepages, args.seconds, (), status, stats)
        t = run_testpmd("benchref", pcap, args.hugepages, args.seconds)
        gw.append(g)
        ref.append(t)
        ratio.append(g / t)
        cyc.append(tsc / (g * 1e6))
        cyc_ref.append(tsc / (t * 1e6))
    print(f"{'mix':<12}{'gateway Mpps':>14}{'testpmd Mpps':>14}{'ratio':>8}{'cycles/pkt':>12}{'testpmd cyc/pkt':>17}")
    print(f"{'synflood':<12}{statistics.median(gw):>14.2f}{statistics.median(ref):>14.2f}"
          f"{statistics.median(ratio):>8.2f}{statistics.median(cyc):>12.0f}{statistics.median(cyc_ref):>17.0f}")
    if args.reps > 1:
        print("  each repetition (gateway / testpmd Mpps): " + ", ".join(f"{g:.2f} / {t:.2f}" for g, t in zip(gw, ref)))
    flows = status["flows"]
    rx = stats["rx_inside"]
    print(f"\nthe gateway's counters at the end of its last repetition ({rx:,} frames received, "
          f"{rx / frames:.1f} passes over the pcap):")
    for name in FLOOD_COUNTERS:
        print(f"  {name:<24}{stats.get(name, 0):>14,}  ({stats.get(name, 0) / rx * 100:5.1f}% of frames)")
    print(f"  flow table: {flows['tracked']:,} tracked of max_flows {flows['max']:,} "
          f"({flows['table_bytes'] / 2**20:.0f} MiB)")
    return 0


OBS_METRICS = "127.0.0.1:9469"


def obs_extra(mode):
    """The gateway's options: "off" (no metrics, no event stream), "on" (/metrics and the event stream at its
    default events_rate), "uncapped" (events_rate = 0: every refusal a line, as fast as the stream goes)."""
    if mode == "off":
        return []
    events = WORK / "bench-events.json"
    events.unlink(missing_ok=True)
    return ["--metrics_listen", OBS_METRICS, "--events_file", str(events),
            *(["--events_rate", "0"] if mode == "uncapped" else [])]


def scrape(name):
    import urllib.request
    with urllib.request.urlopen(f"http://{OBS_METRICS}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def run_observed(build, prefix, pcap, huge, seconds, mode):
    """One gateway run: Mpps, the refusals and events per second over the window, and the loss counters."""
    on = mode != "off"
    shutil.rmtree(WORK / f"{prefix}-state", ignore_errors=True)
    log = WORK / f"{prefix}.log"
    proc = start(gateway_cmd(build, prefix, pcap, huge, obs_extra(mode)), log)
    try:
        tel = Telemetry(prefix)
        mpps = measure(prefix, proc, 0.5, log)  # warmed up and receiving
        a, t0 = ctl(build, prefix, "stats")["counters"], time.monotonic()
        wa = scrape("portcullis_events_written_total") if on else 0
        tel.connect()
        pa = tel.stats(0)["ipackets"]
        time.sleep(seconds)
        pb = tel.stats(0)["ipackets"]
        b, t1 = ctl(build, prefix, "stats")["counters"], time.monotonic()
        time.sleep(1.2)  # the metrics snapshot is refreshed each second
        wb = scrape("portcullis_events_written_total") if on else 0
        tel.close()
        dt = t1 - t0
        mpps = (pb - pa) / dt / 1e6
        st = ctl(build, prefix, "status")
        per_s = {k: (b[k] - a[k]) / dt for k in ("refusals", "events_lost", "tx_full_outside", "tx_full_inside")}
        per_s["written"] = (wb - wa) / (dt + 1.2) if on else 0
        return mpps, st["tsc_hz"], per_s
    finally:
        stop(proc)


def observability_bench(build, args):
    """The packet path with /metrics (scraped once a second by nothing but the snapshot refresh) and the event
    stream on, against both off: the imix replay, then the synflood replay, whose refused SYNs offer the stream
    more events a second than it writes: what it sustains, what it drops, and that dropping costs no frame."""
    imix = WORK / "imix.pcap"
    subprocess.run(["/usr/bin/python3", str(REPO / "tools/benchlib/mix.py"), "imix", str(imix), "--flows",
                    str(args.flows)], check=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; one worker lcore; {args.reps} repetitions of "
          f"{args.seconds:.0f} s, medians")
    print(f"{'mix':<12}{'observability':<16}{'gateway Mpps':>14}{'testpmd Mpps':>14}{'ratio':>8}{'cycles/pkt':>12}"
          f"{'refusals/s':>12}{'events/s':>10}{'lost/s':>10}")

    def row(mix, pcap, modes):
        res = {m: [] for m in modes}
        ref = []
        for _ in range(args.reps):
            for m in modes:
                res[m].append(run_observed(build, "benchgw", pcap, args.hugepages, args.seconds, m))
            ref.append(run_testpmd("benchref", pcap, args.hugepages, args.seconds))
        t = statistics.median(ref)
        for m in modes:
            g = statistics.median(r[0] for r in res[m])
            tsc = res[m][0][1]
            med = {k: statistics.median(r[2][k] for r in res[m]) for k in res[m][0][2]}
            print(f"{mix:<12}{m:<16}{g:>14.2f}{t:>14.2f}{g / t:>8.2f}{tsc / (g * 1e6):>12.0f}"
                  f"{med['refusals']:>12,.0f}{med['written']:>10,.0f}{med['events_lost']:>10,.0f}", flush=True)
            if med["tx_full_outside"] or med["tx_full_inside"]:
                print(f"  (tx_full/s: outside {med['tx_full_outside']:.0f}, inside {med['tx_full_inside']:.0f})")
        if args.reps > 1:
            print("  each repetition, gateway Mpps " + " / ".join(modes) + ": " +
                  ", ".join(" / ".join(f"{res[m][i][0]:.2f}" for m in modes) for i in range(args.reps)))

    row("imix", imix, ("off", "on"))
    pcap = synflood_pcap(build, args.flows)
    SCENARIO.update(config=REPO / "configs" / "bench-synflood.conf", mbufs=pcap_frames(pcap) + 65536)
    SCENARIO["memory_mb"] = max(MEMORY_MB, -(-(SCENARIO["mbufs"] * 2560 // 2**20 + 3072) // 512) * 512)
    row("synflood", pcap, ("off", "on", "uncapped"))
    return 0


API_PORT = 9470


def api_bench(build, args):
    """The HTTP API on loopback while the gateway forwards the imix replay: requests a second and latency for
    reads and for changes (each durable and audited), over plain HTTP and over HTTPS (keep-alive connections),
    with the gateway's forwarding rate quiet and during each load, against testpmd on the same devices."""
    from api_load import ApiLoad
    pcap = WORK / "imix.pcap"
    subprocess.run(["/usr/bin/python3", str(REPO / "tools/benchlib/mix.py"), "imix", str(pcap), "--flows",
                    str(args.flows)], check=True)
    cert, key = WORK / "api-cert.pem", WORK / "api-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=bench",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; one worker lcore (CPU 1); the load generator on CPU 0 "
          f"with the control thread; {args.seconds:.0f} s per load, 4 keep-alive connections")
    print(f"testpmd --forward-mode=io on the same devices: one run of {args.seconds:.0f} s; each row one gateway run")
    print(f"{'transport':<10}{'load':<8}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'non-2xx':>9}"
          f"{'Mpps quiet':>12}{'Mpps during':>13}{'testpmd':>9}{'ratio':>7}{'cycles/pkt':>12}")
    ref = run_testpmd("benchref", pcap, args.hugepages, args.seconds)
    # Every repetition's row, not a median: this VM's forwarding rate jumps from one start to the next.
    for transport in [t for _ in range(args.reps) for t in ("http", "https")]:
        prefix = "benchapi"
        shutil.rmtree(WORK / f"{prefix}-state", ignore_errors=True)
        log = WORK / f"{prefix}.log"
        extra = ["--api_listen", f"127.0.0.1:{API_PORT}", "--api_rate", "100000"]
        if transport == "https":
            extra += ["--api_tls_cert", str(cert), "--api_tls_key", str(key)]
        proc = start(gateway_cmd(build, prefix, pcap, args.hugepages, extra), log)
        try:
            quiet = measure(prefix, proc, args.seconds, log)
            token = ctl(build, prefix, "token", "add", "bench", "--role", "operator")["secret"]
            tsc = ctl(build, prefix, "status")["tsc_hz"]
            for kind in ("read", "write"):
                load = ApiLoad("127.0.0.1", API_PORT, token, kind, args.seconds + 1.5,
                               cafile=str(cert) if transport == "https" else None)
                load.start()
                during = measure(prefix, proc, args.seconds, log)
                load.join()
                n = len(load.latencies)
                q = statistics.quantiles(load.latencies, n=100) if n >= 2 else [0] * 99
                bad = sum(v for k, v in load.statuses.items() if not 200 <= k < 300)
                print(f"{transport:<10}{kind:<8}{n / load.elapsed:>8.0f}{1000 * q[49]:>8.2f}{1000 * q[98]:>8.2f}"
                      f"{bad:>9}{quiet:>12.2f}{during:>13.2f}{ref:>9.2f}{during / ref:>7.2f}"
                      f"{tsc / (during * 1e6):>12.0f}", flush=True)
            counters = ctl(build, prefix, "stats")["counters"]
            if counters.get("tx_full_outside") or counters.get("tx_full_inside"):
                print(f"  (tx_full: outside {counters.get('tx_full_outside')}, "
                      f"inside {counters.get('tx_full_inside')})")
        finally:
            stop(proc)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--seconds", type=float, default=3.0, help="measurement window per run")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--flows", type=int, default=131072)
    ap.add_argument("--hugepages", action="store_true", help="back both programs with hugepages (reserve them first)")
    ap.add_argument("--skip-control", action="store_true")
    ap.add_argument("--scenario", choices=["all", "nonsmtp64", "imix", "synflood", "fleet", "observability", "api"],
                    default="all",
                    help="all (the default): nonsmtp64 and imix, then the flow, inspection and control figures; "
                         "a mix's name: only that mix against testpmd")
    args = ap.parse_args()
    build = Path(args.build)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.scenario == "synflood":
        return synflood_bench(build, args)
    if args.scenario == "observability":
        return observability_bench(build, args)
    if args.scenario == "api":
        return api_bench(build, args)
    if args.scenario == "fleet":
        pcap = WORK / "imix.pcap"
        subprocess.run(["/usr/bin/python3", str(REPO / "tools/benchlib/mix.py"), "imix", str(pcap), "--flows",
                        str(args.flows)], check=True)
        print_fleet(build, pcap, args)
        return 0
    mixes = {}
    for mix in ("nonsmtp64", "imix") if args.scenario == "all" else (args.scenario,):
        pcap = WORK / f"{mix}.pcap"
        subprocess.run(["/usr/bin/python3", str(REPO / "tools/benchlib/mix.py"), mix, str(pcap), "--flows",
                        str(args.flows)], check=True)
        mixes[mix] = pcap
    mem = "hugepages" if args.hugepages else "--no-huge"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; memory: {mem}; one worker lcore; "
          f"{args.reps} repetitions of {args.seconds:.0f} s, medians")
    print(f"{'mix':<12}{'gateway Mpps':>14}{'testpmd Mpps':>14}{'ratio':>8}{'cycles/pkt':>12}")
    for mix, pcap in mixes.items():
        gw, ref, ratio, cyc = [], [], [], []
        for _ in range(args.reps):
            g, tsc = run_gateway(build, "benchgw", pcap, args.hugepages, args.seconds)
            t = run_testpmd("benchref", pcap, args.hugepages, args.seconds)
            gw.append(g)
            ref.append(t)
            ratio.append(g / t)
            cyc.append(tsc / (g * 1e6))
        print(f"{mix:<12}{statistics.median(gw):>14.2f}{statistics.median(ref):>14.2f}"
              f"{statistics.median(ratio):>8.2f}{statistics.median(cyc):>12.0f}", flush=True)
    if args.scenario != "all":
        return 0
    flow_bench(build, mixes["nonsmtp64"], args)
    inspect_bench(build, mixes["imix"], args)
    if args.skip_control:
        return 0
    c = control_bench(build, mixes["imix"], args.hugepages, args.seconds)
    print("\ncontrol plane, against the imix replay:")
    print(f"  1,000 changes/s: {c['acked']} acknowledged, {c['errors']} refused, at {c['rate']:.0f}/s; "
          f"reply p99 {c['p99_ms']:.1f} ms")
    print(f"  gateway Mpps quiet {c['quiet']:.2f}, during the changes {c['during']:.2f} "
          f"({c['during'] / c['quiet']:.2f} of quiet)")
    print_losses(c["counters"])
    print(f"  import of 100,000 entries: {c['import_s']:.2f} s (portcullisctl import, acknowledged and published)")
    print_fleet(build, mixes["imix"], args)
    return 0


def print_fleet(build, pcap, args):
    f = fleet_bench(build, pcap, args.hugepages, args.seconds)
    print("\nfleet (store = etcd), against the imix replay, while another gateway writes 1,000 changes/s to etcd:")
    print(f"  {f['writer']}; the gateway applied {f['revisions']} revisions, in sync at the end: {f['in_sync']}")
    print(f"  gateway Mpps quiet {f['quiet']:.2f}, during the changes {f['during']:.2f} "
          f"({f['during'] / f['quiet']:.2f} of quiet)")
    print_losses(f["counters"])


if __name__ == "__main__":
    sys.exit(main())
