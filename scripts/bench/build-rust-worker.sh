#!/usr/bin/env bash
# Build a Rust Worker bundle into OUT_DIR, offline, exactly as
# scripts/test.d/50-worker.sh builds our example's: worker-build 0.8.7,
# wasm-bindgen-cli at Cargo.lock's wasm-bindgen version, esbuild and wasm-opt
# from node_modules. By default our example Worker (adapter-worker/example)
# with the workspace's size-optimised `worker` profile, the deployable
# bundle; CRATE_DIR and PROFILE choose another crate (the floor Worker in
# scripts/bench/floor-worker) or profile (`release`: opt-level 3).
# Installs the two cargo tools when missing (unless SKIP_INSTALL is set).
# Rebuilds only when an input changed (sources, manifests, lockfile, tools).
#
#   bash scripts/bench/build-rust-worker.sh OUT_DIR [CRATE_DIR [PROFILE]]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
out=${1:?usage: build-rust-worker.sh OUT_DIR [CRATE_DIR [PROFILE]]}
example=${2:-adapter-worker/example}
profile=${3:-worker}
# The floor Worker is its own workspace: it starts from the project's lockfile
# (so the same worker and wasm-bindgen versions), which cargo then trims.
if [ "$example" != adapter-worker/example ] && [ ! -f "$example/Cargo.lock" ]; then
  cp Cargo.lock "$example/Cargo.lock"
fi
WORKER_BUILD_VERSION=0.8.7
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}

die() { echo "[rust-worker] $*" >&2; exit 1; }
cargo_install() { cargo install "$1" --version "$2" --locked || cargo install "$1" --version "$2"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  [ -z "${SKIP_INSTALL:-}" ] || die "no wasm32-unknown-unknown target and SKIP_INSTALL is set"
  rustup target add wasm32-unknown-unknown
fi
if [ "$(worker-build --version 2>/dev/null || true)" != "$WORKER_BUILD_VERSION" ]; then
  [ -z "${SKIP_INSTALL:-}" ] || die "no worker-build $WORKER_BUILD_VERSION and SKIP_INSTALL is set"
  cargo_install worker-build "$WORKER_BUILD_VERSION"
fi
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$bindgen_version" ] || die "no wasm-bindgen in Cargo.lock"
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $bindgen_version" ]; then
  [ -z "${SKIP_INSTALL:-}" ] || die "no wasm-bindgen-cli $bindgen_version and SKIP_INSTALL is set"
  cargo_install wasm-bindgen-cli "$bindgen_version"
fi

export WASM_BINDGEN_BIN
WASM_BINDGEN_BIN=$(command -v wasm-bindgen)
export ESBUILD_BIN=$root/node_modules/.bin/esbuild
export WASM_OPT_BIN=$root/node_modules/.bin/wasm-opt
for bin in "$ESBUILD_BIN" "$WASM_OPT_BIN"; do [ -x "$bin" ] || die "$bin is missing (npm ci)"; done

inputs=$(
  {
    find adapter-worker oauth-core/src "$example" \( -path "$example/build*" -o -name .wrangler \) -prune \
      -o -type f \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock -o -name '*.txt' \) -print |
      LC_ALL=C sort -u | xargs sha256sum
    sha256sum Cargo.toml Cargo.lock oauth-core/Cargo.toml
    echo "profile $profile"
    worker-build --version
    wasm-bindgen --version
    "$WASM_OPT_BIN" --version
    "$ESBUILD_BIN" --version
  } | sha256sum | cut -d' ' -f1
)
if [ -f "$out/index_bg.wasm" ] && [ "$(cat "$out/.inputs" 2>/dev/null)" = "$inputs $(sha256sum <"$out/index_bg.wasm" | cut -d' ' -f1)" ]; then
  echo "[rust-worker] $out is up to date"
  exit 0
fi
mkdir -p "$out"
(cd "$example" && worker-build --profile "$profile" --out-dir "$out")
echo "$inputs $(sha256sum <"$out/index_bg.wasm" | cut -d' ' -f1)" >"$out/.inputs"
echo "[rust-worker] built $out: index_bg.wasm $(stat -c %s "$out/index_bg.wasm") bytes"
