#!/usr/bin/env bash
# The benchmarks, in one command: every figure in docs/benchmarks.md comes
# from one run of this script on one machine, and the script rewrites the
# generated part of that page at the end.
#
#   bash scripts/bench.sh                  # everything (about 15 minutes warm, more on a cold machine)
#   bash scripts/bench.sh core http        # only some phases (the page keeps the others' last figures
#                                          #  only if they are in the same results directory)
#
# Phases (in this order; default: all of them):
#   core   criterion benches of the core's hot paths (oauth-core/benches/core.rs),
#          a perf profile of bearer validation by symbol, storage round trips
#          per flow (oauth-core/examples/round_trips.rs)
#   http   wrk against, one after the other, with the same settings:
#            a  the incumbent (@cloudflare/workers-oauth-provider 1.2.3) in a small Worker
#            b  our Rust Worker (adapter-worker/example)
#               (informational: b3, the same at opt-level 3; fj and fr, a do-nothing
#               Worker in JavaScript and in workers-rs, the runtimes' floor)
#               -- a and b in ONE workerd process (Miniflare), each on its own port,
#                  same compatibility date, same local KV store
#            c  the axum example on PostgreSQL          (release build)
#            d  the axum example on SQLite (embedded)   (release build)
#            e  the Lambda example under `cargo lambda watch` on moto (informational)
#          routes: validated GET /mcp/echo, the 401 path (no token), AS metadata;
#          plus the incumbent's KV operations per flow, counted in workerd
#   scale  bearer-check latency with 1 grant and with N generated grants:
#          PostgreSQL (N = BENCH_PG_GRANTS) and DynamoDB on moto (N = BENCH_DYNAMO_GRANTS)
#   report regenerate the figures section of docs/benchmarks.md from the results
#
# Settings (environment):
#   BENCH_DURATION      seconds per measured wrk run            (default 10)
#   BENCH_WARMUP        seconds of unrecorded warm-up per run   (default 3)
#   BENCH_THREADS       wrk threads                             (default 2)
#   BENCH_CONNECTIONS   wrk connections                         (default 16)
#   BENCH_PG_GRANTS     generated grants for the PostgreSQL scale test (default 1000000)
#   BENCH_DYNAMO_GRANTS generated grants for the DynamoDB scale test   (default 300000)
#   BENCH_SCALE_REPEATS alternating runs per side in the scale tests  (default 3)
#   BENCH_SCALE_SECS    seconds per scale run                         (default 5)
#   BENCH_TARGETS       which http targets to run, e.g. "cd"        (default abcde)
#   BENCH_PG_ROOT, BENCH_PG_PORT  the benchmark's own PostgreSQL cluster
#                       (default /tmp/oauth-pg-bench, 15442; stopped at exit)
#   BENCH_OUT           results directory (default $CARGO_TARGET_DIR/bench/results)
#   BENCH_CRITERION_ARGS extra criterion flags (e.g. "--measurement-time 2" for a quick look)
#   BENCH_KEEP_LOGS=1   keep the servers' logs
#   BENCH_NO_EXTRAS=1   skip the informational Workers (b3, fj, fr)
#   BENCH_NO_DOC=1      do not rewrite docs/benchmarks.md
#   SKIP_INSTALL=1      install nothing; a missing tool is an error (or, for
#                       the Rust Worker and the Lambda example, "not available")
#
# Loopback only. Every load run is bounded by -d and wrapped in a timeout.
# Every process started here is stopped by PID (or process group) on exit.
# Not a test: nothing here asserts a time, and scripts/test.sh does not run it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
mkdir -p "$CARGO_TARGET_DIR"

BENCH_DURATION=${BENCH_DURATION:-10}
BENCH_WARMUP=${BENCH_WARMUP:-3}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-16}
BENCH_PG_GRANTS=${BENCH_PG_GRANTS:-1000000}
BENCH_DYNAMO_GRANTS=${BENCH_DYNAMO_GRANTS:-300000}
BENCH_SCALE_REPEATS=${BENCH_SCALE_REPEATS:-3}
BENCH_SCALE_SECS=${BENCH_SCALE_SECS:-5}
out=${BENCH_OUT:-$CARGO_TARGET_DIR/bench/results}
bench=$root/scripts/bench
results=$out/results.jsonl

phases=("$@")
[ "${#phases[@]}" -gt 0 ] || phases=(core http scale report)
want() { local p; for p in "${phases[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }
BENCH_TARGETS=${BENCH_TARGETS:-abcde}
target() { want http && [[ $BENCH_TARGETS == *"$1"* ]]; }
for p in "${phases[@]}"; do
  case $p in core | http | scale | report) ;; *) echo "unknown phase: $p (core, http, scale, report)" >&2; exit 2 ;; esac
done

