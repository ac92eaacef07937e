#!/usr/bin/env bash
# Real-client interop against the example Lambda function: the three suites
# 35-interop-axum.sh runs against axum,
#
#   * oauth4webapi (node --test e2e/interop-oauth4webapi.test.mjs)
#   * Authlib      (e2e/interop_authlib.py, in the venv ~/.cache/mcp-oauth/venv)
#   * rmcp         (oauth-core/interop-rmcp, the Rust MCP SDK's OAuth client)
#
# against adapter-lambda/example (`mcp-lambda`) under `cargo lambda watch`
# (function URL emulation at the root of a free loopback port, up to 6
# concurrent instances), its records in DynamoDB on moto_server,
# auto-approving for `demo`, strict rotation. Run by scripts/test.sh after
# 60-lambda.sh, whose build it reuses (the same `cargo lambda watch`
# arguments and target directory), or alone:
#
#   bash scripts/test.d/67-lambda-interop.sh
#
# Installs what is missing (idempotent; under SKIP_INSTALL=1 a missing piece
# is an error). Everything it starts is stopped by PID on exit.
# LAMBDA_INTEROP_KEEP_LOGS=1 keeps the logs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
mkdir -p "$CARGO_TARGET_DIR"

started=$SECONDS
log() { printf '[lambda-interop %3ds] %s\n' "$((SECONDS - started))" "$*"; }

. scripts/lib/lambda.sh
. scripts/lib/interop.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/lambda-interop.XXXXXX")
cleanup() {
  local status=$?
  lambda_cleanup
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 60 lines)" >&2
      tail -n 60 "$f" >&2 || true
    done
  fi
  if [ -n "${LAMBDA_INTEROP_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

lambda_tools
interop_setup
lambda_moto "$work/moto.log"
log "set up"

lambda_start strict "$work" MCP_AUTO_APPROVE=demo MCP_REFRESH_POLICY=strict
interop_run "Lambda, DynamoDB (moto)" "$lambda_url"
lambda_stop "$lambda_watcher"

log "done"
interop_summary
