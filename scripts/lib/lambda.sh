# Sourced, not run: serve the example function (adapter-lambda/example,
# package and binary `mcp-lambda`) under `cargo lambda watch` with
# moto_server standing in for DynamoDB, as scripts/test.d/60-lambda.sh does,
# for steps that only need a running function.
#
#   . scripts/lib/lambda.sh
#   lambda_tools                  # venv with cargo-lambda and moto (idempotent); PATH
#   lambda_moto LOG               # moto_server on a free port; exports AWS_ENDPOINT_URL_DYNAMODB
#   lambda_start NAME WORKDIR [KEY=VALUE...]   # sets $lambda_url, $lambda_watcher
#   lambda_stop "$lambda_watcher"
#   lambda_cleanup                # stops everything started here (call from the EXIT trap)
#
# The function is built by `cargo lambda watch -p mcp-lambda --locked` into
# $CARGO_TARGET_DIR with the same arguments as 60-lambda.sh, so a build
# either step made is reused by the other. Every process is stopped by PID
# with its descendants (the watcher runs each function instance as its
# child): TERM, a bounded wait, then KILL. Defines only lambda_* names.

lambda_cargo_lambda_version=1.9.2
lambda_moto_version=5.2.5
lambda_venv=$HOME/.cache/mcp-oauth/venv
lambda_pids=()
lambda_url=
lambda_watcher=

lambda_log() { printf '[lambda-lib] %s\n' "$*"; }
lambda_die() { printf '[lambda-lib] ERROR: %s\n' "$*" >&2; exit 1; }

lambda_tools() {
  if [ ! -x "$lambda_venv/bin/python" ]; then
    [ -z "${SKIP_INSTALL:-}" ] || lambda_die "no venv at $lambda_venv and SKIP_INSTALL is set"
    lambda_log "creating $lambda_venv"
    python3 -m venv "$lambda_venv"
  fi
  local wanted=()
  "$lambda_venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -qF "$lambda_cargo_lambda_version" ||
    wanted+=("cargo-lambda==$lambda_cargo_lambda_version")
  { [ -x "$lambda_venv/bin/moto_server" ] &&
    "$lambda_venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$lambda_moto_version')" 2>/dev/null; } ||
    wanted+=("moto[server]==$lambda_moto_version")
  if [ "${#wanted[@]}" -gt 0 ]; then
    [ -z "${SKIP_INSTALL:-}" ] || lambda_die "missing ${wanted[*]} in $lambda_venv and SKIP_INSTALL is set"
    lambda_log "pip install ${wanted[*]}"
    "$lambda_venv/bin/pip" install --quiet --disable-pip-version-check "${wanted[@]}"
  fi
  # `cargo lambda` finds its binary on PATH.
  export PATH=$lambda_venv/bin:$PATH
}

lambda_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# lambda_wait_http URL SECONDS PID: until URL answers 200, while PID lives.
lambda_wait_http() {
  local url=$1 deadline=$((SECONDS + $2)) pid=$3
  until curl -fs -o /dev/null --max-time 5 "$url"; do
    kill -0 "$pid" 2>/dev/null || return 1
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

lambda_descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    lambda_descendants "$child"
  done
}

# lambda_stop PID: PID and everything it started: TERM, 5 s, then KILL.
lambda_stop() {
  local all p kept=()
  all="$(lambda_descendants "$1") $1"
  # shellcheck disable=SC2086
  kill $all 2>/dev/null || true
  for _ in $(seq 50); do
    local alive=
    for p in $all; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in $all; do kill -9 "$p" 2>/dev/null || true; done
  wait "$1" 2>/dev/null || true
  for p in "${lambda_pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  lambda_pids=("${kept[@]}")
}

lambda_cleanup() {
  local p
  for p in "${lambda_pids[@]}"; do lambda_stop "$p"; done
}

# lambda_moto LOG: moto_server on a free loopback port (bounded to 30 s).
lambda_moto() {
  local port
  port=$(lambda_free_port)
  "$lambda_venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$1" 2>&1 &
  lambda_pids+=($!)
  lambda_wait_http "http://127.0.0.1:$port/" 30 "$!" || lambda_die "moto_server did not start (log: $1)"
  export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$port
  lambda_log "moto_server on 127.0.0.1:$port (pid $!)"
}

# lambda_start NAME WORKDIR [KEY=VALUE...]: the example under cargo lambda
# watch on a free port with these settings (written to WORKDIR/NAME.env, as
# values may hold commas), its own table, logging to WORKDIR/NAME.log; sets
# $lambda_url (the issuer: the emulator serves the function at the root of
# its port, as at a function URL) once its metadata answers (bounded to
# LAMBDA_START_TIMEOUT seconds, default 180, which covers a build).
lambda_start() {
  local name=$1 dir=$2
  shift 2
  local port env_file="$dir/$name.env" setting
  port=$(lambda_free_port)
  lambda_url=http://127.0.0.1:$port
  for setting in \
    "MCP_ISSUER=$lambda_url" \
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
  # --disable-cors: the provider answers CORS itself. --ignore-changes: a
  # test run must not rebuild because a file changed under it.
  cargo lambda watch -p mcp-lambda --locked --ignore-changes --disable-cors \
    --invoke-address 127.0.0.1 --invoke-port "$port" --concurrency 6 --env-file "$env_file" \
    >"$dir/$name.log" 2>&1 &
  lambda_watcher=$!
  lambda_pids+=("$lambda_watcher")
  lambda_wait_http "$lambda_url/.well-known/oauth-authorization-server" "${LAMBDA_START_TIMEOUT:-180}" "$lambda_watcher" ||
    lambda_die "the function ($name) did not answer within ${LAMBDA_START_TIMEOUT:-180} s (log: $dir/$name.log)"
  lambda_log "function ($name) at $lambda_url (watcher pid $lambda_watcher)"
}
