#!/usr/bin/env bash
# Benchmark, one run, one load (wrk, 2 threads, 64 connections, DURATION per
# figure), everything on 127.0.0.1:
#
#   1. the floor (bench/floor: form parse, constant-time compare, claims
#      serialization, one ES256 signature), measured before and after
#      tollgate's client_credentials; its figure is the mean of the two;
#   2. tollgate on SQLite (release, `serve --contracts all`): every contract's
#      issuance and refresh path;
#   3. tollgate on PostgreSQL (a fresh database per run, dropped at exit):
#      client_credentials and header-login rotation with one instance, then
#      with two instances sharing the database behind a local nginx
#      round-robin (plus client_credentials through nginx to one instance,
#      the proxy's own cost);
#   4. the gate (docs/GATE.md): a small upstream (nginx `return 200`)
#      reached (a) directly, (b) through nginx proxy_pass, (c) through nginx
#      + auth_request to tollgate's /gate/check, (d) through tollgate's
#      reverse proxy; the forward-auth decision alone; then (a) and (d)
#      paced at half of (a)'s peak, for the latency the gate adds.
#
# Prints and writes bench/out/results.md: req/s and p99 per path, each
# path's ratio to SQLite client_credentials and to the floor, and the argon2id
# cost. Installs wrk, nginx and psql from Debian if missing.
#
#   DURATION=10s bench/run.sh                       # seconds per figure
#   BENCH_PG_URL=postgres://u@host:5432/db bench/run.sh
#                 # where to CREATE/DROP the run's database (default
#                 # postgres://postgres@127.0.0.1:5432/test); `none` skips
#                 # the PostgreSQL figures
#   HARVEST=3     # header-login logins are harvested for HARVEST x DURATION
#                 # before each rotation figure, one token per rotation
#                 # (raise it if a row says it ran out)
#   BENCH_PG_SYNCHRONOUS_COMMIT=off
#                 # set on the run's database (default: the server's own
#                 # setting), to see what the WAL flush per commit costs
#   BASELINE=1cfd4de
#                 # also builds tollgate at that commit (a detached worktree
#                 # under target/baseline) and measures its SQLite paths in
#                 # the same run, each right after the current build's, so a
#                 # change is judged before/after against one floor
#   SKIP_BUILD=1  # use the release binaries already built (no cargo call,
#                 # so nothing waits on another cargo's lock)
#   GATE=off      # skip the gate's figures
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10s}"
[[ "$DURATION" =~ ^[0-9]+s$ ]] || { echo "DURATION must be whole seconds, e.g. 10s" >&2; exit 2; }
HARVEST="${HARVEST:-3}"
[[ "$HARVEST" =~ ^[1-9][0-9]?$ ]] || { echo "HARVEST must be an integer 1-99" >&2; exit 2; }
PG_ADMIN="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
PG_SYNC="${BENCH_PG_SYNCHRONOUS_COMMIT:-}"
[[ "$PG_SYNC" =~ ^(|on|off|local|remote_write|remote_apply)$ ]] \
  || { echo "BENCH_PG_SYNCHRONOUS_COMMIT must be on, off, local, remote_write or remote_apply" >&2; exit 2; }
BASELINE="${BASELINE:-}"
[[ "$BASELINE" =~ ^[0-9a-zA-Z._/-]*$ ]] || { echo "BASELINE must name a commit" >&2; exit 2; }
started=$(date +%s)

apt_updated=""
need() { # command package: installs the Debian package if the command is missing
  command -v "$1" >/dev/null && return 0
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  if ! $sudo apt-get install -y -qq "$2" >/dev/null; then
    [ -n "$apt_updated" ] || { $sudo apt-get update -qq; apt_updated=1; }
    $sudo apt-get install -y -qq "$2" >/dev/null
  fi
  command -v "$1" >/dev/null || PATH="$PATH:/usr/sbin" command -v "$1" >/dev/null
}
need wrk wrk
PG=on; [ "$PG_ADMIN" != none ] || PG=off
GATE="${GATE:-on}"
[[ "$GATE" =~ ^(on|off)$ ]] || { echo "GATE must be on or off" >&2; exit 2; }
[ $PG = off ] || need psql postgresql-client
if [ $PG = on ] || [ $GATE = on ]; then
  need nginx nginx-light
  NGINX=$(command -v nginx || echo /usr/sbin/nginx)
