#!/usr/bin/env bash
# Smoke test of the axum MCP server example (adapter-axum/examples/mcp_server),
# driven with curl the way an MCP client would:
#
#   1. discovery: 401 from /mcp -> resource_metadata -> RFC 9728 PRM -> RFC 8414 AS metadata
#   2. dynamic client registration at /register
#   3. /authorize (the server runs with --auto-approve USER): 302 with code, state, iss
#   4. /token: authorization_code + PKCE, then refresh_token
#   5. MCP over streamable HTTP with the bearer token: initialize, tools/list, tools/call
#      (add, list, complete, delete, whoami), and a read-only token refused by add_todo
#   6. /mcp/echo, including ?require= for a 403 insufficient_scope
#   7. restart on the same port and data directory without --auto-approve: tokens and
#      todos survive; the sign-in + consent pages (CSRF, wrong password, scope choice)
#      issue a second user a token that sees only that user's (empty) list
#   8. no token, code or password in the server's logs
#
# Usage:
#   bash scripts/smoke-axum.sh                                  # SQLite in a temporary directory
#   SMOKE_DATABASE_URL=postgres://... bash scripts/smoke-axum.sh  # PostgreSQL (e.g. from scripts/pg.sh start)
# Needs cargo, curl, jq and openssl. Builds into $CARGO_TARGET_DIR (default
# ~/.cache/mcp-oauth/target). Starts the server on a free loopback port (it
# binds port 0 and prints its URL) with a temporary data directory, stops it
# by PID, and exits non-zero on the first failed assertion, printing the
# server's log.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

for tool in cargo curl jq openssl; do
  command -v "$tool" >/dev/null || { echo "smoke-axum: $tool is required" >&2; exit 2; }
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

work=$(mktemp -d "${TMPDIR:-/tmp}/smoke-axum.XXXXXX")
pid=
passed=0

stop_server() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    # Bounded wait for the graceful shutdown, then force it.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  if [ -n "$pid" ]; then wait "$pid" 2>/dev/null || true; fi
  pid=
}

cleanup() {
  local status=$?
  stop_server
  if [ "$status" -ne 0 ]; then
    for f in "$work"/server-*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 40 lines)" >&2
      tail -n 40 "$f" >&2 || true
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "FAIL: $*" >&2
  if [ -s "$work/body" ]; then
    echo "----- last response body" >&2
    head -c 2000 "$work/body" >&2
    echo >&2
  fi
  exit 1
}
ok() {
  passed=$((passed + 1))
  echo "ok   $*"
}

# http METHOD URL [curl args...]: sets $status; body in $work/body, headers in $work/headers.
http() {
  local method=$1 url=$2
  shift 2
  status=$(curl -sS --max-time 15 -X "$method" -D "$work/headers" -o "$work/body" -w '%{http_code}' "$@" "$url") ||
    fail "$method $url: curl failed"
}
header() { grep -i "^$1:" "$work/headers" | head -n1 | cut -d' ' -f2- | tr -d '\r' || true; }
expect_status() { [ "$status" = "$1" ] || fail "$2: expected HTTP $1, got $status"; }
# expect_json FILTER DESCRIPTION [jq args...]: FILTER must be true of the last body.
expect_json() {
  local filter=$1 what=$2
  shift 2
  jq -e "$@" "$filter" "$work/body" >/dev/null 2>&1 || fail "$what: jq '$filter' is not true"
}
# query_param URL NAME: the decoded value of NAME in URL's query.
query_param() {
  local raw
  raw=$(printf '%s' "$1" | sed -nE "s/.*[?&]$2=([^&#]*).*/\1/p")
  raw=${raw//+/ }
  printf '%b' "${raw//%/\\x}"
}
enc() { jq -rn --arg v "$1" '$v | @uri'; }
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

# start_server LOG [args...]: start the example; sets $pid and $base.
start_server() {
  local log=$1
  shift
  # The example's own default log filter: what an operator sees.
  if [ -n "${SMOKE_DATABASE_URL:-}" ]; then
    env -u RUST_LOG DATABASE_URL="$SMOKE_DATABASE_URL" "$bin" "$@" >"$work/$log.out" 2>"$work/$log.log" &
  else
    env -u RUST_LOG -u DATABASE_URL "$bin" --data-dir "$work/data" "$@" >"$work/$log.out" 2>"$work/$log.log" &
  fi
  pid=$!
  local deadline=$((SECONDS + 60)) url=
  until url=$(sed -nE 's/^  MCP URL: +(http[^ ]+)\/mcp$/\1/p' "$work/$log.out") && [ -n "$url" ]; do
    kill -0 "$pid" 2>/dev/null || fail "the server exited at start-up"
    [ "$SECONDS" -lt "$deadline" ] || fail "the server printed no URL within 60 s"
    sleep 0.1
  done
  base=$url
}

mcp_headers=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'
  -H 'mcp-protocol-version: 2025-06-18')
