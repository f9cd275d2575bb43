#!/usr/bin/env bash
# A new connection per request: what rtserve's one-shot path costs beside nginx and a bare mio
# server, each with and without TCP_DEFER_ACCEPT (BENCHMARKS.md, "New connections"):
#   1. server CPU per connection and p99 latency: ROUNDS interleaved rounds, each running every
#      server once (the order rotated by one each round) under `rtserve-load --new-conn` at
#      RATE req/s on 50 connections for DURATION s plus 1 s of warm-up. The CPU is the server's
#      utime + stime from /proc (nginx: its one worker) over warm-up and run, per request
#      offered; p99 is the generator's corrected p99 of the measured part. Ratios are taken
#      round by round against the bare deferred server and against nginx `deferred`, then the
#      median;
#   2. system calls per connection: `strace -c -f` on each server for 3 s at 2000 req/s, per
#      connection answered, by call (failed ones, such as the `accept4` that finds the queue
#      empty, said apart).
# Each server runs on CPU 0 (one reactor, one nginx worker), the generator on CPU 1.
#
# The servers:
#   rtserve          rtserve --threads 1: its defaults (a deferred listener, where it has
#                    --defer-accept-secs)
#   rtserve-nodefer  the same with --defer-accept-secs 0; left out, and said, for a binary
#                    without that flag
#   nginx            benches/nginx.conf: `listen ... reuseport`
#   nginx-deferred   the same with `listen ... reuseport deferred`
#   bare             benches/bare_accept.rs: accept, read, answer, close
#   bare-deferred    the same with --defer (TCP_DEFER_ACCEPT of 1 s)
#   old              OLD_RTSERVE, if given, with its defaults
#
# Usage: benches/new_conn.sh [ROUNDS] [RATE] [OLD_RTSERVE]
# Needs nginx, strace and `cargo build --release --bins --example bare_accept`. Environment:
# DURATION (seconds, default 8), BIN (where rtserve and rtserve-load are, default
# target/release), BARE (default target/release/examples/bare_accept), NGINX (default nginx),
# PORT_BASE (the first of seven ports, default 18700).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
ROUNDS=${1:-3}
RATE=${2:-5000}
OLD=${3:-}
DURATION=${DURATION:-8}
BIN=${BIN:-target/release}
BARE=${BARE:-target/release/examples/bare_accept}
NGINX=${NGINX:-nginx}
PORT_BASE=${PORT_BASE:-18700}
for tool in "$BIN/rtserve" "$BIN/rtserve-load" "$BARE"; do
    [ -x "$tool" ] || { echo "$tool is missing: cargo build --release --bins --example bare_accept" >&2; exit 1; }
done

servers=(rtserve rtserve-nodefer nginx nginx-deferred bare bare-deferred)
help=$("$BIN/rtserve" --help 2>&1)
if [[ $help != *--defer-accept-secs* ]]; then
    echo "note: $BIN/rtserve has no --defer-accept-secs: its listener is not deferred, and" \
        "rtserve-nodefer is left out"
    servers=(rtserve nginx nginx-deferred bare bare-deferred)
fi
[ -n "$OLD" ] && servers+=(old)
declare -A PORTS
for i in "${!servers[@]}"; do PORTS[${servers[$i]}]=$((PORT_BASE + i)); done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/newconn-XXXXXX")
nginx_conf "$WORK/nginx" "${PORTS[nginx]}" >"$WORK/nginx.conf"
nginx_conf "$WORK/nginx-deferred" "${PORTS[nginx-deferred]}" "s#reuseport;#reuseport deferred;#" \
    >"$WORK/nginx-deferred.conf"
stop_on_exit "$WORK"
TICK=$(getconf CLK_TCK)

