"""The daemon as an operator starts it: bad configuration ends with one clear line and a non-zero exit code,
never a half-started gateway; SIGINT stops it cleanly. Uses net_null ports in a namespace of its own."""
import json
import resource
import signal
import subprocess

import pytest
from conftest import bare_namespace

from portcullis_lab import wait_for

EAL = ["-l", "0-1", "--no-huge", "--no-pci", "-m", "128", "--file-prefix=pctdaemon", "--log-level=lib.eal:error",
       "--vdev=net_null0", "--vdev=net_null1"]
WORK = "/tmp/pctdaemon-lab"
STATE = ["--control_socket", f"{WORK}/ctl.sock", "--state_dir", f"{WORK}/state"]
GOOD = ["--inside", "0", "--outside", "1", "--managed_prefixes", "198.51.100.0/24", *STATE]


@pytest.fixture(scope="module")
def env():
    yield from bare_namespace("pctdaemon")


def run(env, args, eal=EAL, timeout=60, preexec_fn=None):
    exe = str(env.build_dir / "control" / "portcullis")
    return subprocess.run(["ip", "netns", "exec", env.ns_gw, exe, *eal, "--", *args], capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


def error_lines(res):
    return [line for line in res.stderr.splitlines() if line.startswith("portcullis: error:")]


@pytest.mark.parametrize("args,rc,expect", [
    (["--inside", "0", "--outside", "1"], 2, "managed_prefixes: required"),
    (GOOD + ["--approved", "198.51.100.7/33"], 2, "approved: '198.51.100.7/33' prefix length over 32"),
    (GOOD + ["--approved", "198.51.100.7/24"], 2, "host bits set"),
    (GOOD + ["--action_unapproved", "reject"], 2, "action_unapproved: 'reject' is not one of rst, drop, smtp"),
    (GOOD + ["--blocked_ports", "0"], 2, "blocked_ports: '0' is not a port number"),
    (GOOD + ["--bogus", "1"], 2, "bogus"),
    (["--config", "/nonexistent.conf"], 2, "config: cannot read '/nonexistent.conf'"),
    (["--inside", "0", "--outside", "7", "--managed_prefixes", "198.51.100.0/24", *STATE], 1,
     "outside: port 7 does not exist; ports: 0 (net_null0), 1 (net_null1)"),
])
def test_bad_configuration_is_one_line_and_no_daemon(env, args, rc, expect):
    ready = env.workdir / "ready"
    res = run(env, args + ["--ready_file", str(ready)])
    assert res.returncode == rc, res.stderr
    lines = error_lines(res)
    assert len(lines) == 1 and expect in lines[0], res.stderr
    assert not ready.exists()


def test_unknown_key_in_config_file_is_named(env):
    conf = env.workdir / "bad.conf"
    conf.write_text("inside = 0\noutside = 1\nmanaged_prefixes = 198.51.100.0/24\naproved = 198.51.100.7\n")
    res = run(env, ["--config", str(conf)])
    assert res.returncode == 2
    lines = error_lines(res)
    assert len(lines) == 1 and "aproved" in lines[0] and str(conf) in lines[0], res.stderr


def test_needs_a_worker_lcore(env):
    eal = ["-l", "0"] + EAL[2:]
    res = run(env, GOOD, eal=eal)
    assert res.returncode == 1
    assert "no worker lcore" in error_lines(res)[0]


def test_help_documents_every_option(env):
    exe = str(env.build_dir / "control" / "portcullis")
    res = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert res.returncode == 0
    for key in ("--inside", "--outside", "--managed_prefixes", "--blocked_ports", "--open_ports", "--relay_hosts",
                "--approved", "--action_unapproved", "--config", "--stats_interval"):
        assert key in res.stdout


def test_corrupt_state_is_refused_not_ignored(env):
    """A snapshot an operator edited into invalid JSON must stop the start, not silently drop approvals."""
    state = env.workdir / "bad-state"
    state.mkdir()
    (state / "approvals.json").write_text('{"format": 1, "seq": 3, "records": [{"prefix": "198.51.100.7"')
    res = run(env, GOOD[:-4] + ["--control_socket", f"{WORK}/bad.sock", "--state_dir", str(state)])
    assert res.returncode == 1
    lines = error_lines(res)
    assert len(lines) == 1 and "approvals.json" in lines[0], res.stderr


def test_sigint_stops_cleanly_with_counters(env):
    ready = env.workdir / "ready"
    exe = str(env.build_dir / "control" / "portcullis")
    proc = subprocess.Popen(["ip", "netns", "exec", env.ns_gw, exe, *EAL, "--", *GOOD, "--ready_file", str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for("ready file", ready.exists, timeout=30, proc=proc)
        ctl = [str(env.build_dir / "tools" / "portcullisctl"), "--socket", f"{WORK}/ctl.sock", "--json", "stats"]

        def forwarding():  # net_null hands the worker frames as fast as it takes them
            res = subprocess.run(ctl, capture_output=True, text=True)
            return res.returncode == 0 and json.loads(res.stdout)["counters"]["fwd_outbound"] > 0

        wait_for("frames forwarded", forwarding, timeout=30, proc=proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "final counters:" in out
    assert not ready.exists(), "the ready file must go with the daemon"
    assert not (env.workdir / "ctl.sock").exists(), "the control socket must go with the daemon"


def test_second_daemon_on_the_same_socket_is_refused(env):
    exe = str(env.build_dir / "control" / "portcullis")
    ready = env.workdir / "ready"
    first = subprocess.Popen(["ip", "netns", "exec", env.ns_gw, exe, *EAL, "--", *GOOD, "--ready_file", str(ready)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("ready file", ready.exists, timeout=30, proc=first)
        eal2 = [a.replace("pctdaemon", "pctdaemon2") for a in EAL]
        res = run(env, GOOD, eal=eal2)
        assert res.returncode == 1
        assert "is in use by a running daemon" in error_lines(res)[0]
        assert first.poll() is None, "the running daemon must be left alone"
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        subprocess.run(["rm", "-rf", "/var/run/dpdk/pctdaemon2"])


def test_tables_bigger_than_the_memory_stop_the_start(env):
    """max_flows that the process cannot have is refused with one line naming the key, before a port comes up,
    not by the OOM killer later. RLIMIT_DATA (1 GiB) makes the limit the same on any machine."""
    def one_gib():
        resource.setrlimit(resource.RLIMIT_DATA, (1 << 30, resource.RLIM_INFINITY))
    ready = env.workdir / "ready"
    res = run(env, GOOD + ["--max_flows", "16777216", "--ready_file", str(ready)], preexec_fn=one_gib)
    assert res.returncode == 2, res.stderr
    lines = error_lines(res)
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("portcullis: error: max_flows: 16777216 flows per worker need 4 GiB; "
                               "RLIMIT_DATA leaves the process "), lines[0]
    assert not ready.exists()
    res = run(env, GOOD + ["--max_flows", "4000000000"])
    assert res.returncode == 2
    assert error_lines(res) == ["portcullis: error: max_flows: 4000000000 is out of range (16-67108864)"]


def generated_rules(n):
    out = []
    for i in range(n):
        out.append(f'{100000 + i} ehlo refuse /spam-host-{i}\\.example$/i "EHLO spam-host-{i}"' if i % 2 == 0 else
                   f"{100000 + i} mail_from refuse /<[^>@]*@bulk-{i}\\.example>/i")
    return "\n".join(out) + "\n"


def test_too_many_rules_stop_the_start(env):
    rules = env.workdir / "many-rules"
    rules.mkdir(exist_ok=True)
    (rules / "a.rules").write_text(generated_rules(6))
    res = run(env, GOOD + ["--rules_dir", str(rules), "--max_rules", "5"])
    assert res.returncode == 2
    assert error_lines(res) == [f"portcullis: error: {rules}/a.rules: 6 rules exceed max_rules = 5"], res.stderr


def test_a_rules_compile_past_its_timeout_is_killed(env):
    """5,000 rules take seconds to compile; with rules_compile_timeout = 1 the compiler child is killed, the
    start fails with the figures, and no compiler is left running."""
    rules = env.workdir / "slow-rules"
    rules.mkdir(exist_ok=True)
    (rules / "big.rules").write_text(generated_rules(5000))
    res = run(env, GOOD + ["--rules_dir", str(rules), "--max_rules", "5000", "--rules_compile_timeout", "1"])
    assert res.returncode == 2
    assert error_lines(res) == ["portcullis: error: rules: compiling 5000 rules took longer than "
                                "rules_compile_timeout = 1 s"], res.stderr
    left = subprocess.run(["pgrep", "-f", f"rules-compiler {rules}"], capture_output=True, text=True)
    assert left.stdout == "", "the compiler child must be gone"
