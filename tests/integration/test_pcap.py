"""pcap golden cases (tests/pcap/<case>/): each case's in.pcap through the daemon on net_pcap ports; what leaves
each port must equal the case's expectation byte for byte and in order, and its counters must hold."""
import json
from pathlib import Path

import pytest
from conftest import bare_namespace, read_pcap, run_pcap_daemon

CASES = sorted(p for p in (Path(__file__).resolve().parents[1] / "pcap").iterdir() if (p / "in.pcap").exists())


@pytest.fixture(scope="module")
def env():
    yield from bare_namespace("pctpcap")


def describe(frames):
    from scapy.all import Ether
    return "\n".join(Ether(f).summary() for f in frames)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(env, case):
    w = env.workdir / case.name
    w.mkdir()
    empty = w / "empty.pcap"
    empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    total = len(read_pcap(case / "in.pcap"))
    counters = run_pcap_daemon(env, case.name, case / "portcullis.conf", "0@0,1@1", [case / "in.pcap"],
                               [w / "inside.pcap"], [empty], [w / "outside.pcap"], total)
    for port in ("outside", "inside"):
        got, want = read_pcap(w / f"{port}.pcap"), read_pcap(case / f"expect_{port}.pcap")
        assert got == want, f"{port} port:\ngot:\n{describe(got)}\nwanted:\n{describe(want)}"
    for name, value in json.loads((case / "expect_counters.json").read_text()).items():
        assert counters[name] == value, f"{name}: {counters[name]} != {value}"
