#!/usr/bin/python3
"""Traffic mixes for the benchmark, written as pcaps straight from struct templates (scapy would take minutes
for this many frames). Every frame is well-formed Ethernet (some 802.1Q-tagged) + IPv4/IPv6 + TCP/UDP.

  nonsmtp64  64-byte frames (60 on the wire before FCS): TCP and UDP to web, DNS and other ports from
             many sources: the fast path, nothing to police.
  imix       IMIX sizes (64:594:1518 as 7:4:1), IPv4 and IPv6, 10% VLAN-tagged, mostly non-SMTP, plus complete
             SMTP sessions (SYN, EHLO, MAIL FROM, RCPT, DATA, QUIT, FIN) on 25 and 587 from approved,
             unapproved and unmanaged sources: about 6% of frames are SMTP.
  synflood   a SYN flood mixed into the imix: one SYN (correct IPv4 and TCP checksums, 60 bytes) from each of
             --sources distinct spoofed sources in 10.0.0.0/8 (managed by configs/bench-synflood.conf, for this
             pcap only: it is never sent on any network), alternately to port 25 and 587, spread evenly among
             the imix's frames (--flows of them, as above).

Sources are spread over 198.51.100.0/24 and 2001:db8:100::/48 (managed in configs/bench.conf) and 192.0.2.0/24
(unmanaged), with distinct ports per flow: --flows distinct 5-tuples (default 131072)."""
import argparse
import random
import struct

PCAP_HDR = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
MAC_A, MAC_B = bytes.fromhex("020000000a01"), bytes.fromhex("020000000b01")


def v4(a, b, c, d):
    return bytes((a, b, c, d))


def v6(suffix, net=0x0100):
    return bytes.fromhex("20010db8") + net.to_bytes(2, "big") + b"\0" * 8 + suffix.to_bytes(2, "big")


def frame(src, dst, proto, sport, dport, size, flags=0x10, payload=b"", vlan=None, seq=1):
    """An Ethernet frame of `size` bytes (without FCS), padded with zero payload to reach it."""
    is6 = len(src) == 16
    l2 = MAC_B + MAC_A + ((struct.pack("!HH", 0x8100, vlan)) if vlan else b"") + (b"\x86\xdd" if is6 else b"\x08\x00")
    l4_len = 20 if proto == 6 else 8
    ip_len = 40 if is6 else 20
    pad = max(0, size - len(l2) - ip_len - l4_len - len(payload))
    body = payload + b"\0" * pad
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, flags, 65535, 0, 0)
        # The TCP checksum, right (the gateway verifies it on the SMTP segments it tracks, as a server would).
        seg = l4 + body
        csum = ~fold(words(src + dst) + proto + len(seg) + words(seg)) & 0xFFFF
        l4 = l4[:16] + struct.pack("!H", csum) + l4[18:]
    else:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(body), 0)
    if is6:
        ip = struct.pack("!IHBB", 6 << 28, l4_len + len(body), proto, 64) + src + dst
    else:
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + l4_len + len(body), 0, 0x4000, 64, proto, 0) + src + dst
        ip = ip[:10] + struct.pack("!H", ~fold(words(ip)) & 0xFFFF) + ip[12:]
    return l2 + ip + l4 + body


def words(b):
    """The sum of b's 16-bit big-endian words (an odd last byte padded), unfolded."""
    if len(b) % 2:
        b += b"\0"
    return sum(struct.unpack(f"!{len(b) // 2}H", b))


def write_pcap(path, frames):
    with open(path, "wb") as out:
        out.write(PCAP_HDR)
        for f in frames:
            out.write(struct.pack("<IIII", 0, 0, len(f), len(f)))
            out.write(f)


def nonsmtp64(flows, rng):
    out = []
    for i in range(flows):
        src = v4(198, 51, 100, i % 250 + 1) if i % 2 else v4(192, 0, 2, i % 250 + 1)
        dst = v4(203, 0, 113, (i >> 8) % 250 + 1)
        sport = 1024 + (i * 7) % 60000
        if i % 3 == 0:
            out.append(frame(src, dst, 17, sport, 53, 60))
        else:
            out.append(frame(src, dst, 6, sport, rng.choice((80, 443, 22, 8080)), 60))
    return out


def smtp_session(src, dst, sport, dport, vlan):
    cmds = [b"EHLO mail.customer.example\r\n", b"MAIL FROM:<billing@customer.example>\r\n",
            b"RCPT TO:<someone@example.net>\r\n", b"DATA\r\n", b"Subject: invoice\r\n\r\nHello\r\n.\r\n", b"QUIT\r\n"]
    seq = 1000
    out = [frame(src, dst, 6, sport, dport, 0, flags=0x02, vlan=vlan, seq=seq)]
    seq += 1
    for c in cmds:
        out.append(frame(src, dst, 6, sport, dport, 0, flags=0x18, payload=c, vlan=vlan, seq=seq))
        seq += len(c)
    out.append(frame(src, dst, 6, sport, dport, 0, flags=0x11, vlan=vlan, seq=seq))
    return out


