#!/usr/bin/env bash
# Real-client interop against the axum example, then a bounded soak:
#
#   * oauth4webapi (node --test e2e/interop-oauth4webapi.test.mjs)
#   * Authlib      (e2e/interop_authlib.py, in the venv ~/.cache/mcp-oauth/venv)
#   * rmcp         (oauth-core/interop-rmcp, the Rust MCP SDK's OAuth client)
#
# each against the example started with `--auto-approve demo` on the
# embedded store and on PostgreSQL, then scripts/soak.sh (PostgreSQL,
# SOAK_SECONDS, default 60). Every suite takes the server's base URL, so the
# Worker and Lambda steps can run the same files against their servers:
#
#   INTEROP_BASE_URL=$url node --test e2e/interop-oauth4webapi.test.mjs
#   ~/.cache/mcp-oauth/venv/bin/python e2e/interop_authlib.py --base-url "$url"
#   "$CARGO_TARGET_DIR/debug/interop-rmcp" --base-url "$url"
#
# Installs what is missing (idempotent): node_modules via `npm ci` when
# absent or stale, the venv and e2e/requirements.txt when not satisfied.
# Starts PostgreSQL (scripts/pg.sh) and stops it at exit; stops the servers
# by PID. INTEROP_SKIP_SOAK=1 skips the soak; INTEROP_KEEP_LOGS=1 keeps logs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
mkdir -p "$CARGO_TARGET_DIR"
venv=${INTEROP_VENV:-$HOME/.cache/mcp-oauth/venv}

log() { printf '[interop-axum] %s\n' "$*"; }

# ------------------------------------------------------------------ installs
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.e2e-package-lock.sha256
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating the venv $venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv"; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
fi
# pip only when a pinned requirement is not installed at its version.
if ! "$venv/bin/python" - e2e/requirements.txt <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
missing = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        if version(name) != want:
            missing.append(line)
    except PackageNotFoundError:
        missing.append(line)
sys.exit(1 if missing else 0)
PY
then
  log "pip install -r e2e/requirements.txt into $venv"
  "$venv/bin/pip" install --disable-pip-version-check -q -r e2e/requirements.txt
fi

# --------------------------------------------------------------------- build
# adapter-axum gates the example application behind a `demo` feature once it
# has one; pass it when the manifest declares it.
example_features=()
if grep -Eq '^demo[[:space:]]*=' adapter-axum/Cargo.toml; then example_features=(--features demo); fi
log "building the mcp_server example and interop-rmcp"
cargo build -p adapter-axum --example mcp_server "${example_features[@]}" --locked
cargo build -p interop-rmcp --locked
server_bin="$CARGO_TARGET_DIR/debug/examples/mcp_server"
rmcp_bin="$CARGO_TARGET_DIR/debug/interop-rmcp"
for b in "$server_bin" "$rmcp_bin" "$CARGO_TARGET_DIR/debug/soak-load"; do
  [ -x "$b" ] || { echo "[interop-axum] $b was not built" >&2; exit 1; }
done

# ------------------------------------------------------------------- servers
work=$(mktemp -d "${TMPDIR:-/tmp}/interop-axum.XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  bash scripts/pg.sh stop >/dev/null 2>&1 || true
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 40 lines)" >&2
      tail -n 40 "$f" >&2 || true
    done
  fi
  if [ -n "${INTEROP_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

database_url=$(bash scripts/pg.sh start)

# start NAME DATABASE_URL|"": the example with --auto-approve demo on a free
# loopback port; sets $url once it answers (bounded to 60 s).
start_server() {
  local name=$1 db=$2
  local data="$work/$name-data" log="$work/$name.log"
  mkdir -p "$data"
  # Create the log before the background start: the readiness loop reads it
  # at once, possibly before the child has opened it.
  : >"$log"
  # Only the flags given here: no MCP_* from the caller's environment; the
  # embedded store is chosen by the absence of DATABASE_URL.
  local envcmd=(env -u DATABASE_URL -u MCP_BIND -u MCP_ISSUER -u MCP_DATA_DIR -u MCP_USERS -u MCP_AUTO_APPROVE
    -u MCP_ACCESS_TOKEN_TTL -u MCP_REFRESH_TOKEN_TTL -u MCP_REFRESH_POLICY)
  [ -z "$db" ] || envcmd+=(DATABASE_URL="$db")
  "${envcmd[@]}" "$server_bin" --bind 127.0.0.1:0 --data-dir "$data" --auto-approve demo >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  url=
  local deadline=$((SECONDS + 60))
  while :; do
    kill -0 "$pid" 2>/dev/null || { echo "[interop-axum] server $name exited before it was ready" >&2; return 1; }
    [ -n "$url" ] || url=$(sed -n 's/^ *Issuer: *\(http:\/\/127\.0\.0\.1:[0-9][0-9]*\) *$/\1/p' "$log" | head -n 1)
    if [ -n "$url" ] && curl -fs -o /dev/null --max-time 2 "$url/.well-known/oauth-authorization-server"; then break; fi
    [ "$SECONDS" -lt "$deadline" ] || { echo "[interop-axum] server $name not ready after 60 s" >&2; return 1; }
    sleep 0.2
  done
  log "server $name ready at $url (pid $pid)"
}

passed=0
failed=0
failures=()
# suite LABEL CMD...: run one suite, bounded by $suite_timeout seconds, count it.
suite_timeout=300
suite() {
  local label=$1
  shift
  log "--- $label"
  if timeout --kill-after=10 "$suite_timeout" "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$label")
  fi
}

for store in embedded postgres; do
  db=
  [ "$store" = embedded ] || db=$database_url
  start_server "$store" "$db"
  suite "oauth4webapi ($store)" env INTEROP_BASE_URL="$url" node --test --test-timeout=120000 e2e/interop-oauth4webapi.test.mjs
  suite "Authlib ($store)" "$venv/bin/python" e2e/interop_authlib.py --base-url "$url"
  suite "rmcp ($store)" "$rmcp_bin" --base-url "$url"
done

if [ -z "${INTEROP_SKIP_SOAK:-}" ]; then
  # The soak uses its own database in the cluster started above (and leaves
  # stopping it to this script).
  suite_timeout=$(( ${SOAK_SECONDS:-60} + 600 ))
  suite "soak ${SOAK_SECONDS:-60} s (PostgreSQL)" env SOAK_SKIP_BUILD=1 bash scripts/soak.sh
fi

log "suites: $passed passed, $failed failed${failures:+ (${failures[*]})}"
[ "$failed" -eq 0 ]
