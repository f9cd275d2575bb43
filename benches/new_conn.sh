#!/usr/bin/env bash
# A new connection per request, rtserve against nginx (and optionally an older rtserve), the
# figures in BENCHMARKS.md ("New connections"):
#   1. server CPU per request: PAIRS interleaved runs of each server, one after the other,
#      under `rtserve-load --new-conn` at RATE req/s for 10 s (plus 1 s of warm-up); the CPU is
#      the server's utime + stime from /proc (nginx: its one worker);
#   2. system calls per connection: `strace -c -f` on each server for a 3 s run at 2000 req/s.
# Each server runs on CPU 0 (one reactor, one nginx worker), the generator on CPU 1.
# Usage: benches/new_conn.sh [PAIRS] [RATE] [OLD_RTSERVE]   (needs nginx and strace)
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-5}
RATE=${2:-5000}
OLD=${3:-}
BIN=target/release
WORK=$(mktemp -d)
mkdir -p "$WORK/nginx"
sed -e "s#/tmp/rtserve-nginx#$WORK/nginx#g" -e "s#127.0.0.1:8081#127.0.0.1:18702#" \
    benches/nginx.conf >"$WORK/nginx.conf"
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
TICK=$(getconf CLK_TCK)

# start NAME: starts a server on CPU 0; sets SERVER (the process to stop), PORT, and CPU_PID
# (the process whose CPU is counted).
start() {
    case $1 in
        rtserve | old)
            local bin=$BIN/rtserve
            [ "$1" = old ] && bin=$OLD
            PORT=$([ "$1" = old ] && echo 18701 || echo 18700)
            taskset -c 0 "$bin" --threads 1 --bind "127.0.0.1:$PORT" -q 2>/dev/null &
            SERVER=$!
            CPU_PID=$SERVER
            ;;
        nginx)
            PORT=18702
            taskset -c 0 nginx -c "$WORK/nginx.conf" -p "$WORK/nginx" 2>/dev/null &
            SERVER=$!
            sleep 0.3
            CPU_PID=$(pgrep -P "$SERVER" | head -1)
            ;;
    esac
    for _ in $(seq 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
    done
}
stop() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run NAME: one measured run; prints "µs per request" and the generator's error count.
run() {
    start "$1"
    local before after
    before=$(cpu_ticks "$CPU_PID")
    taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$PORT/hello" --new-conn --rate "$RATE" \
        --connections 50 --duration 10s --warmup 1s --json >"$WORK/load.json"
    after=$(cpu_ticks "$CPU_PID")
    stop
    python3 - "$before" "$after" "$TICK" "$RATE" "$WORK/load.json" <<'EOF'
import json, sys
before, after, tick, rate = (float(x) for x in sys.argv[1:5])
load = json.load(open(sys.argv[5]))
requests = rate * 11  # warm-up and measured: the server's CPU covers both
errors = load["errors"]["total"]
print(f"{(after - before) / tick / requests * 1e6:.1f} {errors}")
EOF
}

servers=(rtserve nginx)
[ -n "$OLD" ] && servers+=(old)
declare -A results
echo "server CPU per request, a new connection per request at $RATE req/s:"
for pair in $(seq "$PAIRS"); do
    line="pair $pair:"
    for name in "${servers[@]}"; do
        read -r us errors < <(run "$name")
        results[$name]+="$us "
        line+=" $name $us µs ($errors errors)"
    done
    echo "$line"
done
python3 - "${results[rtserve]}" "${results[nginx]}" "${results[old]:-}" <<'EOF'
import statistics, sys
new, nginx = [float(x) for x in sys.argv[1].split()], [float(x) for x in sys.argv[2].split()]
ratios = [a / b for a, b in zip(new, nginx)]
print(f"rtserve median {statistics.median(new):.1f} µs, nginx median {statistics.median(nginx):.1f} µs")
print(f"ratio rtserve/nginx per pair: {' '.join(f'{r:.2f}' for r in ratios)}; "
      f"median {statistics.median(ratios):.2f}, spread {min(ratios):.2f}-{max(ratios):.2f}")
if sys.argv[3].strip():
    old = [float(x) for x in sys.argv[3].split()]
    print(f"old rtserve median {statistics.median(old):.1f} µs; "
          f"ratio old/nginx median {statistics.median([a / b for a, b in zip(old, nginx)]):.2f}")
EOF

echo
echo "system calls per connection (strace -c -f, 3 s at 2000 req/s):"
for name in "${servers[@]}"; do
    start "$name"
    strace -q -c -f -p "$CPU_PID" -o "$WORK/strace.txt" 2>/dev/null &
    tracer=$!
    sleep 0.5
    taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$PORT/hello" --new-conn --rate 2000 \
        --connections 50 --duration 3s --warmup 0s --json >"$WORK/load.json"
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    stop
    python3 - "$name" "$WORK/strace.txt" <<'EOF'
import sys
name, path = sys.argv[1], sys.argv[2]
calls = {}
for line in open(path):
    parts = line.split()
    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
        calls[parts[-1]] = int(parts[3])
conns = 2000 * 3
total = sum(calls.values())
top = sorted(calls.items(), key=lambda kv: -kv[1])
print(f"{name}: {total / conns:.2f} per connection: " +
      ", ".join(f"{k} {v / conns:.2f}" for k, v in top if v / conns >= 0.01))
EOF
done
