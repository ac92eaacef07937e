#!/usr/bin/env bash
# adapter-worker: build the example Worker offline (worker-build, pinned
# wasm-bindgen-cli, esbuild and wasm-opt from npm) and test it in real
# workerd (wrangler dev --local, local KV persisted under a temp dir):
#
#   1. host checks: clippy for wasm32 (both feature sets), unit tests (the
#      storage-conformance suite on the KV driver's logic among them);
#   2. two bundles: the deployable one (printed: raw and gzip size) and the
#      test one (with the development-only /__dev routes);
#   3. in workerd, Worker A (auto-approve, strict rotation, dev routes):
#      the storage-conformance suite against the real KV binding (with the
#      60-second minimum checked record by record), the HTTP scenarios, the
#      MCP TypeScript SDK end to end, then persistence across a restart;
#   4. Worker B (grace rotation, deployable bundle): the HTTP scenarios;
#   5. Worker C (real sign-in and consent page, deployable bundle): the
#      browser tests;
#   6. Worker D, records in the Durable Object store: the conformance suite
#      with every capability (races judged), the HTTP scenarios, the MCP
#      SDK, 50 concurrent redemptions and refreshes of one credential
#      (exactly one must win), persistence across a restart.
#
#   bash scripts/test.d/50-worker.sh          # also run by scripts/test.sh
#
# Installs what is missing (idempotent): the wasm32 target, worker-build
# 0.8.7, wasm-bindgen-cli at Cargo.lock's wasm-bindgen version, node_modules
# (npm ci), Debian's chromium. Under SKIP_INSTALL=1 nothing is installed and
# a missing tool is an error. Every process started here is stopped by its
# process group on exit. WORKER_KEEP_LOGS=1 keeps the logs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# No telemetry, no request.cf download: the run stays on loopback.
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
mkdir -p "$CARGO_TARGET_DIR"

