#!/usr/bin/env python3
"""Group a flat perf profile (perf report --no-children --sort symbol
--stdio) of the bearer-validation benchmark by what the code does, and print
one JSON object: {"kind": "perf", "groups": [[name, percent], ...], "top": [[symbol, percent], ...]}.

Self time only: a symbol's share is the time spent in its own instructions
(inlined callees included), so SHA-256 compression called by HMAC counts
under SHA-256, and so on.
"""
import json
import re
import sys

GROUPS = [
    ("SHA-256 (credential id, HMAC-SHA256 key-encryption key)", r"sha2::|sha256|Sha256|hmac::|digest::|block_buffer|crypto::kek"),
    ("ChaCha20-Poly1305 (unwrap the grant key, open the props)",
     r"chacha|poly1305|aead::|universal_hash|core_arch::x86::avx"),
    ("JSON (decode the two records, build the props value)", r"serde_json|serde::|serde_core|records::"),
    ("allocation and freeing", r"malloc|free|realloc|calloc|alloc::alloc|__rust_alloc|__rust_dealloc|RawVec|drop_in_place|"
     r"_int_|unlink_chunk|malloc_consolidate"),
    ("memcpy / memcmp / memset", r"mem(cpy|move|cmp|set)|__memcmp|bcmp"),
    ("base64 (decode the token) and hex (record keys)", r"base64|crypto::hex"),
    ("URL parsing and canonicalisation (request URI, audience)", r"url::|idna|percent_encoding|canonical_resource"),
    ("http types (request, headers, URI) and bytes", r"http::|HeaderMap|HeaderValue|header::|bytes::"),
    ("string formatting and UTF-8 checks", r"fmt::|core::str::|from_utf8|String as core::fmt"),
    ("in-memory store (BTreeMap, record copies)", r"btree|BTreeMap|MemoryStore|testing::memory"),
    ("oauth-core (bearer parsing, checks, the drive loop)", r"oauth_core"),
    ("criterion harness", r"criterion|core::hint::black_box"),
]

rows = []
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^\s+([\d.]+)%\s+\[[.k]\]\s+(.*?)\s*$", line)
    if m:
        rows.append((m.group(2), float(m.group(1))))

totals = {name: 0.0 for name, _ in GROUPS}
other = 0.0
for sym, pct in rows:
    for name, rx in GROUPS:
        if re.search(rx, sym):
            totals[name] += pct
            break
    else:
        other += pct
groups = sorted(([n, round(p, 1)] for n, p in totals.items() if p > 0), key=lambda x: -x[1])
listed = sum(p for _, p in rows)
groups.append(["other symbols", round(other, 1)])
if listed < 99.5:
    groups.append(["symbols under 0.2% each", round(100 - listed, 1)])
top = [[s[:110], p] for s, p in sorted(rows, key=lambda r: -r[1])[:15]]
print(json.dumps({"kind": "perf", "bench": "bearer validation (GET /mcp)", "groups": groups, "top": top}))
