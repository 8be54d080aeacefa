#!/usr/bin/python3
"""The demo behind tools/demo: builds the namespace lab, starts portcullis between the rack and the internet,
and shows with swaks what a customer's mail server meets. Leaves everything running for the user to try until
Ctrl-C (or, with --once, exits: 0 when every step behaved, 1 otherwise)."""
import argparse
import json
import signal
import sys
import time

from portcullis_lab import MX_V4, MX_V6, RACK_V4, RACK_V6, RELAY_V4, RELAY_V6, Lab, LabError

GREEN, RED, BOLD, RESET = ("\033[32m", "\033[31m", "\033[1m", "\033[0m") if sys.stdout.isatty() else ("",) * 4

STEPS = [
    # (what an operator would say, source, server, port, expect delivered?)
    ("an unapproved server sends direct-to-MX on port 25", RACK_V4["unapproved"], MX_V4, 25, False),
    ("an approved server sends direct-to-MX on port 25", RACK_V4["approved"], MX_V4, 25, True),
    ("the unapproved server submits on port 587 instead", RACK_V4["unapproved"], MX_V4, 587, True),
    ("the approved server submits on port 587", RACK_V4["approved"], MX_V4, 587, True),
    ("the unapproved server relays through the provider's smarthost on 25", RACK_V4["unapproved"], RELAY_V4, 25,
     True),
    ("a customer-brought (BYOIP) address, outside the managed prefixes, on 25", RACK_V4["unmanaged"], MX_V4, 25,
     True),
    ("IPv6: an unapproved server on port 25", RACK_V6["unapproved"], MX_V6, 25, False),
    ("IPv6: an approved server on port 25", RACK_V6["approved"], MX_V6, 25, True),
    ("IPv6: the unapproved server on port 587", RACK_V6["unapproved"], MX_V6, 587, True),
    ("IPv6: the unapproved server through the smarthost on 25", RACK_V6["unapproved"], RELAY_V6, 25, True),
]


HOST = "mail.customer.example"  # the host name the demo's approval names; its servers say it in EHLO


def say(text=""):
    print(text, flush=True)


LIVE = [
    # (what the operator does, portcullisctl arguments, then the same swaks: expect delivered?)
    ("the provider approves the unapproved server, live, for its host name and domain",
     ["approve", RACK_V4["unapproved"], "--hostname", HOST, "--domain", "customer.example", "--ticket", "T-1042"],
     True),
    # The customer's dashboard talks to the HTTP API with a customer token scoped to its addresses.
    ("the customer switches port 25 off from its dashboard (HTTP API, customer token)",
     ["api", "POST", f"/v1/addresses/{RACK_V4['unapproved']}/suspend"], False),
    ("and back on", ["api", "POST", f"/v1/addresses/{RACK_V4['unapproved']}/resume"], True),
    ("abuse complaints: the provider revokes it for good",
     ["revoke", RACK_V4["unapproved"], "--ban", "--reason", "abuse complaints"], False),
]


API = "127.0.0.1:8080"  # the HTTP API, on the gateway namespace's loopback (plain HTTP is for loopback only)


def api_call(lab, token, method, path):
    """curl as the customer's dashboard: the HTTP status."""
    res = lab.ns(lab.ns_gw, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "-H",
                 f"Authorization: Bearer {token}", f"http://{API}{path}", check=False)
    return res.stdout.strip()


def run_live(lab):
    ok = True
    src = RACK_V4["unapproved"]
    token = json.loads(lab.ctl("token", "add", "customer-demo", "--role", "customer", "--scope",
                               "198.51.100.16/28").stdout)["secret"]
    say(f"     (portcullisctl token add customer-demo --role customer --scope 198.51.100.16/28: the dashboard's "
        f"token, {token[:10]}...)")
    for i, (what, args, expect) in enumerate(LIVE, len(STEPS) + 1):
        if args[0] == "api":
            status = api_call(lab, token, args[1], args[2])
            how = f"curl -X {args[1]} http://{API}{args[2]} -> {status}"
            ok &= status == "200"
        else:
            lab.ctl(*args, json_out=False)
            how = f"portcullisctl {' '.join(args)}"
        rc, secs, out = lab.swaks(src, MX_V4, 25, timeout=10, helo=HOST)
        good = (rc == 0) == expect
        ok &= good
        result = f"delivered ({secs:.2f}s)" if rc == 0 else f"refused ({secs:.2f}s)"
        mark = f"{GREEN}ok{RESET}" if good else f"{RED}UNEXPECTED{RESET}"
        say(f" {i:2}. {what}: {how}\n     {src} -> {MX_V4}:25: {result}  [{mark}]")
    status = api_call(lab, token, "GET", f"/v1/addresses/{RACK_V4['approved']}")
    good = status == "403"
    ok &= good
    mark = f"{GREEN}ok{RESET}" if good else f"{RED}UNEXPECTED{RESET}"
    say(f"     the same token on another customer's server ({RACK_V4['approved']}): {status}  [{mark}]")
    res = lab.ctl("approve", src, check=False, json_out=False)
    good = res.returncode == 1 and "banned" in res.stderr
    ok &= good
    mark = f"{GREEN}ok{RESET}" if good else f"{RED}UNEXPECTED{RESET}"
    say(f" {len(STEPS) + len(LIVE) + 1:2}. a later approve of the banned server is refused:\n     "
        f"{res.stderr.strip()}  [{mark}]")
    say(f"\n   what the operator sees: portcullisctl show {src}")
    for line in lab.ctl("show", src, json_out=False).stdout.splitlines()[:6]:
        say(f"     {line}")
    return ok