fi

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --locked --release -p tollgate -p tollgate-bench-floor
  cargo build --locked --release -p tollgate-core --example argon2_cost
fi
out=bench/out; rm -rf "$out"; mkdir -p "$out"
T=target/release/tollgate
TB=""
if [ -n "$BASELINE" ]; then
  # Its own worktree and target directory: the current build stays as it is.
  base_rev=$(git rev-parse --verify "$BASELINE^{commit}")
  base_src=target/baseline/src
  if [ "$(git -C "$base_src" rev-parse HEAD 2>/dev/null)" != "$base_rev" ]; then
    git worktree remove --force "$base_src" 2>/dev/null || rm -rf "$base_src"
    git worktree prune
    git worktree add --detach "$base_src" "$base_rev" >/dev/null
  fi
  [ -n "${SKIP_BUILD:-}" ] || CARGO_TARGET_DIR="$PWD/target/baseline/target" \
    cargo build --locked --release --manifest-path "$base_src/Cargo.toml" -p tollgate
  TB=target/baseline/target/release/tollgate
  BASE_SHORT=$(git rev-parse --short "$base_rev")
fi

# Ports: SQLite tollgate, floor, PostgreSQL instances 1 and 2, nginx
# round-robin (both instances), nginx to instance 1 alone, the baseline;
# the gate's: upstream, nginx proxy_pass, nginx auth_request, the gate's
# tollgate and its reverse proxy.
P_SQL=18181 P_FLOOR=18182 P_PG1=18183 P_PG2=18184 P_RR=18185 P_RR1=18186 P_BASE=18187
P_UP=18188 P_UPX=18189 P_AREQ=18190 P_GTG=18191 P_GPX=18192
for p in $P_SQL $P_FLOOR $P_PG1 $P_PG2 $P_RR $P_RR1 $P_BASE $P_UP $P_UPX $P_AREQ $P_GTG $P_GPX; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "port $p on 127.0.0.1 is in use (another benchmark running?)" >&2; exit 1
  fi
done

# Cleanup, whatever happens: stop what we started (by pid), then drop the database.
pids=()
pgdb=""
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
  if [ -n "$pgdb" ]; then
    psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 \
      || echo "could not drop database $pgdb" >&2
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

j() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
b64() { printf '%s' "$1" | base64 -w0; }
wait_up() { # port: waits (at most 10 s) until something answers HTTP there
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done
  echo "nothing answers on port $1; see $out/*.log" >&2; return 1
}
expect_200() { # url body
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -d "$2" "$1")
  [ "$code" = 200 ] || { echo "$1 answered $code" >&2; return 1; }
}

# provision "--data-dir DIR [--database-url URL]": one API, a generated-secret
# client, a public client with a device user and a header-login user. Sets
# cid, sec, body, uid.
provision() {
  $T "$@" api create mts-insight-tech --permission odds:read >/dev/null
  local creds users
  creds=$($T --json "$@" client create --name bench --api mts-insight-tech=odds:read)
  cid=$(j "$creds" client_id)
  sec=$(j "$creds" client_secret)
  body="grant_type=client_credentials&client_id=$cid&client_secret=$sec&audience=mts-insight-tech"
  users=$($T --json "$@" client create --name devices --public \
    --api mts-insight-tech=odds:read --grant device_credentials --grant password)
  uid=$(j "$users" client_id)
  $T "$@" user create --client "$uid" --username device-1 --password pin-1 >/dev/null
  $T "$@" user create --client "$uid" --username buyer@example.com --password pw-1 >/dev/null
}

