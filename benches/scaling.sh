#!/usr/bin/env bash
# Whether N reactors scale: rtserve with N reactors beside nginx with N workers, keep-alive
# /hello, for N in 1, 2, 4, 8 and 16 as far as N ≤ cores − K (K: the generator's threads,
# GEN_THREADS, by default half the cores: the generator costs about what the server does per
# request). The server runs on the first N of the CPUs this script may use (rtserve `--threads
# N --pin`: reactor i on the i-th; nginx with worker i on the same CPU by worker_cpu_affinity),
# the generator (`rtserve-load --threads K --cpus ...`) on the last K. For each N and each
# measurement, rtserve then nginx, each a fresh server:
#   1. saturation: a ramp of runs from 50 k req/s × N, ×1.5 while the generator sent its
#      schedule (sent ≥ 97 % of scheduled) without errors, then one run between the last rate
#      kept and the first missed; the best rate achieved by a run with no errors and only 200s
#      (one that fell behind its schedule counts: it served what it could). "generator-bound" when the
#      generator's busiest event loop was over 80 % busy in the ramp (`max_thread_busy`; its
#      `max_thread_utilization` is near 1 by design, as it spins towards each send time): then
#      the figure is a lower bound;
#   2. server CPU per request at one fixed rate for every N: utime + stime from /proc/PID/stat
#      (rtserve: all threads; nginx: its workers) over warm-up and measured time, divided by
#      the requests scheduled in both;
#   3. p99 (corrected: from each request's scheduled send) at half that server's saturation,
#      and for rtserve the busiest and least busy reactor's share of the connections accepted
#      and of the responses sent in that run (rtserve_connections_accepted_total{reactor} and
#      rtserve_reactor_requests_total{reactor} in /metrics, read before and after it; the
#      second read's own connection counts).
# Every run: max(200, 64 × N) connections, 2 s measured after 1 s of warm-up. Prints a Markdown
# table (ratios are rtserve / nginx); progress goes to stderr. On 16 cores (N = 1, 2, 4, 8)
# about 70 s per N. An N that reaches into the generator's CPUs still runs, marked "shares
# cores with the generator"; an N above the core count is skipped.
#
#   benches/scaling.sh [target/release]           needs rtserve, rtserve-load, nginx, curl, python3
#   REACTORS="1 2" benches/scaling.sh             on 2 cores (K = 1: N = 2 shares CPU 1)
#
# Also: FIXED_RATE (20000 req/s), DURATION and WARMUP (2 and 1 s), PORT (rtserve's, 19701;
# nginx's is the next), NGINX (its binary).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
. benches/lib.sh
BIN=${1:-target/release}
PORT=${PORT:-19701}
NGINX_PORT=$((PORT + 1))
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
FIXED_RATE=${FIXED_RATE:-20000}
DURATION=${DURATION:-2}
WARMUP=${WARMUP:-1}
START=$(date +%s)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The CPUs this script may use, in order; the server takes the first N, the generator the
# last K.
read -r -a CPUS < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)))')
CORES=${#CPUS[@]}
K=${GEN_THREADS:-$((CORES / 2 > 1 ? CORES / 2 : 1))}
GEN_CPUS=$(IFS=,; echo "${CPUS[*]: -K}")
if [ -n "${REACTORS:-}" ]; then
    read -r -a NS <<<"$REACTORS"
else
    NS=()
    for n in 1 2 4 8 16; do
        [ "$n" -le $((CORES - K)) ] && NS+=("$n")
    done
    [ ${#NS[@]} -eq 0 ] && NS=(1)
fi

WORK=$(mktemp -d /tmp/scaling-XXXXXX)
stop_on_exit "$WORK"
RESULTS=$WORK/results # lines of "N NAME KEY VALUE"
: >"$RESULTS"
# N (reactors or workers), NAME (rtserve or nginx) and CONNS are set by the loop at the end.
note() { echo "$N $NAME $1 $2" >>"$RESULTS"; } # note KEY VALUE
log() { echo "$*" >&2; }
more() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; } # more A B: whether A > B

# start: a fresh NAME with N reactors or workers on the first N CPUs; sets SERVER (the
# process to stop), URL, and CPU_PIDS (the processes whose CPU time counts).
start() {
    local cpus
    cpus=$(IFS=,; echo "${CPUS[*]:0:N}")
    case $NAME in
        rtserve)
            taskset -c "$cpus" "$BIN/rtserve" --threads "$N" --pin --bind "127.0.0.1:$PORT" -q \
                2>/dev/null &
            SERVER=$!
            URL=http://127.0.0.1:$PORT
            await_port "$SERVER" "$PORT"
            CPU_PIDS=("$SERVER")
            ;;
        nginx)
            taskset -c "$cpus" "$NGINX" -c "$WORK/nginx-$N.conf" -p "$WORK/nginx" 2>/dev/null &
            SERVER=$!
            URL=http://127.0.0.1:$NGINX_PORT
            await_port "$SERVER" "$NGINX_PORT"
            for _ in $(seq 50); do
                [ "$(pgrep -c -P "$SERVER")" -ge "$N" ] && break
                sleep 0.1
            done
            read -r -a CPU_PIDS < <(pgrep -P "$SERVER" | xargs)
            ;;
    esac
}
cpu_ticks() {
    for pid in "${CPU_PIDS[@]}"; do cat "/proc/$pid/stat"; done \
        | awk '{ t += $14 + $15 } END { print t }'
}

