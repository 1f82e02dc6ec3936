#!/bin/sh
# Times `tollgate migrate-store` on a biggish store: N clients, N users and
# N live refresh families (default 10000 each) in a SQLite data directory,
# copied into a fresh PostgreSQL database, then copied again (the re-run).
#
#   scripts/bench-migrate.sh [N]      BIN=target/release/tollgate to time a release build
#   PG=postgres://postgres@127.0.0.1:5432 (trust auth; a database `test` to run CREATE DATABASE in)
#
# The rows are cloned with sqlite3 from one client, user and session made
# through the CLI and the server, so every row is one tollgate wrote.
set -eu
N=${1:-10000}
BIN=${BIN:-target/debug/tollgate}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DIR=$(mktemp -d)
DB=tg_bench_migrate_$$
trap 'psql "$PG/test" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"; rm -rf "$DIR"' EXIT

"$BIN" --data-dir "$DIR/data" api create orders --permission orders:read >/dev/null
ID=$("$BIN" --data-dir "$DIR/data" --json client create --name seed --api orders --grant password \
  | sed 's/.*"client_id":"\([^"]*\)".*/\1/')
"$BIN" --data-dir "$DIR/data" user create --client "$ID" --username seed@example.com --password pw >/dev/null
sqlite3 "$DIR/data/tollgate.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N - 1)
INSERT INTO tg_clients SELECT env, client_id || '-' || i, name, secrets, apis, grant_types, token_lifetime,
  extra_claims, enabled, created_at, capabilities, obligation FROM tg_clients, n WHERE client_id = '$ID';
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N - 1)
INSERT INTO tg_users SELECT env, 'user' || i || '@example.com', client_id, password, enabled, created_at
  FROM tg_users, n WHERE username = 'seed@example.com';
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $N - 1)
INSERT INTO tg_refresh_families (env, family, contract, client_id, username, grant_type, audience, scope,
  current_id, previous_id, access_jti, access_exp, issued_at, expires_at, rotated_at, revoked_at, created_at)
  SELECT 'default', 'family-' || i, 'header-login', '$ID', 'user' || i || '@example.com', 'password', 'orders',
  'orders:read', 'current-' || i, NULL, 'access-' || i, strftime('%s','now') + 600, strftime('%s','now'),
  strftime('%s','now') + 86400, NULL, NULL, strftime('%s','now') FROM n;
SQL
ls -l "$DIR/data/tollgate.db"
psql "$PG/test" -qc "CREATE DATABASE $DB"
for run in first again; do
  echo "== $run run"
  /usr/bin/time -f "%e s wall, %M KiB max RSS" "$BIN" migrate-store --from "$DIR/data" --to "$PG/$DB" 2>&1 \
    | grep -v '^not copied\|^  tg_meta\|^  tg_issuance\|^  tg_auth\|^The target\|^Then check\|^verified'
done
