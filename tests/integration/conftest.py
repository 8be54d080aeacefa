"""Shared fixtures: the namespace lab (tools/lab/portcullis_lab.py) with the gateway and a real SMTP server.
The lab is removed when the tests end, also when they fail or are killed with SIGTERM (as meson does on a
timeout); a run killed harder is cleaned up by the next run, which removes its prefix's leftovers first."""
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools" / "lab"))
import portcullis_lab  # noqa: E402


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _raise_on_sigterm)


@pytest.fixture(scope="session", autouse=True)
def must_be_root():
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (network namespaces, raw sockets)")


@pytest.fixture(scope="module")
def lab(request):
    # One prefix per test module, so a leftover of one module never hides another's.
    prefix = "pct" + Path(request.module.__file__).stem.replace("test_", "")[:4]
    lab = portcullis_lab.Lab(prefix)
    try:
        lab.create()
        lab.start_mx()
        lab.start_gateway()
        yield lab
    finally:
        lab.cleanup()


def bare_namespace(prefix):
    """A fixture body for tests that run the daemon on virtual devices (net_null, net_pcap) rather than the
    veth lab: just the gateway namespace and a work directory, removed afterwards."""
    lab = portcullis_lab.Lab(prefix)
    lab.cleanup()
    lab.workdir.mkdir(parents=True)
    portcullis_lab.run(["ip", "netns", "add", lab.ns_gw])
    try:
        yield lab
    finally:
        lab.cleanup()
