#!/usr/bin/env python3
"""Sum a system-wide perf profile (perf report --sort comm,dso --stdio) by
process kind, for scripts/bench.sh: prints
{"kind": "cpu_share", "target": T, "groups": [[name, user %, kernel %], ...]}.

Percentages are of all CPU samples on the machine (both cores) during the
run, idle excluded by perf itself (cpu-clock samples only running tasks).
"""
import json
import re
import sys

# thread name (comm) -> what it is
KINDS = [
    ("wrk (the load generator)", r"^wrk$"),
    ("workerd", r"^workerd$|^kj-|^v8:"),
    ("our axum server", r"^mcp_server$|^tokio-r|^sqlx-"),
    ("PostgreSQL", r"^postgres$"),
    ("node (Miniflare, the emulators)", r"^node$|^MainThread$"),
    ("cargo lambda, function instances, moto", r"^cargo-lambda|^mcp-lambda|^moto|^python"),
    ("perf", r"^perf"),
    ("idle", r"^swapper"),
]

rows = []
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^\s+([\d.]+)%\s+(\S.*?)\s{2,}(\S.*?)\s*$", line)
    if m:
        rows.append((m.group(2).strip(), m.group(3).strip(), float(m.group(1))))

groups = {}
for comm, dso, pct in rows:
    kind = next((k for k, rx in KINDS if re.search(rx, comm)), "other processes (not this benchmark)")
    g = groups.setdefault(kind, [0.0, 0.0])
    g[1 if "kernel" in dso else 0] += pct
out = sorted(([k, round(u, 1), round(kk, 1)] for k, (u, kk) in groups.items()), key=lambda r: -(r[1] + r[2]))
print(json.dumps({"kind": "cpu_share", "target": sys.argv[2], "groups": out}))
