#!/usr/bin/env bash
# Refreshes the vendored RustSec advisory snapshot (deps/advisory-db/) that
# scripts/deps-check.sh reads offline: the advisories of every crate named
# in Cargo.lock or fuzz/Cargo.lock, all versions (the check matches them),
# in advisory-db's own layout, and SNAPSHOT.toml (source commit, its date,
# the crates covered). Needs a checkout of the advisory database, CI cannot
# reach it:
#
#   scripts/refresh-advisories.sh [ADVISORY_DB_CHECKOUT]
#
# Without an argument it clones https://github.com/rustsec/advisory-db
# (shallow) into a temporary directory. Run it after adding a dependency
# (the check fails for a crate the snapshot was not taken for) and at least
# every 90 days (the check warns past that), then commit deps/advisory-db/.
set -euo pipefail
cd "$(dirname "$0")/.."

src="${1:-}"
if [ -z "$src" ]; then
  src="$(mktemp -d)/advisory-db"
  git clone --quiet --depth 1 https://github.com/rustsec/advisory-db "$src"
fi
[ -d "$src/crates" ] || { echo "$src is not an advisory-db checkout (no crates/)" >&2; exit 1; }

commit="$(git -C "$src" log -1 --format=%H)"
date="$(git -C "$src" log -1 --format=%cs)"

names="$(python3 - <<'PY'
import tomllib
names = set()
for lock in ("Cargo.lock", "fuzz/Cargo.lock"):
    with open(lock, "rb") as f:
        for p in tomllib.load(f).get("package", []):
            if p.get("source", "").startswith("registry+"):
                names.add(p["name"])
print("\n".join(sorted(names)))
PY
)"

out=deps/advisory-db
rm -rf "$out/crates"
mkdir -p "$out/crates"
n=0
for name in $names; do
  if [ -d "$src/crates/$name" ]; then
    cp -r "$src/crates/$name" "$out/crates/$name"
    n=$((n + $(ls "$src/crates/$name" | wc -l)))
  fi
done
{
  echo "# Written by scripts/refresh-advisories.sh; do not edit."
  echo "source = \"https://github.com/rustsec/advisory-db\""
  echo "commit = \"$commit\""
  echo "date = $date"
  echo "crates = ["
  for name in $names; do echo "  \"$name\","; done
  echo "]"
} > "$out/SNAPSHOT.toml"
echo "deps/advisory-db: $n advisories for $(echo "$names" | wc -l) crates, advisory-db $commit of $date"
