#!/usr/bin/env bash
# What reading a caller's budget costs: keep-alive /hello at 20 k req/s on 50 connections for
# 5 s, every request carrying `x-budget: 5000`, against a server that does not read it and one
# started with `--deadline-header x-budget`, interleaved, six rounds each. rtserve --threads 1
# on CPU 0, rtserve-load on CPU 1; server CPU from /proc/PID/stat (10 ms ticks: about 0.1 µs
# per request at this count).
#
#   benches/deadline_header_cost.sh [target/release]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}
PORT=${PORT:-19556}
TICK=$(getconf CLK_TCK)

run() {
    local label=$1
    shift
    taskset -c 0 "$BIN/rtserve" --threads 1 --bind "127.0.0.1:$PORT" -q "$@" 2>/dev/null &
    local server=$!
    sleep 0.5
    local before after out n
    before=$(awk '{print $14 + $15}' "/proc/$server/stat")
    out=$(taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$PORT/hello" --rate 20000 \
        --connections 50 --duration 5s -H "x-budget: 5000" --quiet)
    after=$(awk '{print $14 + $15}' "/proc/$server/stat")
    kill "$server"
    wait "$server" 2>/dev/null || true
    n=$(echo "$out" | awk -F'|' '/^\| count/ {gsub(/ /, "", $5); print $5; exit}')
    awk -v t=$((after - before)) -v k="$TICK" -v n="$n" -v l="$label" \
        'BEGIN { printf "| %s | %d | %.2f |\n", l, n, t / k * 1e6 / n }'
}

echo "| server | requests | server CPU µs per request |"
echo "|---|---|---|"
for _ in 1 2 3 4 5 6; do
    run "header sent, not read"
    run "header sent and read" --deadline-header x-budget
done
