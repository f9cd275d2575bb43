#!/usr/bin/env bash
# The same axum router (examples/axum.rs: a path extractor, JSON out, a middleware layer)
# served by axum's own server (axum::serve on a tokio listener) and mounted under rtserve (the
# `tower` feature), at one fixed rate below saturation, interleaved round by round. Both
# servers have one thread of each kind they use (--threads 1: rtserve's reactor and the
# runtime worker it starts; axum's one runtime worker) and run on CPU 0; rtserve-load runs on
# CPU 1. Server CPU time from /proc/PID/stat (user + system, all threads), over warm-up and
# measurement, divided by the requests of both.
# Usage: benches/axum_vs_rtserve.sh [target/release] [rate] [seconds] [rounds]
# Needs: cargo build --release --example axum && cargo build --release -p rtserve-loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}
RATE=${2:-10000}
SECS=${3:-8}
ROUNDS=${4:-3}
WARMUP=1
PATH_=/api/users/42
RTSERVE_PORT=19410
AXUM_PORT=19411
taskset -c 0 "$BIN/examples/axum" --threads 1 --bind "127.0.0.1:$RTSERVE_PORT" 2>/dev/null &
RTSERVE=$!
taskset -c 0 "$BIN/examples/axum" --threads 1 --axum-serve --bind "127.0.0.1:$AXUM_PORT" \
    2>/dev/null &
AXUM=$!
trap 'kill "$RTSERVE" "$AXUM" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
sleep 0.5
TICK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One run against `$1` (name) at port `$2`, pid `$3`: prints "us p99 completed status".
run() {
    local before after out done_ p99 ok us
    before=$(cpu "$3")
    out=$(taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$2$PATH_" --rate "$RATE" \
        --connections 50 --duration "${SECS}s" --warmup "${WARMUP}s" --quiet)
    after=$(cpu "$3")
    done_=$(echo "$out" | awk -F'|' '/^\| count/ {gsub(/ /, "", $5); print $5; exit}')
    ok=$(echo "$out" | awk -F'|' '/^\| count/ {gsub(/ /, "", $8); print $8; exit}')
    p99=$(echo "$out" | awk -F'|' '/^\| corrected/ {gsub(/ /, "", $5); print $5; exit}')
    # The CPU counted covers the warm-up too: count its requests (sent at the same rate).
    us=$(awk -v t="$((after - before))" -v k="$TICK" -v n="$done_" -v s="$SECS" -v w="$WARMUP" \
        'BEGIN { printf "%.1f", t / k * 1e6 / (n * (s + w) / s) }')
    echo "$us $p99 $done_ $ok"
}

echo "| round | server | requests | 2xx | server CPU µs per request | p99 ms (corrected) |"
echo "|---|---|---|---|---|---|"
declare -a AX_US RT_US AX_P99 RT_P99
for round in $(seq "$ROUNDS"); do
    read -r us p99 n ok < <(run axum "$AXUM_PORT" "$AXUM")
    AX_US+=("$us"); AX_P99+=("$p99")
    echo "| $round | axum::serve | $n | $ok | $us | $p99 |"
    read -r us p99 n ok < <(run rtserve "$RTSERVE_PORT" "$RTSERVE")
    RT_US+=("$us"); RT_P99+=("$p99")
    echo "| $round | rtserve + tower::service | $n | $ok | $us | $p99 |"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
ax_us=$(median "${AX_US[@]}"); rt_us=$(median "${RT_US[@]}")
ax_p99=$(median "${AX_P99[@]}"); rt_p99=$(median "${RT_P99[@]}")
echo
echo "| median of $ROUNDS | server CPU µs per request | p99 ms |"
echo "|---|---|---|"
echo "| axum::serve | $ax_us | $ax_p99 |"
echo "| rtserve + tower::service | $rt_us | $rt_p99 |"
awk -v a="$ax_us" -v r="$rt_us" -v ap="$ax_p99" -v rp="$rt_p99" \
    'BEGIN { printf "| rtserve / axum | %.2f | %.2f |\n", r / a, rp / ap }'
