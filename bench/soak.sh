#!/usr/bin/env bash
# Soak: one tollgate (release, SQLite, `serve --contracts all`) under a
# mixed load (bench/soak.lua: client_credentials, device refresh, header-login
# logins and rotations) at a fraction of its peak for a long time, to show
# that memory stays flat and latency stable. Not part of CI.
#
#   bench/soak.sh                  # 10 minutes at 80 % of peak
#   SOAK=600 SLICE=60 FRACTION=0.8 bench/soak.sh
#   SKIP_BUILD=1 bench/soak.sh     # use target/release/tollgate as it is
#   TOLLGATE_LOG=info bench/soak.sh  # the server logs warnings only by default
#
# 1. the peak: the same mix, unpaced, for PEAK seconds (default 15);
# 2. SOAK seconds in slices of SLICE seconds, each a wrk run paced to
#    FRACTION x peak (the pace is corrected after every slice from the
#    rate it got); RSS of the server sampled every 10 s throughout.
# Prints and writes bench/out/soak.md: per slice req/s, p50, p99, errors and
# RSS; and the verdict on RSS (last slice vs the second: flat within 10 %
# or 8 MiB) and p99 (no slice above 3x the median slice). Exits 1 on a
# failed request or a verdict that does not hold.
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK="${SOAK:-600}" SLICE="${SLICE:-60}" FRACTION="${FRACTION:-0.8}" PEAK="${PEAK:-15}"
for v in SOAK SLICE PEAK; do [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be whole seconds" >&2; exit 2; }; done
[[ "$FRACTION" =~ ^0?\.[0-9]+$|^1(\.0*)?$ ]] || { echo "FRACTION must be in (0, 1]" >&2; exit 2; }
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo; $sudo apt-get install -y -qq wrk >/dev/null; }

[ -n "${SKIP_BUILD:-}" ] || cargo build --locked --release -p tollgate
T=target/release/tollgate
out=bench/out/soak; rm -rf "$out"; mkdir -p "$out"
PORT=18191
pid=""; sampler=""
cleanup() {
  local rc=$?
  [ -z "$sampler" ] || kill "$sampler" 2>/dev/null || true
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; } || true
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
j() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
b64() { printf '%s' "$1" | base64 -w0; }

D="$out/data"
$T --data-dir "$D" api create mts-insight-tech --permission odds:read >/dev/null
creds=$($T --json --data-dir "$D" client create --name soak --api mts-insight-tech=odds:read)
BODY="grant_type=client_credentials&client_id=$(j "$creds" client_id)&client_secret=$(j "$creds" client_secret)&audience=mts-insight-tech"
users=$($T --json --data-dir "$D" client create --name devices --public \
  --api mts-insight-tech=odds:read --grant device_credentials --grant password)
uid=$(j "$users" client_id)
$T --data-dir "$D" user create --client "$uid" --username device-1 --password pin-1 >/dev/null
$T --data-dir "$D" user create --client "$uid" --username buyer@example.com --password pw-1 >/dev/null
# Warnings and errors only: a line per request would be some 2 GB of log
# over ten minutes (and a full disk is not what this measures).
TOLLGATE_LOG="${TOLLGATE_LOG:-warn}" \
  $T --data-dir "$D" serve --listen 127.0.0.1:$PORT --contracts all 2>"$out/tollgate.log" & pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
DEVICE_KEY="Basic $(b64 "$uid")"
md5=$(printf '%s' pin-1 | md5sum | cut -d' ' -f1)
DEVICE_REFRESH=$(curl -sf -H "Authorization: $DEVICE_KEY" -d "username=device-1&password=$md5" \
  "http://127.0.0.1:$PORT/v1/token?grant_type=device_credentials" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])')
LOGIN_AUTH="Basic $(b64 buyer@example.com:pw-1)"
export BODY DEVICE_KEY DEVICE_REFRESH LOGIN_AUTH

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
run() { # name seconds delay_ms: one wrk run; prints "rps p50 p99 errors"
  DELAY_MS=$3 wrk -t2 -c64 -d"$2s" --latency -s bench/soak.lua "http://127.0.0.1:$PORT" > "$out/$1.txt" \
    || { echo "wrk failed on $1 (exit $?)" >&2; return 1; }
  python3 - "$out/$1.txt" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    n, unit = float(re.match(r"[\d.]+", v).group()), re.search(r"[a-z]+$", v).group()
    return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"\n\s+50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"\n\s+99%\s+(\S+)", t).group(1))
errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", t))
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
errors += sum(int(x) for x in sock.groups()) if sock else 0
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {errors}")
PY
}

