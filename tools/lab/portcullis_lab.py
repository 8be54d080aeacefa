"""The namespace lab: a customer rack, the gateway and an "internet", each in its own network namespace,
joined by veth pairs, with real kernel TCP stacks on both ends and the gateway bridging them through DPDK's
net_af_packet. Used by tools/demo and by tests/integration, so what the demo shows is what the tests assert.

    rack ns                     gw ns (portcullis)                 net ns
    rack0 ---- veth ---- gwin [port 0]  ==  [port 1] gwout ---- veth ---- net0
    198.51.100.10  approved                                          203.0.113.25  MX (25, 587)
    198.51.100.20  not approved                                      203.0.113.53  the provider's relay
    198.51.100.200 outside managed_prefixes (BYOIP)
    2001:db8:100::10 / ::20, 2001:db8:200::200                      2001:db8:25::25 / ::53

VLAN-tagged traffic is sent and captured with raw sockets (scapy, tcpdump) rather than VLAN interfaces, so the
lab needs no 8021q kernel module.

Every name starts with a prefix (the demo's differs from the tests'), so a run first removes whatever an
earlier, killed run with the same prefix left behind.
"""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

RACK_V4 = {"approved": "198.51.100.10", "unapproved": "198.51.100.20", "unmanaged": "198.51.100.200"}
RACK_V6 = {"approved": "2001:db8:100::10", "unapproved": "2001:db8:100::20", "unmanaged": "2001:db8:200::200"}
MX_V4, RELAY_V4 = "203.0.113.25", "203.0.113.53"
MX_V6, RELAY_V6 = "2001:db8:25::25", "2001:db8:25::53"


def control_connect(path, timeout=10):
    """A raw connection to a daemon's control socket (for tests that speak the protocol themselves)."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))  # blocking: waits for room in the listen backlog
    s.settimeout(timeout)
    return s


def read_reply(s):
    """One JSON reply line from a control connection; None if the daemon closed it first."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return json.loads(buf) if buf else None


class LabError(RuntimeError):
    pass


