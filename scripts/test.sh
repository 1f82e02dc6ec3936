#!/usr/bin/env bash
# Runs every test: unit and integration tests over SQLite, the integration
# suite again over PostgreSQL, the client tests (PyJWT, seed samples), the
# partner portal's browser test (Chromium, both stores) and the
# Python client package's tests (clients/python: unit, then conformance
# against the built binary), and the admin API's fuzz run (schemathesis
# against /admin/openapi.json: no 5xx, every response as its schema says).
# Installs the client tests' dependencies first.
#
#   TG_TEST_PG  PostgreSQL base URL for the second run
#               (default postgres://postgres@127.0.0.1:5432; database `test` must exist)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== cargo test (SQLite)"
cargo test --locked --workspace

echo "== integration suite over PostgreSQL"
TG_TEST_STORE=postgres cargo test --locked -p tollgate -p tollgate-store --tests

echo "== client tests (PyJWT, seed samples)"
TG_BIN="$PWD/target/debug/tollgate" python3 -m pytest -q tests/clients

# Screenshots go to a temporary directory here, so that a test run leaves
# the tree as it was; tests/portal/test_portal.py says how to refresh
# docs/portal/.
echo "== partner portal in Chromium (SQLite, then PostgreSQL)"
TG_BIN="$PWD/target/debug/tollgate" TG_SCREENSHOTS="$(mktemp -d)" python3 -m pytest -q tests/portal
TG_BIN="$PWD/target/debug/tollgate" TG_TEST_STORE=postgres TG_SCREENSHOTS="$(mktemp -d)" \
  python3 -m pytest -q tests/portal

echo "== Python client package (clients/python)"
TG_BIN="$PWD/target/debug/tollgate" PYTHONPATH="$PWD/clients/python/src${PYTHONPATH:+:$PYTHONPATH}" \
  python3 -m pytest -q clients/python/tests

echo "== admin API fuzz (schemathesis, bounded)"
TG_BIN="$PWD/target/debug/tollgate" scripts/admin-api-fuzz.sh
