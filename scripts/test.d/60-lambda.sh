#!/usr/bin/env bash
# adapter-lambda, proven locally: the DynamoDB store on moto_server, then the
# example function (adapter-lambda/example, package and binary `mcp-lambda`) under
# `cargo lambda watch`, exercised over HTTP. Run by scripts/test.sh as a
# step, or alone:
#
#   bash scripts/test.d/60-lambda.sh
#
# 1. Installs what is missing (idempotent): a venv at ~/.cache/mcp-oauth/venv
#    with cargo-lambda 1.9.2 and moto[server] 5.2.5 (pip, only when absent or
#    another version), node_modules (`npm ci`) and Debian's chromium, as the
#    axum e2e step does. Under SKIP_INSTALL=1 a missing tool is an error.
# 2. Starts moto_server on a free loopback port (DynamoDB's stand-in).
# 3. `cargo test -p adapter-lambda`: the conformance suite and race cases
#    (50 concurrent tasks, exactly one winner), a differential run against
#    the reference store, error mapping.
# 4. Starts the function under `cargo lambda watch` (function URL emulation
#    at the root of a free loopback port, up to 6 concurrent instances, no
#    file watching, its own table) three times in turn:
#      strict, auto-approve:  http-scenarios --refresh-policy strict; the MCP
#                             TypeScript SDK e2e; 50 simultaneous
#                             redemptions of one code and 50 simultaneous
#                             refreshes of one token, exactly one 200 each;
#                             oauth4webapi's interop suite, when present
#      grace, auto-approve:   http-scenarios --refresh-policy grace
#      real pages:            the sign-in and consent pages in Chromium,
#                             served by several instances sharing DynamoDB
# Everything it starts is stopped by PID on exit (the watcher with its
# function instances). Loopback only; every wait is bounded.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
mkdir -p "$CARGO_TARGET_DIR"

CARGO_LAMBDA_VERSION=1.9.2
MOTO_VERSION=5.2.5
venv=$HOME/.cache/mcp-oauth/venv
started=$(date +%s)

log() { printf '[lambda %3ds] %s\n' "$(( $(date +%s) - started ))" "$*"; }
die() { echo "[lambda] $*" >&2; exit 1; }

# ------------------------------------------------------------------ installs
if [ ! -x "$venv/bin/python" ]; then
  [ -z "${SKIP_INSTALL:-}" ] || die "no venv at $venv and SKIP_INSTALL is set"
  log "creating $venv"
  python3 -m venv "$venv"
