#!/usr/bin/env bash
# Load figures of the HTTP API (issue 5, "Speed"), on loopback only.
#
#   bench/api/run.sh            # 100 000 customers, 12 months, 10 s per scenario
#   CUSTOMERS=2000 MONTHS=3 DURATION=3s bench/api/run.sh   # a quick smoke run
#
# Starts `clientlog serve` (release build) on a free loopback port with the demo data (loaded
# once through the real append path into $DATA and reused by later runs), waits until the
# projector has caught up, runs wrk for each scenario, prints a table and stops the server.
# Every step is bounded in time. Needs `wrk` (Debian: apt-get install wrk) and python3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
BIN=${BIN:-$root/target/release/clientlog}
CUSTOMERS=${CUSTOMERS:-100000}
MONTHS=${MONTHS:-12}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
DATA=${DATA:-${TMPDIR:-/tmp}/clientlog-bench-api-$CUSTOMERS-$MONTHS}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-1800}
export CUSTOMERS

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release --bin clientlog" >&2; exit 2; }

mkdir -p "$DATA"
log="$DATA/serve.log"
out="$DATA/serve.out"
: >"$out"
"$BIN" serve --data "$DATA" --listen 127.0.0.1:0 --reevaluate-every 0 \
  --demo --demo-customers "$CUSTOMERS" --demo-months "$MONTHS" --demo-seed 1 \
  >"$out" 2>"$log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT

# The demo is appended before the API listens; the address is printed once it does.
base=""
for _ in $(seq 1 "$LOAD_TIMEOUT"); do
  base=$(sed -n 's/.*listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$out" | head -1)
  [ -n "$base" ] && break
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 1
done
[ -n "$base" ] || { echo "the server did not listen within ${LOAD_TIMEOUT}s" >&2; exit 1; }
echo "server: $base (data in $DATA)" >&2

# Caught up: /readyz answers 200 and every partition's lag is 0.
started=$(date +%s)
until curl -fsS "$base/readyz" 2>/dev/null |
  python3 -c 'import json,sys; sys.exit(0 if all(v == 0 for v in json.load(sys.stdin)["lag"].values()) else 1)' 2>/dev/null; do
  [ $(( $(date +%s) - started )) -lt "$LOAD_TIMEOUT" ] || { echo "the projector did not catch up" >&2; exit 1; }
  kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
  sleep 2
done
customers=$(curl -fsS "$base/v1/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["customers"])')
echo "projected: $customers customers, caught up after $(( $(date +%s) - started ))s of waiting" >&2

run() { # name script target-rps target-p99-ms
  local name=$1 script=$2 target_rps=$3 target_p99=$4 lua
  lua=$(mktemp)
  cat "$here/common.lua" "$here/$script" >"$lua"
  # wrk stops itself after DURATION; the timeout is a backstop.
  local result
  result=$(timeout 120 wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$lua" "$base" | grep '^RESULT')
  rm -f "$lua"
  python3 - "$name" "$target_rps" "$target_p99" "$result" <<'PY'
import sys
name, target_rps, target_p99, line = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
f = dict(kv.split("=") for kv in line.split()[1:])
ok = (target_rps == "-" or float(f["rps"]) >= float(target_rps)) and \
     (target_p99 == "-" or float(f["p99_ms"]) < float(target_p99)) and f["errors"] == "0"
target = "-" if target_rps == "-" else f">={target_rps}/s, p99<{target_p99}ms"
print(f"| {name:<44} | {float(f['rps']):>9.0f} | {f['p50_ms']:>7} | {f['p99_ms']:>7} | {f['errors']:>6} | {target:<22} | {'yes' if ok else 'NO' if target_rps != '-' else '-':<4} |")
PY
}

echo
echo "clientlog API on loopback: $customers customers, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores shared by server and load"
echo "| scenario                                     |     req/s | p50 ms  | p99 ms  | non-2xx | target                 | met  |"
echo "|----------------------------------------------|-----------|---------|---------|--------|------------------------|------|"
run "GET /v1/customers/{id}" card.lua 15000 5
run "GET /v1/customers?grade=B&sort=risk&limit=50" list.lua 3000 20
run "POST /v1/events (1 event each)" events.lua 15000 20
run "GET /healthz" healthz.lua - -
