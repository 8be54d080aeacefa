#!/usr/bin/python3
"""Every malformation the parser knows is dropped and counted under its own name; good frames around them pass."""
import json

from scapy.all import IP, TCP, Ether, IPv6, IPv6ExtHdrDestOpt, Raw, wrpcap

E = Ether(src="02:00:00:00:0d:01", dst="02:00:00:00:0d:02")
good = E / IP(src="198.51.100.20", dst="203.0.113.25") / TCP(sport=40000, dport=443, flags="S")


def raw(pkt):
    return bytearray(bytes(pkt))


syn = E / IP(src="198.51.100.20", dst="203.0.113.25") / TCP(sport=40001, dport=25, flags="S")
cases = {}
cases["malformed_eth_truncated"] = bytes(good)[:13]
b = raw(syn); b[14] = 0x44; cases["malformed_ipv4_bad_ihl"] = b                     # IHL 4
b = raw(syn); b[16:18] = (2000).to_bytes(2, "big"); cases["malformed_ipv4_bad_length"] = b
b = raw(syn); b[14] = 0x65; cases["malformed_ipv4_bad_version"] = b
cases["malformed_ipv4_truncated"] = bytes(syn)[:30]
b = raw(syn); b[34 + 12] = 0xF0; cases["malformed_tcp_bad_offset"] = b               # data offset 60
tiny = E / IP(src="198.51.100.20", dst="203.0.113.25", flags="MF", proto=6) / Raw(bytes(TCP(dport=25))[:8])
cases["malformed_tcp_truncated"] = bytes(tiny)
v6 = E / IPv6(src="2001:db8:100::20", dst="2001:db8:25::25") / TCP(sport=40002, dport=25, flags="S")
b = raw(v6); b[18:20] = (900).to_bytes(2, "big"); cases["malformed_ipv6_bad_length"] = b
cases["malformed_ipv6_truncated"] = bytes(v6)[:40]
chain = v6.copy()
chain[IPv6].remove_payload()
deep = chain
for _ in range(9):
    deep = deep / IPv6ExtHdrDestOpt()
cases["malformed_ipv6_ext_too_many"] = bytes(deep / TCP(dport=25, flags="S"))

frames = [good]
for body in cases.values():
    frames.append(Raw(bytes(body)))
    frames.append(good)
wrpcap("in.pcap", frames)
wrpcap("expect_outside.pcap", [good] * (len(cases) + 1))
wrpcap("expect_inside.pcap", [])
counts = {name: 1 for name in cases}
counts.update({"rx_inside": len(frames), "fwd_outbound": len(cases) + 1, "rst_sent": 0})
with open("expect_counters.json", "w") as f:
    json.dump(counts, f, indent=1)