# mcp TOKEN JSON: one JSON-RPC message to /mcp.
mcp() { http POST "$base/mcp" -H "authorization: Bearer $1" "${mcp_headers[@]}" --data-binary "$2"; }
# tool TOKEN NAME ARGS_JSON: tools/call, asserting a 200 JSON-RPC result.
tool() {
  mcp "$1" "$(jq -cn --arg name "$2" --argjson args "$3" \
    '{jsonrpc: "2.0", id: 10, method: "tools/call", params: {name: $name, arguments: $args}}')"
  expect_status 200 "tools/call $2"
  expect_json '.jsonrpc == "2.0" and .id == 10 and (.result | type == "object")' "tools/call $2 result"
}

# ------------------------------------------------------------------- build
echo "building the mcp_server example"
cargo build -q -p adapter-axum --features demo --example mcp_server --locked
bin="$CARGO_TARGET_DIR/debug/examples/mcp_server"
[ -x "$bin" ] || fail "$bin was not built"

# Fresh user names, so a reused PostgreSQL database holds no todos of theirs.
demo="smoke-$(openssl rand -hex 4)"
alice="alice-$(openssl rand -hex 4)"
start_server server-auto --bind 127.0.0.1:0 --auto-approve "$demo"
port=${base##*:}
echo "server at $base (pid $pid)"

# --------------------------------------------------------------- discovery
http GET "$base/mcp"
expect_status 401 "unauthenticated /mcp"
www=$(header www-authenticate)
prm_url=$(printf '%s' "$www" | sed -nE 's/.*resource_metadata="([^"]+)".*/\1/p')
[ "$prm_url" = "$base/.well-known/oauth-protected-resource/mcp" ] || fail "challenge: $www"
ok "401 from /mcp names the resource metadata"

http GET "$prm_url"
expect_status 200 "PRM"
expect_json '.resource == $r and .authorization_servers == [$b]' "PRM resource" --arg r "$base/mcp" --arg b "$base"
expect_json '(.scopes_supported | sort) == ["todo:read", "todo:write"]' "PRM scopes"
issuer=$(jq -r '.authorization_servers[0]' "$work/body")
ok "protected resource metadata"

http GET "$issuer/.well-known/oauth-authorization-server"
expect_status 200 "AS metadata"
expect_json '.issuer == $i and .code_challenge_methods_supported == ["S256"]
  and .authorization_response_iss_parameter_supported == true' "AS metadata" --arg i "$issuer"
authorization_endpoint=$(jq -r .authorization_endpoint "$work/body")
token_endpoint=$(jq -r .token_endpoint "$work/body")
registration_endpoint=$(jq -r .registration_endpoint "$work/body")
[ "$authorization_endpoint" = "$base/authorize" ] || fail "authorization_endpoint $authorization_endpoint"
[ "$token_endpoint" = "$base/token" ] || fail "token_endpoint $token_endpoint"
[ "$registration_endpoint" = "$base/register" ] || fail "registration_endpoint $registration_endpoint"
ok "authorization server metadata"

# ------------------------------------------------------------ registration
redirect="http://127.0.0.1:9/callback"
# register: a public client; sets $client_id.
register() {
  http POST "$registration_endpoint" -H 'content-type: application/json' --data-binary "$(jq -cn --arg r "$redirect" \
    '{redirect_uris: [$r], token_endpoint_auth_method: "none", grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"], client_name: "smoke test"}')"
  expect_status 201 "registration"
  expect_json '(.client_id | type == "string") and (has("client_secret") | not)' "public client registered"
  client_id=$(jq -r .client_id "$work/body")
}
register
ok "dynamic client registration"

# ----------------------------------------------------------- authorization
verifier=$(openssl rand -hex 32)
challenge=$(printf '%s' "$verifier" | openssl dgst -sha256 -binary | b64url)