# report EXPR: a Python expression (or tuple) over the last run's JSON report `r`, printed.
report() {
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); v = eval(sys.argv[2])
print(*(v if isinstance(v, tuple) else (v,)))' "$WORK/load.json" "$1"
}
# run RATE: one run of the generator against URL/hello; sets ACHIEVED, BUSY (the generator's
# busiest event loop, 0 to 1), KEPT (1: it sent at least 97 % of its schedule, no errors) and
# CLEAN (1: no errors and no response but 200).
run() {
    "$BIN/rtserve-load" "$URL/hello" --rate "$1" --connections "$CONNS" --threads "$K" \
        --cpus "$GEN_CPUS" --duration "${DURATION}s" --warmup "${WARMUP}s" --json --quiet \
        >"$WORK/load.json"
    read -r ACHIEVED BUSY KEPT CLEAN < <(report '(r["achieved_rate"], r["max_thread_busy"], int(
        r["requests"]["sent"] >= 0.97 * r["requests"]["scheduled"] and r["errors"]["total"] == 0),
        int(r["errors"]["total"] == 0
            and r["status"]["by_code"].get("200", 0) == r["requests"]["completed"]))')
    log "  $NAME N=$N: offered $1, achieved $ACHIEVED, generator busy $BUSY"
}

# saturation: the ramp; notes sat (the best rate achieved) and genbound (1: the generator's
# busiest event loop was over 80 % busy in some run of it).
saturation() {
    local rate=$((50000 * N)) kept=0 missed=0 best=0 busy=0
    start
    while :; do
        run "$rate"
        [ "$CLEAN" = 1 ] && more "$ACHIEVED" "$best" && best=$ACHIEVED
        more "$BUSY" "$busy" && busy=$BUSY
        if [ "$KEPT" = 1 ]; then
            kept=$rate
            # Kept after a miss (coming down), or absurdly high: the ramp is done.
            { [ "$missed" -gt 0 ] || [ "$rate" -ge 20000000 ]; } && break
            rate=$((rate * 3 / 2))
        else
            missed=$rate
            { [ "$kept" -gt 0 ] || [ "$rate" -le 1000 ]; } && break
            # Not even the first rate was kept: halve it until one is.
            rate=$((rate / 2))
        fi
    done
    # One run between the last rate kept and the first missed, if it could beat the best.
    if [ "$kept" -gt 0 ] && [ "$missed" -gt "$kept" ]; then
        rate=$(awk -v k="$kept" -v m="$missed" 'BEGIN { printf "%d", sqrt(k * m) }')
        if more "$rate" "$(awk -v b="$best" 'BEGIN { print b * 1.02 }')"; then
            run "$rate"
            [ "$CLEAN" = 1 ] && more "$ACHIEVED" "$best" && best=$ACHIEVED
            more "$BUSY" "$busy" && busy=$BUSY
        fi
    fi
    stop_server
    note sat "$best"
    note genbound "$(more "$busy" 0.8 && echo 1 || echo 0)"
}

# cost: server CPU per request at FIXED_RATE, over warm-up and measured time; notes cpu (µs)
# and cpukept.
cost() {
    local before after us
    start
    before=$(cpu_ticks)
    run "$FIXED_RATE"
    after=$(cpu_ticks)
    stop_server
    us=$(awk -v t=$((after - before)) -v k="$(getconf CLK_TCK)" -v r="$FIXED_RATE" \
        -v s=$((DURATION + WARMUP)) 'BEGIN { printf "%.2f", t / k * 1e6 / (r * s) }')
    log "  $NAME N=$N: $us µs per request"
    note cpu "$us"
    note cpukept "$KEPT"
}

