"""A fleet of two gateways sharing one approval set in a real etcd (Debian's), in the namespace lab.

Gateway A forwards the lab's traffic (af_packet on the veth pair); gateway B runs on net_null ports (no
traffic) in the same namespace, where etcd listens on loopback. What an operator does on one must hold on the
other: an approval made on B lets the rack's server send through A; a ban made on A cannot be undone by an
approve on B; with etcd killed A keeps its verdicts (also across its own restart), writes fail naming etcd and
status says stale; etcd back, both catch up; a compaction past a gateway's revision is followed by a whole read
that loses nothing; an etcd that comes back empty is not taken as a mass revocation. (The store's transaction
guard, TLS and users: tests/unit/test_fleet_etcd.cpp.)"""
import json
import shutil
import signal
import subprocess
import time

import pytest

import portcullis_lab
from portcullis_lab import MX_V4, RACK_V4, REPO

PREFIX = "pctflee"
ETCD_URL = "http://127.0.0.1:23790"
SENDER = RACK_V4["unapproved"]  # managed, not approved in configs/lab.conf: the fleet decides


class Fleet:
    def __init__(self, lab):
        self.lab = lab
        self.etcd = None
        self.b = None
        self.b_socket = lab.workdir / "b.sock"
        self.b_log = lab.workdir / "b.log"

    # ---- etcd -------------------------------------------------------------------------------------------
    def start_etcd(self):
        data = self.lab.workdir / "etcd"
        self.etcd = subprocess.Popen(
            ["ip", "netns", "exec", self.lab.ns_gw, "etcd", "--name", "lab", "--data-dir", str(data),
             "--listen-client-urls", ETCD_URL, "--advertise-client-urls", ETCD_URL,
             "--listen-peer-urls", "http://127.0.0.1:23800", "--initial-advertise-peer-urls",
             "http://127.0.0.1:23800", "--initial-cluster", "lab=http://127.0.0.1:23800", "--log-level", "error"],
            stdout=open(self.lab.workdir / "etcd.log", "a"), stderr=subprocess.STDOUT)
        self.lab.extra.append(self.etcd)
        portcullis_lab.wait_for("etcd", lambda: self.etcdctl("endpoint", "health").returncode == 0, timeout=30)

    def kill_etcd(self):
        self.etcd.kill()
        self.etcd.wait()

    def wipe_etcd(self):
        self.kill_etcd()
        shutil.rmtree(self.lab.workdir / "etcd", ignore_errors=True)

    def etcdctl(self, *args):
        return self.lab.ns(self.lab.ns_gw, "env", "ETCDCTL_API=3", "etcdctl", f"--endpoints={ETCD_URL}",
                           "--command-timeout=2s", *args, check=False)

    # ---- the gateways ------------------------------------------------------------------------------------
    def options(self, name):
        return ["--store", "etcd", "--etcd_endpoints", ETCD_URL, "--gateway_name", name, "--idle_sleep_us", "200"]

    def start_a(self):
        self.lab.start_gateway(extra=self.options("gw-a"))

    def start_b(self):
        exe = self.lab.build_dir / "control" / "portcullis"
        ready = self.lab.workdir / "b.ready"
        ready.unlink(missing_ok=True)
        cmd = ["ip", "netns", "exec", self.lab.ns_gw, str(exe), "-l", "0-1", "--no-huge", "-m", "256", "--no-pci",
               f"--file-prefix={PREFIX}b", "--log-level=lib.eal:warning", "--vdev=net_null0,no-rx=1",
               "--vdev=net_null1,no-rx=1", "--", "--config", str(REPO / "configs" / "lab.conf"),
               "--rules_dir", str(REPO / "rules"), "--ready_file", str(ready), "--control_socket",
               str(self.b_socket), "--state_dir", str(self.lab.workdir / "b-state"), *self.options("gw-b")]
        self.b = subprocess.Popen(cmd, stdout=open(self.b_log, "a"), stderr=subprocess.STDOUT)
        self.lab.extra.append(self.b)
        portcullis_lab.wait_for("gateway B", lambda: self.status("b") is not None, timeout=60, proc=self.b,
                                log=self.b_log)

    def ctl(self, which, *args):
        cmd = [str(self.lab.build_dir / "tools" / "portcullisctl"), "--json", "--socket",
               str(self.lab.socket if which == "a" else self.b_socket), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    def status(self, which):
        res = self.ctl(which, "status")
        return json.loads(res.stdout) if res.returncode == 0 else None

    def store(self, which):
        return (self.status(which) or {}).get("store", {})

    def wait_sync(self, which, timeout=20):
        portcullis_lab.wait_for(f"gateway {which} in sync", lambda: self.store(which).get("in_sync") is True,
                                timeout=timeout)

    def record_state(self, which, addr):
        res = self.ctl(which, "show", addr)
        if res.returncode != 0:
            return None
        rec = json.loads(res.stdout).get("record")
        return rec.get("state") if rec else None

    def sends(self):
        code, _, out = self.lab.swaks(SENDER, MX_V4, timeout=8)
        return code == 0


@pytest.fixture(scope="module")
def fleet():
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (apt-get install etcd-server etcd-client)")
    lab = portcullis_lab.Lab(PREFIX)
    try:
        lab.create()
        lab.start_mx()
        f = Fleet(lab)
        f.start_etcd()
        f.start_a()
        f.start_b()
        yield f
    finally:
        lab.cleanup()


def test_a_new_etcd_is_nothing_until_one_gateway_makes_it_the_fleets(fleet):
    portcullis_lab.wait_for("A to notice etcd holds no fleet", lambda: "problem" in fleet.store("a"), timeout=20)
    assert "no fleet marker" in fleet.store("a")["problem"]
    refused = fleet.ctl("a", "approve", SENDER)
    assert refused.returncode != 0 and "etcd" in refused.stderr
    init = fleet.ctl("a", "fleet", "init")
    assert init.returncode == 0, init.stderr
    fleet.wait_sync("a")
    fleet.wait_sync("b")
    assert fleet.store("a")["fleet"] == fleet.store("b")["fleet"] != ""


def test_an_approval_made_on_b_opens_port_25_through_a(fleet):
    assert not fleet.sends(), "an unapproved sender got through before any approval"
    res = fleet.ctl("b", "approve", SENDER, "--ticket", "T-fleet-1")
    assert res.returncode == 0, res.stderr
    portcullis_lab.wait_for("A to apply B's approval", lambda: fleet.record_state("a", SENDER) == "approved",
                            timeout=10)
    assert fleet.sends()
    assert fleet.store("a")["revision"] == fleet.store("b")["revision"]
    # A's audit log names the revision it applied and the gateway that wrote it.
    audit = (fleet.lab.workdir / "state" / "audit.log").read_text()
    applied = [json.loads(line) for line in audit.splitlines() if '"fleet_apply"' in line]
    assert any("gw-b" in e["args"]["gateways"] for e in applied), applied[-3:]
    audit_b = (fleet.lab.workdir / "b-state" / "audit.log").read_text()
    assert any(json.loads(line)["args"].get("gateway") == "gw-b"
               for line in audit_b.splitlines() if '"fleet_commit"' in line)


def test_a_ban_made_on_a_cannot_be_undone_by_an_approve_on_b(fleet):
    victim = "198.51.100.30"
    assert fleet.ctl("a", "revoke", victim, "--ban", "--reason", "spam run").returncode == 0
    portcullis_lab.wait_for("B to apply the ban", lambda: fleet.record_state("b", victim) == "banned", timeout=10)
    res = fleet.ctl("b", "approve", victim)
    assert res.returncode != 0 and "banned" in res.stderr, res.stderr
    assert fleet.record_state("a", victim) == "banned"


def test_etcd_away_keeps_the_verdicts_refuses_writes_and_says_stale(fleet):
    fleet.kill_etcd()
    portcullis_lab.wait_for("A to say it is stale", lambda: fleet.store("a").get("in_sync") is False, timeout=15)
    st = fleet.store("a")
    assert "stale_since" in st and st["stale_seconds"] >= 0
    assert fleet.sends(), "an approved sender was refused while etcd was away"
    res = fleet.ctl("a", "approve", "198.51.100.31")
    assert res.returncode != 0 and "etcd" in res.stderr
    assert fleet.record_state("a", "198.51.100.31") is None

    # A restarted while etcd is away starts from its replica and keeps enforcing it.
    fleet.lab.stop_gateway()
    fleet.start_a()
    assert fleet.store("a").get("in_sync") is False
    assert fleet.sends()
    assert fleet.record_state("a", "198.51.100.30") == "banned"


def test_etcd_back_both_catch_up(fleet):
    fleet.start_etcd()
    fleet.wait_sync("a")
    fleet.wait_sync("b")
    assert fleet.ctl("a", "approve", "198.51.100.31").returncode == 0
    portcullis_lab.wait_for("B to apply it", lambda: fleet.record_state("b", "198.51.100.31") == "approved",
                            timeout=10)


def test_a_compaction_past_a_gateways_revision_loses_nothing(fleet):
    fleet.b.send_signal(signal.SIGTERM)
    fleet.b.wait(timeout=30)
    for i in range(40, 45):
        assert fleet.ctl("a", "approve", f"198.51.100.{i}").returncode == 0
    assert fleet.ctl("a", "suspend", "198.51.100.31").returncode == 0
    head = fleet.store("a")["revision"]
    assert fleet.etcdctl("compact", str(head)).returncode == 0
    fleet.start_b()
    portcullis_lab.wait_for("B to catch up past the compaction", lambda: fleet.store("b").get("revision") == head,
                            timeout=20)
    assert all(fleet.record_state("b", f"198.51.100.{i}") == "approved" for i in range(40, 45))
    assert fleet.record_state("b", "198.51.100.31") == "suspended"
    assert "reading the whole set again" in fleet.b_log.read_text()


def test_an_empty_etcd_is_not_a_mass_revocation(fleet):
    fleet.wipe_etcd()
    fleet.start_etcd()
    for which in ("a", "b"):
        portcullis_lab.wait_for(f"{which} to refuse the empty etcd",
                                lambda: "no fleet marker" in fleet.store(which).get("problem", ""), timeout=20)
    time.sleep(1.5)
    assert fleet.sends(), "an emptied etcd revoked the sender's approval"
    assert fleet.record_state("b", SENDER) == "approved"
    # The operator's explicit answer: re-seed etcd from A; B, which applied the old fleet, adopts the new one.
    assert fleet.ctl("a", "fleet", "init").returncode == 0
    fleet.wait_sync("a")
    portcullis_lab.wait_for("B to see another fleet", lambda: "not fleet" in fleet.store("b").get("problem", ""),
                            timeout=20)
    assert fleet.ctl("b", "fleet", "adopt").returncode == 0
    fleet.wait_sync("b")
    assert fleet.record_state("b", SENDER) == "approved"
    assert fleet.sends()
