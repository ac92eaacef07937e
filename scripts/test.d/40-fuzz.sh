#!/usr/bin/env bash
# Bounded fuzzing of oauth-core: every cargo-fuzz target in fuzz/ runs for
# FUZZ_SECONDS (default 15) from its committed seed corpus, one target at a
# time on one core. Any crash, timeout or out-of-memory fails the step; the
# reproducer is left in fuzz/artifacts/<target>/. Run by scripts/test.sh as a
# step, or alone:
#
#   bash scripts/test.d/40-fuzz.sh
#   FUZZ_SECONDS=120 FUZZ_TARGETS="provider_sequence stored_records" bash scripts/test.d/40-fuzz.sh
#
# Installs cargo-fuzz 0.13.2 (idempotent; skipped under SKIP_INSTALL=1, and
# then required) and needs the nightly toolchain. Builds go to
# $CARGO_TARGET_DIR/fuzz (sanitizer flags differ from the ordinary build, so
# they get their own directory). New inputs the fuzzer finds go to a
# throwaway directory, so the committed corpus is never touched.
# docs/verification.md says what each target checks.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mcp-oauth/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"
seconds=${FUZZ_SECONDS:-15}
sanitizer=${FUZZ_SANITIZER:-address}

log() { printf '[fuzz] %s\n' "$*"; }

# ------------------------------------------------------------------ installs
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  if [ -n "${SKIP_INSTALL:-}" ]; then
    echo "[fuzz] cargo-fuzz is missing and SKIP_INSTALL is set" >&2
    exit 1
  fi
  log "installing cargo-fuzz 0.13.2"
  cargo install cargo-fuzz --version 0.13.2 --locked || cargo install cargo-fuzz --version 0.13.2
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  if [ -n "${SKIP_INSTALL:-}" ]; then
    echo "[fuzz] the nightly toolchain is missing and SKIP_INSTALL is set" >&2
    exit 1
  fi
  log "installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}

# --------------------------------------------------------------------- build
log "building $(echo "$targets" | wc -w) targets (sanitizer: $sanitizer)"
cargo +nightly fuzz build --sanitizer "$sanitizer" --target-dir "$fuzz_target_dir"

# ----------------------------------------------------------------------- run
work=$(mktemp -d "${TMPDIR:-/tmp}/oauth-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for t in $targets; do
  mkdir -p "$work/$t"
  seeds=()
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
  # Sequences of up to 64 four-byte actions: explore long ones from the start.
  extra=()
  [ "$t" = provider_sequence ] && extra=(-max_len=256 -len_control=0)
  log "$t: ${seconds}s"
  status=0
  # The first corpus directory receives new inputs; the seeds are only read.
  # -timeout flags a single input running over 10 s (a flow that never
  # ends) as a failure, -rss_limit_mb one that eats memory.
  cargo +nightly fuzz run --sanitizer "$sanitizer" --target-dir "$fuzz_target_dir" "$t" "$work/$t" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" \
    >"$work/$t.log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$work/$t.log" | tail -n1 || true)
  summary+=("$(printf '%-22s %10s execs  %s' "$t" "${runs:-?}" "$cov")")
  if [ "$status" -ne 0 ]; then
    failed+=("$t")
    echo "----- $t failed (exit $status); last 60 lines of its log:" >&2
    tail -n 60 "$work/$t.log" >&2
  fi
done

log "summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "[fuzz] FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
log "no crashes"
