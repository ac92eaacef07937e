#!/usr/bin/env bash
# Client ID metadata documents on Cloudflare Workers, in real workerd
# (wrangler dev --local): the example Worker (adapter-worker/example) with
# MCP_CIMD=1, its documents fetched by adapter-worker's WorkerFetcher on the
# platform's fetch, from a local HTTPS server with a CA generated per run
# (adapter-axum/examples/cimd_test_server.rs). Run by scripts/test.sh after
# 50-worker.sh (whose bundles it reuses), or alone:
#
#   bash scripts/test.d/55-worker-cimd.sh
#
# How the Worker reaches the test server: nothing in the Worker is loosened
# (WorkerFetcher has no settings). The test configures the local runtime
# instead, as production relies on Cloudflare's: wrangler's workerd trusts
# the CAs in NODE_EXTRA_CA_CERTS for outbound TLS (miniflare's "internet"
# service), so the test CA goes there; and miniflare's local network, unlike
# Cloudflare's egress, reaches loopback, so documents live at
# https://localhost:PORT.
#
#   1. the shipped wrangler.toml carries global_fetch_strictly_public (the
#      example's unit test checks it too), and the test configurations below
#      carry the shipped compatibility flags;
#   2. Worker A, the deployable bundle, auto-approve, MCP_CIMD=1, a 2 s fetch
#      budget, `denied.test` on the deny list: e2e/cimd.test.mjs (the full
#      flow with private_key_jwt: ES256 inline key, RS256 from jwks_uri,
#      refresh, replay and forged signature refused; a redirect refused and
#      not followed; oversized and slow documents refused; non-https and
#      IP-literal client IDs refused; the deny list). The cases that need a
#      name resolving to a special-use address are skipped: a Worker sees no
#      DNS answer or address, so it cannot refuse them (docs/cimd.md);
#   3. Worker B, the test bundle (dev routes), same runtime trust, and
#      Worker C, the same without the test CA:
#      adapter-worker/example/e2e/cimd-fetch.test.mjs drives WorkerFetcher
#      directly (POST /__dev/fetch): non-https, userinfo and IP-literal URLs
#      refused before any connection, a 3xx returned and its target never
#      asked for, the declared and the streamed body cap, the timeout, other
#      statuses, connection failures, and (Worker C) an untrusted
#      certificate refused.
#
# Installs what is missing through scripts/lib/worker.sh (under
# SKIP_INSTALL=1 a missing tool is an error). Every wrangler runs in its own
# process group and is stopped by it on exit. WORKER_CIMD_KEEP_LOGS=1 keeps
# the logs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
mkdir -p "$CARGO_TARGET_DIR"

started=$SECONDS
log() { printf '[worker-cimd %3ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { printf '[worker-cimd] ERROR: %s\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

. scripts/lib/worker.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/worker-cimd.XXXXXX")
docs_pid=
cleanup() {
  local status=$?
  worker_cleanup
  if [ -n "$docs_pid" ]; then
    kill "$docs_pid" 2>/dev/null || true
    wait "$docs_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 60 lines)" >&2
      tail -n 60 "$f" >&2 || true
    done
  fi
  if [ -n "${WORKER_CIMD_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

worker_tools

# ------------------------------------------------- the shipped configuration
shipped=$worker_example/wrangler.toml
flags_line=$(sed -n '/^\[/q; /^compatibility_flags *=/p' "$shipped")
[ -n "$flags_line" ] || die "$shipped has no top-level compatibility_flags"
grep -q '"global_fetch_strictly_public"' <<<"$flags_line" ||
  die "$shipped must enable global_fetch_strictly_public (client ID metadata documents rely on it)"
log "$shipped: $flags_line"

# ---------------------------------------------------------------- bundles
worker_bundle "$worker_example/build"
worker_bundle "$worker_example/build-dev" --features dev-routes
for variant in build build-dev; do
  worker_config "$work/wrangler-$variant.toml" "$variant"
  # The shipped flags, after the compatibility date (before any table).
  sed -i "/^compatibility_date *=/a $flags_line" "$work/wrangler-$variant.toml"
  grep -q global_fetch_strictly_public "$work/wrangler-$variant.toml" || die "the flag did not reach the test config"
done

# ------------------------------------------------------------ the documents
log "building the CIMD test server"
# --all-features: the feature set 10-axum.sh tests with, so its build is reused.
cargo build -p adapter-axum --all-features --example cimd_test_server --locked
"$CARGO_TARGET_DIR/debug/examples/cimd_test_server" --name localhost \
  --info "$work/docs.json" --ca "$work/ca.pem" >"$work/docs.log" 2>&1 &
docs_pid=$!
for _ in $(seq 100); do
  [ -f "$work/docs.json" ] && break
  kill -0 "$docs_pid" 2>/dev/null || die "the CIMD test server exited"
  sleep 0.1
done
[ -f "$work/docs.json" ] || die "the CIMD test server did not start"
log "$(head -n 1 "$work/docs.log")"

# ------------------------------------------------------------ the Workers
timeout_ms=2000
# workerd (through miniflare) trusts these CAs for the Workers' outbound TLS.
export NODE_EXTRA_CA_CERTS=$work/ca.pem
worker_start a "$work/wrangler-build.toml" "$(free_port)" "$work/kv-a" "$work/a.log" \
  --var MCP_AUTO_APPROVE:demo --var MCP_CIMD:1 --var "MCP_CIMD_FETCH_TIMEOUT_MS:$timeout_ms" \
  --var MCP_CIMD_DENY_HOSTS:denied.test
url_a=$worker_url
log "e2e/cimd.test.mjs against Worker A ($url_a, deployable bundle)"
E2E_AUTO_URL=$url_a CIMD_SERVER_LOG=$work/a.log CIMD_SERVER_INFO=$work/docs.json CIMD_HOST=localhost \
  CIMD_TIMEOUT_MS=$timeout_ms CIMD_DENIED_HOST=denied.test \
  timeout --kill-after=10 300 node --test --test-timeout=120000 e2e/cimd.test.mjs
worker_stop "$worker_group"

worker_start b "$work/wrangler-build-dev.toml" "$(free_port)" "$work/kv-b" "$work/b.log" \
  --var MCP_DEV_TEST_ROUTES:1
url_b=$worker_url
# Worker C: the same, in a workerd that does not trust the test CA.
unset NODE_EXTRA_CA_CERTS
worker_start c "$work/wrangler-build-dev.toml" "$(free_port)" "$work/kv-c" "$work/c.log" \
  --var MCP_DEV_TEST_ROUTES:1
url_c=$worker_url
log "adapter-worker/example/e2e/cimd-fetch.test.mjs (trusting: $url_b, not trusting: $url_c)"
WORKER_DEV_URL=$url_b WORKER_UNTRUSTED_URL=$url_c CIMD_SERVER_INFO=$work/docs.json \
  timeout --kill-after=10 300 node --test --test-timeout=120000 "$worker_example/e2e/cimd-fetch.test.mjs"

log "all green"