INSPECT = [
    # (what happens, swaks keyword arguments, expect delivered?, what the client must read)
    ("the approved server says EHLO localhost", {"helo": "localhost"}, False, "550 5.7.1 EHLO localhost"),
    ("it sends for a domain its approval does not name", {"mail_from": "news@elsewhere.example"}, False,
     "550 5.7.1 Sender domain is not approved"),
    ("the same, after STARTTLS: encrypted, so not read", {"mail_from": "news@elsewhere.example", "extra": ["-tls"]},
     True, ""),
]


def run_inspection(lab, first):
    """What the gateway reads in a session, and what the client reads back."""
    ok = True
    src = RACK_V4["approved"]
    lab.ctl("approve", src, "--domain", "customer.example", "--ticket", "T-7", json_out=False)
    say(f"     (portcullisctl approve {src} --domain customer.example)")
    for i, (what, kw, expect, text) in enumerate(INSPECT, first):
        rc, secs, out = lab.swaks(src, MX_V4, 25, timeout=10, **kw)
        reply = next((line.strip("<* ").strip() for line in out.splitlines() if line.startswith("<** 5")), "")
        good = (rc == 0) == expect and (text in reply if text else True)
        ok &= good
        mark = f"{GREEN}ok{RESET}" if good else f"{RED}UNEXPECTED{RESET}"
        result = f"delivered ({secs:.2f}s)" if rc == 0 else f"{reply or 'refused'} ({secs:.2f}s)"
        say(f" {i:2}. {what}\n     {src} -> {MX_V4}:25: {result}  [{mark}]")
    return ok


HOLD = """
import socket, sys, time
conns = [socket.create_connection((sys.argv[2], 25), timeout=5, source_address=(sys.argv[1], 0))
         for _ in range(int(sys.argv[3]))]
for c in conns:
    c.recv(512)  # the server's greeting: the connection is open end to end
open(sys.argv[4], "w").close()
time.sleep(600)
"""


def run_limits(lab, first):
    """Per-source limits: the approved server holds connections open up to the limit; one more is told why."""
    ok = True
    src, limit = RACK_V4["approved"], 3
    lab.ctl("limits", "--max-concurrent", str(limit), json_out=False)
    say(f" {first:2}. the provider caps every sender at {limit} concurrent SMTP connections: "
        f"portcullisctl limits --max-concurrent {limit}")
    ready = lab.workdir / "hold.ready"
    holder = lab.spawn_in(lab.ns_rack, ["/usr/bin/python3", "-c", HOLD, src, MX_V4, str(limit), str(ready)],
                          "hold.out")
    lab.wait_file(ready, holder)
    rc, secs, out = lab.swaks(src, MX_V4, 25, timeout=10)
    reply = next((line.strip("<* ").strip() for line in out.splitlines() if "421" in line), "")
    good = rc != 0 and "Too many concurrent" in reply
    ok &= good
    mark = f"{GREEN}ok{RESET}" if good else f"{RED}UNEXPECTED{RESET}"
    say(f"     {src} holds {limit} connections open; a fourth -> {MX_V4}:25: {reply or 'no 421'} ({secs:.2f}s)  "
        f"[{mark}]")
    say(f"     what the operator sees: portcullisctl show {src}")
    for line in lab.ctl("show", src, json_out=False).stdout.splitlines():
        if any(k in line for k in ("open SMTP", "connection rate", "today", "refusals")):
            say(f"       {line.strip()}")
    holder.kill()
    holder.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rc, secs, out = lab.swaks(src, MX_V4, 25, timeout=10)
        if rc == 0:
            break
        time.sleep(0.5)
    ok &= rc == 0
    mark = f"{GREEN}ok{RESET}" if rc == 0 else f"{RED}UNEXPECTED{RESET}"
    say(f" {first + 1:2}. the connections close; the sender's MTA retries: "
        f"{'delivered' if rc == 0 else 'still refused'} ({secs:.2f}s)  [{mark}]")
    lab.ctl("limits", "--max-concurrent", "10", json_out=False)
    return ok


