#!/usr/bin/env bash
# adapter-axum: store conformance and races on SQLite and a real PostgreSQL
# server, then the black-box HTTP scenarios against the example MCP server
# on both stores.
set -euo pipefail
cd "$(dirname "$0")/../.."

export DATABASE_URL
DATABASE_URL=$(bash scripts/pg.sh start)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  bash scripts/pg.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# All features: the SQL stores and the demo application (tests/demo.rs).
cargo test -p adapter-axum --all-features --locked

cargo build -p adapter-axum --features demo --example mcp_server --locked
cargo build -p http-scenarios --locked
bin="$CARGO_TARGET_DIR/debug/examples/mcp_server"
scenarios="$CARGO_TARGET_DIR/debug/http-scenarios"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_ready() {
  local url=$1
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$url/.well-known/oauth-authorization-server"; then return 0; fi
    sleep 0.2
  done
  echo "server at $url did not become ready" >&2
  return 1
}

run_scenarios() {
  local label=$1 policy=$2; shift 2
  local port data
  port=$(free_port)
  data=$(mktemp -d)
  local envcmd=(env)
  # The embedded store is chosen by the absence of DATABASE_URL.
  [ "$label" = "PostgreSQL" ] || envcmd=(env -u DATABASE_URL)
  "${envcmd[@]}" "$bin" --bind "127.0.0.1:$port" --data-dir "$data" --auto-approve demo --refresh-policy "$policy" "$@" \
    >"$data/server.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$port"
  echo "-- http scenarios: $label ($policy)"
  if ! "$scenarios" --base-url "http://127.0.0.1:$port" --refresh-policy "$policy"; then
    echo "---- server log ($label)"; tail -n 50 "$data/server.log"
    return 1
  fi
}

run_scenarios "embedded store" strict
run_scenarios "embedded store" grace
run_scenarios "PostgreSQL" strict
