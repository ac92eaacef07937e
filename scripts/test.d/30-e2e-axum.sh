#!/usr/bin/env bash
# End-to-end tests of the axum example (adapter-axum/examples/mcp_server)
# with real clients: the MCP TypeScript SDK and headless Chromium driven by
# playwright-core. Run by scripts/test.sh as a step, or alone:
#
#   bash scripts/test.d/30-e2e-axum.sh
#
# Installs what is missing (idempotent): node_modules via `npm ci` when
# absent or stale against package-lock.json, and Debian's chromium when
# /usr/bin/chromium is absent (skipped, and then required, under
# SKIP_INSTALL=1). Builds the example once, starts two servers on free
# loopback ports (--bind 127.0.0.1:0) with throwaway data directories (one with
# `--auto-approve demo`, one with the real consent page), waits until they
# answer, runs `node --test e2e/`, and always stops the servers by PID.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
mkdir -p "$CARGO_TARGET_DIR"

log() { printf '[e2e-axum] %s\n' "$*"; }

# ------------------------------------------------------------------ installs
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.e2e-package-lock.sha256
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  log "npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ -n "${SKIP_INSTALL:-}" ]; then
    echo "[e2e-axum] /usr/bin/chromium is missing and SKIP_INSTALL is set" >&2
    exit 1
  fi
  log "installing Debian chromium"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# --------------------------------------------------------------------- build
log "building the mcp_server example"
cargo build -p adapter-axum --features demo --example mcp_server --locked
server_bin="$CARGO_TARGET_DIR/debug/examples/mcp_server"
[ -x "$server_bin" ] || { echo "[e2e-axum] $server_bin was not built" >&2; exit 1; }

# ------------------------------------------------------------------- servers
work=$(mktemp -d "${TMPDIR:-/tmp}/e2e-axum.XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      # Bounded wait for a graceful exit, then force it.
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 40 lines)" >&2
      tail -n 40 "$f" >&2 || true
    done
  fi
  if [ -n "${E2E_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME [extra args...]: start a server on a free loopback port
# (`--bind 127.0.0.1:0`; the example prints its issuer, which names the
# real port) and set $url to its base URL once it answers.
start_server() {
  local name=$1
  shift
  local data="$work/$name-data" log="$work/$name.log"
  mkdir -p "$data"
  # Created here, not by the background job's redirect, so the readiness
  # loop below can never read it before it exists.
  : >"$log"
  # Only the flags given here: no MCP_* or DATABASE_URL from the caller's
  # environment (without DATABASE_URL the example keeps SQLite in --data-dir).
  env -u DATABASE_URL -u MCP_BIND -u MCP_ISSUER -u MCP_DATA_DIR -u MCP_USERS -u MCP_AUTO_APPROVE \
    -u MCP_ACCESS_TOKEN_TTL -u MCP_REFRESH_TOKEN_TTL -u MCP_REFRESH_POLICY RUST_LOG="${RUST_LOG:-info}" \
    "$server_bin" --bind 127.0.0.1:0 --data-dir "$data" "$@" >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  url=
  # Readiness, bounded to 60 s: the banner names the issuer, then the
  # authorization-server metadata answers 200.
  local deadline=$((SECONDS + 60))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "[e2e-axum] server $name exited before it was ready" >&2
      return 1
    fi
    if [ -z "$url" ]; then
      url=$(sed -n 's/^ *Issuer: *\(http:\/\/127\.0\.0\.1:[0-9][0-9]*\) *$/\1/p' "$log" | head -n 1)
    fi
    if [ -n "$url" ] && curl -fs -o /dev/null --max-time 2 "$url/.well-known/oauth-authorization-server"; then
      break
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "[e2e-axum] server $name not ready after 60 s" >&2
      return 1
    fi
    sleep 0.2
  done
  log "server $name ready at $url (pid $pid)"
}

start_server auto --auto-approve demo
E2E_AXUM_AUTO_URL=$url
start_server consent
E2E_AXUM_CONSENT_URL=$url
export E2E_AXUM_AUTO_URL E2E_AXUM_CONSENT_URL

mkdir -p test-artifacts
log "node --test e2e/"
# Every test has its own timeout; these are backstops so a hang can never
# stall the suite: 5 min per test file, 15 min for the whole run.
timeout --kill-after=10 900 node --test --test-timeout=300000 e2e/