def run_steps(lab):
    ok = True
    for i, (what, src, server, port, expect) in enumerate(STEPS, 1):
        rc, secs, out = lab.swaks(src, server, port, timeout=10)
        delivered = rc == 0
        if delivered:
            result = f"delivered ({secs:.2f}s)"
        elif "Connection refused" in out:
            result = f"refused at once with a TCP reset ({secs:.2f}s): the MTA logs 'Connection refused' and retries"
        else:
            last = [line for line in out.splitlines() if line.startswith("***")][-1:] or ["failed"]
            result = f"failed: {last[0].strip('* ')} ({secs:.2f}s)"
        good = delivered == expect
        ok &= good
        mark = f"{GREEN}ok{RESET}" if good else f"{RED}UNEXPECTED{RESET}"
        where = f"[{server}]:{port}" if ":" in server else f"{server}:{port}"
        say(f" {i:2}. {what}\n     {src} -> {where}: {result}  [{mark}]")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--once", action="store_true", help="run the scenario, tear down and exit")
    ap.add_argument("--hugepages", action="store_true",
                    help="back the gateway's memory with reserved hugepages (default: --no-huge)")
    args = ap.parse_args()
    lab = Lab("pcdemo", hugepages=args.hugepages)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    try:
        say(f"{BOLD}== Building the lab{RESET}: namespaces {lab.ns_rack} (customer rack), {lab.ns_gw} (portcullis), "
            f"{lab.ns_net} (the internet)")
        lab.create()
        lab.start_mx(tls=True)
        say(f"   SMTP server (aiosmtpd, with STARTTLS) in {lab.ns_net}: {MX_V4} / {MX_V6} on ports 25, 587 and 2525; "
            f"smarthost {RELAY_V4} / {RELAY_V6}")
        lab.start_gateway(extra=["--api_listen", API])
        say(f"   portcullis is forwarding between the rack and the internet (policy: configs/lab.conf, "
            f"log: {lab.gateway_log})")
        say(f"   rack: {RACK_V4['approved']} and {RACK_V6['approved']} approved; {RACK_V4['unapproved']} and "
            f"{RACK_V6['unapproved']} not; {RACK_V4['unmanaged']} is outside the managed prefixes")
        say(f"\n{BOLD}== What customers' mail servers meet{RESET}")
        ok = run_steps(lab)
        say(f"\n{BOLD}== Approvals on the running gateway{RESET} (portcullisctl and the HTTP API, no restart)")
        ok &= run_live(lab)
        say(f"\n{BOLD}== What a session says{RESET}: EHLO and MAIL FROM held to the approval, until STARTTLS")
        ok &= run_inspection(lab, len(STEPS) + len(LIVE) + 2)
        say(f"\n{BOLD}== Per-source limits{RESET}: refusals the customer's MTA understands")
        ok &= run_limits(lab, len(STEPS) + len(LIVE) + len(INSPECT) + 2)
        got = len(lab.delivered())
        want = sum(1 for s in STEPS if s[4]) + sum(1 for s in LIVE if s[2]) + sum(1 for s in INSPECT if s[2]) + 1
        say(f"\n   the SMTP server accepted {got} message(s); {want} were expected")
        ok &= got == want
        if args.once:
            lab.stop_gateway()
            c = lab.final_counters()
            say(f"   gateway counters: {c['refused_unapproved_syn']} connection attempt(s) refused, "
                f"{c['rst_sent']} reset(s) sent, {c['pass_approved']} approved, {c['pass_relay']} relay and "
                f"{c['pass_unmanaged']} unmanaged frame(s) passed on SMTP ports; {c.get('flows_opened', 0)} SMTP "
                f"connection(s) tracked, {c.get('refused_concurrency', 0)} over a sender's limit")
            say(f"\n{BOLD}== {'All steps behaved' if ok else 'SOME STEPS DID NOT BEHAVE'}{RESET}")
            return 0 if ok else 1
        say(f"""
{BOLD}== Try it yourself{RESET} (the lab stays up until Ctrl-C)
   ip netns exec {lab.ns_rack} swaks --server {MX_V4} --port 25 --local-interface {RACK_V4['unapproved']} --to you@example.net
   ip netns exec {lab.ns_rack} swaks --server {MX_V4} --port 25 --local-interface {RACK_V4['approved']} --to you@example.net
   ip netns exec {lab.ns_rack} swaks -6 --server {MX_V6} --port 587 --local-interface {RACK_V6['unapproved']} --to you@example.net
   {lab.build_dir}/tools/portcullisctl --socket {lab.socket} approve {RACK_V4['unapproved']}
   {lab.build_dir}/tools/portcullisctl --socket {lab.socket} list
   ip netns exec {lab.ns_gw} curl -H "Authorization: Bearer $TOKEN" http://{API}/v1/addresses/{RACK_V4['unapproved']}
       (TOKEN: printed by portcullisctl --socket {lab.socket} token add NAME --role operator)
   tail -f {lab.gateway_log}        # counters every 5 s
   the messages the SMTP server accepted: {lab.mx_log}""")
        while lab.gateway.poll() is None:
            time.sleep(0.5)
        say(f"{RED}portcullis exited{RESET}; its log:\n" + lab.gateway_output()[-2000:])
        return 1
    except KeyboardInterrupt:
        say("\n== Ctrl-C: stopping portcullis and removing the lab")
        if lab.gateway is not None:
            lab.stop_gateway()
            say(lab.gateway_output().split("final counters:", 1)[-1])
        return 0
    except LabError as e:
        say(f"{RED}error:{RESET} {e}")
        return 1
    finally:
        lab.cleanup()


if __name__ == "__main__":
    sys.exit(main())
