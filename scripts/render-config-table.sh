#!/usr/bin/env bash
# Rewrites the configuration reference table in docs/OPERATIONS.md from the
# code (server keys in crates/tollgate/src/config.rs, each contract's keys
# from its registry entry). The test `operations_doc_has_the_current_config_reference`
# fails until this has been run after a key or a default changed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(cargo test --locked -q -p tollgate --lib operations_doc_has_the_current_config_reference 2>&1 || true)
python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
m = re.search(r"(\| key \| environment variable \| default \| meaning \|\n(?:\|.*\|\n)+)", out)
if not m:
    print("the docs already match the code" if "1 passed" in out else out)
    sys.exit(0)
table = m.group(1)
doc = open("docs/OPERATIONS.md").read()
old = re.search(r"\| key \| environment variable \| default \| meaning \|\n(?:\|.*\|\n)+", doc)
if not old:
    sys.exit("docs/OPERATIONS.md has no configuration table to replace")
open("docs/OPERATIONS.md", "w").write(doc[:old.start()] + table + doc[old.end():])
print("docs/OPERATIONS.md: configuration table rewritten")
PY
