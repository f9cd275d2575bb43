#!/usr/bin/env bash
# Two servers compared on keep-alive requests (/hello by default), the way a change that must
# not cost anything is checked: server CPU per request (and its user and system parts) at 20 k
# req/s on 50 connections for 5 s (DURATION, in seconds; no warm-up, so that the CPU counted and the
# requests counted cover the same time), ROUNDS interleaved rounds (A, B, A, ...), then the system
# calls of each under `strace -c -f` at 10 k req/s for 4 s (after a 1 s warm-up, which strace
# counts too). rtserve on CPU 0 (all its threads), rtserve-load (from A) on CPU 1; CPU time
# from /proc/PID/stat (all threads: 10 ms ticks, about 0.1 µs per request at 20 k req/s).
#
#   benches/compare_cost.sh A_DIR B_DIR      two builds, e.g. /tmp/before target/release
#
# A_FLAGS and B_FLAGS are each server's flags (default `--threads 1`), HEADER ("Name:
# value") is sent with every request. TARGET (default /hello), RATE (default 20000; strace
# runs at half of it) and LOAD_ARGS (more rtserve-load flags, such as a body) change the
# work. What reading a caller's budget costs:
#
#   HEADER="x-budget: 5000" B_FLAGS="--threads 1 --deadline-header x-budget" ROUNDS=6 \
#       benches/compare_cost.sh target/release target/release
#
# What a second reactor costs when both share the one core (the sharing, and the extra
# wake-ups):
#
#   B_FLAGS="--threads 2" ROUNDS=6 benches/compare_cost.sh target/release target/release
#
# The same through the worker pool (its one lock), and with request bodies that span reads
# (the body budget):
#
#   TARGET="/slow?ms=1" RATE=1000 DURATION=10 B_FLAGS="--threads 2" ROUNDS=4 \
#       benches/compare_cost.sh target/release target/release
#   head -c 65536 /dev/zero >/tmp/body; TARGET=/echo RATE=2000 ROUNDS=4 \
#       LOAD_ARGS="-X POST --body-file /tmp/body" B_FLAGS="--threads 2" ROUNDS=6 \
#       benches/compare_cost.sh target/release target/release
set -euo pipefail
# shellcheck source=benches/lib.sh
. "$(dirname "$0")/lib.sh"
A=$1
B=$2
PORT=${PORT:-19555}
ROUNDS=${ROUNDS:-3}
A_FLAGS=${A_FLAGS:---threads 1}
B_FLAGS=${B_FLAGS:---threads 1}
read -r -a A_ARGS <<<"$A_FLAGS"
read -r -a B_ARGS <<<"$B_FLAGS"
TARGET=${TARGET:-/hello}
RATE=${RATE:-20000}
DURATION=${DURATION:-5}
read -r -a LOAD_EXTRA <<<"${LOAD_ARGS:-}"
HEADER_ARGS=()
[ -n "${HEADER:-}" ] && HEADER_ARGS=(-H "$HEADER")
HEADER_ARGS+=("${LOAD_EXTRA[@]}")
TICK=$(getconf CLK_TCK)
LOAD="$A/rtserve-load"

stop_on_exit ""

# run DIR LABEL [FLAGS...]
run() {
    local dir=$1 label=$2
    shift 2
    taskset -c 0 "$dir/rtserve" --bind "127.0.0.1:$PORT" -q "$@" 2>/dev/null &
    local server=$!
    SERVER=$server
    await_port "$server" "$PORT"
    local before after out n
    before=$(awk '{print $14, $15}' "/proc/$server/stat")
    out=$(taskset -c 1 "$LOAD" "http://127.0.0.1:$PORT$TARGET" --rate "$RATE" --connections 50 \
        --duration "${DURATION}s" --warmup 0s "${HEADER_ARGS[@]}" --quiet)
    after=$(awk '{print $14, $15}' "/proc/$server/stat")
    stop_server
    n=$(echo "$out" | awk -F'|' '/^\| count/ {gsub(/ /, "", $5); print $5; exit}')
    echo "$before $after" | awk -v k="$TICK" -v n="$n" -v l="$label" '{
        u = ($3 - $1) / k * 1e6 / n; s = ($4 - $2) / k * 1e6 / n
        printf "| %s | %d | %.1f | %.1f | %.1f |\n", l, n, u + s, u, s }'
}

echo "| server | requests | server CPU µs per request | user | system |"
echo "|---|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
    run "$A" "A: $A $A_FLAGS" "${A_ARGS[@]}"
    run "$B" "B: $B $B_FLAGS" "${B_ARGS[@]}"
done
echo
echo "| server | system calls | recvmsg | sendto | epoll_wait | epoll_ctl | timerfd_settime | futex | write |"
echo "|---|---|---|---|---|---|---|---|---|"
for side in A B; do
    if [ $side = A ]; then dir=$A; flags=("${A_ARGS[@]}"); else dir=$B; flags=("${B_ARGS[@]}"); fi
    trace=$(mktemp)
    taskset -c 0 strace -c -f -o "$trace" "$dir/rtserve" --bind "127.0.0.1:$PORT" -q \
        "${flags[@]}" 2>/dev/null &
    tracer=$!
    SERVER=$tracer
    await_port "$tracer" "$PORT"
    taskset -c 1 "$LOAD" "http://127.0.0.1:$PORT$TARGET" --rate $((RATE / 2)) --connections 50 \
        --duration 4s "${HEADER_ARGS[@]}" --quiet >/dev/null
    # SIGINT to the server (strace's child): it shuts down, and strace writes its summary.
    kill -INT "$(pgrep -P "$tracer")"
    wait "$tracer" 2>/dev/null || true
    SERVER=""
    calls() { awk -v s="$1" '$NF == s { print $4 }' "$trace"; }
    total=$(awk '$NF == "total" { print $4 }' "$trace")
    echo "| $side: $dir ${flags[*]} | $total | $(calls recvmsg) | $(calls sendto) | $(calls epoll_wait) | $(calls epoll_ctl) | $(calls timerfd_settime) | $(calls futex) | $(calls write) |"
    rm "$trace"
done
