#!/usr/bin/env bash
# A bounded fuzzing run in CI: every target in fuzz/ for FUZZ_SECONDS
# (default 20) each, on stable Rust (`-s none`: coverage-guided libFuzzer,
# no sanitizer, which needs nightly). Fails on any crash, panic or failed
# property; the input that found it is kept in fuzz/artifacts/TARGET/ and
# the run prints how to replay it. Installs cargo-fuzz from crates.io if it
# is missing.
#
#   FUZZ_SECONDS  seconds per target (default 20)
#   FUZZ_TARGETS  space-separated targets (default: all of `cargo fuzz list`)
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET, read
# only); what a run learns goes to fuzz/corpus/TARGET (ignored by git), so
# repeated local runs build on each other.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# The fuzz workspace's lock must be up to date (cargo fuzz has no --locked).
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

echo "== building the fuzz targets"
start=$(date +%s)
cargo fuzz build -s none
echo "built in $(( $(date +%s) - start ))s"

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
summary=()
for t in $targets; do
  echo "== fuzz $t (${seconds}s)"
  mkdir -p "fuzz/corpus/$t"
  log="$(mktemp)"
  t0=$(date +%s)
  # -rss_limit_mb: the targets hold a few keys and small inputs; a run that
  # grows past this is a leak or a blow-up worth failing on.
  if ! cargo fuzz run -s none "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t FAILED; the input is in fuzz/artifacts/$t/" \
      "(replay: cargo fuzz run -s none $t fuzz/artifacts/$t/<file>)"
    exit 1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  summary+=("$t: ${execs:-?} execs in $(( $(date +%s) - t0 ))s")
  rm -f "$log"
done
echo "== fuzz smoke: every target ran clean"
printf '  %s\n' "${summary[@]}"