measure() { # name url script [VAR=value ...]: runs wrk, prints "name req/s p99 [flag]"
  local name=$1 url=$2 script=$3; shift 3
  env "$@" wrk -t2 -c64 -d"$DURATION" --latency -s "bench/$script" "$url" > "$out/$name.txt"
  local rps p99 non2xx flag=""
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/$name.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out/$name.txt")
  [ -z "$non2xx" ] || { echo "$name: $non2xx non-2xx responses" >&2; cat "$out/$name.txt" >&2; exit 1; }
  ! grep -q 'out of tokens' "$out/$name.txt" || flag=ran-out
  echo "$name $rps $p99 $flag"
  echo "  $name: $rps req/s, p99 $p99 ${flag}" >&2
}
harvest() { # name url: header-login logins for HARVEST x DURATION; tokens in $out/tokens-name.*
  local secs=$(( ${DURATION%s} * HARVEST ))
  AUTH="$login_auth" TOKENS="$out/tokens-$1" wrk -t2 -c64 -d"${secs}s" -s bench/harvest.lua \
    "$2" > "$out/harvest-$1.txt"
  local rps; rps=$(awk '/^Requests\/sec/ {print $2}' "$out/harvest-$1.txt")
  echo "harvest-$1 $rps - -"
  echo "  harvest-$1: $rps logins/s over ${secs}s, $(cat "$out/tokens-$1".* | wc -l) refresh tokens" >&2
}
warm() { BODY="$1" wrk -t2 -c64 -d2s -s bench/post.lua "$2/oauth/token" >/dev/null; }

md5=$(printf '%s' pin-1 | md5sum | cut -d' ' -f1)
device_body="username=device-1&password=$md5"
login_auth="Basic $(b64 buyer@example.com:pw-1)"

# ---- SQLite and the floor -------------------------------------------------
D="$out/sqlite"
provision --data-dir "$D"
sql_body=$body
rjwt=$(j "$($T --json --data-dir "$D" refresh-jwt issue --client "$cid")" refresh_jwt)
device_key="Basic $(b64 "$uid")"
$T --data-dir "$D" serve --listen 127.0.0.1:$P_SQL --contracts all 2>"$out/tollgate-sqlite.log" & pids+=($!)
if [ -n "$TB" ]; then
  # The baseline gets the same data through its own CLI (a store it made itself).
  cur_T=$T cur_cid=$cid cur_sec=$sec cur_uid=$uid
  T=$TB
  BD="$out/baseline"
  provision --data-dir "$BD"
  base_body=$body
  base_rjwt=$(j "$($T --json --data-dir "$BD" refresh-jwt issue --client "$cid")" refresh_jwt)
  base_device_key="Basic $(b64 "$uid")"
  $T --data-dir "$BD" serve --listen 127.0.0.1:$P_BASE --contracts all 2>"$out/tollgate-baseline.log" & pids+=($!)
  T=$cur_T cid=$cur_cid sec=$cur_sec uid=$cur_uid
fi
target/release/tollgate-bench-floor 127.0.0.1:$P_FLOOR "$cid" "$sec" 2>"$out/floor.log" & pids+=($!)

# ---- The gate: an upstream, nginx in front of it, tollgate's gate ----------
if [ $GATE = on ]; then
  # A second tollgate on the same data directory, serving the gate:
  # /gate/check and the reverse proxy (its issuer is the first one's, whose
  # tokens it checks).
  cat > "$out/gate.toml" <<EOF
public_url = "http://127.0.0.1:$P_SQL"
gate_proxy_listen = "127.0.0.1:$P_GPX"
gate_proxy_upstream = "http://127.0.0.1:$P_UP"

[gate]
[[gate.route]]
path = "/v2/odds/**"
audience = "mts-insight-tech"
permissions_any = ["odds:read"]
EOF
  $T --data-dir "$D" serve --listen 127.0.0.1:$P_GTG --config "$out/gate.toml" \
    2>"$out/tollgate-gate.log" & pids+=($!)
  mkdir -p "$out/nginx-gate/logs"
  cat > "$out/nginx-gate/nginx.conf" <<EOF