def imix(flows, rng):
    sizes = [60] * 7 + [590] * 4 + [1514]
    out = []
    for i in range(flows):
        vlan = 100 + i % 7 if i % 10 == 0 else None
        sport = 1024 + (i * 7) % 60000
        if i % 100 == 0:  # 1% of flows are SMTP sessions (8 frames each): ~6% of frames
            k = i // 100
            dport = 25 if k % 2 == 0 else 587
            host = (k * 37) % 250 + 1  # approved below 64 (configs/bench.conf), not above
            if k % 3 == 0:
                src, dst = v6(host), v6(k % 65000 + 1, 0x0025)
            elif k % 3 == 1:
                src, dst = v4(198, 51, 100, host), v4(203, 0, 113, k % 250 + 1)
            else:  # unmanaged
                src, dst = v4(192, 0, 2, host), v4(203, 0, 113, k % 250 + 1)
            out.extend(smtp_session(src, dst, sport, dport, vlan))
            continue
        six = i % 4 == 0
        src = v6(i % 65000 + 1) if six else (v4(198, 51, 100, i % 250 + 1) if i % 2 else v4(192, 0, 2, i % 250 + 1))
        dst = v6(i % 65000 + 1, 0x0025) if six else v4(203, 0, 113, (i >> 8) % 250 + 1)
        if i % 5 == 0:
            out.append(frame(src, dst, 17, sport, rng.choice((53, 123, 443)), rng.choice(sizes), vlan=vlan))
        else:
            out.append(frame(src, dst, 6, sport, rng.choice((80, 443, 8443)), rng.choice(sizes), vlan=vlan))
    return out


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def synflood_syns(sources):
    """One 60-byte SYN per source, source i at 10.0.0.0 + (i * 2654435761 mod 2^24): distinct for up to 2^24
    sources and spread over the whole /8 (so half of them fall in the approved 10.0.0.0/9). Checksums are
    computed from constant partial sums plus what varies, so a million frames take seconds, not minutes."""
    eth = MAC_B + MAC_A + b"\x08\x00"
    out = []
    pack_ip, pack_tcp = struct.Struct("!BBHHHBBHII").pack, struct.Struct("!HHIIBBHHH").pack
    ip_const = 0x4500 + 40 + 0x4000 + (64 << 8 | 6)  # version/IHL/TOS, total length, DF, TTL/protocol
    trailer = b"\0" * 6  # Ethernet padding to 60 bytes: not part of the IP datagram
    for i in range(sources):
        src = 0x0A000000 | ((i * 2654435761) & 0xFFFFFF)
        dst = 0xCB007100 | (i % 250 + 1)  # 203.0.113.x
        dport = 25 if i % 2 == 0 else 587
        sport = 1024 + (i * 7) % 64000
        seq = (i * 7919) & 0xFFFFFFFF
        ident = i & 0xFFFF
        addr = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
        ip_sum = ~fold(ip_const + ident + addr) & 0xFFFF
        # pseudo header (addresses, protocol, TCP length 20) + the header: ports, seq, ack 0, offset 5, SYN, window
        tcp_sum = ~fold(addr + 6 + 20 + sport + dport + (seq >> 16) + (seq & 0xFFFF) + (0x5000 | 0x02) + 64240) & 0xFFFF
        out.append(eth + pack_ip(0x45, 0, 40, ident, 0x4000, 64, 6, ip_sum, src, dst) +
                   pack_tcp(sport, dport, seq, 0, 5 << 4, 0x02, 64240, tcp_sum, 0) + trailer)
    return out


def synflood(flows, rng, sources):
    """The imix's frames with the flood's SYNs spread evenly among them (the imix's own order is kept)."""
    base = imix(flows, rng)
    syns = synflood_syns(sources)
    out = []
    j = 0
    for k, f in enumerate(base):
        upto = (k + 1) * len(syns) // len(base)
        out.extend(syns[j:upto])
        j = upto
        out.append(f)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mix", choices=["nonsmtp64", "imix", "synflood"])
    ap.add_argument("out")
    ap.add_argument("--flows", type=int, default=131072)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sources", type=int, default=1 << 20, help="synflood: distinct spoofed sources (SYNs)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    if args.mix == "synflood":
        frames = synflood(args.flows, rng, args.sources)
    else:
        frames = nonsmtp64(args.flows, rng) if args.mix == "nonsmtp64" else imix(args.flows, rng)
    write_pcap(args.out, frames)
    print(f"{args.out}: {len(frames)} frames, {sum(map(len, frames)) / len(frames):.0f} B average")


if __name__ == "__main__":
    main()
