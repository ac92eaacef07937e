#!/usr/bin/env bash
# Client ID metadata documents on AWS Lambda, over HTTP: the example function
# (adapter-lambda/example, `mcp-lambda`) under `cargo lambda watch`, its
# records in DynamoDB on moto_server, with MCP_CIMD=1. Its fetcher is
# adapter-axum's SafeFetcher (what adapter_axum::OAuth builds when CIMD is
# on); the documents come from a local HTTPS server with a CA generated per
# run (adapter-axum/examples/cimd_test_server.rs). Run by scripts/test.sh
# after 60-lambda.sh, or alone:
#
#   bash scripts/test.d/65-lambda-cimd.sh
#
#   1. the shipped binary refuses the development fetcher settings without
#      MCP_DEV_CIMD_INSECURE=1 (it exits before serving anything);
#   2. function "cimd": auto-approve, MCP_CIMD=1, a 2 s fetch budget,
#      `denied.test` on the deny list, and, for the test only
#      (MCP_DEV_CIMD_INSECURE=1), the test CA trusted, `client.test` allowed
#      to reach loopback, and made-up names resolved to chosen addresses
#      (127.0.0.1, 10.0.0.1, 169.254.169.254, ::1, ::ffff:127.0.0.1, and a
#      public+private mix), as an attacker's DNS could answer;
#   3. function "strict": MCP_CIMD=1 and nothing else: the production
#      fetcher, which must refuse `localhost` through the system resolver;
#   4. e2e/cimd.test.mjs against both: the full flow with private_key_jwt
#      (ES256 inline key, RS256 from jwks_uri, refresh, replay and forged
#      signature refused), a redirect refused and not followed, oversized
#      (with and without Content-Length) and slow documents refused,
#      non-https and IP-literal client IDs refused, the deny list, and every
#      special-use answer refused before any connection (the test server
#      counts them), each refusal checked by its reason in the function log.
#
# Installs what is missing through scripts/lib/lambda.sh (venv with
# cargo-lambda and moto; under SKIP_INSTALL=1 a missing tool is an error).
# Everything started here is stopped by PID on exit. LAMBDA_CIMD_KEEP_LOGS=1
# keeps the logs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
mkdir -p "$CARGO_TARGET_DIR"

started=$SECONDS
log() { printf '[lambda-cimd %3ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { printf '[lambda-cimd] ERROR: %s\n' "$*" >&2; exit 1; }

. scripts/lib/lambda.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/lambda-cimd.XXXXXX")
docs_pid=
cleanup() {
  local status=$?
  lambda_cleanup
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
  if [ -n "${LAMBDA_CIMD_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v node >/dev/null || die "node is missing"
lambda_tools

# ------------------------------------------------------------ the documents
log "building the CIMD test server"
# --all-features: the feature set 10-axum.sh tests with, so its build is reused.
cargo build -p adapter-axum --all-features --example cimd_test_server --locked
"$CARGO_TARGET_DIR/debug/examples/cimd_test_server" --name client.test --name localhost \
  --info "$work/docs.json" --ca "$work/ca.pem" >"$work/docs.log" 2>&1 &
docs_pid=$!
for _ in $(seq 100); do
  [ -f "$work/docs.json" ] && break
  kill -0 "$docs_pid" 2>/dev/null || die "the CIMD test server exited"
  sleep 0.1
done
[ -f "$work/docs.json" ] || die "the CIMD test server did not start"
log "$(head -n 1 "$work/docs.log")"

# ------------------------------------------------------------ the function
lambda_moto "$work/moto.log"

timeout_ms=2000
# Made-up names and what a hostile DNS could answer for them: only
# client.test may reach loopback (the test server); every other answer is a
# special-use address and must be refused before connecting.
resolve="client.test=127.0.0.1,loopback.test=127.0.0.1,private.test=10.0.0.1"
resolve+=",metadata.test=169.254.169.254,v6-loopback.test=::1,mapped.test=::ffff:127.0.0.1"
resolve+=",mixed.test=8.8.8.8|10.0.0.1"
forbidden=loopback.test,private.test,metadata.test,v6-loopback.test,mapped.test,mixed.test

# The function's build (cargo lambda watch) happens on the first start.
lambda_start cimd "$work" MCP_AUTO_APPROVE=demo MCP_CIMD=1 "MCP_CIMD_FETCH_TIMEOUT_MS=$timeout_ms" \
  MCP_CIMD_DENY_HOSTS=denied.test MCP_DEV_CIMD_INSECURE=1 "MCP_DEV_CIMD_EXTRA_CA=$work/ca.pem" \
  MCP_DEV_CIMD_LOOPBACK_HOSTS=client.test "MCP_DEV_CIMD_RESOLVE=$resolve"
cimd_url=$lambda_url
grep -q "MCP_DEV_CIMD_INSECURE=1" "$work/cimd.log" || die "the function did not warn about its test settings"

lambda_start strict "$work" MCP_AUTO_APPROVE=demo MCP_CIMD=1 "MCP_CIMD_FETCH_TIMEOUT_MS=$timeout_ms"
strict_url=$lambda_url

# ------------------------------------------ the development knobs' guard
# The binary cargo lambda watch just built: its configuration is read before
# it asks the Lambda runtime for anything, so a refused setting ends it here.
bin="$CARGO_TARGET_DIR/debug/mcp-lambda"
[ -x "$bin" ] || die "$bin was not built"
# refused EXPECTED [KEY=VALUE...]: the binary exits non-zero with these
# settings, saying EXPECTED.
refused() {
  local expected=$1 out status=0
  shift
  out=$(env MCP_ISSUER=http://127.0.0.1:9 OAUTH_DYNAMODB_TABLE=unused AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_LAMBDA_RUNTIME_API=127.0.0.1:9 \
    "$@" timeout 20 "$bin" 2>&1) || status=$?
  [ "$status" -ne 0 ] || die "mcp-lambda started with $*"
  grep -qF "$expected" <<<"$out" || die "mcp-lambda with $* did not say \"$expected\": $out"
}
log "development fetcher settings are refused without MCP_DEV_CIMD_INSECURE=1"
flag="refused unless MCP_DEV_CIMD_INSECURE=1"
refused "$flag" MCP_CIMD=1 MCP_DEV_CIMD_LOOPBACK_HOSTS=client.test
refused "$flag" MCP_CIMD=1 MCP_DEV_CIMD_RESOLVE=client.test=127.0.0.1
refused "$flag" MCP_CIMD=1 "MCP_DEV_CIMD_EXTRA_CA=$work/ca.pem"
refused "$flag" MCP_CIMD=1 MCP_DEV_CIMD_INSECURE=0 MCP_DEV_CIMD_LOOPBACK_HOSTS=client.test
refused "MCP_CIMD is not 1" MCP_DEV_CIMD_INSECURE=1 MCP_DEV_CIMD_LOOPBACK_HOSTS=client.test

# ------------------------------------------------------------ the suite
log "e2e/cimd.test.mjs against $cimd_url (strict: $strict_url)"
E2E_AUTO_URL=$cimd_url CIMD_SERVER_LOG=$work/cimd.log CIMD_SERVER_INFO=$work/docs.json CIMD_HOST=client.test \
  CIMD_TIMEOUT_MS=$timeout_ms CIMD_DENIED_HOST=denied.test CIMD_FORBIDDEN_HOSTS=$forbidden \
  CIMD_STRICT_URL=$strict_url CIMD_STRICT_LOG=$work/strict.log \
  timeout --kill-after=10 300 node --test --test-timeout=120000 e2e/cimd.test.mjs

log "all green"