# Generated by bench/run.sh: the gate's upstream and nginx in front of it.
daemon off;
worker_processes 2;
pid $PWD/$out/nginx-gate/nginx.pid;
error_log $PWD/$out/nginx-gate/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $PWD/$out/nginx-gate/body;
  proxy_temp_path $PWD/$out/nginx-gate/proxy;
  fastcgi_temp_path $PWD/$out/nginx-gate/fastcgi;
  uwsgi_temp_path $PWD/$out/nginx-gate/uwsgi;
  scgi_temp_path $PWD/$out/nginx-gate/scgi;
  upstream up { server 127.0.0.1:$P_UP; keepalive 64; }
  upstream gate { server 127.0.0.1:$P_GTG; keepalive 64; }
  server { listen 127.0.0.1:$P_UP; location / { return 200 "ok\n"; } }
  server {
    listen 127.0.0.1:$P_UPX;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$P_AREQ;
    location / {
      auth_request /_gate;
      proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
    }
    location = /_gate {
      internal;
      proxy_pass http://gate/gate/check; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Original-Method \$request_method;
    }
  }
}
EOF
  "$NGINX" -p "$PWD/$out/nginx-gate" -c "$PWD/$out/nginx-gate/nginx.conf" \
    -e "$PWD/$out/nginx-gate/logs/error.log" 2>"$out/nginx-gate.log" & pids+=($!)
fi

# ---- PostgreSQL: a fresh database, two instances, nginx ---------------------
if [ $PG = on ]; then
  pgdb="tollgate_bench_$$_$(date +%s)"
  psql -q "$PG_ADMIN" -c "CREATE DATABASE $pgdb" >/dev/null
  [ -z "$PG_SYNC" ] || psql -q "$PG_ADMIN" -c "ALTER DATABASE $pgdb SET synchronous_commit = $PG_SYNC" >/dev/null
  PG_URL=$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$PG_ADMIN" "$pgdb")
  # The master key file lives in this directory, shared by both instances.
  PD="$out/postgres"
  provision --data-dir "$PD" --database-url "$PG_URL"
  pg_body=$body
  for port in $P_PG1 $P_PG2; do
    # One public URL for both, as behind a real load balancer.
    $T --data-dir "$PD" --database-url "$PG_URL" serve --listen 127.0.0.1:$port \
      --public-url http://127.0.0.1:$P_RR --contracts all 2>"$out/tollgate-pg-$port.log" & pids+=($!)
  done
  mkdir -p "$out/nginx/logs"
  cat > "$out/nginx/nginx.conf" <<EOF
# Generated by bench/run.sh: a loopback round-robin over two tollgate instances.
daemon off;
worker_processes 2;
pid $PWD/$out/nginx/nginx.pid;
error_log $PWD/$out/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $PWD/$out/nginx/body;
  proxy_temp_path $PWD/$out/nginx/proxy;
  fastcgi_temp_path $PWD/$out/nginx/fastcgi;
  uwsgi_temp_path $PWD/$out/nginx/uwsgi;
  scgi_temp_path $PWD/$out/nginx/scgi;
  upstream both { server 127.0.0.1:$P_PG1; server 127.0.0.1:$P_PG2; keepalive 64; }
  upstream one { server 127.0.0.1:$P_PG1; keepalive 64; }
  server {
    listen 127.0.0.1:$P_RR;
    location / { proxy_pass http://both; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$P_RR1;
    location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
  "$NGINX" -p "$PWD/$out/nginx" -c "$PWD/$out/nginx/nginx.conf" -e "$PWD/$out/nginx/logs/error.log" \
    2>"$out/nginx.log" & pids+=($!)
fi

ports=($P_SQL $P_FLOOR); [ $PG = off ] || ports+=($P_PG1 $P_PG2 $P_RR $P_RR1)
[ $GATE = off ] || ports+=($P_UP $P_UPX $P_GTG $P_GPX)
[ -z "$TB" ] || ports+=($P_BASE)
for port in "${ports[@]}"; do wait_up "$port"; done
# Sanity: every endpoint answers 200 with a token before we measure.
expect_200 "http://127.0.0.1:$P_SQL/oauth/token" "$sql_body"
expect_200 "http://127.0.0.1:$P_FLOOR/oauth/token" "$sql_body"
if [ $PG = on ]; then
  for port in $P_PG1 $P_PG2 $P_RR $P_RR1; do expect_200 "http://127.0.0.1:$port/oauth/token" "$pg_body"; done
fi
first_refresh() { # port key: a device login's refresh token
  curl -sf -H "Authorization: $2" -d "$device_body" \
    "http://127.0.0.1:$1/v1/token?grant_type=device_credentials" | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])'
}
device_refresh=$(first_refresh $P_SQL "$device_key")
if [ -n "$TB" ]; then
  expect_200 "http://127.0.0.1:$P_BASE/oauth/token" "$base_body"
  base_device_refresh=$(first_refresh $P_BASE "$base_device_key")