started=$SECONDS
log() { printf '[worker %3ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { printf '[worker] ERROR: %s\n' "$*" >&2; exit 1; }

example=adapter-worker/example
WORKER_BUILD_VERSION=0.8.7

# ------------------------------------------------------------------ installs
need_install() {
  [ -z "${SKIP_INSTALL:-}" ] || die "$1 is missing and SKIP_INSTALL is set"
}

# Try --locked first, then without: the registry mirror lags upstream and
# some lockfiles (wasm-bindgen-cli's) pin crates it does not have.
cargo_install() {
  cargo install "$1" --version "$2" --locked || cargo install "$1" --version "$2"
}

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  need_install "the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if [ "$(worker-build --version 2>/dev/null || true)" != "$WORKER_BUILD_VERSION" ]; then
  need_install "worker-build $WORKER_BUILD_VERSION"
  log "installing worker-build $WORKER_BUILD_VERSION"
  cargo_install worker-build "$WORKER_BUILD_VERSION"
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen the lockfile resolved.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$bindgen_version" ] || die "no wasm-bindgen in Cargo.lock"
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $bindgen_version" ]; then
  need_install "wasm-bindgen-cli $bindgen_version"
  log "installing wasm-bindgen-cli $bindgen_version"
  cargo_install wasm-bindgen-cli "$bindgen_version"
fi

# The same stamp as 30-e2e-axum.sh: one `npm ci` per lockfile change.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.e2e-package-lock.sha256
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
  need_install "node_modules"
  log "npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

if [ ! -x /usr/bin/chromium ]; then
  need_install "/usr/bin/chromium"
  log "installing Debian chromium"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# worker-build fetches these from the network unless told where they are.
export WASM_BINDGEN_BIN
WASM_BINDGEN_BIN=$(command -v wasm-bindgen)
export ESBUILD_BIN=$root/node_modules/.bin/esbuild
export WASM_OPT_BIN=$root/node_modules/.bin/wasm-opt
wrangler=$root/node_modules/.bin/wrangler
for bin in "$ESBUILD_BIN" "$WASM_OPT_BIN" "$wrangler"; do
  [ -x "$bin" ] || die "$bin is missing (npm ci)"
done

# -------------------------------------------------------------- host checks
log "clippy for wasm32 (deployable and test feature sets)"
cargo clippy -p adapter-worker -p mcp-worker-example --target wasm32-unknown-unknown --locked -- -D warnings
cargo clippy -p adapter-worker -p mcp-worker-example --target wasm32-unknown-unknown --locked \
  --features mcp-worker-example/dev-routes -- -D warnings
log "unit tests on the host"
cargo test -p adapter-worker -p mcp-worker-example --locked

# ------------------------------------------------------------------- bundles
# worker-build re-runs wasm-bindgen and wasm-opt (about a minute) even when
# cargo has nothing to do, so a bundle is rebuilt only when something that
# goes into it changed: sources, manifests, lockfile, features, tools.
bundle_inputs() {
  {
    find adapter-worker oauth-core/src \( -path "$example/build*" -o -name .wrangler \) -prune \
      -o -type f \( -name '*.rs' -o -name Cargo.toml \) -print | LC_ALL=C sort | xargs sha256sum
    sha256sum Cargo.toml Cargo.lock oauth-core/Cargo.toml
    echo "features: $*"
    worker-build --version
    wasm-bindgen --version
    "$WASM_OPT_BIN" --version
    "$ESBUILD_BIN" --version
  } | sha256sum | cut -d' ' -f1
}

# build_bundle OUT_DIR [cargo args...]: worker-build with the size profile.
build_bundle() {
  local out=$1
  shift
  local want
  want=$(bundle_inputs "$@")
  # The stamp names the inputs and the wasm built from them, so a bundle
  # rebuilt some other way (wrangler's [build], by hand) is not trusted.
  if [ -f "$out/index_bg.wasm" ] &&
    [ "$(cat "$out/.inputs" 2>/dev/null)" = "$want $(sha256sum <"$out/index_bg.wasm" | cut -d' ' -f1)" ]; then
    log "bundle $out is up to date"
    return
  fi
  log "worker-build --profile worker --out-dir $out $*"
  (cd "$example" && worker-build --profile worker --out-dir "$root/$out" "$@")
  echo "$want $(sha256sum <"$out/index_bg.wasm" | cut -d' ' -f1)" >"$out/.inputs"
}

build_bundle "$example/build"
build_bundle "$example/build-dev" --features dev-routes
raw=$(stat -c %s "$example/build/index_bg.wasm")
gz=$(gzip -9c "$example/build/index_bg.wasm" | wc -c)
js=$(gzip -9c "$example/build/index.js" | wc -c)
log "deployable bundle: index_bg.wasm $raw bytes, $gz bytes gzip -9 (+ index.js $js bytes gzip)"
log "test bundle (dev routes): index_bg.wasm $(stat -c %s "$example/build-dev/index_bg.wasm") bytes," \
  "$(gzip -9c "$example/build-dev/index_bg.wasm" | wc -c) bytes gzip -9"

cargo build -p http-scenarios --locked
scenarios="$CARGO_TARGET_DIR/debug/http-scenarios"

# -------------------------------------------------------------- workerd runs
work=$(mktemp -d "${TMPDIR:-/tmp}/worker-test.XXXXXX")
groups=()
cleanup() {
  local status=$?
  for g in "${groups[@]}"; do stop_group "$g"; done
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do
      [ -e "$f" ] || continue
      echo "----- $(basename "$f") (last 60 lines)" >&2
      tail -n 60 "$f" >&2 || true
    done
  fi
  if [ -n "${WORKER_KEEP_LOGS:-}" ]; then log "logs kept in $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_group PGID: TERM the process group (wrangler, its node children and
# workerd), then KILL what is left after 10 s.
stop_group() {
  local g=$1
  kill -0 -- "-$g" 2>/dev/null || return 0
  kill -TERM -- "-$g" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$g" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || true
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# Two wrangler configs with the shipped one's compatibility date and
# bindings, one per bundle, and no [build] (the bundles are built above):
# Workers A and D run the test bundle (they need its /__dev routes), B and C
# the deployable one, so both are exercised in workerd.
compat=$(sed -n 's/^compatibility_date *= *"\(.*\)"/\1/p' "$example/wrangler.toml")
for variant in build build-dev; do
  cat >"$work/wrangler-$variant.toml" <<EOF
name = "mcp-oauth-worker-test"
main = "$root/$example/$variant/index.js"
compatibility_date = "$compat"

[[kv_namespaces]]
binding = "OAUTH_KV"
id = "00000000000000000000000000000000"

[[durable_objects.bindings]]
name = "OAUTH_STORE"
class_name = "OAuthStoreObject"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["OAuthStoreObject"]
EOF
done

# start_worker NAME BUNDLE PORT PERSIST_DIR [--var K:V ...]: wrangler dev
# --local with BUNDLE (build or build-dev) in its own process group; sets
# $url once the metadata answers.
start_worker() {
  local name=$1 bundle=$2 port=$3 persist=$4
  shift 4
  setsid "$wrangler" dev --config "$work/wrangler-$bundle.toml" --local --ip 127.0.0.1 --port "$port" \
    --persist-to "$persist" --show-interactive-dev-session=false "$@" >>"$work/$name.log" 2>&1 &
  local pid=$!
  groups+=("$pid")
  url="http://127.0.0.1:$port"
  local deadline=$((SECONDS + 90))
  until curl -fs -o /dev/null --max-time 2 "$url/.well-known/oauth-authorization-server"; do
    kill -0 "$pid" 2>/dev/null || die "worker $name exited before it was ready"
    [ "$SECONDS" -lt "$deadline" ] || die "worker $name not ready after 90 s"
    sleep 0.2
  done
  last_group=$pid
  log "worker $name ready at $url (process group $pid)"
}

# A: auto-approve, strict rotation, development routes.
port_a=$(free_port)
start_worker a build-dev "$port_a" "$work/kv-a" --var MCP_AUTO_APPROVE:demo --var MCP_DEV_TEST_ROUTES:1
url_a=$url
group_a=$last_group

# conformance URL: the storage-conformance suite inside workerd, against the
# Worker's real store binding (src/dev.rs), printed and judged.
conformance() {
  log "storage conformance in workerd ($2)"
  curl -sS -X POST --max-time 120 -o "$work/conformance.json" "$1/__dev/conformance"
  python3 - "$work/conformance.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(d["conformance"], end="")
print(d["races"], end="")
if "observed_races_claiming_atomicity" in d:
    print("observed, claiming atomicity (KV cannot give it: reported, not judged):")
    for line in d["observed_races_claiming_atomicity"].splitlines()[1:]:
        if "contenders" in line:
            print("  " + line.strip())
if "min_ttl" in d:
    print("60-second minimum (KV's expiration vs the logical one, seconds from now):")
    for r in d["min_ttl"]:
        print("  {record:>20}: logical {logical_expiry_in!s:>5}, KV {kv_expiration_in!s:>5}, "
              "physical ok {physical_ok}, logical ok {logical_ok}".format(**r))
sys.exit(0 if d["ok"] else 1)
EOF
}

conformance "$url_a" "KV binding"

log "HTTP scenarios (strict)"
"$scenarios" --base-url "$url_a" --refresh-policy strict

log "MCP TypeScript SDK end to end"
E2E_AUTO_URL=$url_a timeout --kill-after=10 300 node --test --test-timeout=120000 e2e/mcp-sdk.test.mjs

log "persistence across a workerd restart"
node "$example/e2e/restart.mjs" before "$url_a" "$work/restart.json"
stop_group "$group_a"
# Same port (so the same issuer) and the same persist directory.
start_worker a-restarted build-dev "$port_a" "$work/kv-a" --var MCP_AUTO_APPROVE:demo
node "$example/e2e/restart.mjs" after "$url_a" "$work/restart.json"
stop_group "$last_group"

# B: grace rotation.
start_worker b build "$(free_port)" "$work/kv-b" --var MCP_AUTO_APPROVE:demo --var MCP_REFRESH_POLICY:grace
log "HTTP scenarios (grace)"
"$scenarios" --base-url "$url" --refresh-policy grace
stop_group "$last_group"

# C: the real sign-in and consent page.
start_worker c build "$(free_port)" "$work/kv-c"
log "sign-in and consent page in headless Chromium"
mkdir -p test-artifacts
E2E_CONSENT_URL=$url E2E_SCREENSHOT_PREFIX=worker \
  timeout --kill-after=10 300 node --test --test-timeout=120000 e2e/consent-browser.test.mjs
stop_group "$last_group"

# D: the records in the Durable Object store (MCP_STORE=durable).
port_d=$(free_port)
start_worker d build-dev "$port_d" "$work/do-d" --var MCP_AUTO_APPROVE:demo --var MCP_DEV_TEST_ROUTES:1 --var MCP_STORE:durable
url_d=$url
conformance "$url_d" "Durable Object store, atomicity judged"
log "HTTP scenarios (strict, Durable Object store)"
"$scenarios" --base-url "$url_d" --refresh-policy strict
log "MCP SDK and 50 concurrent redemptions/refreshes of one credential (Durable Object store)"
E2E_AUTO_URL=$url_d timeout --kill-after=10 300 node --test --test-timeout=120000 e2e/mcp-sdk.test.mjs e2e/races.test.mjs
log "persistence across a workerd restart (Durable Object store)"
node "$example/e2e/restart.mjs" before "$url_d" "$work/restart-d.json"
stop_group "$last_group"
start_worker d-restarted build-dev "$port_d" "$work/do-d" --var MCP_AUTO_APPROVE:demo --var MCP_STORE:durable
node "$example/e2e/restart.mjs" after "$url_d" "$work/restart-d.json"
stop_group "$last_group"

log "all worker checks passed (bundle: $gz bytes gzip -9)"
