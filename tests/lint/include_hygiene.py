#!/usr/bin/python3
"""Include hygiene, read off the build (compile_commands.json and the compiler's dependency files):
- the CLI and the protocol library compile without the daemon's libraries: no object of portcullisctl, api/
  or common/ has a DPDK, Hyperscan, spdlog or CRoaring include path (so the CLI builds on an operator's
  workstation: meson setup -Dcli_only=true);
- option parsing (control/config.cpp) includes no DPDK or Hyperscan header, directly or through another."""
import json
import subprocess
import sys
from pathlib import Path

build = Path(sys.argv[1])
FORBIDDEN = ("dpdk", "hyperscan", "/hs", "spdlog", "roaring", "-include rte_config.h")
PARTS = ("tools/portcullisctl/", "api/", "common/")
failures = []

checked = 0
for entry in json.loads((build / "compile_commands.json").read_text()):
    src = entry["file"]
    rel = src  # relative to the source tree: the build directory's "../" taken off (control/api/ is not api/)
    while rel.startswith("../"):
        rel = rel[3:]
    if not rel.startswith(PARTS):
        continue
    checked += 1
    found = [f for f in FORBIDDEN if f in entry["command"]]
    if found:
        failures.append(f"{src}: compiled with {', '.join(found)}")
if checked < 6:
    sys.exit(f"only {checked} CLI/protocol objects found in {build}/compile_commands.json")
print(f"{checked} objects of portcullisctl, api/ and common/: no daemon library's include path")

deps = subprocess.run(["ninja", "-C", str(build), "-t", "deps"], capture_output=True, text=True, check=True).stdout
block = next((b for b in deps.split("\n\n") if b.split(":", 1)[0].endswith("config.cpp.o")
              and "/control/" in b.split("\n", 2)[1] + "/"), None)
if block is None:
    sys.exit(f"no dependency record for control/config.cpp in {build} (ninja -t deps)")
headers = [line.strip() for line in block.splitlines()[1:] if line.strip()]
bad = [h for h in headers if "/dpdk/" in h or "/rte_" in h or "/hs/" in h or h.endswith("/hs.h")]
failures += [f"control/config.cpp includes {h}" for h in bad]
print(f"control/config.cpp: {len(headers) - 1} headers, {len(bad)} of DPDK or Hyperscan")

for f in failures:
    print(f)
sys.exit(1 if failures else 0)
