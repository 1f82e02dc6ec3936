#!/usr/bin/env bash
# Dependency checks, offline (CI reaches no advisory service):
#  - duplicates: no crate built in two versions (normal and build edges of
#    the workspace) unless deps/duplicates.allow says why;
#  - the fuzz workspace's lock holds no second version of a crate the root
#    lock holds;
#  - advisories: Cargo.lock and fuzz/Cargo.lock against the vendored, dated
#    RustSec snapshot in deps/advisory-db/ (refresh: scripts/refresh-advisories.sh);
#    any hit fails unless deps/advisories.allow says why. Prints the
#    snapshot's age and warns past 90 days.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== duplicate crates"
tree="$(cargo tree --locked --workspace -d --edges normal,build)"
python3 scripts/deps_check.py duplicates <<<"$tree"
echo "== fuzz/Cargo.lock against Cargo.lock"
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
python3 scripts/deps_check.py fuzz-lock
echo "== advisories"
python3 scripts/deps_check.py advisories
