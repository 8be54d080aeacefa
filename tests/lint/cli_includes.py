#!/usr/bin/python3
"""The CLI and the protocol library compile without the daemon's libraries: no object of portcullisctl,
api/ or common/ has a DPDK, Hyperscan, spdlog or CRoaring include path or define (so the CLI builds on an
operator's workstation: meson setup -Dcli_only=true). Reads the build's compile_commands.json."""
import json
import sys
from pathlib import Path

build = Path(sys.argv[1])
FORBIDDEN = ("dpdk", "hyperscan", "/hs", "spdlog", "roaring", "-include rte_config.h")
PARTS = ("tools/portcullisctl/", "api/", "common/")
checked, bad = 0, []
for entry in json.loads((build / "compile_commands.json").read_text()):
    src = entry["file"]
    if not any(part in src for part in PARTS) or "tests/" in src:
        continue
    checked += 1
    found = [f for f in FORBIDDEN if f in entry["command"]]
    if found:
        bad.append(f"{src}: {', '.join(found)}")
if checked < 6:
    sys.exit(f"only {checked} CLI/protocol objects found in {build}/compile_commands.json")
for b in bad:
    print(b)
print(f"{checked} objects of portcullisctl, api/ and common/ checked, {len(bad)} with a daemon library's path")
sys.exit(1 if bad else 0)
