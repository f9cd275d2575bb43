#!/usr/bin/env bash
# Restarts on one host, the figures in BENCHMARKS.md ("Restarts"):
#   1. 20 hand-overs (--control) under rtserve-load at 3000 req/s, new connections, then
#      keep-alive connections: failed and unsent requests;
#   2. 20 --shared-port restarts under `ab -r -n 30000 -c 20` without keep-alive, with
#      net.ipv4.tcp_migrate_req at 0 and at 1 (needs root; the setting is put back).
# The server runs on CPU 0, the generator on CPU 1. Usage: benches/restarts.sh [target/release]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}
WORK=$(mktemp -d)
PIDS=()
MIGRATE=$(sysctl -n net.ipv4.tcp_migrate_req 2>/dev/null || echo "")
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$MIGRATE" ] && sysctl -q -w "net.ipv4.tcp_migrate_req=$MIGRATE" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# 1. Hand-overs: a new rtserve takes the sockets over every second, 20 times.
handovers() {
    local mode=$1 port=$2
    shift 2
    local control="$WORK/control-$port"
    taskset -c 0 "$BIN/rtserve" --threads 1 --bind "127.0.0.1:$port" --control "$control" -q 2>/dev/null &
    PIDS+=("$!")
    sleep 0.5
    taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$port/hello" --rate 3000 \
        --connections 50 --duration 24s --warmup 1s --quiet --timeout-ms 3000 "$@" \
        >"$WORK/load.md" &
    local load=$!
    sleep 2
    for _ in $(seq 20); do
        taskset -c 0 "$BIN/rtserve" --threads 1 --bind 127.0.0.1:1 --control "$control" -q 2>/dev/null &
        PIDS+=("$!")
        sleep 1
    done
    wait "$load"
    echo "20 hand-overs, $mode:"
    grep -E "^\| (count|corrected \(from)" "$WORK/load.md"
}
handovers "a new connection per request" 18600 --new-conn
handovers "keep-alive connections" 18601

# 2. --shared-port restarts under ab, tcp_migrate_req off and on.
command -v ab >/dev/null || (apt-get update -qq && apt-get install -y -qq apache2-utils) >/dev/null
restart() {
    local port=$1
    taskset -c 0 "$BIN/rtserve" --threads 1 --bind "127.0.0.1:$port" -q 2>/dev/null &
    local old=$!
    sleep 0.3
    taskset -c 0 "$BIN/rtserve" --threads 1 --bind "127.0.0.1:$port" --shared-port -q 2>/dev/null &
    local new=$!
    PIDS+=("$old" "$new")
    sleep 0.3
    (sleep 1 && kill -TERM "$old") &
    taskset -c 1 ab -r -q -n 30000 -c 20 "http://127.0.0.1:$port/hello" 2>&1 |
        awk '/Failed requests/ {print $3}'
    wait "$old" 2>/dev/null || true
    kill -TERM "$new"
    wait "$new" 2>/dev/null || true
}
if sysctl -q -w net.ipv4.tcp_migrate_req=0 2>/dev/null; then
    for migrate in 0 1; do
        sysctl -q -w "net.ipv4.tcp_migrate_req=$migrate"
        failed=()
        for i in $(seq 20); do failed+=("$(restart $((18610 + 2 * i + migrate)))"); done
        echo "20 --shared-port restarts, tcp_migrate_req=$migrate: failed requests ${failed[*]}"
    done
else
    echo "--shared-port restarts skipped: net.ipv4.tcp_migrate_req cannot be set here"
fi
