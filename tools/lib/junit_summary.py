#!/usr/bin/python3
"""Prints one closing line over every test case the suites ran (gtest and pytest JUnit XML under BUILD):
'tests: N passed, N failed, N skipped'."""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

build = Path(sys.argv[1] if len(sys.argv) > 1 else "build")
passed = failed = skipped = 0
for xml in sorted(build.glob("*-junit.xml")):
    for case in ET.parse(xml).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None or case.get("result") == "skipped":
            skipped += 1
        else:
            passed += 1
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
