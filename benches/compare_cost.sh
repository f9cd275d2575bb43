#!/usr/bin/env bash
# Two servers compared on keep-alive /hello, the way a change that must not cost anything is
# checked: server CPU per request at 20 k req/s on 50 connections for 5 s, ROUNDS interleaved
# rounds (A, B, A, ...), then the system calls of each under `strace -c -f` at 10 k req/s for
# 4 s (after a 1 s warm-up, which strace counts too). rtserve on CPU 0 (all its threads),
# rtserve-load (from A) on CPU 1; CPU time from /proc/PID/stat (user + system, all threads:
# 10 ms ticks, about 0.1 µs per request at this count).
#
#   benches/compare_cost.sh A_DIR B_DIR      two builds, e.g. /tmp/before target/release
#
# A_FLAGS and B_FLAGS are each server's flags (default `--threads 1`), HEADER ("Name:
# value") is sent with every request. What reading a caller's budget costs:
#
#   HEADER="x-budget: 5000" B_FLAGS="--threads 1 --deadline-header x-budget" ROUNDS=6 \
#       benches/compare_cost.sh target/release target/release
#
# What a second reactor costs when both share the one core (the sharing, and the extra
# wake-ups):
#
#   B_FLAGS="--threads 2" ROUNDS=6 benches/compare_cost.sh target/release target/release
set -euo pipefail
A=$1
B=$2
PORT=${PORT:-19555}
ROUNDS=${ROUNDS:-3}
A_FLAGS=${A_FLAGS:---threads 1}
B_FLAGS=${B_FLAGS:---threads 1}
read -r -a A_ARGS <<<"$A_FLAGS"
read -r -a B_ARGS <<<"$B_FLAGS"
HEADER_ARGS=()
[ -n "${HEADER:-}" ] && HEADER_ARGS=(-H "$HEADER")
TICK=$(getconf CLK_TCK)
LOAD="$A/rtserve-load"

# run DIR LABEL [FLAGS...]
run() {
    local dir=$1 label=$2
    shift 2
    taskset -c 0 "$dir/rtserve" --bind "127.0.0.1:$PORT" -q "$@" 2>/dev/null &
    local server=$!
    sleep 0.5
    local before after out n
    before=$(awk '{print $14 + $15}' "/proc/$server/stat")
    out=$(taskset -c 1 "$LOAD" "http://127.0.0.1:$PORT/hello" --rate 20000 --connections 50 \
        --duration 5s "${HEADER_ARGS[@]}" --quiet)
    after=$(awk '{print $14 + $15}' "/proc/$server/stat")
    kill "$server"
    wait "$server" 2>/dev/null || true
    n=$(echo "$out" | awk -F'|' '/^\| count/ {gsub(/ /, "", $5); print $5; exit}')
    awk -v t=$((after - before)) -v k="$TICK" -v n="$n" -v l="$label" \
        'BEGIN { printf "| %s | %d | %.1f |\n", l, n, t / k * 1e6 / n }'
}

echo "| server | requests | server CPU µs per request |"
echo "|---|---|---|"
for _ in $(seq "$ROUNDS"); do
    run "$A" "A: $A $A_FLAGS" "${A_ARGS[@]}"
    run "$B" "B: $B $B_FLAGS" "${B_ARGS[@]}"
done
echo
echo "| server | system calls | recvmsg | sendto | epoll_wait | epoll_ctl | timerfd_settime |"
echo "|---|---|---|---|---|---|---|"
for side in A B; do
    if [ $side = A ]; then dir=$A; flags=("${A_ARGS[@]}"); else dir=$B; flags=("${B_ARGS[@]}"); fi
    trace=$(mktemp)
    taskset -c 0 strace -c -f -o "$trace" "$dir/rtserve" --bind "127.0.0.1:$PORT" -q \
        "${flags[@]}" 2>/dev/null &
    tracer=$!
    sleep 1
    taskset -c 1 "$LOAD" "http://127.0.0.1:$PORT/hello" --rate 10000 --connections 50 \
        --duration 4s "${HEADER_ARGS[@]}" --quiet >/dev/null
    # SIGINT to the server (strace's child): it shuts down, and strace writes its summary.
    kill -INT "$(pgrep -P "$tracer")"
    wait "$tracer" 2>/dev/null || true
    calls() { awk -v s="$1" '$NF == s { print $4 }' "$trace"; }
    total=$(awk '$NF == "total" { print $4 }' "$trace")
    echo "| $side: $dir ${flags[*]} | $total | $(calls recvmsg) | $(calls sendto) | $(calls epoll_wait) | $(calls epoll_ctl) | $(calls timerfd_settime) |"
    rm "$trace"
done
