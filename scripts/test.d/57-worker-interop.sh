#!/usr/bin/env bash
# Real-client interop against the example Worker in local workerd: the
# three suites 35-interop-axum.sh runs against axum,
#
#   * oauth4webapi (node --test e2e/interop-oauth4webapi.test.mjs)
#   * Authlib      (e2e/interop_authlib.py, in the venv ~/.cache/mcp-oauth/venv)
#   * rmcp         (oauth-core/interop-rmcp, the Rust MCP SDK's OAuth client)
#
# each against the deployable bundle (adapter-worker/example/build, no
# development routes) under `wrangler dev --local`, auto-approving for
# `demo`, strict rotation, twice: records in Workers KV (the default store)
# and in the Durable Object store (MCP_STORE=durable). Run by scripts/test.sh
# after 50-worker.sh, whose bundle it reuses (scripts/lib/worker.sh checks
# the same stamp; a stale or missing bundle is rebuilt), or alone:
#
#   bash scripts/test.d/57-worker-interop.sh
#
# Installs what is missing (idempotent; under SKIP_INSTALL=1 a missing piece
# is an error). Every wrangler is stopped by its process group on exit.
# WORKER_INTEROP_KEEP_LOGS=1 keeps the logs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
mkdir -p "$CARGO_TARGET_DIR"

started=$SECONDS
log() { printf '[worker-interop %3ds] %s\n' "$((SECONDS - started))" "$*"; }

. scripts/lib/worker.sh
. scripts/lib/interop.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/worker-interop.XXXXXX")
cleanup() {
  local status=$?
  worker_cleanup
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 60 lines)" >&2
      tail -n 60 "$f" >&2 || true
    done
  fi
  if [ -n "${WORKER_INTEROP_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

worker_tools
worker_bundle "$worker_example/build"
interop_setup
worker_config "$work/wrangler.toml" build
log "set up"

for store in kv durable; do
  worker_start "$store" "$work/wrangler.toml" "$(free_port)" "$work/persist-$store" "$work/$store.log" \
    --var MCP_AUTO_APPROVE:demo --var MCP_REFRESH_POLICY:strict --var "MCP_STORE:$store"
  case $store in
    kv) where="Worker, Workers KV" banner="records in the KV namespace OAUTH_KV" ;;
    durable) where="Worker, Durable Object" banner="records in the Durable Object OAUTH_STORE" ;;
  esac
  interop_run "$where" "$worker_url"
  worker_stop "$worker_group"
  # The Worker names its store when its isolate starts: make sure the
  # suites ran against the one this pass is labelled with.
  grep -qF "$banner" "$work/$store.log" || {
    echo "[worker-interop] the $store Worker's log does not say \"$banner\"" >&2
    exit 1
  }
done

log "done"
interop_summary
