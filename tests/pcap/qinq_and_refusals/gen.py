#!/usr/bin/python3
"""802.1ad + 802.1Q frames of every kind pass byte for byte; refused SYNs come back as RSTs on the same tags."""
import json

from scapy.all import ARP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, IPv6, Raw, wrpcap

C, S = "02:00:00:00:0c:01", "02:00:00:00:0c:02"  # client, server side MACs


def qinq(outer=300, inner=200):
    return Ether(src=C, dst=S) / Dot1AD(vlan=outer) / Dot1Q(vlan=inner)


def rst_for(tags, ip_cls, src, dst, sport, seq):
    frame = Ether(src=S, dst=C)
    for tpid_layer in tags:
        frame = frame / tpid_layer
    if ip_cls is IP:
        l3 = IP(src=dst, dst=src, ttl=64, id=0, flags="DF", tos=0)
    else:
        l3 = IPv6(src=dst, dst=src, hlim=64, tc=0, fl=0)
    return frame / l3 / TCP(sport=25, dport=sport, flags="RA", seq=0, ack=seq + 1, window=0)


passing = [
    qinq() / IP(src="198.51.100.20", dst="203.0.113.25") / TCP(sport=40001, dport=587, flags="S", seq=1),
    qinq() / IP(src="198.51.100.10", dst="203.0.113.25") / TCP(sport=40002, dport=25, flags="S", seq=2),
    qinq() / IPv6(src="2001:db8:100::20", dst="2001:db8:25::25") / UDP(sport=5353, dport=53) / Raw(b"x" * 20),
    qinq(7, 8) / ARP(psrc="198.51.100.20", pdst="203.0.113.25", hwsrc=C),
    qinq() / IP(src="198.51.100.20", dst="203.0.113.53") / TCP(sport=40003, dport=25, flags="S", seq=3),  # relay
    Ether(src=C, dst=S) / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) /
    IP(src="192.0.2.1", dst="203.0.113.25") / TCP(sport=40004, dport=25, flags="S"),  # unmanaged, 4 tags
]
refused = [
    (qinq() / IP(src="198.51.100.20", dst="203.0.113.25") / TCP(sport=41000, dport=25, flags="S", seq=1000),
     rst_for([Dot1AD(vlan=300), Dot1Q(vlan=200)], IP, "198.51.100.20", "203.0.113.25", 41000, 1000)),
    (qinq() / IPv6(src="2001:db8:100::20", dst="2001:db8:25::25") / TCP(sport=41001, dport=25, flags="S", seq=77),
     rst_for([Dot1AD(vlan=300), Dot1Q(vlan=200)], IPv6, "2001:db8:100::20", "2001:db8:25::25", 41001, 77)),
]
too_many_tags = Ether(src=C, dst=S) / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / Dot1Q(vlan=4) / \
    Dot1Q(vlan=5) / IP(src="198.51.100.20", dst="203.0.113.25") / TCP(dport=25, flags="S")

inp = passing[:3] + [refused[0][0]] + passing[3:] + [too_many_tags, refused[1][0]]
wrpcap("in.pcap", inp)
wrpcap("expect_outside.pcap", passing)
wrpcap("expect_inside.pcap", [r for _, r in refused])
with open("expect_counters.json", "w") as f:
    json.dump({"rx_inside": len(inp), "fwd_outbound": len(passing), "rst_sent": 2, "refused_unapproved_syn": 2,
               "pass_approved": 1, "pass_relay": 1, "pass_unmanaged": 1, "malformed_too_many_tags": 1}, f, indent=1)
