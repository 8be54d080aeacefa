"""Frames no socket API makes, sent raw from the rack namespace through the gateway: VLAN-tagged and stacked
frames pass byte for byte; a tagged SYN to port 25 from an unapproved source gets a RST on the same VLANs;
malformed frames are dropped and counted while forwarding goes on.

802.1ad (0x88a8) outer tags are not sent here: DPDK 22.11's net_af_packet reinserts the tag the kernel strips
with TPID 0x8100 (docs/architecture.md, "Known limitations"); the worker test forwards them byte for byte."""
import subprocess
import time

import pytest
from scapy.all import ARP, IP, UDP, Dot1Q, Ether, IPv6, Raw, TCP, rdpcap

from portcullis_lab import MX_V4, MX_V6, RACK_V4, RACK_V6

MARK_SRC = "02:00:00:00:0b:01"  # every frame these tests send carries this source MAC
MARK_DST = "02:00:00:00:0b:02"


def eth(*tags):
    frame = Ether(src=MARK_SRC, dst=MARK_DST)
    for vid in tags:
        frame = frame / Dot1Q(vlan=vid)
    return frame


def send_raw(lab, frames, expect=False, timeout=3.0):
    cmd = ["/usr/bin/python3", str(lab.repo / "tools/lab/l2.py"), "rack0", *[bytes(f).hex() for f in frames]]
    if expect:
        cmd += ["--expect", "--timeout", str(timeout)]
    res = lab.ns(lab.ns_rack, *cmd)
    return [Ether(bytes.fromhex(line)) for line in res.stdout.split()]


class Capture:
    """tcpdump on the far side (net0 in the internet namespace), frames from MARK_SRC only."""

    def __init__(self, lab, name):
        self.lab = lab
        self.pcap = lab.workdir / f"{name}.pcap"
        self.err = lab.workdir / f"{name}.err"

    def __enter__(self):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.ns_net, "tcpdump", "-i", "net0", "-U", "-n", "-w", str(self.pcap),
             "ether", "src", MARK_SRC], stderr=open(self.err, "w"))
        deadline = time.monotonic() + 10
        while "listening on" not in self.err.read_text():
            assert time.monotonic() < deadline and self.proc.poll() is None, self.err.read_text()
            time.sleep(0.05)
        return self

    def frames(self, want, timeout=5.0):
        """Waits until `want` frames were captured (or the timeout), then stops tcpdump and returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pcap.stat().st_size and len(rdpcap(str(self.pcap))) >= want:
                break
            time.sleep(0.1)
        self.proc.terminate()
        self.proc.wait()
        return rdpcap(str(self.pcap))

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_tagged_and_untagged_frames_pass_byte_for_byte(lab):
    frames = [
        eth(100) / IP(src=RACK_V4["unapproved"], dst=MX_V4) / TCP(sport=40001, dport=80, flags="S"),
        eth(300, 200) / IP(src=RACK_V4["unapproved"], dst=MX_V4) / TCP(sport=40002, dport=587, flags="S"),
        eth(100) / IPv6(src=RACK_V6["unapproved"], dst=MX_V6) / UDP(sport=5353, dport=53) / Raw(b"q" * 30),
        eth(7) / ARP(psrc=RACK_V4["approved"], pdst=MX_V4, hwsrc=MARK_SRC),
        Ether(src=MARK_SRC, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(b"\x02\x07\x04" + b"L" * 40),  # LLDP
        eth(100, 200, 300) / IP(src=RACK_V4["approved"], dst=MX_V4) / TCP(sport=40003, dport=25, flags="S"),
    ]
    with Capture(lab, "passthrough") as cap:
        send_raw(lab, frames)
        got = cap.frames(len(frames))
    assert sorted(bytes(f) for f in got) == sorted(bytes(f) for f in frames)


@pytest.mark.parametrize("tags", [(100,), (300, 200)], ids=["802.1Q", "stacked"])
@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_tagged_syn_to_25_from_unapproved_gets_rst_on_the_same_vlans(lab, tags, family):
    if family == "ipv4":
        syn = eth(*tags) / IP(src=RACK_V4["unapproved"], dst=MX_V4) / TCP(sport=41000, dport=25, flags="S", seq=7)
    else:
        syn = eth(*tags) / IPv6(src=RACK_V6["unapproved"], dst=MX_V6) / TCP(sport=41000, dport=25, flags="S", seq=7)
    with Capture(lab, f"refused-{family}-{len(tags)}") as cap:
        replies = send_raw(lab, [syn], expect=True)
        leaked = cap.frames(1, timeout=1.0)
    assert len(replies) == 1, "no RST came back"
    rst = replies[0]
    vids = []
    layer = rst
    while layer.haslayer(Dot1Q) and isinstance(layer.payload, Dot1Q):
        layer = layer.payload
        vids.append(layer.vlan)
    assert tuple(vids) == tags
    assert rst[TCP].flags == "RA"
    assert rst[TCP].ack == 8 and rst[TCP].sport == 25 and rst[TCP].dport == 41000
    assert rst.dst == MARK_SRC and rst.src == MARK_DST
    assert not leaked, "the refused SYN must not reach the internet side"


def test_malformed_frames_are_dropped_and_forwarding_goes_on(lab):
    good = eth() / IP(src=RACK_V4["unapproved"], dst=MX_V4) / TCP(sport=42000, dport=80, flags="S")
    bad_ihl = bytearray(bytes(eth() / IP(src=RACK_V4["unapproved"], dst=MX_V4) / TCP(dport=25, flags="S")))
    bad_ihl[14] = 0x44  # IHL 4
    short_tcp = bytes(eth() / IP(src=RACK_V4["unapproved"], dst=MX_V4, len=30) / TCP(dport=25, flags="S"))[:44]
    bad_doff = bytearray(bytes(eth() / IP(src=RACK_V4["unapproved"], dst=MX_V4) / TCP(dport=25, flags="S")))
    bad_doff[14 + 20 + 12] = 0xF0
    v6_loop = eth() / IPv6(src=RACK_V6["unapproved"], dst=MX_V6, nh=60) / Raw(b"\x3c\x00" + b"\x00" * 6)
    v6_loop_bytes = bytearray(bytes(v6_loop))
    v6_loop_bytes[14 + 4:14 + 6] = (400).to_bytes(2, "big")  # payload length past the frame
    malformed = [Ether(bytes(b)) for b in (bad_ihl, short_tcp, bad_doff, v6_loop_bytes)]
    with Capture(lab, "malformed") as cap:
        send_raw(lab, malformed + [good])
        got = cap.frames(1, timeout=2.0)
    assert [bytes(f) for f in got] == [bytes(good)]


def test_drop_counters_at_exit(lab):
    lab.stop_gateway()
    c = lab.final_counters()
    assert c["malformed_ipv4_bad_ihl"] == 1
    assert c["malformed_ipv4_bad_length"] + c["malformed_tcp_truncated"] == 1
    assert c["malformed_tcp_bad_offset"] == 1
    assert c["malformed_ipv6_bad_length"] == 1
    assert c["rst_sent"] == 4
