"""Crafted TCP for the namespace lab (tools/lab/portcullis_lab.py): the client side of TCP sessions driven
segment by segment, so that a test can send what no socket API sends (data on a SYN, a segment far ahead of the
window, a bad checksum, a RST outside the window), plus the few plain-socket helpers the same tests need.

    with Wire("pcteva-rack", "rack0", src_mac, dst_mac) as wire:       # one AF_PACKET socket in the namespace
        s = wire.session("198.51.100.12", "203.0.113.25", 25)
        s.connect()                                                    # SYN, SYN-ACK, ACK
        s.read_reply()                                                 # (220, "220 mx.example.net ...")
        s.send(b"EHLO good.example.com\\r\\n")                          # at snd_nxt, then snd_nxt advances
        s.send(b"NOOP\\r\\n", seq=s.snd_nxt + 100000, advance=False)     # anywhere, nothing advances
        s.send(b"...", bad_checksum=True, advance=False)               # a segment the server drops
        s.rst(seq=s.snd_nxt + 2**31)                                   # a RST the server ignores

The crafted client's address must be one the rack's kernel does not own (the tests use an approved address that
is not configured on rack0, and give the server's namespace a static neighbour entry for it): the kernel then
drops the server's segments as not its own instead of answering them with RSTs, so no firewall rule is needed.
The Wire reads every frame on the interface, hands each to the session it belongs to, which acknowledges the
server's data and FINs in order and keeps what it received; replies are read with read_reply()/expect().

frame() builds IPv4/IPv6 TCP frames by hand (checksums included, or broken on purpose), fast enough for
send_many() to put tens of thousands of prebuilt frames on the wire in a second or two (table-exhaustion tests).

netns()/socket_in(): a socket made inside a namespace stays there, so a test in the root namespace can hold real
kernel TCP connections from the rack (SmtpConn) without a subprocess per connection.
"""
import ctypes
import os
import random
import re
import select
import socket
import struct
import threading
import time
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SOL_PACKET, PACKET_IGNORE_OUTGOING = 263, 23
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def netns(name):
    """Runs the block with the calling thread in network namespace `name` (sockets made there stay there)."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's own namespace failed")
    finally:
        os.close(own)
        os.close(target)


def socket_in(ns, family=socket.AF_INET, kind=socket.SOCK_STREAM, proto=0):
    with netns(ns):
        return socket.socket(family, kind, proto)


def mac_of(ns, iface):
    """The MAC address of `iface` in namespace `ns`."""
    import subprocess
    return subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{iface}/address"], check=True,
                          capture_output=True, text=True).stdout.strip()


# ---- frames -------------------------------------------------------------------------------------------------
def _csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _mac(text):
    return bytes.fromhex(text.replace(":", ""))


def frame(src_mac, dst_mac, src, dst, sport, dport, seq, ack=0, flags=SYN, payload=b"", window=64240,
          bad_checksum=False, options=b""):
    """One Ethernet/IPv4-or-IPv6/TCP frame as bytes. bad_checksum: the TCP checksum is wrong (by one)."""
    v6 = ":" in src
    if len(options) % 4:
        options += b"\x01" * (4 - len(options) % 4)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (5 + len(options) // 4) << 4,
                      flags, window, 0, 0) + options + payload
    if v6:
        s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        pseudo = s + d + struct.pack("!IxxxB", len(tcp), 6)
    else:
        s, d = socket.inet_aton(src), socket.inet_aton(dst)
        pseudo = s + d + struct.pack("!xBH", 6, len(tcp))
    c = _csum(pseudo + tcp)
    if bad_checksum:
        c = (c + 1) & 0xFFFF or 1
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    if v6:
        ip = struct.pack("!IHBB", 6 << 28, len(tcp), 6, 64) + s + d
        ethertype = 0x86DD
    else:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0x4000, 64, 6, 0, s, d)
        ip = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
        ethertype = 0x0800
    return _mac(dst_mac) + _mac(src_mac) + struct.pack("!H", ethertype) + ip + tcp


def parse(buf):
    """(src, dst, sport, dport, seq, ack, flags, payload) of an IPv4/IPv6 TCP frame; None for anything else."""
    if len(buf) < 14:
        return None
    et = struct.unpack_from("!H", buf, 12)[0]
    if et == 0x0800 and len(buf) >= 34 and buf[23] == 6:
        ihl = (buf[14] & 0x0F) * 4
        total = struct.unpack_from("!H", buf, 16)[0]
        src, dst = socket.inet_ntoa(buf[26:30]), socket.inet_ntoa(buf[30:34])
        l4, end = 14 + ihl, 14 + total
    elif et == 0x86DD and len(buf) >= 54 and buf[20] == 6:
        src = socket.inet_ntop(socket.AF_INET6, buf[22:38])
        dst = socket.inet_ntop(socket.AF_INET6, buf[38:54])
        l4, end = 54, 54 + struct.unpack_from("!H", buf, 18)[0]
    else:
        return None
    if len(buf) < l4 + 20:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack_from("!HHIIBB", buf, l4)
    return src, dst, sport, dport, seq, ack, flags, bytes(buf[l4 + (off >> 4) * 4:end])


# ---- the wire and its sessions ------------------------------------------------------------------------------
class Wire:
    """An AF_PACKET socket on `iface` in namespace `ns`: sends frames, and hands received ones to sessions."""

    def __init__(self, ns, iface, src_mac, dst_mac):
        self.ns, self.iface, self.src_mac, self.dst_mac = ns, iface, src_mac, dst_mac
        with netns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        try:  # our own frames (floods among them) need not come back to us
            self.sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            pass  # an older kernel: pump() skips them
        self.sock.bind((iface, 0))
        self.sessions = {}
        self._ports = iter(range(20000 + random.randrange(0, 5000), 65000))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, data):
        self.sock.send(data)

    def send_many(self, frames, chunk=128, pause=0.001):
        """Sends prebuilt frames in chunks, pausing between them so that the receiver's ring keeps up."""
        for i, f in enumerate(frames):
            try:
                self.sock.send(f)
            except BlockingIOError:
                time.sleep(0.005)
                self.sock.send(f)
            if pause and i % chunk == chunk - 1:
                time.sleep(pause)

    def session(self, src, dst, dport, sport=None):
        s = Session(self, src, dst, dport, sport or next(self._ports))
        self.sessions[(src, s.sport, dst, dport)] = s
        return s

    def pump(self, timeout):
        """Reads and dispatches frames for up to `timeout` seconds (returns earlier once nothing is waiting
        after something was read)."""
        deadline = time.monotonic() + timeout
        got = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self.sock], [], [], 0 if got else left)
            if not ready:
                if got:
                    return
                continue
            buf, addr = self.sock.recvfrom(65536)
            got = True
            if addr[2] == PACKET_OUTGOING:
                continue
            seg = parse(buf)
            if seg is None:
                continue
            src, dst, sport, dport = seg[:4]
            s = self.sessions.get((dst, dport, src, sport))
            if s is not None:
                s.on_segment(*seg[4:])

    def wait(self, predicate, timeout=5.0):
        """Pumps until predicate() holds; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate()
            if v or time.monotonic() >= deadline:
                return v
            self.pump(min(0.05, max(0.0, deadline - time.monotonic())))


class Session:
    """The client side of one crafted TCP connection."""

    def __init__(self, wire, src, dst, dport, sport):
        self.wire, self.src, self.dst, self.dport, self.sport = wire, src, dst, dport, sport
        self.isn = random.getrandbits(32)
        self.snd_nxt = self.isn
        self.snd_una = self.isn
        self.rcv_nxt = None
        self.data = bytearray()  # the server's bytes, in order
        self.pos = 0  # how far read_reply() has read
        self.synack = False
        self.syn_data_acked = False
        self.reset = False
        self.fin = False

    def __repr__(self):
        return f"<Session {self.src}:{self.sport} -> {self.dst}:{self.dport}>"

    def frame(self, flags, seq=None, payload=b"", bad_checksum=False, ack=None):
        if ack is None:
            ack = self.rcv_nxt or 0
            if self.rcv_nxt is not None:
                flags |= ACK
        return frame(self.wire.src_mac, self.wire.dst_mac, self.src, self.dst, self.sport, self.dport,
                     self.snd_nxt if seq is None else seq, ack, flags, payload, bad_checksum=bad_checksum)

    def syn(self, payload=b""):
        """A SYN (with payload: data on the SYN, as TCP Fast Open sends it)."""
        self.wire.send(self.frame(SYN, seq=self.isn, payload=payload, ack=0))
        self.snd_nxt = (self.isn + 1 + len(payload)) & 0xFFFFFFFF

    def connect(self, payload=b"", timeout=5.0):
        """The handshake (payload: on the SYN). Data on the SYN that the server did not acknowledge is sent
        again after the handshake, as a TCP Fast Open client does. True once established; False on RST or
        timeout."""
        self.syn(payload)
        self.wire.wait(lambda: self.synack or self.reset, timeout)
        if not self.synack:
            return False
        unacked = (self.snd_nxt - self.snd_una) & 0xFFFFFFFF
        self.syn_data_acked = bool(payload) and unacked == 0  # the server took the SYN's data (Fast Open)
        self.snd_nxt = self.snd_una
        self.wire.send(self.frame(0))
        if unacked and payload:
            self.send(payload[len(payload) - unacked:])
        return True

    def send(self, data, seq=None, flags=PSH, bad_checksum=False, advance=None):
        """A segment carrying data at snd_nxt (or `seq`); advance (default: when sent at snd_nxt with a good
        checksum) moves snd_nxt past it."""
        if advance is None:
            advance = seq is None and not bad_checksum
        self.wire.send(self.frame(flags, seq=seq, payload=data, bad_checksum=bad_checksum))
        if advance:
            self.snd_nxt = (self.snd_nxt + len(data)) & 0xFFFFFFFF

    def rst(self, seq=None):
        self.wire.send(self.frame(RST, seq=seq, ack=0))

    def close(self):
        """Ends the connection for both the server and anything between: a RST at exactly snd_nxt."""
        if self.synack and not self.reset:
            self.rst()
        self.wire.sessions.pop((self.src, self.sport, self.dst, self.dport), None)

    def on_segment(self, seq, ack, flags, payload):
        if flags & RST:
            self.reset = True
            return
        if flags & SYN:
            if flags & ACK and not self.synack:
                self.synack = True
                self.rcv_nxt = (seq + 1) & 0xFFFFFFFF
                self.snd_una = ack
            elif self.synack:
                self.wire.send(self.frame(0))  # a retransmitted SYN-ACK: our ACK was lost
            return
        if self.rcv_nxt is None:
            return
        if flags & ACK and ((ack - self.snd_una) & 0xFFFFFFFF) < 0x80000000:
            self.snd_una = ack
        if payload and seq == self.rcv_nxt:
            self.data += payload
            self.rcv_nxt = (self.rcv_nxt + len(payload)) & 0xFFFFFFFF
        if flags & FIN and ((seq + len(payload)) & 0xFFFFFFFF) == self.rcv_nxt and not self.fin:
            self.fin = True
            self.rcv_nxt = (self.rcv_nxt + 1) & 0xFFFFFFFF
        if payload or flags & FIN:
            self.wire.send(self.frame(0))

    def text(self):
        return self.data.decode("latin-1")

    def read_reply(self, timeout=5.0):
        """The server's next complete SMTP reply as (code, text); (None, what was left) when the connection was
        reset or closed first, or on timeout."""
        pat = re.compile(rb"(?:\d{3}-[^\n]*\n)*(\d{3})(?: [^\n]*)?\r?\n")

        def complete():
            return pat.match(self.data, self.pos) or self.reset or self.fin

        self.wire.wait(complete, timeout)
        m = pat.match(self.data, self.pos)
        if not m:
            return None, self.data[self.pos:].decode("latin-1")
        self.pos = m.end()
        return int(m.group(1)), m.group(0).decode("latin-1")

    def command(self, line, timeout=5.0):
        self.send(line.encode() + b"\r\n")
        return self.read_reply(timeout)


# ---- real sockets from a namespace --------------------------------------------------------------------------
class SmtpConn:
    """A plain kernel TCP connection from `src` in namespace `ns`, with SMTP reply reading."""

    def __init__(self, ns, src, dst, port, timeout=5.0):
        family = socket.AF_INET6 if ":" in dst else socket.AF_INET
        self.sock = socket_in(ns, family)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind((src, 0))
        self.sock.connect((dst, port))
        self.buf = b""
        self.closed = None  # why the connection ended, once it has

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.closed = self.closed or repr(e)

    def read_reply(self):
        """(code, text) of the next complete reply; (None, why) when the connection ended first."""
        pat = re.compile(rb"(?:\d{3}-[^\n]*\n)*(\d{3})(?: [^\n]*)?\r?\n")
        while True:
            m = pat.match(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return int(m.group(1)), m.group(0).decode("latin-1")
            if self.closed:
                return None, self.closed
            try:
                chunk = self.sock.recv(65536)
            except OSError as e:  # ECONNRESET, or a timeout
                self.closed = repr(e)
                continue
            if not chunk:
                self.closed = "closed by the peer"
            self.buf += chunk

    def command(self, line):
        self.send(line.encode() + b"\r\n")
        return self.read_reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
