#!/usr/bin/env bash
# Benchmark: client_credentials issuance through `tollgate serve` (release,
# SQLite) against the floor (bench/floor) in the same run, same load:
# wrk, 2 threads, 64 connections. Prints req/s, p99 and the ratio, and writes
# bench/out/results.md.
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
$T --data-dir "$D" api create mts-insight-tech --permission odds:read >/dev/null
creds=$($T --json --data-dir "$D" client create --name bench --api mts-insight-tech=odds:read)
cid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_id"])' "$creds")
sec=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["client_secret"])' "$creds")
body="grant_type=client_credentials&client_id=$cid&client_secret=$sec&audience=mts-insight-tech"

$T --data-dir "$D" serve --listen 127.0.0.1:18181 2>"$out/tollgate.log" & pids+=($!)
target/release/tollgate-bench-floor 127.0.0.1:18182 2>"$out/floor.log" & pids+=($!)
for port in 18181 18182; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
# Sanity: both answer 200 with a token before we measure.
for port in 18181 18182; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -d "$body" "http://127.0.0.1:$port/oauth/token")
  [ "$code" = 200 ] || { echo "port $port answered $code"; exit 1; }
done

measure() { # name port
  BODY="$body" wrk -t2 -c64 -d"$DURATION" --latency -s bench/post.lua "http://127.0.0.1:$2/oauth/token" > "$out/$1.txt"
  local rps p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out/$1.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/$1.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out/$1.txt")
  [ -z "$non2xx" ] || { echo "$1: $non2xx non-2xx responses"; cat "$out/$1.txt"; exit 1; }
  echo "$1 $rps $p99"
}
# Warm both, then measure floor, tollgate, floor again (the floor's figure is the mean).
BODY="$body" wrk -t2 -c64 -d2s -s bench/post.lua http://127.0.0.1:18181/oauth/token >/dev/null
BODY="$body" wrk -t2 -c64 -d2s -s bench/post.lua http://127.0.0.1:18182/oauth/token >/dev/null
read -r _ f1 fp1 < <(measure floor1 18182)
read -r _ t tp < <(measure tollgate 18181)
read -r _ f2 fp2 < <(measure floor2 18182)

python3 - "$f1" "$f2" "$t" "$fp1" "$fp2" "$tp" "$DURATION" > "$out/results.md" <<'PY'
import sys
f1, f2, t = map(float, sys.argv[1:4])
fp1, fp2, tp, dur = sys.argv[4:8]
floor = (f1 + f2) / 2
print(f"| server | req/s | p99 |")
print(f"|---|---:|---:|")
print(f"| floor (axum + jsonwebtoken::encode, ES256) | {floor:,.0f} (runs: {f1:,.0f}, {f2:,.0f}) | {fp1} / {fp2} |")
print(f"| tollgate serve (release, SQLite) | {t:,.0f} | {tp} |")
print()
print(f"tollgate / floor = {t / floor:.0%} (wrk -t2 -c64 -d{dur}, POST form, ES256)")
PY
cargo run --locked --quiet --release -p tollgate-core --example argon2_cost >> "$out/results.md"
cat "$out/results.md"
