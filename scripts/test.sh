#!/usr/bin/env bash
# The whole test suite, installing what it needs. Idempotent: a second run
# on the same machine skips every install that is already satisfied.
#
#   bash scripts/test.sh            # everything
#   SKIP_INSTALL=1 bash scripts/test.sh   # assume the tools are present
#
# Builds go to $CARGO_TARGET_DIR (default: ~/.cache/mcp-oauth/target), outside
# the checkout, so a fresh clone reuses earlier builds.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export CARGO_INCREMENTAL=0
mkdir -p "$CARGO_TARGET_DIR"

step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started ))s"; }

# ---------------------------------------------------------------- installs
if [ -z "${SKIP_INSTALL:-}" ]; then
  step "toolchain targets"
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
  if [ -f scripts/install.sh ]; then
    bash scripts/install.sh
  fi
fi

# ------------------------------------------------------------------ checks
step "format"
cargo fmt --all --check

step "clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "oauth-core on wasm32-unknown-unknown"
cargo build -p oauth-core --target wasm32-unknown-unknown --locked
cargo build -p oauth-core --features testing --target wasm32-unknown-unknown --locked

step "oauth-core docs (rustdoc warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc -p oauth-core --no-deps --all-features --locked

step "oauth-core tests ($(elapsed))"
cargo test -p oauth-core --locked

for extra in scripts/test.d/*.sh; do
  [ -e "$extra" ] || continue
  step "$(basename "$extra" .sh) ($(elapsed))"
  bash "$extra"
done

step "all green in $(elapsed)"