# authorize SCOPE: sets $location from the 302.
authorize() {
  local state=$1 scope=$2
  http GET "$authorization_endpoint?response_type=code&client_id=$(enc "$client_id")&redirect_uri=$(enc "$redirect")&state=$state&code_challenge=$challenge&code_challenge_method=S256&scope=$(enc "$scope")&resource=$(enc "$base/mcp")" \
    "${@:3}"
}
# exchange CODE: token response in $work/body.
exchange() {
  http POST "$token_endpoint" --data-urlencode grant_type=authorization_code --data-urlencode "code=$1" \
    --data-urlencode "code_verifier=$verifier" --data-urlencode "redirect_uri=$redirect" \
    --data-urlencode "client_id=$client_id"
}

authorize st-1 "todo:read todo:write"
expect_status 302 "authorize (auto-approve)"
location=$(header location)
[[ $location == "$redirect?"* ]] || fail "redirected to $location"
[ "$(query_param "$location" state)" = st-1 ] || fail "state not returned: $location"
[ "$(query_param "$location" iss)" = "$issuer" ] || fail "iss not returned (RFC 9207): $location"
code=$(query_param "$location" code)
[ -n "$code" ] || fail "no code: $location"
ok "authorize redirects with code, state and iss"

exchange "$code"
expect_status 200 "code exchange"
[ "$(header cache-control)" = no-store ] || fail "token response is cacheable"
expect_json '(.token_type | ascii_downcase) == "bearer" and .expires_in > 0 and .scope == "todo:read todo:write"
  and (.access_token | type == "string") and (.refresh_token | type == "string") and .resource == $r' \
  "token response" --arg r "$base/mcp"
access=$(jq -r .access_token "$work/body")
refresh=$(jq -r .refresh_token "$work/body")
ok "token exchange (PKCE)"

exchange "$code"
expect_status 400 "code replay"
expect_json '.error == "invalid_grant"' "code replay refused"
ok "a used code is refused"
# The replay revoked the grant (RFC 6749 §4.1.2): start a new one.
authorize st-2 "todo:read todo:write"
expect_status 302 "authorize again"
exchange "$(query_param "$(header location)" code)"
expect_status 200 "second code exchange"
access=$(jq -r .access_token "$work/body")
refresh=$(jq -r .refresh_token "$work/body")

http POST "$token_endpoint" --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$refresh" \
  --data-urlencode "client_id=$client_id"
expect_status 200 "refresh"
expect_json '(.access_token | type == "string") and (.refresh_token | type == "string") and .refresh_token != $old' \
  "refresh rotates" --arg old "$refresh"
access=$(jq -r .access_token "$work/body")
refresh=$(jq -r .refresh_token "$work/body")
ok "refresh token grant rotates the refresh token"

# ---------------------------------------------------------------------- MCP
mcp "$access" '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"smoke-axum","version":"1.0"}}}'
expect_status 200 "initialize"
[[ $(header content-type) == application/json* ]] || fail "initialize content-type $(header content-type)"
expect_json '.id == 1 and .result.protocolVersion == "2025-06-18" and (.result.capabilities.tools | type == "object")
  and .result.serverInfo.name == "oauth-core-todo-example"' "initialize result"
ok "MCP initialize"

mcp "$access" '{"jsonrpc":"2.0","method":"notifications/initialized"}'
expect_status 202 "notifications/initialized"

mcp "$access" '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
expect_status 200 "tools/list"
expect_json '[.result.tools[].name] | sort == ["add_todo", "complete_todo", "delete_todo", "list_todos", "whoami"]' \
  "tool names"
expect_json '.result.tools[] | select(.name == "add_todo") | .inputSchema.required == ["text"]' "add_todo schema"
ok "MCP tools/list"

tool "$access" add_todo '{"text":"water the <plants> & \"ferns\""}'
expect_json '.result.isError == false and .result.structuredContent.todo.text == "water the <plants> & \"ferns\""
  and .result.structuredContent.todo.done == false' "add_todo"
todo_id=$(jq -r .result.structuredContent.todo.id "$work/body")
tool "$access" add_todo '{"text":"survive a restart"}'
expect_json '.result.isError == false' "second add_todo"
kept_id=$(jq -r .result.structuredContent.todo.id "$work/body")
tool "$access" list_todos '{}'
expect_json '[.result.structuredContent.todos[].id] == [$a, $b]' "list_todos" --argjson a "$todo_id" --argjson b "$kept_id"
tool "$access" complete_todo "{\"id\":$todo_id}"
expect_json '.result.isError == false and .result.structuredContent.todo.done == true' "complete_todo"
tool "$access" delete_todo "{\"id\":$todo_id}"
expect_json '.result.isError == false and .result.structuredContent.deleted.id == $id' "delete_todo" \
  --argjson id "$todo_id"
