#!/usr/bin/python3
"""Raw-frame helper for the lab, run inside a namespace with `ip netns exec`: sends Ethernet frames given as hex
and, with --expect, prints (as hex, one a line) the frames that answer them, as scapy matches replies.
Used where a test needs frames no socket API makes: VLAN and QinQ tags, crafted SYNs, malformed headers."""
import argparse
import sys

from scapy.all import Ether, conf, sendp, srp  # noqa: E402

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("iface")
    ap.add_argument("frames", nargs="+", help="frames as hex")
    ap.add_argument("--expect", action="store_true", help="wait for and print the answers")
    ap.add_argument("--timeout", type=float, default=3.0)
    args = ap.parse_args()
    conf.verb = 0
    frames = [Ether(bytes.fromhex(h)) for h in args.frames]
    if not args.expect:
        sendp(frames, iface=args.iface)
        return 0
    answered, _ = srp(frames, iface=args.iface, timeout=args.timeout)
    for _, reply in answered:
        print(bytes(reply).hex())
    return 0


if __name__ == "__main__":
    sys.exit(main())
