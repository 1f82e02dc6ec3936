#!/usr/bin/env bash
# Benchmark: every contract's issuance and refresh path through `tollgate
# serve` (release, SQLite, --contracts all) beside the floor (bench/floor,
# client_credentials only) in the same run, same load: wrk, 2 threads, 64
# connections. Prints req/s and p99 per path, each path's ratio to
# client_credentials, and the argon2id cost; writes bench/out/results.md.
#
#   DURATION=10s bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10s}"
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get install -y -qq wrk; }

cargo build --locked --release -p tollgate -p tollgate-bench-floor
out=bench/out; rm -rf "$out"; mkdir -p "$out"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

T=target/release/tollgate
D="$out/data"
j() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
b64() { printf '%s' "$1" | base64 -w0; }
$T --data-dir "$D" api create mts-insight-tech --permission odds:read >/dev/null
creds=$($T --json --data-dir "$D" client create --name bench --api mts-insight-tech=odds:read)
cid=$(j "$creds" client_id)
sec=$(j "$creds" client_secret)
body="grant_type=client_credentials&client_id=$cid&client_secret=$sec&audience=mts-insight-tech"
rjwt=$(j "$($T --json --data-dir "$D" refresh-jwt issue --client "$cid")" refresh_jwt)
users=$($T --json --data-dir "$D" client create --name devices --public \
  --api mts-insight-tech=odds:read --grant device_credentials --grant password)
uid=$(j "$users" client_id)
$T --data-dir "$D" user create --client "$uid" --username device-1 --password pin-1 >/dev/null
$T --data-dir "$D" user create --client "$uid" --username buyer@example.com --password pw-1 >/dev/null
md5=$(printf '%s' pin-1 | md5sum | cut -d' ' -f1)
device_key="Basic $(b64 "$uid")"
device_body="username=device-1&password=$md5"
login_auth="Basic $(b64 buyer@example.com:pw-1)"

$T --data-dir "$D" serve --listen 127.0.0.1:18181 --contracts all 2>"$out/tollgate.log" & pids+=($!)
target/release/tollgate-bench-floor 127.0.0.1:18182 2>"$out/floor.log" & pids+=($!)
for port in 18181 18182; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
# Sanity: both answer 200 with a token before we measure.
for port in 18181 18182; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -d "$body" "http://127.0.0.1:$port/oauth/token")
  [ "$code" = 200 ] || { echo "port $port answered $code"; exit 1; }
done
device_refresh=$(curl -sf -H "Authorization: $device_key" -d "$device_body" \
  "http://127.0.0.1:18181/v1/token?grant_type=device_credentials" | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])')

measure() { # name url script [VAR=value ...]: runs wrk, prints "name req/s p99"
  local name=$1 url=$2 script=$3; shift 3
  env "$@" wrk -t2 -c64 -d"$DURATION" --latency -s "bench/$script" "$url" > "$out/$name.txt"
  local rps p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out/$name.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/$name.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out/$name.txt")
  [ -z "$non2xx" ] || { echo "$name: $non2xx non-2xx responses" >&2; cat "$out/$name.txt" >&2; exit 1; }
  echo "$name $rps $p99"
}
TG=http://127.0.0.1:18181
# Warm both, then measure floor, tollgate, floor again (the floor's figure is the mean).
BODY="$body" wrk -t2 -c64 -d2s -s bench/post.lua $TG/oauth/token >/dev/null
BODY="$body" wrk -t2 -c64 -d2s -s bench/post.lua http://127.0.0.1:18182/oauth/token >/dev/null
{
  measure floor1 http://127.0.0.1:18182/oauth/token post.lua BODY="$body"
  measure client_credentials $TG/oauth/token post.lua BODY="$body"
  measure floor2 http://127.0.0.1:18182/oauth/token post.lua BODY="$body"
  measure bearer_exchange $TG/pub/v2/players/access-token request.lua AUTH="Bearer $rjwt"
  measure device_login "$TG/v1/token?grant_type=device_credentials" request.lua \
    AUTH="$device_key" BODY="$device_body"
  measure device_refresh_reuse "$TG/v1/token?grant_type=refresh_token" request.lua \
    AUTH="$device_key" BODY="refresh_token=$device_refresh"
  measure header_login $TG/v2/authentication/login request.lua METHOD=GET AUTH="$login_auth"
  # Every rotation needs a token of its own: harvest twice as many logins first.
  DUR2="$(( ${DURATION%s} * 2 ))s"
  AUTH="$login_auth" TOKENS="$out/tokens" wrk -t2 -c64 -d"$DUR2" -s bench/harvest.lua \
    $TG/v2/authentication/login >/dev/null
  measure header_refresh_rotate $TG/v2/authentication/refresh rotate.lua TOKENS="$out/tokens"
} > "$out/figures.txt"

python3 - "$out/figures.txt" "$DURATION" > "$out/results.md" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p99 = line.split()
    rows[name] = (float(rps), p99)
dur = sys.argv[2]
f1, f2 = rows["floor1"][0], rows["floor2"][0]
floor = (f1 + f2) / 2
cc = rows["client_credentials"][0]
print("| path | req/s | p99 | vs client_credentials |")
print("|---|---:|---:|---:|")
print(f"| floor (axum + jsonwebtoken::encode, ES256) | {floor:,.0f} (runs: {f1:,.0f}, {f2:,.0f}) | {rows['floor1'][1]} / {rows['floor2'][1]} | |")
labels = {
    "client_credentials": "rfc6749 client_credentials (`POST /oauth/token`)",
    "bearer_exchange": "bearer-exchange (`POST /pub/v2/players/access-token`)",
    "device_login": "device-credentials login (`grant_type=device_credentials`)",
    "device_refresh_reuse": "device-credentials refresh (`grant_type=refresh_token`, reuse)",
    "header_login": "header-login login (`GET /v2/authentication/login`)",
    "header_refresh_rotate": "header-login refresh (`GET /v2/authentication/refresh`, rotation)",
}
for key, label in labels.items():
    rps, p99 = rows[key]
    print(f"| {label} | {rps:,.0f} | {p99} | {rps / cc:.0%} |")
print()
print(f"client_credentials / floor = {cc / floor:.0%} (wrk -t2 -c64 -d{dur}, ES256, SQLite)")
slow = [k for k in ("bearer_exchange", "device_refresh_reuse", "header_refresh_rotate") if cc / rows[k][0] > 2]
print("exchange and refresh paths within 2x of client_credentials: " + ("yes" if not slow else "NO: " + ", ".join(slow)))
PY
cargo run --locked --quiet --release -p tollgate-core --example argon2_cost >> "$out/results.md"
cat "$out/results.md"
