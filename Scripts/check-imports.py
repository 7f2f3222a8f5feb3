#!/usr/bin/env python3
"""Every module declares in Package.swift what it imports (issue 15).

For each target of Package.swift, compares the modules its Swift files
import with the dependencies the target declares, and fails on an import
that is not declared (one that only works because another dependency
brings it along). System modules (Foundation, Glibc, …) are exempt.
Run by Scripts/test.sh; exits 1 with the list of undeclared imports.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM = {"Foundation", "Glibc", "Dispatch", "Synchronization", "Testing", "XCTest", "_Concurrency", "Darwin", "os", "Musl"}
# Products whose module names differ from the product name.
PRODUCT_MODULES = {"Metrics": {"Metrics", "CoreMetrics"}, "Histogram": {"Histogram"}}

dump = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, check=True, capture_output=True, text=True).stdout)
targets = {}
for t in dump["targets"]:
    deps = set()
    for d in t["dependencies"]:
        kind, value = next(iter(d.items()))
        name = value[0]
        deps |= PRODUCT_MODULES.get(name, {name}) if kind == "product" else {name}
    folder = t.get("path") or os.path.join("Tests" if t["type"] == "test" else "Sources", t["name"])
    targets[t["name"]] = (t["type"], folder, {x.replace("-", "_") for x in deps})

problems = []
for name, (kind, folder, deps) in sorted(targets.items()):
    if kind == "system":
        continue
    for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
        for f in files:
            if not f.endswith(".swift"):
                continue
            for line in open(os.path.join(dirpath, f), encoding="utf-8"):
                m = re.match(r'(?:@testable\s+|@_exported\s+|@preconcurrency\s+)?import\s+(?:struct\s+|class\s+|enum\s+|func\s+)?([A-Za-z0-9_]+)', line)
                if not m:
                    continue
                module = m.group(1)
                if module in SYSTEM or module == name.replace("-", "_") or module in deps:
                    continue
                problems.append(f"{name}: {os.path.relpath(os.path.join(dirpath, f), ROOT)} imports {module}, not declared in Package.swift")
if problems:
    print("\n".join(sorted(set(problems))))
    sys.exit(1)
print(f"imports: {len(targets)} targets declare what they import")
