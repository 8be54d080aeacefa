"""Two workers decide exactly as one: the same mix (IMIX with SMTP sessions, refusals, VLANs, IPv6) through the
daemon with one worker and one RX queue, then with two workers and the mix spread over two queues by flow (as
RSS would), on net_pcap ports that write what leaves. The frames that leave each port and every counter match."""
import sys
import zlib
from pathlib import Path

import pytest
from conftest import bare_namespace, read_pcap, run_pcap_daemon

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "benchlib"))
import mix  # noqa: E402


def flow_queue(frame, queues):
    """RSS-like: every frame of a flow (addresses and ports, either order) on one queue."""
    off = 18 if frame[12:14] == b"\x81\x00" else 14
    if frame[off - 2:off] == b"\x86\xdd":
        key = frame[off + 8:off + 40] + frame[off + 40:off + 44]
    else:
        key = frame[off + 12:off + 20] + frame[off + 20:off + 24]
    return zlib.crc32(key) % queues


@pytest.fixture(scope="module")
def env():
    yield from bare_namespace("pctmw")


def test_two_workers_give_the_same_verdicts_as_one(env):
    w = env.workdir
    frames = mix.imix(20000, mix.random.Random(7))
    mix.write_pcap(w / "all.pcap", frames)
    mix.write_pcap(w / "empty.pcap", [])
    for q in (0, 1):
        mix.write_pcap(w / f"q{q}.pcap", [f for f in frames if flow_queue(f, 2) == q])

    conf = env.repo / "configs" / "bench.conf"
    one = run_pcap_daemon(env, "one", conf, "0@0,1@1", [w / "all.pcap"], [w / "one-in.pcap"], [w / "empty.pcap"],
                     [w / "one-out.pcap"], len(frames))
    two = run_pcap_daemon(env, "two", conf, "0@0,1@1,2@1", [w / "q0.pcap", w / "q1.pcap"],
                     [w / "two-in0.pcap", w / "two-in1.pcap"], [w / "empty.pcap", w / "empty.pcap"],
                     [w / "two-out0.pcap", w / "two-out1.pcap"], len(frames))

    assert one == two
    assert one["refused_unapproved_syn"] > 0 and one["pass_approved"] > 0, "the mix must exercise the policy"
    out_one = sorted(read_pcap(w / "one-out.pcap"))
    out_two = sorted(read_pcap(w / "two-out0.pcap") + read_pcap(w / "two-out1.pcap"))
    assert len(out_one) == one["fwd_outbound"]
    assert out_one == out_two
    rst_one = sorted(read_pcap(w / "one-in.pcap"))
    rst_two = sorted(read_pcap(w / "two-in0.pcap") + read_pcap(w / "two-in1.pcap"))
    assert len(rst_one) == one["rst_sent"] > 0
    assert rst_one == rst_two


def test_syns_nobody_answers_claim_no_limit_on_either_worker(env):
    """Twenty connection attempts from one approved source (max_concurrent 10), ten on each worker's queue, nobody
    answering: a SYN costs its sender nothing, so it claims nothing. All twenty go on as half-open connections on
    both workers, none is refused and no source slot is taken. (That the limit holds across workers once handshakes
    complete is shown on real mbufs by the unit test TrackedWorkers.LimitHoldsAcrossWorkersAndTheRefusalIsA421, and
    through real TCP stacks by test_limits.py.)"""
    from scapy.all import IP, TCP, Ether

    w = env.workdir
    syns = [bytes(Ether(src="02:00:00:00:0f:01", dst="02:00:00:00:0f:02") / IP(src="198.51.100.10", dst="203.0.113.25")
                  / TCP(sport=42000 + i, dport=25, flags="S", seq=1000 + i)) for i in range(20)]
    mix.write_pcap(w / "lim-q0.pcap", syns[0::2])
    mix.write_pcap(w / "lim-q1.pcap", syns[1::2])
    mix.write_pcap(w / "empty.pcap", [])
    conf = w / "limits.conf"
    conf.write_text((env.repo / "configs" / "bench.conf").read_text().replace("max_concurrent = 0",
                                                                               "max_concurrent = 10"))
    c = run_pcap_daemon(env, "lim", conf, "0@0,1@1,2@1", [w / "lim-q0.pcap", w / "lim-q1.pcap"],
                        [w / "lim-in0.pcap", w / "lim-in1.pcap"], [w / "empty.pcap", w / "empty.pcap"],
                        [w / "lim-out0.pcap", w / "lim-out1.pcap"], len(syns))
    out = read_pcap(w / "lim-out0.pcap") + read_pcap(w / "lim-out1.pcap")
    back = read_pcap(w / "lim-in0.pcap") + read_pcap(w / "lim-in1.pcap")
    assert sorted(out) == sorted(syns)
    assert c["flows_half_open"] == 20 and c["flows_opened"] == 0
    assert c["refused_concurrency"] == 0 and back == []
