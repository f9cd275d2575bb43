#!/usr/bin/env bash
# Two builds of the server compared on keep-alive /hello, the way a change that must not cost
# anything is checked: server CPU per request at 20 k req/s on 50 connections for 5 s, three
# interleaved rounds (before, after, before, ...), then the system calls of each under
# `strace -c -f` at 10 k req/s for 4 s (after a 1 s warm-up, which strace counts too).
# rtserve --threads 1 on CPU 0, rtserve-load (from BEFORE) on CPU 1; CPU time from
# /proc/PID/stat (user + system, all threads).
#
#   benches/compare_cost.sh BEFORE_DIR AFTER_DIR     e.g. /tmp/before target/release
set -euo pipefail
A=$1
B=$2
PORT=${PORT:-19555}
TICK=$(getconf CLK_TCK)
LOAD="$A/rtserve-load"

run() {
    taskset -c 0 "$1/rtserve" --threads 1 --bind "127.0.0.1:$PORT" -q 2>/dev/null &
    local server=$!
    sleep 0.5
    local before after out n
    before=$(awk '{print $14 + $15}' "/proc/$server/stat")
    out=$(taskset -c 1 "$LOAD" "http://127.0.0.1:$PORT/hello" --rate 20000 --connections 50 \
        --duration 5s --quiet)
    after=$(awk '{print $14 + $15}' "/proc/$server/stat")
    kill "$server"
    wait "$server" 2>/dev/null || true
    n=$(echo "$out" | awk -F'|' '/^\| count/ {gsub(/ /, "", $5); print $5; exit}')
    awk -v t=$((after - before)) -v k="$TICK" -v n="$n" -v d="$1" \
        'BEGIN { printf "| %s | %d | %.1f |\n", d, n, t / k * 1e6 / n }'
}

echo "| build | requests | server CPU µs per request |"
echo "|---|---|---|"
for _ in 1 2 3; do
    run "$A"
    run "$B"
done
echo
echo "| build | system calls | recvmsg | sendto | epoll_wait | epoll_ctl | timerfd_settime |"
echo "|---|---|---|---|---|---|---|"
for dir in "$A" "$B"; do
    trace=$(mktemp)
    taskset -c 0 strace -c -f -o "$trace" "$dir/rtserve" --threads 1 --bind "127.0.0.1:$PORT" \
        -q 2>/dev/null &
    tracer=$!
    sleep 1
    taskset -c 1 "$LOAD" "http://127.0.0.1:$PORT/hello" --rate 10000 --connections 50 \
        --duration 4s --quiet >/dev/null
    # SIGINT to the server (strace's child): it shuts down, and strace writes its summary.
    kill -INT "$(pgrep -P "$tracer")"
    wait "$tracer" 2>/dev/null || true
    calls() { awk -v s="$1" '$NF == s { print $4 }' "$trace"; }
    total=$(awk '$NF == "total" { print $4 }' "$trace")
    echo "| $dir | $total | $(calls recvmsg) | $(calls sendto) | $(calls epoll_wait) | $(calls epoll_ctl) | $(calls timerfd_settime) |"
    rm "$trace"
done
