#!/usr/bin/env bash
# Goodput when the downstream is the bottleneck: the scoring example (POST /v1/score, one Redis
# GET per request, 20 ms route deadline) reads Redis through benches/bottleneck_proxy.py, which
# serves K commands at once, each holding its slot D ms: capacity C = K / D commands/s
# (default 4 / 2 ms = 2000/s), so C is also the most 2xx/s any server can give.
#
# Servers (each on CPU 0 with one thread of each kind it uses; rtserve-load on CPU 1; Redis
# and the proxy unpinned):
#   rtserve-N   the example under rtserve, --max-in-flight N (past N futures on the route:
#               503 rtserve-shed: in-flight at once); the deadline answers 503 and drops the
#               future (its GET, already sent, is still served by the proxy).
#   axum        the same handler under axum::serve (`scoring --axum-serve`): the same client,
#               one multiplexed connection, a 20 ms tokio::time::timeout (503 past it), no
#               in-flight limit.
# For each server and each multiple of C offered (open loop, 200 connections, 1 s warm-up,
# SECS measured), a fresh proxy and a fresh server (a proxy's queue of stale commands would
# otherwise carry over). Reported per run: 2xx/s; goodput = 2xx within 20 ms of the scheduled
# send per second, and as a share of C; the 503 share and the 503s' median and p99 latency
# (rtserve-load's corrected latency, from the scheduled send); and, 50 ms after the load
# stops, rtserve_futures_in_flight and rtserve_shed_total by reason (in-flight, deadline:
# warm-up included) from /metrics (rtserve only). RAW=FILE appends rtserve-load's JSON.
# Usage: benches/downstream_goodput.sh [target/release] [seconds] ["1 2 4"] ["rtserve-16 axum"]
# Needs: cargo build --release --example scoring -p rtserve-loadgen; redis-server; python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}
SECS=${2:-10}
MULTS=${3:-"1 2 4"}
SERVERS=${4:-"rtserve-8 rtserve-16 rtserve-1024 axum"}
SLOTS=${SLOTS:-4}
DELAY_MS=${DELAY_MS:-2}
CONNS=${CONNS:-200}
DEADLINE_MS=20
C=$(awk -v k="$SLOTS" -v d="$DELAY_MS" 'BEGIN { printf "%d", k / d * 1000 }')
command -v redis-server >/dev/null || { echo "redis-server is not on the PATH" >&2; exit 1; }

free_port() { # the first port from $1 that nothing listens on
    local p=$1
    while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
    echo "$p"
}
wait_port() { # until something listens on $1 (5 s at most)
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
    echo "nothing listens on $1" >&2; return 1
}
PIDS=()
stop() { # kill the PIDs given, and wait for them
    for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop "${PIDS[@]}"; rm -f "$BODY"' EXIT
BODY=$(mktemp)
echo '{"account":"acc-17","amount_cents":125000,"country":"FR","merchant":"electronics","hour":3}' >"$BODY"

REDIS_PORT=$(free_port 19500)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --loglevel warning >/dev/null &
REDIS=$!
PIDS+=("$REDIS")
wait_port "$REDIS_PORT"
"$BIN/examples/scoring" --store "redis://127.0.0.1:$REDIS_PORT" --seed 1000
PROXY_PORT=$(free_port $((REDIS_PORT + 1)))
SERVER_PORT=$(free_port $((PROXY_PORT + 1)))

# One run: server `$1` at `$2` x C; prints a table row.
run() {
    local name=$1 mult=$2 rate flags proxy server out inflight shed metrics
    rate=$((C * mult))
    python3 benches/bottleneck_proxy.py --listen "$PROXY_PORT" --redis "$REDIS_PORT" \
        --slots "$SLOTS" --delay-ms "$DELAY_MS" 2>/dev/null &
    proxy=$!
    PIDS+=("$proxy")
    wait_port "$PROXY_PORT"
    case $name in
        rtserve-*) flags=(--max-in-flight "${name#rtserve-}") ;;
        axum) flags=(--axum-serve) ;;
    esac
    taskset -c 0 "$BIN/examples/scoring" --threads 1 --bind "127.0.0.1:$SERVER_PORT" \
        --store "redis://127.0.0.1:$PROXY_PORT" "${flags[@]}" 2>/dev/null &
    server=$!
    PIDS+=("$server")
    wait_port "$SERVER_PORT"
    out=$(taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$SERVER_PORT/v1/score" -X POST \
        --body-file "$BODY" -H 'Content-Type: application/json' --rate "$rate" \
        --connections "$CONNS" --duration "${SECS}s" --warmup 1s --deadline-ms "$DEADLINE_MS" \
        --timeout-ms 2000 --json --quiet)
    sleep 0.05
    inflight=n/a
    shed=n/a
    if [[ $name == rtserve-* ]]; then
        metrics=$(exec 3<>"/dev/tcp/127.0.0.1/$SERVER_PORT" &&
            printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3 &&
            cat <&3)
        inflight=$(awk '/^rtserve_futures_in_flight / {print $2}' <<<"$metrics")
        shed=$(awk '/^rtserve_shed_total\{.*reason="in-flight"\}/ {i += $2}
            /^rtserve_shed_total\{.*reason="deadline"\}/ {d += $2} END {print i + 0 " / " d + 0}' \
            <<<"$metrics")
    fi
    stop "$server" "$proxy"
    echo "$out" >>"${RAW:-/dev/null}"
    python3 - "$name" "$mult" "$C" "$inflight" "$shed" "$out" <<'EOF'
import json, sys
name, mult, c, inflight, shed, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
r = json.loads(out)
d = r["duration_s"]
st = r["status"]
done = r["requests"]["completed"]
good = r["deadline"]["goodput_rate"]
l503 = r["latency_us"]["503"]
l2xx = r["latency_us"]["2xx"]
ms = lambda us: f"{us / 1000:.2f}"
errors = r["errors"]["total"]
print(f"| {name} | {mult}x = {mult * c} | {st['2xx'] / d:.0f} | {good:.0f} | {good / c * 100:.1f} % "
      f"| {st['503'] / max(done, 1) * 100:.1f} % "
      f"| {ms(l503['p50']) if l503['count'] else '-'} | {ms(l503['p99']) if l503['count'] else '-'} "
      f"| {ms(l2xx['p50']) if l2xx['count'] else '-'} | {ms(l2xx['p99']) if l2xx['count'] else '-'} "
      f"| {st['other']} / {errors} | {shed} | {inflight} |")
EOF
}

echo "C = $SLOTS slots / $DELAY_MS ms = $C GET/s (the proxy's capacity); deadline $DEADLINE_MS ms;" \
    "$CONNS connections; ${SECS} s per run"
echo
echo "| server | offered/s | 2xx/s | goodput/s (2xx ≤ ${DEADLINE_MS} ms) | goodput / C | 503 share" \
    "| 503 p50 ms | 503 p99 ms | 2xx p50 ms | 2xx p99 ms | other / errors" \
    "| shed in-flight / deadline (whole run) | futures in flight 50 ms after |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for mult in $MULTS; do
    for server in $SERVERS; do
        run "$server" "$mult"
    done
done
