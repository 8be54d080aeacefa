#!/usr/bin/python3
"""SMTP from approved servers whose handshake the gateway never sees completed (this case feeds the inside port
only: no server ever answers). Byte for byte:
- each SYN is forwarded (half-open: no source slot, nothing read);
- every later segment of those connections is dropped (tcp_unconfirmed): the gateway reads and forwards data only
  for a handshake whose SYN-ACK it saw acknowledged, so spoofed or one-sided "sessions" carry nothing through;
- a SYN carrying data (TCP Fast Open) goes on without its data;
- a segment of a connection the gateway has no record of (no SYN at all, e.g. forged mid-stream) is reset both
  ways: the client gets a RST from the server's side, the server a RST with the segment's own sequence number, and
  the segment's bytes never reach the server.
Whole sessions, read by the inspection through real TCP stacks, are in tests/integration (test_inspect.py,
test_evasion.py)."""
import json

from scapy.all import IP, TCP, Ether, IPv6, Raw, wrpcap

C, S = "02:00:00:00:0e:01", "02:00:00:00:0e:02"
E = Ether(src=C, dst=S)


def session(ip, sport, chunks, seq0=1000, ack=5000):
    """The client's side of a session: SYN, then one segment per chunk (PSH|ACK), as frames."""
    frames = [E / ip / TCP(sport=sport, dport=25, flags="S", seq=seq0)]
    seq = seq0 + 1
    for chunk in chunks:
        frames.append(E / ip / TCP(sport=sport, dport=25, flags="PA", seq=seq, ack=ack) / Raw(chunk))
        seq += len(chunk)
    return frames, seq


v4 = IP(src="198.51.100.10", dst="203.0.113.25", id=7, ttl=61)
clean, _ = session(v4, 40001, [b"EHLO mail.customer.example\r\n", b"MAIL FROM:<billing@customer.example>\r\n",
                               b"RCPT TO:<someone@example.net>\r\n", b"DATA\r\n"])
v6 = IPv6(src="2001:db8:100::10", dst="2001:db8:25::25", hlim=61)
tls, _ = session(v6, 40003, [b"EHLO mail.customer.example\r\n", b"STARTTLS\r\n"])

# TCP Fast Open: data on the SYN.
tfo = E / v4 / TCP(sport=40004, dport=25, flags="S", seq=7000) / Raw(b"EHLO evil.example\r\n")
tfo_out = E / v4 / TCP(sport=40004, dport=25, flags="S", seq=7000)

# Mid-stream, no SYN ever seen: reset both ways.
forged = E / v4 / TCP(sport=40005, dport=25, flags="PA", seq=9001, ack=4242) / Raw(b"MAIL FROM:<x@evil.example>\r\n")
to_server = E / IP(src="198.51.100.10", dst="203.0.113.25", id=7, ttl=61) / \
    TCP(sport=40005, dport=25, flags="RA", seq=9001, ack=4242, window=0)
to_client = Ether(src=S, dst=C) / IP(src="203.0.113.25", dst="198.51.100.10", ttl=64, id=0, flags="DF") / \
    TCP(sport=25, dport=40005, flags="R", seq=4242, ack=0, window=0)

frames = clean + tls + [tfo, forged]
wrpcap("in.pcap", frames)
wrpcap("expect_outside.pcap", [clean[0], tls[0], tfo_out, to_server])
wrpcap("expect_inside.pcap", [to_client])

counters = {"rx_inside": len(frames), "fwd_outbound": 4, "flows_half_open": 3, "flows_opened": 0,
            "tcp_unconfirmed": len(clean) - 1 + len(tls) - 1, "tcp_syn_data_stripped": 1,
            "flows_unknown_reset": 1, "rst_sent": 1, "rst_sent_server": 1, "inspect_flows": 0}
with open("expect_counters.json", "w") as f:
    json.dump(counters, f, indent=1)
