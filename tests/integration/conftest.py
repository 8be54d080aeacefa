"""Shared fixtures: the namespace lab (tools/lab/portcullis_lab.py) with the gateway and a real SMTP server.
The lab is removed when the tests end, also when they fail or are killed with SIGTERM (as meson does on a
timeout); a run killed harder is cleaned up by the next run, which removes its prefix's leftovers first."""
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "lab"))
import portcullis_lab  # noqa: E402


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _raise_on_sigterm)


@pytest.fixture(scope="session", autouse=True)
def must_be_root():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces, raw sockets)")


@pytest.fixture(scope="module")
def lab(request):
    # One prefix per test module, so a leftover of one module never hides another's.
    prefix = "pct" + Path(request.module.__file__).stem.replace("test_", "")[:4]
    lab = portcullis_lab.Lab(prefix)
    try:
        lab.create()
        lab.start_mx()
        lab.start_gateway()
        yield lab
    finally:
        lab.cleanup()


def bare_namespace(prefix):
    """A fixture body for tests that run the daemon on virtual devices (net_null, net_pcap) rather than the
    veth lab: just the gateway namespace and a work directory, removed afterwards."""
    lab = portcullis_lab.Lab(prefix)
    lab.cleanup()
    lab.workdir.mkdir(parents=True)
    portcullis_lab.run(["ip", "netns", "add", lab.ns_gw])
    try:
        yield lab
    finally:
        lab.cleanup()


def read_pcap(path):
    """The frames of a classic pcap file, as bytes."""
    data = Path(path).read_bytes()
    frames, off = [], 24
    while off + 16 <= len(data):
        incl = int.from_bytes(data[off + 8:off + 12], "little")
        frames.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return frames


def run_pcap_daemon(env, name, conf, lcores, inside_rx, inside_tx, outside_rx, outside_tx, total):
    """Runs the daemon on net_pcap ports (one queue per rx/tx file) until it has received `total` frames on the
    inside port, stops it with SIGINT, and returns its counters."""
    import json
    import subprocess

    w = env.workdir
    inside = ",".join(["net_pcap0"] + [f"rx_pcap={p}" for p in inside_rx] + [f"tx_pcap={p}" for p in inside_tx])
    outside = ",".join(["net_pcap1"] + [f"rx_pcap={p}" for p in outside_rx] + [f"tx_pcap={p}" for p in outside_tx])
    sock = w / f"{name}.sock"
    cmd = ["ip", "netns", "exec", env.ns_gw, str(env.build_dir / "control" / "portcullis"), f"--lcores={lcores}",
           "--no-huge", "-m", "256", "--no-pci", f"--file-prefix={env.prefix}{name}", "--log-level=lib.eal:warning",
           f"--vdev={inside}", f"--vdev={outside}", "--", "--config", str(conf),
           "--control_socket", str(sock), "--state_dir", str(w / f"{name}-state")]
    log = w / f"{name}.log"
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    ctl = [str(env.build_dir / "tools" / "portcullisctl"), "--socket", str(sock), "--json", "stats"]

    def counters():
        res = subprocess.run(ctl, capture_output=True, text=True)
        return json.loads(res.stdout)["counters"] if res.returncode == 0 else None

    try:
        portcullis_lab.wait_for(f"{name}: every frame received",
                                lambda: (counters() or {}).get("rx_inside") == total, timeout=60, proc=proc, log=log)
        final = counters()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        portcullis_lab.run(["rm", "-rf", f"/var/run/dpdk/{env.prefix}{name}"], check=False)
    assert proc.returncode == 0, log.read_text()[-2000:]
    return final
