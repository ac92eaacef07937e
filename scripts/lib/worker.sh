# Sourced, not run: build (when stale) and serve the example Worker
# (adapter-worker/example) in local workerd through `wrangler dev --local`,
# as scripts/test.d/50-worker.sh does, for steps that only need a running
# Worker.
#
#   . scripts/lib/worker.sh
#   worker_tools                        # installs what is missing, exports the tool paths
#   worker_bundle adapter-worker/example/build        # no-op when its stamp is current
#   worker_config "$dir/w.toml" build   # a wrangler config for that bundle, no [build]
#   worker_start NAME "$dir/w.toml" PORT PERSIST_DIR LOG [--var K:V ...]   # sets $worker_url, $worker_group
#   worker_stop "$worker_group"
#   worker_cleanup                      # stops every Worker started here (call from the EXIT trap)
#
# The bundle's stamp (adapter-worker/example/<out>/.inputs) is computed
# exactly as 50-worker.sh computes it: a bundle that step built is reused
# here, and one built here is reused there. Keep the two in step. Each
# wrangler runs in its own process group (setsid) and is stopped by that
# group: TERM, then KILL after 10 s. Defines only worker_* names.

worker_example=adapter-worker/example
worker_build_version=0.8.7
worker_groups=()
worker_url=
worker_group=

worker_log() { printf '[worker-lib] %s\n' "$*"; }
worker_die() { printf '[worker-lib] ERROR: %s\n' "$*" >&2; exit 1; }

worker_need_install() {
  [ -z "${SKIP_INSTALL:-}" ] || worker_die "$1 is missing and SKIP_INSTALL is set"
}

worker_cargo_install() {
  cargo install "$1" --version "$2" --locked || cargo install "$1" --version "$2"
}

# worker_tools: the wasm32 target, worker-build, wasm-bindgen-cli at
# Cargo.lock's wasm-bindgen version and node_modules, as 50-worker.sh
# installs them; exports WASM_BINDGEN_BIN, ESBUILD_BIN, WASM_OPT_BIN (so
# worker-build stays offline) and sets $worker_wrangler.
worker_tools() {
  export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    worker_need_install "the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(worker-build --version 2>/dev/null || true)" != "$worker_build_version" ]; then
    worker_need_install "worker-build $worker_build_version"
    worker_log "installing worker-build $worker_build_version"
    worker_cargo_install worker-build "$worker_build_version"
  fi
  local bindgen_version
  bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
  [ -n "$bindgen_version" ] || worker_die "no wasm-bindgen in Cargo.lock"
  if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $bindgen_version" ]; then
    worker_need_install "wasm-bindgen-cli $bindgen_version"
    worker_log "installing wasm-bindgen-cli $bindgen_version"
    worker_cargo_install wasm-bindgen-cli "$bindgen_version"
  fi
  local lock_hash stamp=node_modules/.e2e-package-lock.sha256
  lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$lock_hash" ]; then
    worker_need_install "node_modules"
    worker_log "npm ci"
    npm ci --no-audit --no-fund
    echo "$lock_hash" >"$stamp"
  fi
  WASM_BINDGEN_BIN=$(command -v wasm-bindgen)
  ESBUILD_BIN=$PWD/node_modules/.bin/esbuild
  WASM_OPT_BIN=$PWD/node_modules/.bin/wasm-opt
  export WASM_BINDGEN_BIN ESBUILD_BIN WASM_OPT_BIN
  worker_wrangler=$PWD/node_modules/.bin/wrangler
  local bin
  for bin in "$ESBUILD_BIN" "$WASM_OPT_BIN" "$worker_wrangler"; do
    [ -x "$bin" ] || worker_die "$bin is missing (npm ci)"
  done
}

# The inputs of a bundle, hashed: byte for byte 50-worker.sh's bundle_inputs.
worker_bundle_inputs() {
  {
    find adapter-worker oauth-core/src \( -path "$worker_example/build*" -o -name .wrangler \) -prune \
      -o -type f \( -name '*.rs' -o -name Cargo.toml \) -print | LC_ALL=C sort | xargs sha256sum
    sha256sum Cargo.toml Cargo.lock oauth-core/Cargo.toml
    echo "features: $*"
    worker-build --version
    wasm-bindgen --version
    "$WASM_OPT_BIN" --version
    "$ESBUILD_BIN" --version
  } | sha256sum | cut -d' ' -f1
}

# worker_bundle OUT_DIR [cargo args...]: worker-build with the size profile,
# unless OUT_DIR's stamp names these inputs and the wasm built from them.
worker_bundle() {
  local out=$1
  shift
  local want root=$PWD
  want=$(worker_bundle_inputs "$@")
  if [ -f "$out/index_bg.wasm" ] &&
    [ "$(cat "$out/.inputs" 2>/dev/null)" = "$want $(sha256sum <"$out/index_bg.wasm" | cut -d' ' -f1)" ]; then
    worker_log "bundle $out is up to date"
    return
  fi
  worker_log "worker-build --profile worker --out-dir $out $*"
  (cd "$worker_example" && worker-build --profile worker --out-dir "$root/$out" "$@")
  echo "$want $(sha256sum <"$out/index_bg.wasm" | cut -d' ' -f1)" >"$out/.inputs"
}

# worker_config FILE BUNDLE: a wrangler config serving
# adapter-worker/example/BUNDLE with the shipped config's compatibility date
# and bindings (KV OAUTH_KV, Durable Object OAUTH_STORE) and no [build].
worker_config() {
  local file=$1 bundle=$2 compat
  compat=$(sed -n 's/^compatibility_date *= *"\(.*\)"/\1/p' "$worker_example/wrangler.toml")
  [ -n "$compat" ] || worker_die "no compatibility_date in $worker_example/wrangler.toml"
  cat >"$file" <<EOF
name = "mcp-oauth-worker-test"
main = "$PWD/$worker_example/$bundle/index.js"
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
}

# worker_start NAME CONFIG PORT PERSIST_DIR LOG [wrangler args...]: wrangler
# dev --local on 127.0.0.1:PORT in its own process group; sets $worker_url
# and $worker_group once the metadata answers (bounded to 90 s).
worker_start() {
  local name=$1 config=$2 port=$3 persist=$4 log=$5
  shift 5
  setsid "$worker_wrangler" dev --config "$config" --local --ip 127.0.0.1 --port "$port" \
    --persist-to "$persist" --show-interactive-dev-session=false "$@" >>"$log" 2>&1 &
  local pid=$!
  worker_groups+=("$pid")
  worker_url="http://127.0.0.1:$port"
  local deadline=$((SECONDS + 90))
  until curl -fs -o /dev/null --max-time 2 "$worker_url/.well-known/oauth-authorization-server"; do
    kill -0 "$pid" 2>/dev/null || worker_die "worker $name exited before it was ready (log: $log)"
    [ "$SECONDS" -lt "$deadline" ] || worker_die "worker $name not ready after 90 s (log: $log)"
    sleep 0.2
  done
  worker_group=$pid
  worker_log "worker $name ready at $worker_url (process group $pid)"
}

# worker_stop PGID: TERM the process group (wrangler, its node children and
# workerd), then KILL what is left after 10 s.
worker_stop() {
  local g=$1
  kill -0 -- "-$g" 2>/dev/null || return 0
  kill -TERM -- "-$g" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 -- "-$g" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null || true
}

worker_cleanup() {
  local g
  for g in "${worker_groups[@]}"; do worker_stop "$g"; done
}