echo "peak: the mix unpaced for ${PEAK}s" >&2
read -r peak _ _ peak_err < <(run peak "$PEAK" 0)
[ "$peak_err" = 0 ] || { echo "the peak run had $peak_err failed requests; see $out/peak.txt" >&2; exit 1; }
target=$(python3 -c "print(round($peak * $FRACTION))")
# Each of 64 connections waits DELAY_MS between requests: rate ~ 64000 / (delay + latency).
delay=$(python3 -c "print(max(0.0, 64000 / $target - 1.0))")
echo "peak $peak req/s; soaking at $target req/s (${FRACTION} of peak) for ${SOAK}s" >&2

( while kill -0 "$pid" 2>/dev/null; do echo "$(date +%s) $(rss_kib)"; sleep 10; done ) > "$out/rss.txt" & sampler=$!
slices=$(( (SOAK + SLICE - 1) / SLICE ))
: > "$out/slices.txt"
for i in $(seq "$slices"); do
  read -r rps p50 p99 err < <(run "slice-$i" "$SLICE" "$delay")
  rss=$(rss_kib)
  echo "$i $rps $p50 $p99 $err $rss $delay" >> "$out/slices.txt"
  echo "  slice $i: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, $err errors, RSS $((rss / 1024)) MiB (delay $delay ms)" >&2
  # Correct the pace toward the target from what this slice got.
  delay=$(python3 -c "
d, got, want = $delay, $rps, $target
lat = max(0.0, 64000 / max(got, 1) - d)
# Damped: latency falls as the pace slows, so a full step overshoots.
print(round(max(0.0, d + 0.7 * (64000 / want - lat - d)), 3))")
done

rc=0
python3 - "$out/slices.txt" "$out/rss.txt" "$peak" "$target" "$FRACTION" "$SLICE" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$(nproc)" "$(date -u '+%Y-%m-%d %H:%M UTC')" \
  > bench/out/soak.md <<'PY' || rc=$?
import statistics, sys
slices_f, rss_f, peak, target, fraction, slice_s, commit, cores, date = sys.argv[1:]
rows = [l.split() for l in open(slices_f) if l.strip()]
rss = [int(l.split()[1]) for l in open(rss_f) if len(l.split()) == 2]
print(f"Soak of {date}, commit {commit}, {cores} cores: the bench/soak.lua mix (8/10 client_credentials, "
      f"1/10 device refresh, 1/10 header-login login or rotation), wrk -t2 -c64 paced to {fraction} of "
      f"the unpaced peak ({float(peak):,.0f} req/s, so {float(target):,.0f} req/s), {len(rows)} slices "
      f"of {slice_s} s; SQLite, release build.")
print()
print("| slice | req/s | p50 ms | p99 ms | failed | RSS MiB at end |")
print("|---:|---:|---:|---:|---:|---:|")
for i, rps, p50, p99, err, r, _ in rows:
    print(f"| {i} | {float(rps):,.0f} | {p50} | {p99} | {err} | {int(r) / 1024:.1f} |")
p99s = [float(r[3]) for r in rows]
errs = sum(int(r[4]) for r in rows)
base = int(rows[1][5]) if len(rows) > 1 else int(rows[0][5])
last = int(rows[-1][5])
flat = last - base <= max(base * 0.10, 8 * 1024)
med = statistics.median(p99s)
stable = max(p99s) <= 3 * med
print()
print(f"RSS sampled every 10 s: min {min(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB; "
      f"end of slice 2 {base / 1024:.1f} MiB, end of the last {last / 1024:.1f} MiB: "
      + ("**flat**" if flat else "**grew**") + " (within 10 % or 8 MiB).")
print(f"p99 per slice: median {med:.2f} ms, max {max(p99s):.2f} ms: "
      + ("**stable**" if stable else "**unstable**") + " (no slice above 3x the median). "
      f"Failed requests: {errs}.")
sys.exit(0 if flat and stable and errs == 0 else 1)
PY

cat bench/out/soak.md
exit $rc