fi
wanted=()
"$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -qF "$CARGO_LAMBDA_VERSION" ||
  wanted+=("cargo-lambda==$CARGO_LAMBDA_VERSION")
{ [ -x "$venv/bin/moto_server" ] &&
  "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; } ||
  wanted+=("moto[server]==$MOTO_VERSION")
if [ "${#wanted[@]}" -gt 0 ]; then
  [ -z "${SKIP_INSTALL:-}" ] || die "missing ${wanted[*]} in $venv and SKIP_INSTALL is set"
  log "pip install ${wanted[*]}"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${wanted[@]}"
fi
# `cargo lambda` finds its binary on PATH.
export PATH=$venv/bin:$PATH

lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.e2e-package-lock.sha256
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  [ -z "${SKIP_INSTALL:-}" ] || die "node_modules is missing or stale and SKIP_INSTALL is set"
  log "npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi
if [ ! -x /usr/bin/chromium ]; then
  [ -z "${SKIP_INSTALL:-}" ] || die "/usr/bin/chromium is missing and SKIP_INSTALL is set"
  log "installing Debian chromium"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# ------------------------------------------------------------------ helpers
work=$(mktemp -d "${TMPDIR:-/tmp}/lambda.XXXXXX")
pids=()

# Every descendant of a process (cargo lambda watch runs each function
# instance as its child).
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

# Stop a process we started and everything it started, by PID: TERM, a
# bounded wait, then KILL.
stop_tree() {
  local all p
  all="$(descendants "$1") $1"
  kill $all 2>/dev/null || true
  for _ in $(seq 50); do
    local alive=
    for p in $all; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in $all; do kill -9 "$p" 2>/dev/null || true; done
  wait "$1" 2>/dev/null || true
}

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do stop_tree "$pid"; done
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 40 lines)" >&2
      tail -n 40 "$f" >&2 || true
    done
  fi
  if [ -n "${LAMBDA_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_http URL SECONDS PID: until URL answers 200, while PID lives.
wait_http() {
  local url=$1 deadline=$((SECONDS + $2)) pid=$3
  until curl -fs -o /dev/null --max-time 5 "$url"; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# ------------------------------------------------------------------ moto
moto_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$moto_port/" 30 "${pids[-1]}" || die "moto_server did not start"
log "moto_server on 127.0.0.1:$moto_port (pid ${pids[-1]})"
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$moto_port

# ------------------------------------------------------------------ the store
log "cargo test -p adapter-lambda"
cargo test -p adapter-lambda --locked

# ------------------------------------------------------------------ the function
log "building the example function and the scenario runner"
cargo build -p mcp-lambda --locked
cargo build -p http-scenarios --locked
scenarios="$CARGO_TARGET_DIR/debug/http-scenarios"

watcher=
url=
# start_function NAME [KEY=VALUE...]: serve the example under cargo lambda
# watch with these settings (an env file, since values may hold commas) on a
# free port, and set $url once its metadata answers.
start_function() {
  local name=$1
  shift
  local port env_file="$work/$name.env"
  port=$(free_port)
  # The issuer is what clients use: like a function URL, the emulator
  # serves the function at the root of its port.
  url=http://127.0.0.1:$port
  # Quoted, as dotenv wants values holding `=` or `,`.
  local setting
  for setting in \
    "MCP_ISSUER=$url" \
    MCP_CREATE_TABLE=1 \
    "OAUTH_DYNAMODB_TABLE=oauth-$name-$$" \
    "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB" \
    AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test \
    AWS_SECRET_ACCESS_KEY=test \
    "RUST_LOG=${RUST_LOG:-info,rmcp=warn}" \
    "$@"; do
    printf '%s="%s"\n' "${setting%%=*}" "${setting#*=}"
  done >"$env_file"
  # --disable-cors: the provider answers CORS itself (as on a function URL
  # without a CORS configuration). --ignore-changes: a test run must not
  # rebuild because a file changed under it.
  # The package has one binary, so the emulator also serves it at the
  # root (as well as under /lambda-url/mcp-lambda/, which a function URL
  # does not have).
  cargo lambda watch -p mcp-lambda --locked --ignore-changes --disable-cors \
    --invoke-address 127.0.0.1 --invoke-port "$port" --concurrency 6 --env-file "$env_file" \
    >"$work/$name.log" 2>&1 &
  watcher=$!
  pids+=("$watcher")
  wait_http "$url/.well-known/oauth-authorization-server" 180 "$watcher" ||
    die "the function ($name) did not answer within 180 s"
  log "function ($name) at $url (watcher pid $watcher)"
}

stop_function() {
  stop_tree "$watcher"
  local kept=()
  for p in "${pids[@]}"; do [ "$p" = "$watcher" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}

# 1. Strict rotation, auto-approve.
start_function strict MCP_AUTO_APPROVE=demo MCP_REFRESH_POLICY=strict
log "http-scenarios (strict)"
"$scenarios" --base-url "$url" --refresh-policy strict
log "MCP TypeScript SDK and concurrent redemptions"
E2E_AUTO_URL=$url timeout --kill-after=10 600 node --test --test-timeout=300000 \
  e2e/mcp-sdk.test.mjs e2e/races.test.mjs
# The other real-client suites that take any adapter's base URL.
if [ -f e2e/interop-oauth4webapi.test.mjs ]; then
  log "oauth4webapi interop"
  INTEROP_BASE_URL=$url timeout --kill-after=10 600 node --test --test-timeout=300000 \
    e2e/interop-oauth4webapi.test.mjs
fi
stop_function

# 2. Grace rotation, auto-approve.
start_function grace MCP_AUTO_APPROVE=demo MCP_REFRESH_POLICY=grace
log "http-scenarios (grace)"
"$scenarios" --base-url "$url" --refresh-policy grace
stop_function

# 3. The real sign-in and consent pages (account demo:demo).
start_function pages
log "sign-in and consent pages in Chromium"
mkdir -p test-artifacts
E2E_CONSENT_URL=$url E2E_SCREENSHOT_PREFIX=lambda timeout --kill-after=10 600 node --test --test-timeout=300000 \
  e2e/consent-browser.test.mjs
stop_function

log "all green"
