#!/usr/bin/python3
"""Whole SMTP sessions from approved servers, read by the inspection:
- a clean session (EHLO with an FQDN, MAIL FROM, RCPT, DATA, the message, QUIT) passes byte for byte, and what
  follows DATA is not read (the message says "EHLO localhost");
- a session whose EHLO localhost arrives cut into three segments is ended at the third: the server gets a RST with
  the sequence number it expects, the client a 550 5.7.1 line with FIN from the server's side, and the client's
  FIN afterwards is acknowledged by the gateway;
- an IPv6 session that turns to STARTTLS is not read past it.
The verdicts do not depend on how the commands are cut into segments."""
import json

from scapy.all import IP, TCP, Ether, IPv6, Raw, wrpcap

C, S = "02:00:00:00:0e:01", "02:00:00:00:0e:02"
E = Ether(src=C, dst=S)
REPLY = b"550 5.7.1 EHLO/HELO must give this server's fully qualified host name (RFC 5321 4.1.1.1)\r\n"


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
                               b"RCPT TO:<someone@example.net>\r\n", b"DATA\r\n",
                               b"Subject: test\r\n\r\nEHLO localhost\r\n.\r\n", b"QUIT\r\n"])

bad_chunks = [b"EH", b"LO local", b"host\r\n"]
bad, next_seq = session(v4, 40002, bad_chunks)
violating = bad[-1]
fin = E / v4 / TCP(sport=40002, dport=25, flags="FA", seq=next_seq, ack=5000 + len(REPLY) + 1)

v6 = IPv6(src="2001:db8:100::10", dst="2001:db8:25::25", hlim=61)
tls, _ = session(v6, 40003, [b"EHLO mail.customer.example\r\n", b"STARTTLS\r\n",
                             b"\x16\x03\x01\x00\x05EHLO localhost\r\n"])

frames = clean + bad + [fin] + tls
wrpcap("in.pcap", frames)

# To the server: everything but the violating segment and the client's FIN after the refusal; in the violating
# segment's place, the RST the server accepts (its expected sequence number: it never got the segment).
server_rst = E / IP(src="198.51.100.10", dst="203.0.113.25", id=7, ttl=61) / \
    TCP(sport=40002, dport=25, flags="RA", seq=violating[TCP].seq, ack=5000, window=0)
wrpcap("expect_outside.pcap", clean + bad[:-1] + [server_rst] + tls)

# To the client: the reason, from the server's side, then the ACK of its FIN.
answer = Ether(src=S, dst=C) / IP(src="203.0.113.25", dst="198.51.100.10", ttl=64, id=0, flags="DF") / \
    TCP(sport=25, dport=40002, flags="FPA", seq=5000, ack=next_seq, window=65535) / Raw(REPLY)
fin_ack = Ether(src=S, dst=C) / IP(src="203.0.113.25", dst="198.51.100.10", ttl=64, id=0, flags="DF") / \
    TCP(sport=25, dport=40002, flags="A", seq=5000 + len(REPLY) + 1, ack=next_seq + 1, window=65535)
wrpcap("expect_inside.pcap", [answer, fin_ack])

counters = {"rx_inside": len(frames), "fwd_outbound": len(clean) + len(bad) - 1 + 1 + len(tls),
            "refused_payload": 1, "rst_sent_server": 1, "smtp_reply_sent": 1, "smtp_finack_sent": 1,
            "inspect_flows": 3, "inspect_ended_data": 1, "inspect_ended_starttls": 1, "flows_opened": 3}
with open("expect_counters.json", "w") as f:
    json.dump(counters, f, indent=1)