tool "$access" delete_todo "{\"id\":$todo_id}"
expect_json '.result.isError == true' "deleting twice is a tool error"
tool "$access" add_todo '{"text":"   "}'
expect_json '.result.isError == true' "an empty todo is a tool error"
tool "$access" whoami '{}'
expect_json '.result.structuredContent | .user_id == $u and .client_id == $c and .scope == ["todo:read", "todo:write"]
  and .audience == $r' "whoami" --arg u "$demo" --arg c "$client_id" --arg r "$base/mcp"
ok "MCP tools/call: add, list, complete, delete, whoami"

mcp "not-a-token" '{"jsonrpc":"2.0","id":3,"method":"tools/list"}'
expect_status 401 "MCP with a bad token"
ok "MCP refuses a bad token"

# A token for todo:read only: reading works, writing is a tool error. From
# another client, because a new authorization revokes the user's earlier
# grants to the same client.
full_client=$client_id
register
authorize st-3 "todo:read"
expect_status 302 "authorize todo:read"
exchange "$(query_param "$(header location)" code)"
expect_status 200 "read-only exchange"
expect_json '.scope == "todo:read"' "read-only scope"
read_only=$(jq -r .access_token "$work/body")
tool "$read_only" add_todo '{"text":"not allowed"}'
expect_json '.result.isError == true and (.result.content[0].text | startswith("insufficient_scope"))' \
  "add_todo without todo:write"
tool "$read_only" list_todos '{}'
expect_json '.result.isError == false and ([.result.structuredContent.todos[].id] == [$k])' "list_todos with todo:read" \
  --argjson k "$kept_id"
ok "scopes are enforced per tool (todo:write implies todo:read)"
client_id=$full_client

# ---------------------------------------------------------------------- echo
http GET "$base/mcp/echo" -H "authorization: Bearer $access"
expect_status 200 "echo"
now=$(date +%s)
expect_json '.user_id == $u and .client_id == $c and .scope == ["todo:read", "todo:write"] and .audience == $r
  and .expires_at > $now and .props.username == $u' "echo context" \
  --arg u "$demo" --arg c "$client_id" --arg r "$base/mcp" --argjson now "$now"
http GET "$base/mcp/echo?require=todo:write" -H "authorization: Bearer $read_only"
expect_status 403 "echo requiring todo:write with a read-only token"
[[ $(header www-authenticate) == *'error="insufficient_scope"'* ]] || fail "403 challenge: $(header www-authenticate)"
http GET "$base/mcp/echo"
expect_status 401 "echo without a token"
ok "/mcp/echo"

# ------------------------------------- restart: persistence and the real pages
stop_server
start_server server-pages --bind "127.0.0.1:$port" --user "$alice:wonderland" --user "$demo:demo"
[ "$base" = "http://127.0.0.1:$port" ] || fail "restarted at $base"
echo "restarted without --auto-approve at $base (pid $pid)"

tool "$access" list_todos '{}'
expect_json '[.result.structuredContent.todos[].id] == [$k]' "todos after restart" --argjson k "$kept_id"
ok "tokens and todos survive a restart"

jar="$work/cookies"
authorize st-4 "todo:read todo:write" -c "$jar" -b "$jar"
expect_status 200 "sign-in page"
[ "$(header x-frame-options)" = DENY ] || fail "sign-in page can be framed"
[[ $(header set-cookie) == *HttpOnly*SameSite=Lax* ]] || fail "cookie flags: $(header set-cookie)"
grep -q 'Sign in' "$work/body" || fail "no sign-in form"
field() { sed -nE "s/.*name=\"$1\" value=\"([0-9a-f]+)\".*/\1/p" "$work/body" | head -n1; }
request_id=$(field request)
csrf=$(field csrf)
[ -n "$request_id" ] && [ -n "$csrf" ] || fail "sign-in form without request id or CSRF token"

login() {
  http POST "$base/authorize/login" -c "$jar" -b "$jar" --data-urlencode "request=$request_id" \
    --data-urlencode "csrf=$1" --data-urlencode "username=$2" --data-urlencode "password=$3" \
    --data-urlencode action=login
}
login "$csrf" "$alice" wrong
expect_status 401 "wrong password"
grep -q 'Wrong username or password' "$work/body" || fail "no error shown for a wrong password"
login "0$csrf" "$alice" wonderland
expect_status 403 "forged CSRF token"
http POST "$base/authorize/login" --data-urlencode "request=$request_id" --data-urlencode "csrf=$csrf" \
  --data-urlencode "username=$alice" --data-urlencode password=wonderland
