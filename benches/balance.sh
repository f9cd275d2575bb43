#!/usr/bin/env bash
# How the kernel spreads keep-alive connections over two reactors (SO_REUSEPORT hashes each
# connection's addresses to one listener): for 20, 50 and 200 connections, ten runs each,
# every run a fresh `rtserve --threads 2` and `rtserve-load` on those connections at 2,000
# req/s for 1 s; the share of responses the busier reactor sent, from
# rtserve_reactor_requests_total{reactor} in /metrics. Prints a Markdown table: the mean and
# the worst of the ten.
#
#   benches/balance.sh [target/release] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
BIN=${1:-target/release}
RUNS=${2:-10}
PORT=${PORT:-19283}

share() {
    local conns=$1
    "$BIN/rtserve" --threads 2 --bind "127.0.0.1:$PORT" -q 2>/dev/null &
    local server=$!
    await_port "$server" "$PORT"
    "$BIN/rtserve-load" "http://127.0.0.1:$PORT/hello" --rate 2000 --connections "$conns" \
        --duration 1s --warmup 0s --quiet >/dev/null
    reactor_counts "http://127.0.0.1:$PORT" | awk '
        $1 == "requests" { n[++i] = $3; total += $3 }
        END { busiest = n[1] > n[2] ? n[1] : n[2]; printf "%.4f\n", busiest / total }'
    kill "$server"
    wait "$server" 2>/dev/null || true
}

echo "| connections | runs | busier reactor's share of requests: mean | worst | runs over 60 % |"
echo "|---|---|---|---|---|"
for conns in 20 50 200; do
    shares=()
    for _ in $(seq "$RUNS"); do
        shares+=("$(share "$conns")")
    done
    printf '%s\n' "${shares[@]}" | awk -v c="$conns" -v r="$RUNS" '
        { sum += $1; if ($1 > worst) worst = $1; if ($1 > 0.6) over++ }
        END { printf "| %d | %d | %.1f %% | %.1f %% | %d |\n", c, r, sum / NR * 100, worst * 100, over }'
done