# tail_latency SAT: p99 at half of SAT; notes half (the rate), p99 (µs), halfkept and, for
# rtserve, the busiest and least busy reactor's shares ("connections" and "requests", each
# "BUSIEST/LEAST" in %).
tail_latency() {
    local rate p99 kind
    rate=$(awk -v s="$1" 'BEGIN { printf "%d", s / 2 }')
    start
    [ "$NAME" = rtserve ] && reactor_counts "$URL" >"$WORK/before"
    run "$rate"
    [ "$NAME" = rtserve ] && reactor_counts "$URL" >"$WORK/after"
    stop_server
    p99=$(report 'r["latency_us"]["corrected"]["p99"]')
    log "  $NAME N=$N: p99 $p99 µs"
    note half "$rate"
    note p99 "$p99"
    note halfkept "$KEPT"
    if [ "$NAME" = rtserve ]; then
        for kind in connections requests; do
            note "$kind" "$(awk -v k="$kind" '
                FNR == NR { if ($1 == k) before[$2] = $3; next }
                $1 == k { d = $3 - before[$2]; total += d
                          if (!seen++ || d > most) most = d
                          if (seen == 1 || d < least) least = d }
                END { printf "%.1f/%.1f", most / total * 100, least / total * 100 }' \
                "$WORK/before" "$WORK/after")"
        done
    fi
}

for N in "${NS[@]}"; do
    NAME=both
    if [ "$N" -gt "$CORES" ]; then
        log "N=$N: skipped, only $CORES CPUs"
        note skipped 1
        continue
    fi
    [ "$N" -gt $((CORES - K)) ] && note shares 1
    # nginx: benches/nginx.conf with N workers, worker i on the i-th CPU (as rtserve's --pin).
    masks=$(python3 -c 'import sys; print(*(format(1 << int(c), "b") for c in sys.argv[1:]))' \
        "${CPUS[@]:0:N}")
    nginx_conf "$WORK/nginx" "$NGINX_PORT" \
        "s#^worker_processes 1;#worker_processes $N;\nworker_cpu_affinity $masks;#" \
        >"$WORK/nginx-$N.conf"
    CONNS=$((64 * N > 200 ? 64 * N : 200))
    log "N=$N: $CONNS connections"
    for NAME in rtserve nginx; do saturation; done
    for NAME in rtserve nginx; do cost; done
    for NAME in rtserve nginx; do
        tail_latency "$(awk -v n="$N" -v s="$NAME" '$1 == n && $2 == s && $3 == "sat" { print $4 }' \
            "$RESULTS")"
    done
done

echo "cores: $CORES (CPUs $(IFS=,; echo "${CPUS[*]}")); generator: K = $K thread(s) on CPU(s)" \
    "$GEN_CPUS; server on the first N CPUs; fixed rate $FIXED_RATE req/s; max(200, 64 × N)" \
    "connections; runs of $DURATION s after $WARMUP s of warm-up;" \
    "$("$BIN/rtserve" --version), $("$NGINX" -v 2>&1 | sed 's#.*/##; s#^#nginx #')"
echo
python3 - "$RESULTS" "$FIXED_RATE" <<'EOF'
import collections, sys
results = collections.defaultdict(lambda: collections.defaultdict(dict))
for line in open(sys.argv[1]):
    n, name, key, value = line.split()
    results[int(n)][name][key] = value
fixed = int(sys.argv[2])

def latency(us):
    us = int(us)
    return f"{us} µs" if us < 10_000 else f"{us / 1000:.1f} ms"

def share(s, kind):
    most, least = s[kind].split("/")
    return f"{most} % / {least} %"

print(f"| server | reactors / workers | saturation req/s | rtserve / nginx | CPU µs per request "
      f"at {fixed} req/s | rtserve / nginx | p99 at half saturation | connections: busiest / "
      "least busy reactor | requests: busiest / least busy reactor | notes |")
print("|---|---|---|---|---|---|---|---|---|---|")
for n, both in sorted(results.items()):
    if "skipped" in both["both"]:
        print(f"| both | {n} | | | | | | | | skipped: more than the CPUs available |")
        continue
    r, x = both["rtserve"], both["nginx"]
    for name, s in (("rtserve", r), ("nginx", x)):
        notes = []
        if "shares" in both["both"]:
            notes.append("shares cores with the generator")
        if s["genbound"] == "1":
            notes.append("generator-bound: saturation is a lower bound")
        if s["cpukept"] == "0" or float(s["sat"]) < fixed:
            notes.append(f"did not keep up with {fixed} req/s")
        if s["halfkept"] == "0":
            notes.append("did not keep up at half saturation")
        ours = name == "rtserve"
        sat = f"{float(r['sat']) / float(x['sat']):.2f}" if ours else ""
        cpu = f"{float(r['cpu']) / float(x['cpu']):.2f}" if ours else ""
        conns, reqs = (share(s, "connections"), share(s, "requests")) if ours else ("—", "—")
        print(f"| {name} | {n} | {float(s['sat']):,.0f} | {sat} | {float(s['cpu']):.1f} | {cpu} | "
              f"{latency(s['p99'])} at {int(s['half']):,} req/s | {conns} | {reqs} | "
              f"{'; '.join(notes)} |")
EOF
echo
echo "took $(($(date +%s) - START)) s"
