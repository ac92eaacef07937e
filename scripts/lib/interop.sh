# Sourced, not run: the three real-client interop suites against any
# example server started with the development auto-approve switch for user
# `demo` (the MCP resource at {base}/mcp, the echo route {base}/mcp/echo).
#
#   . scripts/lib/interop.sh
#   interop_setup                    # npm ci, venv, interop-rmcp (idempotent)
#   interop_run "worker, KV" "$url"  # oauth4webapi, Authlib, rmcp, each bounded
#   interop_summary                  # prints the tally; non-zero if any failed
#
# The same commands as scripts/test.d/35-interop-axum.sh (which runs them
# against the axum example): node --test e2e/interop-oauth4webapi.test.mjs,
# e2e/interop_authlib.py in the venv ~/.cache/mcp-oauth/venv (INTEROP_VENV),
# and the interop-rmcp binary. Expects to run from the repository root with
# CARGO_TARGET_DIR exported. Installs what is missing unless SKIP_INSTALL is
# set (then a missing piece is an error). Each suite is bounded by
# INTEROP_SUITE_TIMEOUT seconds (default 300). Defines only interop_* names.

interop_venv=${INTEROP_VENV:-$HOME/.cache/mcp-oauth/venv}
interop_rmcp_bin=
interop_passed=0
interop_failed=0
interop_failures=()
interop_results=()

interop_log() { printf '[interop] %s\n' "$*"; }

interop_setup() {
  # One `npm ci` per lockfile change, with the stamp the other steps use.
  local lock_hash stamp=node_modules/.e2e-package-lock.sha256
  lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
    [ -z "${SKIP_INSTALL:-}" ] || { echo "[interop] node_modules is missing or stale and SKIP_INSTALL is set" >&2; return 1; }
    interop_log "npm ci"
    npm ci --no-audit --no-fund
    echo "$lock_hash" >"$stamp"
  fi

  if [ ! -x "$interop_venv/bin/python" ]; then
    [ -z "${SKIP_INSTALL:-}" ] || { echo "[interop] no venv at $interop_venv and SKIP_INSTALL is set" >&2; return 1; }
    interop_log "creating the venv $interop_venv"
    mkdir -p "$(dirname "$interop_venv")"
    python3 -m venv "$interop_venv"
  fi
  # pip only when a pinned requirement is not installed at its version.
  if ! "$interop_venv/bin/python" - e2e/requirements.txt <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
missing = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        if version(name) != want:
            missing.append(line)
    except PackageNotFoundError:
        missing.append(line)
sys.exit(1 if missing else 0)
PY
  then
    [ -z "${SKIP_INSTALL:-}" ] || { echo "[interop] e2e/requirements.txt is not satisfied in $interop_venv and SKIP_INSTALL is set" >&2; return 1; }
    interop_log "pip install -r e2e/requirements.txt into $interop_venv"
    "$interop_venv/bin/pip" install --disable-pip-version-check -q -r e2e/requirements.txt
  fi

  cargo build -p interop-rmcp --bin interop-rmcp --locked
  interop_rmcp_bin="$CARGO_TARGET_DIR/debug/interop-rmcp"
  [ -x "$interop_rmcp_bin" ] || { echo "[interop] $interop_rmcp_bin was not built" >&2; return 1; }
}

# interop_suite LABEL CMD...: one suite, bounded, timed, counted.
interop_suite() {
  local label=$1 t0=$SECONDS status=0
  shift
  interop_log "--- $label"
  timeout --kill-after=10 "${INTEROP_SUITE_TIMEOUT:-300}" "$@" || status=$?
  if [ "$status" -eq 0 ]; then
    interop_passed=$((interop_passed + 1))
    interop_results+=("ok    $label ($((SECONDS - t0)) s)")
  else
    interop_failed=$((interop_failed + 1))
    interop_failures+=("$label")
    interop_results+=("FAIL  $label ($((SECONDS - t0)) s, exit $status)")
  fi
}

# interop_run WHERE URL: the three suites against the server at URL.
interop_run() {
  local where=$1 url=$2
  interop_suite "oauth4webapi ($where)" env INTEROP_BASE_URL="$url" \
    node --test --test-timeout=120000 e2e/interop-oauth4webapi.test.mjs
  interop_suite "Authlib ($where)" "$interop_venv/bin/python" e2e/interop_authlib.py --base-url "$url"
  interop_suite "rmcp ($where)" "$interop_rmcp_bin" --base-url "$url"
}

interop_summary() {
  interop_log "suites: $interop_passed passed, $interop_failed failed"
  printf '  %s\n' "${interop_results[@]}"
  [ "$interop_failed" -eq 0 ]
}
