#!/usr/bin/env bash
# The async path's own cost: server CPU per request for /hello answered inline, by a future
# spawned on the runtime that is ready at once, and by one that yields once, at a fixed rate,
# interleaved. rtserve (--threads 1; the reactor and the runtime it starts) on CPU 0,
# rtserve-load on CPU 1. CPU time from /proc/PID/stat (user + system, all threads).
# Usage: benches/async_overhead.sh [target/release] [rate] [seconds] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}
RATE=${2:-20000}
SECS=${3:-8}
ROUNDS=${4:-3}
PORT=19400
taskset -c 0 "$BIN/rtserve" --threads 1 --bind "127.0.0.1:$PORT" -q 2>/dev/null &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
sleep 0.5
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
echo "| round | path | requests | server CPU µs per request | p99 ms |"
echo "|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
    for path in /hello /async/hello "/async/hello?yield=1"; do
        before=$(cpu)
        out=$(taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$PORT$path" --rate "$RATE" \
            --connections 50 --duration "${SECS}s" --quiet)
        after=$(cpu)
        done_=$(echo "$out" | awk -F'|' '/^\| count/ {gsub(/ /, "", $5); print $5; exit}')
        p99=$(echo "$out" | awk -F'|' '/^\| corrected/ {gsub(/ /, "", $5); print $5; exit}')
        us=$(awk -v t="$((after - before))" -v k="$TICK" -v n="$done_" \
            'BEGIN { printf "%.1f", t / k * 1e6 / n }')
        echo "| $round | \`$path\` | $done_ | $us | $p99 |"
    done
done
