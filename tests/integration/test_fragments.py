"""Overlapping fragments (docs/security.md, "Fragments") through the daemon on net_pcap ports, which keep
fragments as they are (an AF_PACKET port would have the kernel reassemble them first).

The red team's attack: a first fragment with RST set (a client's reset, passed when whole) and a fragment at
offset 8 bytes that rewrites the flags to SYN; a receiver that lets the overlap win gets a SYN to port 25 from
an unapproved source. Neither fragment may leave, over IPv4 or IPv6. Fragments the policy has no business with
(UDP, TCP to port 80, later fragments, an unmanaged source) leave byte for byte, in order."""
import json

import pytest
from conftest import bare_namespace, read_pcap, run_pcap_daemon

CONF = """inside = 0
outside = 1
managed_prefixes = 198.51.100.0/24, 2001:db8:100::/48
approved = 198.51.100.10, 2001:db8:100::10
action_unapproved = rst
stats_interval = 0
"""

UNAPPROVED4, UNAPPROVED6 = "198.51.100.20", "2001:db8:100::20"
APPROVED4 = "198.51.100.10"
UNMANAGED4 = "192.0.2.20"
MX4, MX6 = "203.0.113.25", "2001:db8:25::25"


@pytest.fixture(scope="module")
def env():
    yield from bare_namespace("pctfrag")


def tcp_header(dport, flags, sport=40000):
    from scapy.all import TCP
    return bytes(TCP(sport=sport, dport=dport, flags=flags, seq=1000, window=65535))


def attack_v4(ident):
    """RST first fragment (the whole TCP header and 4 bytes more) + the SYN overlap at offset 8 bytes."""
    from scapy.all import IP, Ether, Raw
    E = Ether(src="02:00:00:00:0f:01", dst="02:00:00:00:0f:02")
    rst, syn = tcp_header(25, "R"), tcp_header(25, "S")
    first = E / IP(src=UNAPPROVED4, dst=MX4, id=ident, flags="MF", frag=0, proto=6) / Raw(rst + b"\0" * 4)
    overlap = E / IP(src=UNAPPROVED4, dst=MX4, id=ident, flags=0, frag=1, proto=6) / Raw(syn[8:] + b"\0" * 4)
    return [first, overlap]


def attack_v6(ident):
    from scapy.all import Ether, IPv6, IPv6ExtHdrFragment, Raw
    E = Ether(src="02:00:00:00:0f:01", dst="02:00:00:00:0f:02")
    rst, syn = tcp_header(25, "R"), tcp_header(25, "S")
    first = E / IPv6(src=UNAPPROVED6, dst=MX6) / IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=ident) / Raw(
        rst + b"\0" * 4)
    overlap = E / IPv6(src=UNAPPROVED6, dst=MX6) / IPv6ExtHdrFragment(nh=6, offset=1, m=0, id=ident) / Raw(
        syn[8:] + b"\0" * 4)
    return [first, overlap]


def fragmented_v4(l4, src, dport, ident):
    from scapy.all import IP, TCP, UDP, Ether, Raw, fragment
    E = Ether(src="02:00:00:00:0f:01", dst="02:00:00:00:0f:02")
    seg = TCP(sport=40001, dport=dport, flags="PA", seq=5000) if l4 == "tcp" else UDP(sport=40001, dport=dport)
    pkt = IP(src=src, dst=MX4, id=ident) / seg / Raw(b"x" * 2400)
    return [E / f for f in fragment(pkt, fragsize=1000)]


def fragmented_v6(l4, src, dport, ident):
    from scapy.all import TCP, UDP, Ether, IPv6, IPv6ExtHdrFragment, Raw, fragment6
    E = Ether(src="02:00:00:00:0f:01", dst="02:00:00:00:0f:02")
    seg = TCP(sport=40001, dport=dport, flags="PA", seq=5000) if l4 == "tcp" else UDP(sport=40001, dport=dport)
    pkt = IPv6(src=src, dst=MX6) / IPv6ExtHdrFragment(id=ident) / seg / Raw(b"y" * 2400)
    return [E / f for f in fragment6(pkt, 1280)]


def test_overlapping_fragments_are_dropped_and_other_fragments_pass(env):
    from scapy.all import IP, TCP, Ether, wrpcap
    w = env.workdir
    conf = w / "portcullis.conf"
    conf.write_text(CONF)
    E = Ether(src="02:00:00:00:0f:01", dst="02:00:00:00:0f:02")

    a4, a6 = attack_v4(0x1001), attack_v6(0x1002)
    approved_data = fragmented_v4("tcp", APPROVED4, 25, 0x1003)  # first dropped, later ones have no port
    udp4 = fragmented_v4("udp", UNAPPROVED4, 25, 0x1004)  # not TCP: untouched, even to port 25
    udp6 = fragmented_v6("udp", UNAPPROVED6, 25, 0x1005)
    web4 = fragmented_v4("tcp", UNAPPROVED4, 80, 0x1006)
    web6 = fragmented_v6("tcp", UNAPPROVED6, 80, 0x1007)
    unmanaged = attack_v4(0x1008)
    unmanaged = [f.copy() for f in unmanaged]
    for f in unmanaged:
        f[IP].src = UNMANAGED4
    # Control frames: a whole RST passes (the client's own reset), a whole SYN is refused with a RST.
    whole_rst = E / IP(src=UNAPPROVED4, dst=MX4) / TCP(sport=40002, dport=25, flags="R", seq=1000)
    whole_syn = E / IP(src=UNAPPROVED4, dst=MX4) / TCP(sport=40003, dport=25, flags="S", seq=1000)
    assert len(web4) == 3 and len(web6) == 2 and len(udp4) == 3 and len(udp6) == 2

    frames = [*a4, *a6, *approved_data, *udp4, *udp6, *web4, *web6, *unmanaged, whole_rst, whole_syn]
    wrpcap(str(w / "in.pcap"), frames)
    empty = w / "empty.pcap"
    empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    counters = run_pcap_daemon(env, "frag", conf, "0@0,1@1", [w / "in.pcap"], [w / "inside.pcap"], [empty],
                               [w / "outside.pcap"], len(frames))

    out = read_pcap(w / "outside.pcap")
    for f in [*a4, *a6]:
        assert bytes(f) not in out, f"an attack fragment left: {f.summary()}"
    expected = [*approved_data[1:], *udp4, *udp6, *web4, *web6, unmanaged[0], whole_rst]
    assert out == [bytes(f) for f in expected], "\n".join(Ether(f).summary() for f in out)

    back = read_pcap(w / "inside.pcap")
    assert len(back) == 1
    rst = Ether(back[0])
    assert rst[TCP].dport == 40003 and "R" in str(rst[TCP].flags)

    want = {
        "rx_inside": len(frames),
        "fwd_outbound": len(expected),
        "dropped_fragment_policed": 3,  # the two attack first fragments, the approved source's first fragment
        "malformed_fragment_offset_one": 3,  # the two overlaps, the unmanaged source's overlap (any source)
        "pass_client_rst": 1,
        "pass_unmanaged": 1,
        "refused_unapproved": 1,
        "rst_sent": 1,
        "pass_approved": 0,
        "monitor_passed": 0,
    }
    got = {k: counters[k] for k in want}
    assert got == want, json.dumps(got)
