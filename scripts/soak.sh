#!/usr/bin/env bash
# Bounded soak of the axum example on PostgreSQL: several minutes of mixed
# traffic from the soak-load generator (oauth-core/interop-rmcp), every
# response checked against the status it must have, the server's RSS
# sampled to show memory stays flat. Loopback only; stops by itself.
#
#   bash scripts/soak.sh                    # 60 s (CI default)
#   SOAK_SECONDS=300 bash scripts/soak.sh   # the figures in docs/verification.md
#
# Settings (environment):
#   SOAK_SECONDS       run length, 1..3600              (default 60)
#   SOAK_RATE          operations per second, in total  (default 300)
#   SOAK_CONCURRENCY   concurrent workers               (default 16)
#   SOAK_MAX_REQUESTS  hard cap on HTTP requests        (default 2000000)
#   SOAK_SAMPLE_SECS   RSS sampling period              (default 5)
#   SOAK_RSS_GROWTH    allowed RSS growth, percent, last window over first (default 20)
#   SOAK_DATABASE_URL  use this PostgreSQL database as is; otherwise the
#                      throwaway cluster of scripts/pg.sh gets a fresh
#                      database `soak` (started, and stopped again at exit
#                      if this script started it)
#   SOAK_SKIP_BUILD    set to use the binaries already in $CARGO_TARGET_DIR
#   SOAK_KEEP_LOGS     set to keep the server log
#   SOAK_RUST_LOG      the server's log filter (default warn: a line per
#                      request would dominate the run)
#
# Exits non-zero on any unexpected response, a dead server, error lines in
# the server log, or RSS growth past the limit.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
SOAK_SECONDS=${SOAK_SECONDS:-60}
SOAK_RATE=${SOAK_RATE:-300}
SOAK_CONCURRENCY=${SOAK_CONCURRENCY:-16}
SOAK_MAX_REQUESTS=${SOAK_MAX_REQUESTS:-2000000}
SOAK_SAMPLE_SECS=${SOAK_SAMPLE_SECS:-5}
SOAK_RSS_GROWTH=${SOAK_RSS_GROWTH:-20}

log() { printf '[soak] %s\n' "$*"; }

# --------------------------------------------------------------------- build
# adapter-axum gates the example application behind a `demo` feature once it
# has one; pass it when the manifest declares it.
example_features=()
if grep -Eq '^demo[[:space:]]*=' adapter-axum/Cargo.toml; then example_features=(--features demo); fi
if [ -z "${SOAK_SKIP_BUILD:-}" ]; then
  log "building the mcp_server example and the soak-load generator"
  cargo build -p adapter-axum --example mcp_server "${example_features[@]}" --locked
  cargo build -p interop-rmcp --bin soak-load --locked
fi
server_bin="$CARGO_TARGET_DIR/debug/examples/mcp_server"
load_bin="$CARGO_TARGET_DIR/debug/soak-load"
for b in "$server_bin" "$load_bin"; do
  [ -x "$b" ] || { echo "[soak] $b is missing (build it, or unset SOAK_SKIP_BUILD)" >&2; exit 1; }
done

# ------------------------------------------------------------------ database
work=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
server_pid=
pg_started=
cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_started" ]; then bash scripts/pg.sh stop >/dev/null 2>&1 || true; fi
  if [ "$status" -ne 0 ] && [ -f "$work/server.log" ]; then
    echo "----- server log (last 40 lines)" >&2
    tail -n 40 "$work/server.log" >&2 || true
  fi
  if [ -n "${SOAK_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${SOAK_DATABASE_URL:-}" ]; then
  database_url=$SOAK_DATABASE_URL
else
  bash scripts/pg.sh status 2>/dev/null || pg_started=1
  # A fresh database each run, so every soak starts from the same state.
  export PG_DB=soak
  bash scripts/pg.sh start >/dev/null
  psql_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)/psql
  "$psql_bin" -q -h 127.0.0.1 -p "${PG_PORT:-15432}" -U postgres -d postgres \
    -c 'DROP DATABASE IF EXISTS soak WITH (FORCE)' -c 'CREATE DATABASE soak' >/dev/null
  database_url=$(bash scripts/pg.sh url)
fi

# -------------------------------------------------------------------- server
mkdir -p "$work/data"
# Created before the background start, so the readiness loop never reads a
# log the child has not opened yet.
: >"$work/server.log"
env -u MCP_BIND -u MCP_ISSUER -u MCP_DATA_DIR -u MCP_USERS -u MCP_AUTO_APPROVE -u MCP_ACCESS_TOKEN_TTL \
  -u MCP_REFRESH_TOKEN_TTL -u MCP_REFRESH_POLICY RUST_LOG="${SOAK_RUST_LOG:-warn}" DATABASE_URL="$database_url" \
  "$server_bin" --bind 127.0.0.1:0 --data-dir "$work/data" --auto-approve demo >"$work/server.log" 2>&1 &
server_pid=$!
url=
deadline=$((SECONDS + 60))
while :; do
  kill -0 "$server_pid" 2>/dev/null || { echo "[soak] the server exited before it was ready" >&2; exit 1; }
  [ -n "$url" ] || url=$(sed -n 's/^ *Issuer: *\(http:\/\/127\.0\.0\.1:[0-9][0-9]*\) *$/\1/p' "$work/server.log" | head -n 1)
  if [ -n "$url" ] && curl -fs -o /dev/null --max-time 2 "$url/.well-known/oauth-authorization-server"; then break; fi
  [ "$SECONDS" -lt "$deadline" ] || { echo "[soak] the server was not ready after 60 s" >&2; exit 1; }
  sleep 0.2
done
log "server ready at $url (pid $server_pid, PostgreSQL)"

# ---------------------------------------------------------------------- load
status=0
timeout --kill-after=10 $((SOAK_SECONDS + 120)) "$load_bin" \
  --base-url "$url" --server-pid "$server_pid" --seconds "$SOAK_SECONDS" --rate "$SOAK_RATE" \
  --concurrency "$SOAK_CONCURRENCY" --max-requests "$SOAK_MAX_REQUESTS" --sample-secs "$SOAK_SAMPLE_SECS" \
  --rss-growth-pct "$SOAK_RSS_GROWTH" || status=$?

# The server must have logged no errors or panics (refused OAuth requests
# are logged at info and are expected here).
if grep -E ' ERROR |panicked' "$work/server.log" >/dev/null; then
  echo "[soak] the server logged errors:" >&2
  grep -E ' ERROR |panicked' "$work/server.log" | head -n 20 >&2
  status=1
fi
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "[soak] the server died during the soak" >&2
  status=1
fi
[ "$status" -eq 0 ] && log "passed" || log "FAILED"
exit "$status"