# start NAME: starts a server on CPU 0; sets SERVER (the process to stop), PORT, and CPU_PID
# (the process whose CPU is counted).
start() {
    PORT=${PORTS[$1]}
    local cmd
    case $1 in
        rtserve) cmd=("$BIN/rtserve" --threads 1 --bind "127.0.0.1:$PORT" -q) ;;
        rtserve-nodefer) cmd=("$BIN/rtserve" --threads 1 --bind "127.0.0.1:$PORT" -q --defer-accept-secs 0) ;;
        old) cmd=("$OLD" --threads 1 --bind "127.0.0.1:$PORT" -q) ;;
        nginx | nginx-deferred) cmd=("$NGINX" -c "$WORK/$1.conf" -p "$WORK/$1") ;;
        bare) cmd=("$BARE" "$PORT") ;;
        bare-deferred) cmd=("$BARE" "$PORT" --defer) ;;
    esac
    taskset -c 0 "${cmd[@]}" 2>/dev/null &
    SERVER=$!
    CPU_PID=$SERVER
    await_port "$SERVER" "$PORT"
    if [[ $1 == nginx* ]]; then
        CPU_PID=""
        for _ in $(seq 50); do
            CPU_PID=$(pgrep -P "$SERVER" | head -1) && break
            sleep 0.1
        done
    fi
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run NAME ROUND: one measured run; appends "NAME ROUND µs-per-request p99 errors unsent" to
# runs.txt and prints it.
run() {
    start "$1"
    local before after
    before=$(cpu_ticks "$CPU_PID")
    taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$PORT/hello" --new-conn --rate "$RATE" \
        --connections 50 --duration "${DURATION}s" --warmup 1s --json -q >"$WORK/load.json"
    after=$(cpu_ticks "$CPU_PID")
    stop_server
    python3 - "$1" "$2" "$before" "$after" "$TICK" "$RATE" "$DURATION" "$WORK/load.json" \
        <<'EOF' | tee -a "$WORK/runs.txt"
import json, sys
name, round_ = sys.argv[1:3]
before, after, tick, rate, duration = (float(x) for x in sys.argv[3:8])
load = json.load(open(sys.argv[8]))
requests = rate * (duration + 1)  # warm-up and measured: the server's CPU covers both
cpu = (after - before) / tick / requests * 1e6
print(name, round_, f"{cpu:.1f}", load["latency_us"]["corrected"]["p99"],
      load["errors"]["total"], load["requests"]["unsent"])
EOF
}

echo "server CPU per connection and p99, a new connection per request at $RATE req/s," \
    "$ROUNDS rounds of ${DURATION} s (name round µs p99-µs errors unsent):"
for round in $(seq "$ROUNDS"); do
    n=${#servers[@]}
    for i in $(seq 0 $((n - 1))); do
        run "${servers[$(((i + round - 1) % n))]}" "$round"
    done
done

echo
echo "system calls per connection (strace -c -f, 3 s at 2000 req/s):"
for name in "${servers[@]}"; do
    start "$name"
    strace -q -c -f -p "$CPU_PID" -o "$WORK/strace.txt" 2>/dev/null &
    tracer=$!
    sleep 0.5
    taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$PORT/hello" --new-conn --rate 2000 \
        --connections 50 --duration 3s --warmup 0s --json -q >"$WORK/load.json"
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    stop_server
    python3 - "$name" "$WORK/strace.txt" "$WORK/load.json" <<'EOF' | tee -a "$WORK/calls.txt"
import json, sys
name, path = sys.argv[1], sys.argv[2]
conns = max(json.load(open(sys.argv[3]))["requests"]["completed"], 1)
calls, errors = {}, {}
for line in open(path):
    parts = line.split()
    # % time, seconds, usecs/call, calls, [errors], syscall
    if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
        calls[parts[-1]] = int(parts[3])
        errors[parts[-1]] = int(parts[4]) if len(parts) == 6 else 0
total = sum(calls.values())
top = [(k, v) for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v / conns >= 0.01]
described = ", ".join(
    f"{k} {v / conns:.2f}" + (f" ({errors[k] / conns:.2f} failed)" if errors[k] / conns >= 0.01 else "")
    for k, v in top)
print(f"{name}\t{total / conns:.2f}\t{described}")
EOF
done

echo
python3 - "$WORK/runs.txt" "$WORK/calls.txt" "$RATE" "${servers[@]}" <<'EOF'
import statistics, sys
runs_path, calls_path, rate, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
cpu, p99, errors = {}, {}, {}
for line in open(runs_path):
    name, round_, us, p, err, unsent = line.split()
    cpu.setdefault(name, {})[round_] = float(us)
    p99.setdefault(name, []).append(int(p))
    errors[name] = [a + int(b) for a, b in zip(errors.get(name, [0, 0]), (err, unsent))]
calls = {}
for line in open(calls_path):
    name, total, described = line.rstrip("\n").split("\t")
    calls[name] = (float(total), described)

def ratio(name, base):
    if base not in cpu:
        return "—"
    rs = [cpu[name][r] / cpu[base][r] for r in cpu[name] if r in cpu[base]]
    return f"{statistics.median(rs):.2f} ({min(rs):.2f}–{max(rs):.2f})"

print(f"| server | CPU per connection, median (rounds) | ÷ bare-deferred | ÷ nginx-deferred "
      f"| p99 at {rate}/s, median (rounds) | errors, unsent | calls per connection | by call |")
print("|---|---|---|---|---|---|---|---|")
for name in names:
    us = list(cpu[name].values())
    total, described = calls.get(name, (float("nan"), ""))
    print(f"| {name} | {statistics.median(us):.1f} µs ({', '.join(f'{u:.1f}' for u in us)}) "
          f"| {ratio(name, 'bare-deferred')} | {ratio(name, 'nginx-deferred')} "
          f"| {statistics.median(p99[name])} µs ({', '.join(map(str, p99[name]))}) "
          f"| {errors[name][0]}, {errors[name][1]} | {total:.2f} | {described} |")
EOF