fi

echo "measuring: wrk -t2 -c64 -d$DURATION per figure; load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
TG=http://127.0.0.1:$P_SQL
FL=http://127.0.0.1:$P_FLOOR
BT=http://127.0.0.1:$P_BASE
{
  warm "$sql_body" $TG
  warm "$sql_body" $FL
  measure floor1 $FL/oauth/token post.lua BODY="$sql_body"
  measure client_credentials $TG/oauth/token post.lua BODY="$sql_body"
  [ -z "$TB" ] || { warm "$base_body" $BT; measure base_client_credentials $BT/oauth/token post.lua BODY="$base_body"; }
  measure floor2 $FL/oauth/token post.lua BODY="$sql_body"
  measure bearer_exchange $TG/pub/v2/players/access-token request.lua AUTH="Bearer $rjwt"
  [ -z "$TB" ] || measure base_bearer_exchange $BT/pub/v2/players/access-token request.lua AUTH="Bearer $base_rjwt"
  measure device_login "$TG/v1/token?grant_type=device_credentials" request.lua \
    AUTH="$device_key" BODY="$device_body"
  [ -z "$TB" ] || measure base_device_login "$BT/v1/token?grant_type=device_credentials" request.lua \
    AUTH="$base_device_key" BODY="$device_body"
  measure device_refresh_reuse "$TG/v1/token?grant_type=refresh_token" request.lua \
    AUTH="$device_key" BODY="refresh_token=$device_refresh"
  [ -z "$TB" ] || measure base_device_refresh_reuse "$BT/v1/token?grant_type=refresh_token" request.lua \
    AUTH="$base_device_key" BODY="refresh_token=$base_device_refresh"
  measure header_login $TG/v2/authentication/login request.lua METHOD=GET AUTH="$login_auth"
  [ -z "$TB" ] || measure base_header_login $BT/v2/authentication/login request.lua METHOD=GET AUTH="$login_auth"
  # Every rotation needs a token of its own: harvest logins first.
  harvest sqlite $TG/v2/authentication/login
  measure header_refresh_rotate $TG/v2/authentication/refresh rotate.lua TOKENS="$out/tokens-sqlite"
  if [ -n "$TB" ]; then
    harvest base $BT/v2/authentication/login
    measure base_header_refresh_rotate $BT/v2/authentication/refresh rotate.lua TOKENS="$out/tokens-base"
  fi
  if [ $GATE = on ]; then
    # A token for the gated route, fresh (its lifetime covers these rows).
    gtok=$(curl -sf -d "$sql_body" "$TG/oauth/token" \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    for target in "gate_direct $P_UP" "gate_nginx_proxy $P_UPX" "gate_nginx_auth_request $P_AREQ" \
      "gate_tollgate_proxy $P_GPX"; do
      read -r tag port <<<"$target"
      code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $gtok" \
        "http://127.0.0.1:$port/v2/odds/1")
      [ "$code" = 200 ] || { echo "$tag answered $code" >&2; exit 1; }
      measure "$tag" "http://127.0.0.1:$port/v2/odds/1" request.lua METHOD=GET AUTH="Bearer $gtok"
    done
    # The decision alone (Envoy's dialect: the original path after the check's).
    measure gate_check "http://127.0.0.1:$P_GTG/gate/check/v2/odds/1" request.lua METHOD=GET \
      AUTH="Bearer $gtok"
    half=$(awk '/^Requests\/sec/ {printf "%d", $2 / 2}' "$out/gate_direct.txt")
    measure gate_direct_paced "http://127.0.0.1:$P_UP/v2/odds/1" paced.lua AUTH="Bearer $gtok" RATE="$half"
    measure gate_tollgate_proxy_paced "http://127.0.0.1:$P_GPX/v2/odds/1" paced.lua \
      AUTH="Bearer $gtok" RATE="$half"
  fi
  if [ $PG = on ]; then
    for target in "pg1 http://127.0.0.1:$P_PG1" "pg2 http://127.0.0.1:$P_RR"; do
      read -r tag url <<<"$target"
      warm "$pg_body" "$url"
      measure "${tag}_client_credentials" "$url/oauth/token" post.lua BODY="$pg_body"
      harvest "$tag" "$url/v2/authentication/login"
      measure "${tag}_header_refresh_rotate" "$url/v2/authentication/refresh" rotate.lua \
        TOKENS="$out/tokens-$tag"
    done
    warm "$pg_body" "http://127.0.0.1:$P_RR1"
    measure pg1_nginx_client_credentials "http://127.0.0.1:$P_RR1/oauth/token" post.lua BODY="$pg_body"
  fi
} > "$out/figures.txt"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
pg_sync=none
[ $PG = off ] || pg_sync=$(psql -At "$PG_URL" -c 'SHOW synchronous_commit')
argon=$(target/release/examples/argon2_cost)

python3 - "$out/figures.txt" "$DURATION" "$HARVEST" "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(nproc)" "$load_before" \
  "$load_after" "$(( $(date +%s) - started ))" "$argon" "$pg_sync" "${BASE_SHORT:-}" > "$out/results.md" <<'PY'
import sys
figures, dur, harvest, date, commit, cores, load0, load1, wall, argon, pg_sync, base = sys.argv[1:]
rows, flags = {}, {}
for line in open(figures):
    name, rps, p99, *flag = line.split()
    rows[name] = (float(rps), p99)
    flags[name] = flag[0] if flag else ""
f1, f2 = rows["floor1"][0], rows["floor2"][0]
floor = (f1 + f2) / 2
cc = rows["client_credentials"][0]
print(f"Run of {date}, commit {commit}, {cores} cores, load average {load0} before "
      f"and {load1} after; wrk -t2 -c64 -d{dur} per figure; ES256; "
      f"{wall} s for the whole run (build excluded)"
      + (f"; PostgreSQL synchronous_commit = {pg_sync}." if pg_sync != "none" else "; PostgreSQL skipped."))
print()
print("req/s: wrk's Requests/sec over the whole duration; p99: wrk's 99th-percentile latency. "
      "All figures come from this one run, taken one after the other; compare ratios, not "
      "absolute figures, across runs.")
print()
print("| path | store, instances | req/s | p99 | vs SQLite client_credentials | vs floor |")
print("|---|---|---:|---:|---:|---:|")
print(f"| **floor** (bench/floor: form, constant-time compare, claims, one ES256 signature) | none | "
      f"{floor:,.0f} (runs: {f1:,.0f}, {f2:,.0f}) | {rows['floor1'][1]} / {rows['floor2'][1]} | | 100% |")
labels = [
    ("client_credentials", "rfc6749 client_credentials (`POST /oauth/token`)", "SQLite, 1"),
    ("bearer_exchange", "bearer-exchange (`POST /pub/v2/players/access-token`)", "SQLite, 1"),
    ("device_login", "device-credentials login (`grant_type=device_credentials`)", "SQLite, 1"),
    ("device_refresh_reuse", "device-credentials refresh (`grant_type=refresh_token`, reuse)", "SQLite, 1"),
    ("header_login", "header-login login (`GET /v2/authentication/login`)", "SQLite, 1"),
    ("header_refresh_rotate", "header-login refresh (`GET /v2/authentication/refresh`, rotation)", "SQLite, 1"),
    ("pg1_client_credentials", "rfc6749 client_credentials", "PostgreSQL, 1"),
    ("pg1_header_refresh_rotate", "header-login refresh (rotation)", "PostgreSQL, 1"),
    ("pg2_client_credentials", "rfc6749 client_credentials", "PostgreSQL, 2 behind nginx"),
    ("pg2_header_refresh_rotate", "header-login refresh (rotation)", "PostgreSQL, 2 behind nginx"),
    ("pg1_nginx_client_credentials", "rfc6749 client_credentials through nginx to one instance (the proxy's own cost)", "PostgreSQL, 1 behind nginx"),
]
for key, label, store in labels:
    if key not in rows:
        continue
    rps, p99 = rows[key]
    note = " (**ran out of harvested tokens: a lower bound**; raise HARVEST)" if flags[key] == "ran-out" else ""
    print(f"| {label}{note} | {store} | {rps:,.0f} | {p99} | {rps / cc:.0%} | {rps / floor:.0%} |")
print()
print(f"client_credentials (SQLite) / floor = **{cc / floor:.0%}**; the floor is the mean of "
      "the runs just before and just after it.")
slow = [k for k in ("bearer_exchange", "device_refresh_reuse", "header_refresh_rotate") if cc / rows[k][0] > 2]
print("SQLite exchange and refresh paths within 2x of client_credentials: "
      + ("yes" if not slow else "NO: " + ", ".join(k + (" (a lower bound)" if flags[k] == "ran-out" else "") for k in slow)))
def ms(p99):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if p99.endswith(unit):
            return float(p99[: -len(unit)]) * f
    return float("nan")
if "gate_direct" in rows:
    print()
    print("The gate (a small upstream, nginx `return 200`, for `GET /v2/odds/1` with a token):")
    print()
    print("| path | req/s | p99 | vs (a) |")
    print("|---|---:|---:|---:|")
    a = rows["gate_direct"][0]
    for key, label in [
        ("gate_direct", "(a) the upstream directly"),
        ("gate_nginx_proxy", "(b) through nginx `proxy_pass`"),
        ("gate_nginx_auth_request", "(c) through nginx + `auth_request` to tollgate's `/gate/check`"),
        ("gate_tollgate_proxy", "(d) through tollgate's reverse proxy"),
        ("gate_check", "the forward-auth decision alone (`/gate/check`)"),
        ("gate_direct_paced", "(a), paced at half of (a)'s peak"),
        ("gate_tollgate_proxy_paced", "(d), paced at half of (a)'s peak"),
    ]:
        if key in rows:
            rps, p99 = rows[key]
            print(f"| {label} | {rps:,.0f} | {p99} | {rps / a:.0%} |")
    d, c = rows["gate_tollgate_proxy"][0], rows["gate_nginx_auth_request"][0]
    added = ms(rows["gate_tollgate_proxy_paced"][1]) - ms(rows["gate_direct_paced"][1])
    print()
    print(f"(d) / (a) = **{d / a:.0%}** (target at least 50 %); (d) / (c) = **{d / c:.1f}x** "
          f"(target at least 2x); p99 added by (d) over (a) at half of (a)'s peak = "
          f"**{added:.2f} ms** (target at most 1 ms).")
h = {k[len("harvest-"):]: v[0] for k, v in rows.items() if k.startswith("harvest-")}
if h:
    names = {"sqlite": "SQLite", "pg1": "PostgreSQL, 1", "pg2": "PostgreSQL, 2 behind nginx",
             "base": f"SQLite, baseline {base}"}
    print("Header-login logins while harvesting refresh tokens for the rotation rows "
          f"({harvest} x {dur}; wrk also writes every token to a file): "
          + "; ".join(f"{names.get(k, k)} {v:,.0f}/s" for k, v in h.items()) + ".")
if base:
    print()
    print(f"Before/after, same run and floor: baseline {base} against this commit ({commit}), SQLite, "
          "each baseline figure taken right after the current one.")
    print()
    print("| path | baseline req/s | baseline vs floor | current req/s | current vs floor | current / baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, label, _ in labels:
        if key not in rows or "base_" + key not in rows:
            continue
        cur, old = rows[key][0], rows["base_" + key][0]
        print(f"| {label} | {old:,.0f} | {old / floor:.0%} | {cur:,.0f} | {cur / floor:.0%} | {cur / old:.0%} |")
print(argon)
PY
cat "$out/results.md"