def run(cmd, check=True, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def wait_for(what, predicate, timeout=20.0, proc=None, log=None):
    """Polls until predicate() holds; fails early if proc died, with its log's tail."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
            raise LabError(f"{what}: process exited with {proc.returncode}\n{tail}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")


class Lab:
    def __init__(self, prefix, workdir=None, build_dir=None, hugepages=False):
        self.prefix = prefix
        self.ns_rack, self.ns_gw, self.ns_net = f"{prefix}-rack", f"{prefix}-gw", f"{prefix}-net"
        self.workdir = Path(workdir or f"/tmp/{prefix}-lab")
        self.build_dir = Path(build_dir or os.environ.get("PORTCULLIS_BUILD", REPO / "build"))
        self.gateway = None
        self.gateway_log = self.workdir / "portcullis.log"
        self.mx = None
        self.mx_log = self.workdir / "mx-messages.jsonl"
        self.repo = REPO
        self.hugepages = hugepages  # back DPDK memory with reserved hugepages instead of --no-huge
        self.socket = self.workdir / "portcullis.sock"
        self.extra = []  # further processes started in the lab, stopped by cleanup()

    # ---- lifetime -------------------------------------------------------------------------------------
    def cleanup(self):
        """Removes this prefix's namespaces (and every process in them) and work directory. Idempotent."""
        for proc in (self.gateway, self.mx, *self.extra):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.gateway = self.mx = None
        self.extra = []
        listed = run(["ip", "netns", "list"], check=False).stdout.split("\n")
        for ns in [line.split()[0] for line in listed if line.strip()]:
            if not ns.startswith(self.prefix + "-"):
                continue
            pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def ns(self, ns, *cmd, check=True, timeout=60):
        return run(["ip", "netns", "exec", ns, *cmd], check=check, timeout=timeout)

    # ---- topology -------------------------------------------------------------------------------------
    def create(self):
        self.cleanup()
        self.workdir.mkdir(parents=True)
        for ns in (self.ns_rack, self.ns_gw, self.ns_net):
            run(["ip", "netns", "add", ns])
            self.ns(ns, "ip", "link", "set", "lo", "up")
        run(["ip", "link", "add", "rack0", "netns", self.ns_rack, "type", "veth", "peer", "name", "gwin",
             "netns", self.ns_gw])
        run(["ip", "link", "add", "gwout", "netns", self.ns_gw, "type", "veth", "peer", "name", "net0",
             "netns", self.ns_net])
        # The gateway's ends are wires, not hosts: no IPv6 link-local chatter of their own.
        for dev in ("gwin", "gwout"):
            self.ns(self.ns_gw, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
        for ns, devs in ((self.ns_rack, ("rack0",)), (self.ns_gw, ("gwin", "gwout")), (self.ns_net, ("net0",))):
            for dev in devs:
                # Checksum/segmentation offloads would hand af_packet partial checksums; VLAN offloads
                # would move tags out of the frame. Off, on every end.
                self.ns(ns, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro",
                        "off", check=False)
                self.ns(ns, "ethtool", "-K", dev, "rxvlan", "off", "txvlan", "off", check=False)
                self.ns(ns, "ip", "link", "set", dev, "up")

        def addrs(ns, dev, v4, v6=()):
            for a in v4:
                self.ns(ns, "ip", "addr", "add", a, "dev", dev)
            for a in v6:
                self.ns(ns, "ip", "-6", "addr", "add", a, "dev", dev, "nodad")

        addrs(self.ns_rack, "rack0", [f"{a}/24" for a in RACK_V4.values()],
              [f"{a}/64" for a in RACK_V6.values()])
        addrs(self.ns_net, "net0", [f"{MX_V4}/24", f"{RELAY_V4}/24"], [f"{MX_V6}/64", f"{RELAY_V6}/64"])
        # Both sides reach each other on-link: the gateway is a bump in the wire, not a router.
        self.ns(self.ns_rack, "ip", "route", "add", "203.0.113.0/24", "dev", "rack0")
        self.ns(self.ns_rack, "ip", "-6", "route", "add", "2001:db8:25::/64", "dev", "rack0")
        self.ns(self.ns_net, "ip", "route", "add", "198.51.100.0/24", "dev", "net0")
        for p in ("2001:db8:100::/64", "2001:db8:200::/64"):
            self.ns(self.ns_net, "ip", "-6", "route", "add", p, "dev", "net0")

    # ---- processes ------------------------------------------------------------------------------------
    def spawn_in(self, ns, cmd, logname):
        """Starts cmd in namespace ns, output to workdir/logname; cleanup() stops it."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=open(self.workdir / logname, "w"),
                                stderr=subprocess.STDOUT)
        proc.logname = logname
        self.extra.append(proc)
        return proc

    def wait_file(self, path, proc, timeout=20.0):
        wait_for(f"{path.name}", path.exists, timeout=timeout, proc=proc, log=self.workdir / proc.logname)

    def start_mx(self, ports="25,587,2525", tls=False, addresses=None, name="mx", extra=()):
        """The lab's SMTP server; tls: it offers STARTTLS with a self-signed certificate made here. addresses:
        listen on these only (default every address); name: a second server beside the first (its own ready
        file and output; it logs to the same mx_log, so delivered() sees both); extra: more tools/lab/mx.py
        options (--command-size-limit, --pipelining)."""
        ready = self.workdir / f"{name}.ready"
        args = list(extra)
        if addresses:
            args += ["--addresses", ",".join(addresses)]
        if tls:
            cert, key = self.workdir / "mx-cert.pem", self.workdir / "mx-key.pem"
            if not cert.exists():
                run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                     str(cert), "-days", "1", "-subj", "/CN=mx.example.net"])
            args += ["--tls-cert", str(cert), "--tls-key", str(key)]
        proc = self.spawn_in(self.ns_net, ["/usr/bin/python3", str(REPO / "tools/lab/mx.py"), "--ports", ports,
                                           "--log", str(self.mx_log), "--ready", str(ready), *args], f"{name}.out")
        if name == "mx":
            self.mx = proc
        self.wait_file(ready, proc)
        return proc

    def gateway_command(self, config=None, extra=()):
        exe = self.build_dir / "control" / "portcullis"
        if not exe.exists():
            raise LabError(f"{exe} not built")
        # --huge-unlink=always: no hugepage files outlive the process, however it ends.
        memory = ["--socket-mem", "256", "--huge-unlink=always"] if self.hugepages else ["--no-huge", "-m", "256"]
        return ["ip", "netns", "exec", self.ns_gw, str(exe), "-l", "0-1", *memory, "--no-pci",
                f"--file-prefix={self.prefix}", "--log-level=lib.eal:warning",
                "--vdev=net_af_packet0,iface=gwin", "--vdev=net_af_packet1,iface=gwout", "--",
                "--config", str(config or REPO / "configs" / "lab.conf"),
                "--ready_file", str(self.workdir / "portcullis.ready"),
                "--control_socket", str(self.socket), "--state_dir", str(self.workdir / "state"),
                *([] if "--rules_dir" in extra else ["--rules_dir", str(REPO / "rules")]), *extra]

    def notify_socket(self):
        """A datagram socket where systemd's notify protocol would arrive (READY=1, WATCHDOG=1, STATUS=...),
        and the environment that points the daemon at it: (socket, env)."""
        import socket
        path = self.workdir / "notify.sock"
        path.unlink(missing_ok=True)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(str(path))
        return s, {"NOTIFY_SOCKET": str(path)}

    def start_gateway(self, config=None, extra=(), env=None):
        """env: more environment for the daemon (NOTIFY_SOCKET, WATCHDOG_USEC: systemd's, in a test)."""
        ready = self.workdir / "portcullis.ready"
        ready.unlink(missing_ok=True)
        self.gateway = subprocess.Popen(self.gateway_command(config, extra), stdout=open(self.gateway_log, "w"),
                                        stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        wait_for("portcullis to be ready", self.ready, timeout=60, proc=self.gateway, log=self.gateway_log)

    def ready(self):
        """The daemon says it is up and forwarding (status over its control socket)."""
        res = self.ctl("status", check=False)
        return res.returncode == 0 and json.loads(res.stdout).get("ready") is True

    def ctl(self, *args, check=True, json_out=True):
        """Runs portcullisctl against the lab's daemon (in the root namespace: the socket is a file)."""
        cmd = [str(self.build_dir / "tools" / "portcullisctl"), "--socket", str(self.socket)]
        if json_out:
            cmd.append("--json")
        return run([*cmd, *args], check=check, timeout=600)

    def kill_gateway(self):
        """SIGKILL, as a crash would: no clean shutdown, no final counters."""
        if self.gateway is None:
            return
        run(["pkill", "-KILL", "-f", f"file-prefix={self.prefix}( |$)"], check=False)
        self.gateway.kill()
        self.gateway.wait(timeout=30)
        self.gateway = None

    def stop_gateway(self):
        """SIGTERM, as an operator's service manager would; returns the daemon's exit code."""
        if self.gateway is None:
            return None
        self.gateway.send_signal(signal.SIGTERM)
        code = self.gateway.wait(timeout=30)
        self.gateway = None
        return code

    def gateway_output(self):
        return self.gateway_log.read_text(errors="replace") if self.gateway_log.exists() else ""

    def final_counters(self):
        """The counter table the daemon prints when it stops: {name: value}."""
        out = self.gateway_output()
        if "final counters:" not in out:
            raise LabError("the gateway printed no final counters")
        counters = {}
        for line in out.split("final counters:", 1)[1].splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                counters[parts[0]] = int(parts[1])
        return counters

    # ---- mail ---------------------------------------------------------------------------------------
    def swaks(self, src, server, port=25, helo="rack.example.com", timeout=10, mail_from="noreply@customer.example",
              extra=()):
        """Sends one message from `src` (a rack address) with swaks. Returns (exit code, seconds, output)."""
        cmd = ["swaks", "--server", server, "--port", str(port), "--local-interface", src, *extra,
               "--from", mail_from, "--to", "someone@example.net", "--helo", helo,
               "--timeout", str(timeout), "--header", f"Subject: portcullis lab from {src} to {server}:{port}"]
        if ":" in server:
            cmd.append("-6")
        start = time.monotonic()
        res = self.ns(self.ns_rack, *cmd, check=False, timeout=timeout + 30)
        return res.returncode, time.monotonic() - start, res.stdout + res.stderr

    def delivered(self):
        """The messages the lab's SMTP server accepted, oldest first."""
        if not self.mx_log.exists():
            return []
        return [json.loads(line) for line in self.mx_log.read_text().splitlines() if line.strip()]
