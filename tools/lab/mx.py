#!/usr/bin/python3
"""A real SMTP server for the lab's "internet" namespace (aiosmtpd), listening on every address of the
namespace on the given ports, both IPv4 and IPv6 (or only on --addresses). Each accepted message is appended as
one JSON line to --log (peer, local address and port, envelope); --ready is written once every port listens.

Variants for the evasion tests (tests/integration/test_evasion.py): without --tls-cert it offers no STARTTLS
(and answers it 454); --command-size-limit accepts command lines longer than RFC 5321's 512 octets;
--pipelining advertises PIPELINING (aiosmtpd reads pipelined commands either way). aiosmtpd never offers
CHUNKING: BDAT is answered 500."""
import argparse
import asyncio
import collections
import json
import os
import socket
import ssl

from aiosmtpd.smtp import SMTP


class Recorder:
    def __init__(self, path, pipelining=False, reject_rcpt=None):
        self.path = path
        self.pipelining = pipelining
        self.reject_rcpt = reject_rcpt

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_rcpt:  # a receiver that refuses the sender (a blocklist hit, say)
            return self.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # what aiosmtpd does itself when no handler hook is given
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server, session, envelope):
        local = server.transport.get_extra_info("sockname")
        record = {
            "peer": session.peer[0],
            "local": local[0],
            "port": local[1],
            "helo": session.host_name,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "bytes": len(envelope.content or b""),
        }
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        return "250 2.0.0 Message accepted for delivery"


async def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ports", default="25,587")
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--hostname", default="mx.example.net")
    ap.add_argument("--tls-cert", help="PEM certificate: offer STARTTLS (with --tls-key)")
    ap.add_argument("--tls-key")
    ap.add_argument("--addresses", help="comma-separated addresses to listen on (default: all, IPv4 and IPv6)")
    ap.add_argument("--command-size-limit", type=int, default=0,
                    help="longest command line accepted (default aiosmtpd's 512)")
    ap.add_argument("--pipelining", action="store_true", help="advertise PIPELINING in the EHLO reply")
    ap.add_argument("--reject-rcpt", help="answer every RCPT TO with this reply line (e.g. a 550 blocklist text)")
    args = ap.parse_args()
    handler = Recorder(args.log, args.pipelining, args.reject_rcpt)
    server_class = SMTP
    if args.command_size_limit:
        limit = args.command_size_limit

        class LongLines(SMTP):
            command_size_limit = limit
            command_size_limits = collections.defaultdict(lambda: limit)
            line_length_limit = max(SMTP.line_length_limit, limit + 2)

        server_class = LongLines
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    loop = asyncio.get_running_loop()
    servers = []
    if args.addresses:
        hosts = [(socket.AF_INET6 if ":" in a else socket.AF_INET, a) for a in args.addresses.split(",")]
    else:
        hosts = [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")]
    for port in [int(p) for p in args.ports.split(",")]:
        for family, host in hosts:
            servers.append(await loop.create_server(
                lambda: server_class(handler, hostname=args.hostname, tls_context=tls), host=host, port=port,
                family=family, reuse_address=True))
    tmp = args.ready + ".tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(f"{os.getpid()}\n")
    os.rename(tmp, args.ready)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
