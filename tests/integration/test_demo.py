"""The README's first command runs this scenario (tools/demo --once, after its set-up): every step must behave as
the demo says, so that what a new user is shown is what the gateway does."""
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_scenario_behaves():
    res = subprocess.run(["/usr/bin/python3",
                          str(REPO / "tools" / "lab" / "demo.py"), "--once"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "All steps behaved" in res.stdout
    assert "UNEXPECTED" not in res.stdout