started=$SECONDS
log() { printf '[bench %4ds] %s\n' "$((SECONDS - started))" "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

CARGO_LAMBDA_VERSION=1.9.2
MOTO_VERSION=5.2.5
WORKER_BUILD_VERSION=0.8.7
venv=$HOME/.cache/mcp-oauth/venv
# Our own throwaway PostgreSQL cluster (scripts/pg.sh), not the tests' default
# one: a test run elsewhere on the machine stops that one when it finishes.
export PG_ROOT=${BENCH_PG_ROOT:-/tmp/oauth-pg-bench} PG_PORT=${BENCH_PG_PORT:-15442}

mkdir -p "$out"
# A phase run again replaces its own earlier results, and only those.
if want core || want http || want scale; then
  if [ -f "$results" ]; then
    python3 - "$results" "$BENCH_TARGETS" "${phases[@]}" <<'EOF'
import json, sys
path, targets, phases = sys.argv[1], sys.argv[2], set(sys.argv[3:])
def replaced(r):
    if r.get("phase") not in phases:
        return False
    if r.get("phase") == "http":
        return (r.get("target") or "a") in targets
    return True
keep = [l for l in open(path) if l.strip() and not replaced(json.loads(l))]
open(path, "w").writelines(keep)
EOF
  fi
fi

# record PHASE JSON: one result line, stamped with the phase and the load average.
record() {
  python3 - "$results" "$1" "$2" <<'EOF'
import json, sys, time
path, phase, obj = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
obj["phase"] = phase
obj.setdefault("loadavg", open("/proc/loadavg").read().split()[:3])
obj.setdefault("at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
with open(path, "a") as f:
    f.write(json.dumps(obj) + "\n")
EOF
}

# ------------------------------------------------------------------ installs
need_install() { [ -z "${SKIP_INSTALL:-}" ] || die "$1 is missing and SKIP_INSTALL is set"; }

if ! command -v wrk >/dev/null; then
  need_install wrk
  log "apt-get install wrk"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
if want core && ! command -v perf >/dev/null; then
  # perf is optional: without it the profile is skipped.
  if [ -z "${SKIP_INSTALL:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null 2>&1 || true
  fi
fi

lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.e2e-package-lock.sha256
if want http && { [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; }; then
  need_install node_modules
  log "npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

# The Lambda tools, as scripts/test.d/60-lambda.sh installs them.
lambda_tools() {
  if [ ! -x "$venv/bin/python" ]; then
    need_install "the venv at $venv"
    python3 -m venv "$venv"
  fi
  local wanted=()
  "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -qF "$CARGO_LAMBDA_VERSION" ||
    wanted+=("cargo-lambda==$CARGO_LAMBDA_VERSION")
  { [ -x "$venv/bin/moto_server" ] &&
    "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; } ||
    wanted+=("moto[server]==$MOTO_VERSION")
  if [ "${#wanted[@]}" -gt 0 ]; then
    need_install "${wanted[*]}"
    log "pip install ${wanted[*]}"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${wanted[@]}"
  fi
}

# ------------------------------------------------------------------ processes
work=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
groups=() # process groups (setsid) to stop on exit
pg_started=
cleanup() {
  local status=$?
  local g
  for g in "${groups[@]}"; do stop_group "$g"; done
  if [ -n "$pg_started" ]; then bash scripts/pg.sh stop >/dev/null 2>&1 || true; fi
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 30 lines)" >&2
      tail -n 30 "$f" >&2 || true
    done
  fi
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: run CMD in its own process group, output to $work/NAME.log;
# sets $pid (= the group id).
start() {
  local name=$1
  shift
  : >"$work/$name.log"
  setsid "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  groups+=("$pid")
}

# stop_group PGID: TERM the group, KILL what is left after 10 s.
stop_group() {
  local g=$1
  kill -0 -- "-$g" 2>/dev/null || return 0
  kill -TERM -- "-$g" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$g" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || true
  wait "$g" 2>/dev/null || true
  local kept=() x
  for x in "${groups[@]}"; do [ "$x" = "$g" ] || kept+=("$x"); done
  groups=("${kept[@]}")
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_http URL SECONDS PID: until URL answers 2xx, while PID lives.
wait_http() {
  local url=$1 deadline=$((SECONDS + $2)) p=$3
  until curl -fs -o /dev/null --max-time 5 "$url"; do
    kill -0 "$p" 2>/dev/null || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.3
  done
}

# token BASE_URL: an access token through the server's real flow.
token() {
  python3 "$bench/oauth_client.py" token "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# expect_status WANT URL [TOKEN]: one request, before any load, to make sure
# the load measures the path it names.
expect_status() {
  local want=$1 url=$2 tok=${3:-} got
  if [ -n "$tok" ]; then
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -H "Authorization: Bearer $tok" "$url")
  else
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$url")
  fi
  [ "$got" = "$want" ] || { log "expected $want from $url, got $got"; return 1; }
}

# rss_sampler PID FILE: the peak VmRSS (kB) of PID, sampled every 200 ms, to FILE when killed.
rss_sampler() {
  local p=$1 file=$2 peak=0 rss
  trap 'echo "$peak" >"$file"; exit 0' TERM
  while kill -0 "$p" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    sleep 0.2 &
    wait $!
  done
  echo "$peak" >"$file"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# load PHASE TARGET ROUTE URL [TOKEN] [key=value ...]: a warm-up, then one
# measured wrk run with the shared settings; the result is recorded.
# Extra key=value pairs (strings) go into the record. Settings may be
# overridden for one call with WRK_THREADS / WRK_CONNECTIONS.
load() {
  local phase=$1 target=$2 route=$3 url=$4 tok=${5:-}
  shift 5 || shift $#
  local t=${WRK_THREADS:-$BENCH_THREADS} c=${WRK_CONNECTIONS:-$BENCH_CONNECTIONS} d=${WRK_DURATION:-$BENCH_DURATION}
  local hdr=()
  [ -n "$tok" ] && hdr=(-H "Authorization: Bearer $tok")
  if [ "$BENCH_WARMUP" -gt 0 ]; then
    timeout --kill-after=5 $((BENCH_WARMUP + 30)) wrk -t"$t" -c"$c" -d"${BENCH_WARMUP}s" "${hdr[@]}" "$url" >/dev/null
  fi
  local la
  la=$(cut -d' ' -f1-3 /proc/loadavg)
  local line
  line=$(timeout --kill-after=5 $((d + 60)) \
    wrk -t"$t" -c"$c" -d"${d}s" --latency -s "$bench/summary.lua" "${hdr[@]}" "$url" |
    sed -n 's/^WRKJSON //p')
  [ -n "$line" ] || { log "wrk printed no summary for $target $route"; return 1; }
  local extra=("target=$target" "route=$route" "threads=$t" "connections=$c" "duration_s=$d" "loadavg_before=$la" "$@")
  local obj
  obj=$(python3 - "$line" "$route" "${extra[@]}" <<'EOF'
import json, sys
w = json.loads(sys.argv[1]); route = sys.argv[2]
for kv in sys.argv[3:]:
    k, _, v = kv.partition("=")
    w[k] = v
w["rps"] = w["requests"] / (w["duration_us"] / 1e6)
errors = w["connect_errors"] + w["read_errors"] + w["write_errors"] + w["timeouts"]
# Every response must have the status the route is about (all 401 on the
# 401 path, none outside 2xx/3xx elsewhere), and at most 0.1% of requests
# may fail at the socket or time out (wrk's 2 s): scripts/bench/report.py
# applies the same rule.
w["valid"] = errors <= 0.001 * max(w["requests"], 1) and (
    w["status_errors"] == w["requests"] if route == "401" else w["status_errors"] == 0)
print(json.dumps(w))
EOF
)
  record "$phase" "$obj"
  python3 -c '
import json,sys; w=json.loads(sys.argv[1])
print("  %-10s %-9s %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms%s" % (w["target"], w["route"], w["rps"], w["p50_us"]/1000, w["p99_us"]/1000, "" if w["valid"] else "  INVALID (wrong statuses or too many socket errors)"))' "$obj" >&2
}

# cpu_share PHASE TARGET URL TOKEN: where the machine's CPU goes while the
# validated GET runs: one more, unrecorded wrk run at the shared settings
# under a system-wide perf profile (cpu-clock), summed by thread name and
# binary. Skipped without perf. Other engineers' processes show up too.
cpu_share() {
  command -v perf >/dev/null || return 0
  local phase=$1 target=$2 url=$3 tok=$4 secs=5
  timeout --kill-after=5 $((secs + 30)) wrk -t"$BENCH_THREADS" -c"$BENCH_CONNECTIONS" -d"$((secs + 2))s" \
    -H "Authorization: Bearer $tok" "$url" >/dev/null &
  local w=$!
  sleep 1
  if perf record -q -a -e cpu-clock -F 499 -o "$work/cpu-$target.data" -- sleep "$secs" >/dev/null 2>&1; then
    perf report -i "$work/cpu-$target.data" --no-children --sort comm,dso --stdio 2>/dev/null \
      >"$work/cpu-$target.txt" || true
    record "$phase" "$(python3 "$bench/cpu_share.py" "$work/cpu-$target.txt" "$target")"
  fi
  wait "$w" 2>/dev/null || true
}

# three_routes PHASE TARGET BASE TOKEN [key=value...]: the three measured routes.
three_routes() {
  local phase=$1 target=$2 base=$3 tok=$4
  shift 4
  expect_status 200 "$base/mcp/echo" "$tok"
  expect_status 401 "$base/mcp/echo"
  expect_status 200 "$base/.well-known/oauth-authorization-server"
  load "$phase" "$target" echo "$base/mcp/echo" "$tok" "$@"
  load "$phase" "$target" 401 "$base/mcp/echo" "" "$@"
  load "$phase" "$target" metadata "$base/.well-known/oauth-authorization-server" "" "$@"
}

not_available() { # PHASE TARGET REASON
  log "$2: not available: $3"
  record "$1" "$(python3 -c 'import json,sys; print(json.dumps({"target": sys.argv[1], "route": "*", "not_available": sys.argv[2]}))' "$2" "$3")"
}

# ------------------------------------------------------------------ machine
machine_json() {
  python3 - <<'EOF'
import json, os, platform, re, subprocess
def run(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return ""
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip(); break
mem = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) // 1024
osr = dict(l.rstrip().split("=", 1) for l in open("/etc/os-release") if "=" in l)
print(json.dumps({
    "kind": "machine", "cpu": cpu, "cores": os.cpu_count(), "mem_mib": mem,
    "kernel": platform.release(), "os": osr.get("PRETTY_NAME", "").strip('"'),
    "virt": ", ".join(x for x in [
        next((l.split(":", 1)[1].strip() + " guest" for l in run("lscpu").splitlines() if l.startswith("Hypervisor vendor")), ""),
        run("systemd-detect-virt", "--container")] if x and x != "none"),
    "rustc": run("rustc", "--version"), "node": run("node", "--version"),
    "wrk": (run("wrk", "-v") or "").splitlines()[0] if run("wrk", "-v") else "",
    "postgres": run("bash", "-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1 | xargs -I{} {}/postgres --version"),
    "workerd": run("node", "-e", "console.log(require('workerd/package.json').version)"),
    "miniflare": run("node", "-e", "console.log(require('miniflare/package.json').version)"),
    "incumbent": run("node", "-e", "console.log(require('@cloudflare/workers-oauth-provider/package.json').version)"),
    "git": run("git", "rev-parse", "--short", "HEAD") + (" (dirty)" if run("git", "status", "--porcelain") else ""),
}))
EOF
}

# ================================================================== core
if want core; then
  log "machine"
  record core "$(machine_json)"

  log "storage round trips per flow (oauth-core/examples/round_trips.rs)"
  cargo run -q --release --locked -p oauth-core --example round_trips -- --json >"$work/round_trips.jsonl"
  while read -r line; do
    record core "$(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); o["kind"]="round_trips"; print(json.dumps(o))' "$line")"
  done <"$work/round_trips.jsonl"

  log "criterion: cargo bench -p oauth-core --bench core"
  rm -rf "$CARGO_TARGET_DIR/criterion"
  la=$(cut -d' ' -f1-3 /proc/loadavg)
  # Two invocations: the code-exchange benchmark authorizes the same user
  # and client over and over, and each authorization revokes the previous
  # grants (revoke_existing_grants, on by default), including the grant of
  # the refresh token the refresh benchmark was set up with; run alone, the
  # refresh benchmark finds its grant alive.
  : >"$out/criterion.txt"
  for filter in '^(bearer|401|AS metadata|registration|code exchange)' '^refresh'; do
    # shellcheck disable=SC2086 # BENCH_CRITERION_ARGS is a word list
    cargo bench --locked -p oauth-core --bench core -- ${BENCH_CRITERION_ARGS:-} "$filter" 2>&1 |
      tee -a "$out/criterion.txt" >&2
  done
  python3 "$bench/criterion_json.py" "$CARGO_TARGET_DIR/criterion" "$out/criterion.txt" "$la" >"$work/criterion.jsonl"
  while read -r line; do record core "$line"; done <"$work/criterion.jsonl"

  # Informational: bearer validation with the portable ChaCha20 and Poly1305
  # backends (the RustCrypto crates' own cfg switches) instead of the AVX2
  # ones they pick at run time here; on wasm32 (Workers) the portable ones
  # are all there is. Its own target directory, so the main build is untouched.
  if [ -z "${BENCH_NO_EXTRAS:-}" ]; then
    log "criterion: bearer validation with the portable ChaCha20/Poly1305 backends (informational)"
    soft_dir=$CARGO_TARGET_DIR/bench-soft
    rm -rf "$soft_dir/criterion"
    la=$(cut -d' ' -f1-3 /proc/loadavg)
    # shellcheck disable=SC2086 # BENCH_CRITERION_ARGS is a word list
    RUSTFLAGS="--cfg poly1305_force_soft --cfg chacha20_force_soft" CARGO_TARGET_DIR=$soft_dir \
      cargo bench --locked -p oauth-core --bench core -- ${BENCH_CRITERION_ARGS:-} '^bearer' 2>&1 |
      tee "$out/criterion-soft.txt" >&2
    python3 "$bench/criterion_json.py" "$soft_dir/criterion" "$out/criterion-soft.txt" "$la" \
      ", portable ChaCha20/Poly1305 (--cfg chacha20_force_soft --cfg poly1305_force_soft)" >"$work/criterion-soft.jsonl"
    while read -r line; do record core "$line"; done <"$work/criterion-soft.jsonl"
  fi

  # Where bearer validation's time goes: a flat profile (self time by
  # symbol) of the criterion benchmark alone, grouped by what the code does.
  bench_bin=$(find "$CARGO_TARGET_DIR/release/deps" -maxdepth 1 -type f -executable -name 'core-*' -newer oauth-core/benches/core.rs 2>/dev/null |
    xargs -r ls -t | head -n1)
  if command -v perf >/dev/null && [ -n "$bench_bin" ]; then
    log "perf profile of bearer validation"
    if perf record -q -e cpu-clock -F 4999 -o "$work/perf.data" -- \
      "$bench_bin" --bench --profile-time 8 'bearer validation' >"$work/perf-run.log" 2>&1; then
      perf report -i "$work/perf.data" --no-children --sort symbol --stdio --percent-limit 0.2 2>/dev/null \
        >"$out/perf-bearer.txt" || true
      python3 "$bench/perf_groups.py" "$out/perf-bearer.txt" >"$work/perf.json"
      record core "$(cat "$work/perf.json")"
    else
      log "perf record failed (see $work/perf-run.log); profile skipped"
    fi
  else
    log "perf or the bench binary is missing; profile skipped"
  fi
fi

# ================================================================== http
if target c || target d || want scale; then
  log "release build of the axum example"
  cargo build --release --locked -p adapter-axum --example mcp_server --features demo
  axum_bin=$CARGO_TARGET_DIR/release/examples/mcp_server
fi

if target a || target b; then
  # ---------------------------------------------------------------- a + b
  log "the incumbent's Worker: bundling (esbuild, as wrangler does)"
  compat=$(sed -n 's/^compatibility_date *= *"\(.*\)"/\1/p' adapter-worker/example/wrangler.toml)
  compat_inc=$(sed -n 's/^compatibility_date *= *"\(.*\)"/\1/p' "$bench/incumbent-worker/wrangler.toml")
  [ "$compat" = "$compat_inc" ] ||
    log "WARNING: compatibility dates differ (ours $compat, incumbent worker $compat_inc); both run with $compat"
  mkdir -p "$work/incumbent"
  node_modules/.bin/esbuild "$bench/incumbent-worker/src/index.js" --bundle --format=esm --platform=browser \
    --conditions=workerd,worker,browser --main-fields=module,main --external:'cloudflare:*' \
    --outfile="$work/incumbent/index.js" --log-level=warning

  # Our Rust Worker: the deployable bundle, built as scripts/test.d/50-worker.sh
  # builds it (worker-build --profile worker), into a directory of our own.
  rust_worker=
  rust_reason=
  if ! target b; then
    rust_reason="not selected"
  elif [ ! -f adapter-worker/example/Cargo.toml ]; then
    rust_reason="adapter-worker/example is missing"
  else
    bash "$bench/build-rust-worker.sh" "$CARGO_TARGET_DIR/bench/rust-worker" >"$work/rust-worker-build.log" 2>&1 &&
      rust_worker=$CARGO_TARGET_DIR/bench/rust-worker ||
      rust_reason="its bundle did not build (worker-build; see the log below)"
    if [ -z "$rust_worker" ]; then tail -n 20 "$work/rust-worker-build.log" >&2 || true; fi
  fi
  # Informational, to show what limits (b): the same Worker at opt-level 3,
  # and the floor under any workers-rs Worker next to the same floor in
  # JavaScript (scripts/bench/floor-worker).
  rust_o3= rust_floor=
  if [ -n "$rust_worker" ] && [ -z "${BENCH_NO_EXTRAS:-}" ]; then
    bash "$bench/build-rust-worker.sh" "$CARGO_TARGET_DIR/bench/rust-worker-o3" adapter-worker/example release \
      >>"$work/rust-worker-build.log" 2>&1 && rust_o3=$CARGO_TARGET_DIR/bench/rust-worker-o3
    bash "$bench/build-rust-worker.sh" "$CARGO_TARGET_DIR/bench/floor-worker" scripts/bench/floor-worker \
      >>"$work/rust-worker-build.log" 2>&1 && rust_floor=$CARGO_TARGET_DIR/bench/floor-worker
  fi

  port_a=$(free_port) port_b=$(free_port) port_b3=$(free_port) port_fj=$(free_port) port_fr=$(free_port)
  python3 - "$work" "$compat" "$port_a" "$port_b" "$rust_worker" "$port_b3" "$rust_o3" "$port_fj" \
    "$bench/floor-worker/floor.js" "$port_fr" "$rust_floor" >"$work/workers.json" <<'EOF'
import json, sys
work, compat, pa, pb, rust, pb3, rust_o3, pfj, floor_js, pfr, rust_floor = sys.argv[1:12]
workers = [{"name": "incumbent", "script": f"{work}/incumbent/index.js", "port": int(pa)}]
ours = {"bindings": {"MCP_AUTO_APPROVE": "demo"},
        "durableObjects": {"OAUTH_STORE": {"className": "OAuthStoreObject", "useSQLite": True}}}
if rust:
    workers.append({"name": "rust", "script": f"{rust}/index.js", "port": int(pb), **ours})
if rust_o3:
    workers.append({"name": "rust-o3", "script": f"{rust_o3}/index.js", "port": int(pb3), **ours})
if rust_floor:
    workers.append({"name": "floor-js", "script": floor_js, "port": int(pfj)})
    workers.append({"name": "floor-rs", "script": f"{rust_floor}/index.js", "port": int(pfr)})
print(json.dumps({"compatibilityDate": compat, "persistDir": f"{work}/workerd-state", "workers": workers}))
EOF
  log "workerd (Miniflare): the incumbent on :$port_a${rust_worker:+, our Rust Worker on :$port_b}"
  start workerd node "$bench/workers.mjs" "$work/workers.json"
  workerd_group=$pid
  wait_http "http://127.0.0.1:$port_a/.well-known/oauth-authorization-server" 90 "$pid" || die "workerd did not start"
  url_a=http://127.0.0.1:$port_a
  url_b=http://127.0.0.1:$port_b

  if target a; then
    log "the incumbent's KV operations per flow, counted in workerd"
    python3 "$bench/oauth_client.py" count-kv "$url_a" >"$work/kv.jsonl"
    while read -r line; do
      record http "$(python3 -c 'import json,sys; o=json.loads(sys.argv[1]); o["kind"]="incumbent_kv"; print(json.dumps(o))' "$line")"
    done <"$work/kv.jsonl"

    log "(a) the incumbent Worker"
    tok_a=$(token "$url_a")
    three_routes http a "$url_a" "$tok_a"
    cpu_share http a "$url_a/mcp/echo" "$tok_a"
  fi

  if ! target b; then
    :
  elif [ -n "$rust_worker" ]; then
    if wait_http "$url_b/.well-known/oauth-authorization-server" 30 "$workerd_group" && tok_b=$(token "$url_b"); then
      log "(b) our Rust Worker"
      three_routes http b "$url_b" "$tok_b" "bundle_gzip_bytes=$(gzip -9c "$rust_worker/index_bg.wasm" | wc -c)"
    else
      not_available http b "the Worker did not answer the OAuth flow"
    fi
  else
    not_available http b "$rust_reason"
  fi
  if [ -n "${tok_b:-}" ]; then cpu_share http b "$url_b/mcp/echo" "$tok_b"; fi
  if [ -n "$rust_o3" ] && tok_b3=$(token "http://127.0.0.1:$port_b3"); then
    log "(b3) our Rust Worker built at opt-level 3 (informational)"
    three_routes http b3 "http://127.0.0.1:$port_b3" "$tok_b3" "profile=release"
  fi
  if [ -n "$rust_floor" ]; then
    log "the Workers' floor: a do-nothing Worker in JavaScript and in Rust (informational)"
    expect_status 200 "http://127.0.0.1:$port_fj/"
    expect_status 200 "http://127.0.0.1:$port_fr/"
    load http fj floor "http://127.0.0.1:$port_fj/" ""
    load http fr floor "http://127.0.0.1:$port_fr/" ""
  fi
  stop_group "$workerd_group"
fi

# ---------------------------------------------------------------- PostgreSQL
pg_url=
pg_fresh_db() { # NAME: a fresh database in the throwaway cluster; prints its URL
  pg_started=1
  PG_DB=bench bash scripts/pg.sh start >/dev/null
  local psql
  psql=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/psql
  "$psql" -q -h 127.0.0.1 -p "${PG_PORT:-15432}" -U postgres -d postgres \
    -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1" >/dev/null
  echo "postgres://postgres@127.0.0.1:${PG_PORT:-15432}/$1"
}
psql_db() { "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/psql" -X -q -h 127.0.0.1 -p "${PG_PORT:-15432}" -U postgres -d "$1" "${@:2}"; }

# start_axum NAME [DATABASE_URL]: the release example on a free port; sets
# $axum_url and $axum_pid (the server process itself, for RSS).
start_axum() {
  local name=$1 db=${2:-}
  mkdir -p "$work/$name-data"
  if [ -n "$db" ]; then
    start "$name" env RUST_LOG=warn DATABASE_URL="$db" "$axum_bin" --bind 127.0.0.1:0 --data-dir "$work/$name-data" --auto-approve demo
  else
    start "$name" env -u DATABASE_URL RUST_LOG=warn "$axum_bin" --bind 127.0.0.1:0 --data-dir "$work/$name-data" --auto-approve demo
  fi
  axum_pid=$pid
  axum_url=
  local deadline=$((SECONDS + 60))
  while :; do
    kill -0 "$axum_pid" 2>/dev/null || die "the axum example ($name) exited"
    [ -n "$axum_url" ] ||
      axum_url=$(sed -n 's/^ *Issuer: *\(http:\/\/127\.0\.0\.1:[0-9][0-9]*\) *$/\1/p' "$work/$name.log" | head -n1 || true)
    if [ -n "$axum_url" ] && curl -fs -o /dev/null --max-time 2 "$axum_url/.well-known/oauth-authorization-server"; then break; fi
    [ "$SECONDS" -lt "$deadline" ] || die "the axum example ($name) was not ready after 60 s"
    sleep 0.2
  done
}

# axum_routes PHASE TARGET: the three routes with RSS sampled under load.
axum_routes() {
  local phase=$1 target=$2
  local tok idle
  tok=$(token "$axum_url")
  idle=$(rss_kb "$axum_pid")
  rss_sampler "$axum_pid" "$work/rss-$target" &
  local sampler=$!
  three_routes "$phase" "$target" "$axum_url" "$tok"
  kill -TERM "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  cpu_share "$phase" "$target" "$axum_url/mcp/echo" "$tok"
  local hwm
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$axum_pid/status")
  record "$phase" "{\"kind\":\"rss\",\"target\":\"$target\",\"idle_kb\":$idle,\"peak_sampled_kb\":$(cat "$work/rss-$target"),\"hwm_kb\":$hwm,\"after_kb\":$(rss_kb "$axum_pid")}"
  log "  $target RSS: idle $((idle / 1024)) MiB, peak under load $(($(cat "$work/rss-$target") / 1024)) MiB (VmHWM $((hwm / 1024)) MiB)"
}

# alternate STORE SMALL_URL SMALL_TOKEN LARGE_URL LARGE_TOKEN N [key=value...]: the
# bearer check on the 1-grant and the N-grant store in turn, BENCH_SCALE_REPEATS
# times each at one connection (latency without queueing), then once each at
# the shared settings; alternating keeps the machine's drifting load from
# passing for a difference between the two.
alternate() {
  local store=$1 su=$2 st=$3 lu=$4 lt=$5 n=$6 r
  shift 6
  for r in $(seq "$BENCH_SCALE_REPEATS"); do
    WRK_THREADS=1 WRK_CONNECTIONS=1 WRK_DURATION=$BENCH_SCALE_SECS \
      load scale "$store-1" echo "$su/mcp/echo" "$st" "store=$store" "grants=1" "repeat=$r" "$@"
    WRK_THREADS=1 WRK_CONNECTIONS=1 WRK_DURATION=$BENCH_SCALE_SECS \
      load scale "$store-$n" echo "$lu/mcp/echo" "$lt" "store=$store" "grants=$n" "repeat=$r" "$@"
  done
  WRK_DURATION=$BENCH_SCALE_SECS load scale "$store-1" echo "$su/mcp/echo" "$st" "store=$store" "grants=1" "repeat=1" "$@"
  WRK_DURATION=$BENCH_SCALE_SECS load scale "$store-$n" echo "$lu/mcp/echo" "$lt" "store=$store" "grants=$n" "repeat=1" "$@"
}

if target c; then
  pg_url=$(pg_fresh_db bench)
  log "(c) the axum example on PostgreSQL"
  start_axum axum-pg "$pg_url"
  axum_pg_group=$pid
  axum_routes http c
  stop_group "$axum_pg_group"
fi

if want scale; then
  log "scale: PostgreSQL, 1 grant vs $BENCH_PG_GRANTS (two databases, two servers, measured alternately)"
  small_db=$(pg_fresh_db bench_small)
  large_db=$(pg_fresh_db bench_large)
  start_axum pg-small "$small_db"
  small_group=$pid small_url=$axum_url
  start_axum pg-large "$large_db"
  large_group=$pid large_url=$axum_url
  small_tok=$(token "$small_url")
  large_tok=$(token "$large_url")
  expect_status 200 "$small_url/mcp/echo" "$small_tok"
  expect_status 200 "$large_url/mcp/echo" "$large_tok"
  # The real token's record, written before the generated ones: for the plan below.
  realkey=$(psql_db bench_large -tAc "SELECT key FROM oauth_records WHERE key LIKE 'token/%' LIMIT 1")
  log "  seeding $BENCH_PG_GRANTS grants (a grant, an access-token and a user-index row each) with generate_series"
  seed_started=$SECONDS
  psql_db bench_large -v ON_ERROR_STOP=1 -v n="$BENCH_PG_GRANTS" -f "$bench/seed_pg.sql" >"$work/seed-pg.log"
  seed_secs=$((SECONDS - seed_started))
  rows_small=$(psql_db bench_small -tAc "SELECT count(*) FROM oauth_records")
  rows_large=$(psql_db bench_large -tAc "SELECT count(*) FROM oauth_records")
  size=$(psql_db bench_large -tAc "SELECT pg_size_pretty(pg_total_relation_size('oauth_records'))")
  log "  $rows_large rows ($size) in ${seed_secs}s"
  # The plan of the bearer check's read of the real token's record.
  psql_db bench_large -tA -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT value, revision, expires_at FROM oauth_records WHERE key = '$realkey' AND (expires_at IS NULL OR expires_at > extract(epoch from now())::bigint)" >"$out/pg-explain.txt" || true
  alternate postgres "$small_url" "$small_tok" "$large_url" "$large_tok" "$BENCH_PG_GRANTS" \
    "rows_small=$rows_small" "rows_large=$rows_large" "table_size=$size" "seed_s=$seed_secs"
  stop_group "$small_group"
  stop_group "$large_group"
fi

if target d; then
  log "(d) the axum example on SQLite (embedded)"
  start_axum axum-sqlite
  axum_sqlite_group=$pid
  axum_routes http d
  stop_group "$axum_sqlite_group"
fi

# ---------------------------------------------------------------- Lambda + DynamoDB
if target e || want scale; then
  lambda_ok=
  if lambda_tools; then lambda_ok=1; fi
  export PATH=$venv/bin:$PATH
fi
if [ -n "${lambda_ok:-}" ]; then
  moto_port=$(free_port)
  start moto "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port"
  moto_group=$pid
  wait_http "http://127.0.0.1:$moto_port/" 30 "$moto_group" || die "moto_server did not start"
  export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$moto_port AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  log "building the Lambda example (release)"
  cargo build --release --locked -p mcp-lambda
  # start_function NAME: the example under cargo lambda watch --release with
  # its own table, on a free port; sets $lurl, $lgroup and $ltable.
  start_function() {
    local name=$1 port
    port=$(free_port)
    lurl=http://127.0.0.1:$port
    ltable=oauth-bench-$name-$$
    local setting
    for setting in "MCP_ISSUER=$lurl" MCP_CREATE_TABLE=1 "OAUTH_DYNAMODB_TABLE=$ltable" MCP_AUTO_APPROVE=demo \
      "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test \
      AWS_SECRET_ACCESS_KEY=test RUST_LOG=warn; do
      printf '%s="%s"\n' "${setting%%=*}" "${setting#*=}"
    done >"$work/lambda-$name.env"
    start "lambda-$name" cargo lambda watch --release -p mcp-lambda --locked --ignore-changes --disable-cors \
      --invoke-address 127.0.0.1 --invoke-port "$port" --concurrency 6 --env-file "$work/lambda-$name.env"
    lgroup=$pid
    # The emulator builds the function on its first invocation.
    wait_http "$lurl/.well-known/oauth-authorization-server" 600 "$lgroup" && return 0
    log "the function ($name) did not answer; the end of its log:"
    tail -n 20 "$work/lambda-$name.log" >&2 || true
    return 1
  }
  log "the Lambda example under cargo lambda watch --release (moto for DynamoDB)"
  if start_function small; then
    small_url=$lurl small_group=$lgroup
    if target e; then
      log "(e) the Lambda example (informational)"
      three_routes http e "$small_url" "$(token "$small_url")" "store=dynamodb (moto_server $MOTO_VERSION)"
    fi
    if want scale; then
      log "scale: DynamoDB (moto), 1 grant vs $BENCH_DYNAMO_GRANTS (two tables, two functions, measured alternately)"
      if start_function large; then
        large_url=$lurl large_group=$lgroup
        small_tok=$(token "$small_url")
        large_tok=$(token "$large_url")
        expect_status 200 "$small_url/mcp/echo" "$small_tok"
        expect_status 200 "$large_url/mcp/echo" "$large_tok"
        log "  seeding $BENCH_DYNAMO_GRANTS grants with BatchWriteItem"
        seed_started=$SECONDS
        "$venv/bin/python" "$bench/seed_dynamo.py" "$ltable" "$BENCH_DYNAMO_GRANTS" >"$work/seed-dynamo.log"
        seed_secs=$((SECONDS - seed_started))
        items=$(tail -n1 "$work/seed-dynamo.log")
        log "  $items items in ${seed_secs}s"
        alternate dynamodb "$small_url" "$small_tok" "$large_url" "$large_tok" "$BENCH_DYNAMO_GRANTS" \
          "items_large=$items" "seed_s=$seed_secs"
        stop_group "$large_group"
      else
        not_available scale dynamo "the second function did not start under cargo lambda watch within 600 s"
      fi
    fi
    stop_group "$small_group"
  else
    if target e; then not_available http e "the function did not start under cargo lambda watch within 600 s"; fi
    if want scale; then not_available scale dynamo "the function did not start under cargo lambda watch within 600 s"; fi
  fi
  stop_group "$moto_group"
elif target e || want scale; then
  if target e; then not_available http e "cargo-lambda / moto could not be installed"; fi
  if want scale; then not_available scale dynamo "cargo-lambda / moto could not be installed"; fi
fi

# ================================================================== report
if want report && [ -z "${BENCH_NO_DOC:-}" ]; then
  log "writing docs/benchmarks.md from $results"
  python3 "$bench/report.py" "$results" "$out" docs/benchmarks.md
fi
log "done in $((SECONDS - started)) s; results in $results"
