#!/usr/bin/env python3
"""Criterion's results as JSON lines, for scripts/bench.sh:

    criterion_json.py CRITERION_DIR OUTPUT.txt LOADAVG [NAME_SUFFIX]

Reads each benchmark's estimates (mean and median with their 95% confidence
intervals, standard deviation, median absolute deviation) from
CRITERION_DIR/*/new/, and the outliers criterion reported from its printed
OUTPUT; one {"kind": "criterion", ...} object per benchmark.
"""
import json
import os
import re
import sys

base, text, la = sys.argv[1], open(sys.argv[2]).read().splitlines(), sys.argv[3]
suffix = sys.argv[4] if len(sys.argv) > 4 else ""

# Criterion prints "NAME  time: [...]", or NAME alone on a line when it is
# long and "time:" on the next; then "Found N outliers among M measurements".
outliers = {}
current = None
previous = ""
for line in text:
    if "time:" in line:
        name = line.split("time:")[0].strip()
        current = name or previous
    m = re.match(r"^Found (\d+) outliers among (\d+) measurements", line)
    if m and current:
        outliers[current] = f"{m.group(1)}/{m.group(2)}"
    if line.strip() and not line.startswith((" ", "Found", "Benchmarking")):
        previous = line.strip()

for d in sorted(os.listdir(base)):
    est = os.path.join(base, d, "new", "estimates.json")
    meta = os.path.join(base, d, "new", "benchmark.json")
    if not os.path.exists(est):
        continue
    e = json.load(open(est))
    b = json.load(open(meta))
    name = b.get("full_id") or b.get("title") or d

    def ci(k):
        return [e[k]["confidence_interval"]["lower_bound"], e[k]["point_estimate"],
                e[k]["confidence_interval"]["upper_bound"]]

    # What criterion prints as "time": the slope of its linear regression
    # when it sampled linearly, the mean otherwise.
    typical = ci("slope") if e.get("slope") else ci("mean")
    print(json.dumps({"kind": "criterion", "name": name + suffix, "typical_ns": typical,
                      "typical_is": "slope" if e.get("slope") else "mean",
                      "mean_ns": ci("mean"), "median_ns": ci("median"),
                      "std_dev_ns": e["std_dev"]["point_estimate"], "mad_ns": e["median_abs_dev"]["point_estimate"],
                      "outliers": outliers.get(name, "0/100"), "loadavg_before": la}))