expect_status 403 "sign-in from another browser (no cookie)"
login "$csrf" "$alice" wonderland
expect_status 303 "sign-in"
consent_url=$(header location)
[[ $consent_url == /authorize/consent?* ]] || fail "sign-in redirected to $consent_url"
ok "sign-in page: wrong password, CSRF and browser binding"

http GET "$base$consent_url" -c "$jar" -b "$jar"
expect_status 200 "consent page"
grep -q 'smoke test' "$work/body" || fail "consent page does not name the client"
grep -q '127.0.0.1:9' "$work/body" || fail "consent page does not show the redirect host"
grep -q 'value="todo:write"' "$work/body" || fail "consent page does not list todo:write"
[ "$(field csrf)" != "$csrf" ] || fail "CSRF token not replaced at sign-in"
csrf=$(field csrf)
# Approve with todo:write unticked.
http POST "$base/authorize/decision" -c "$jar" -b "$jar" --data-urlencode "request=$request_id" \
  --data-urlencode "csrf=$csrf" --data-urlencode decision=approve --data-urlencode scope=todo:read
expect_status 302 "approve"
location=$(header location)
[ "$(query_param "$location" state)" = st-4 ] && [ "$(query_param "$location" iss)" = "$issuer" ] ||
  fail "approve redirect: $location"
exchange "$(query_param "$location" code)"
expect_status 200 "exchange after consent"
expect_json '.scope == "todo:read"' "only the ticked scope is granted"
alice_token=$(jq -r .access_token "$work/body")
http POST "$base/authorize/decision" -c "$jar" -b "$jar" --data-urlencode "request=$request_id" \
  --data-urlencode "csrf=$csrf" --data-urlencode decision=approve --data-urlencode scope=todo:read
expect_status 400 "a decided page used again"
ok "consent page: client, redirect host, scope choice, single use"

tool "$alice_token" whoami '{}'
expect_json '.result.structuredContent.user_id == $u and .result.structuredContent.props.login == "password"' \
  "alice's whoami" --arg u "$alice"
tool "$alice_token" list_todos '{}'
expect_json '.result.structuredContent.todos == []' "alice sees only her own (empty) list"
ok "per-user data"

# Signed in already: the next authorization goes straight to consent; Deny.
authorize st-5 "todo:read" -c "$jar" -b "$jar"
expect_status 200 "consent for a signed-in browser"
grep -qF "Signed in as <b>$alice</b>" "$work/body" || fail "not remembered as $alice"
request_id=$(field request)
http POST "$base/authorize/decision" -c "$jar" -b "$jar" --data-urlencode "request=$request_id" \
  --data-urlencode "csrf=$(field csrf)" --data-urlencode decision=deny
expect_status 302 "deny"
location=$(header location)
[ "$(query_param "$location" error)" = access_denied ] && [ "$(query_param "$location" state)" = st-5 ] ||
  fail "deny redirect: $location"
ok "deny returns access_denied with state"

# Ten wrong passwords for one account, over several pages, lock it: then
# even the right password is refused for a while.
jar="$work/cookies-other-browser"
for attempt in $(seq 10); do
  if [ $(((attempt - 1) % 4)) -eq 0 ]; then
    authorize "st-lock-$attempt" "todo:read" -c "$jar" -b "$jar"
    expect_status 200 "sign-in page for the lock test"
    request_id=$(field request)
    csrf=$(field csrf)
  fi
  login "$csrf" "$demo" "wrong-$attempt"
  expect_status 401 "wrong password $attempt"
done
login "$csrf" "$demo" demo
expect_status 429 "sign-in to a locked account"
ok "repeated wrong passwords lock the account"

http GET "$authorization_endpoint?response_type=code&client_id=no-such-client"
expect_status 400 "unknown client"
[ -z "$(header location)" ] || fail "an unknown client was redirected"
ok "an invalid request gets an error page, not a redirect"

# ------------------------------------------------------------------ the logs
stop_server
for secret in "$access" "$refresh" "$read_only" "$alice_token" "$code" wonderland; do
  if grep -qF -- "$secret" "$work"/server-*.log "$work"/server-*.out; then
    fail "a token, code or password appears in the server log"
  fi
done
ok "no secrets in the logs"

echo "$passed passed, 0 failed"
