#!/usr/bin/env bash
# Admission on a busy host: goodput of /slow?ms=2 (and /spin) at 1×, 2× and 4× capacity, with a
# noisy neighbour on the server's CPU, for each admission policy, interleaved.
#
#   benches/admission.sh [SETTINGS...]      e.g. quiet 1/4 1/4:fifo 2/8 2/8:fifo
#
# The server runs on CPU 0 (--threads 1 --workers 4 --deadline-ms 5), the generator on CPU 1,
# and the neighbour, when there is one, on CPU 0: it spins BUSY ms out of every PERIOD ms,
# as an ordinary process or (":fifo", root) as SCHED_FIFO, which takes the core as a
# hypervisor's steal does. C is measured under the same neighbour as the run compared with
# it: the 200s per second the server counts while offered 4,000 req/s with a 1 s deadline,
# FIFO, median of three, under the fixed policy (once per setting). Goodput: 2xx within the 5 ms deadline per second, as a share of C.
# Admitted-missed: of the jobs let in (not refused at the door), the share that missed.
# Needs `cargo build --release`; prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release/rtserve
LOAD=target/release/rtserve-load
PORT=${PORT:-19181}
DUR=${DUR:-4s}
POLICIES=${POLICIES:-"fixed adaptive"}
ROUTE=${ROUTE:-/slow?ms=2}
DEADLINE=${DEADLINE:-5}
SETTINGS=("$@")
[ ${#SETTINGS[@]} -eq 0 ] && SETTINGS=(quiet 1/4 1/4:fifo 2/8 2/8:fifo)

NEIGHBOUR=""
declare -A C_OF
start_neighbour() {
    local setting=$1
    [ "$setting" = quiet ] && return 0
    local duty=${setting%%:*} kind=ordinary
    [[ $setting == *:fifo ]] && kind=fifo
    local busy=${duty%%/*} period=${duty##*/}
    local spin="import time
b=$busy/1000; p=$period/1000; t=time.monotonic()
while True:
    e=t+b
    while time.monotonic()<e: pass
    t+=p
    d=t-time.monotonic()
    if d>0: time.sleep(d)
    else: t=time.monotonic()"
    if [ $kind = fifo ]; then
        taskset -c 0 chrt -f 1 python3 -c "$spin" & NEIGHBOUR=$!
    else
        taskset -c 0 python3 -c "$spin" & NEIGHBOUR=$!
    fi
}
stop_neighbour() { [ -n "$NEIGHBOUR" ] && kill "$NEIGHBOUR" 2>/dev/null; wait "$NEIGHBOUR" 2>/dev/null || true; NEIGHBOUR=""; }

SERVER=""
start_server() {
    taskset -c 0 "$BIN" --bind 127.0.0.1:$PORT --threads "${THREADS:-1}" --workers "${WORKERS:-4}" --admission "$1" \
        --deadline-ms "$2" --discipline "$3" >/dev/null 2>&1 & SERVER=$!
    for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:$PORT/hello && return 0; sleep 0.1; done
    echo "server did not start" >&2; exit 1
}
stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=""; }
trap 'stop_server; stop_neighbour' EXIT

metric() { # name route
    curl -s http://127.0.0.1:$PORT/metrics | awk -v n="$1" -v r="route=\"$2\"" '
        index($0, n"{")==1 && index($0, r) { split($0, a, " "); s += a[2] } END { print s+0 }'
}
shed() { # reason: summed over the routes
    curl -s http://127.0.0.1:$PORT/metrics | awk -v r="reason=\"$1\"" '
        index($0, "rtserve_shed_total{")==1 && index($0, r) { s += $2 } END { print s+0 }'
}
steal() { awk '/^cpu /{print $9}' /proc/stat; }

route_name=${ROUTE%%\?*}

capacity() { # -> C (median of three): the 200s per second the server counts, under the fixed
    # policy for every policy compared (a limit learnt under a 1 s deadline is not capacity)
    local runs=()
    for _ in 1 2 3; do
        start_server fixed 1000 fifo
        local before after secs
        before=$(metric rtserve_requests_total "$route_name\",status=\"200")
        secs=${DUR%s}
        taskset -c 1 "$LOAD" -q --json -r 4000 -c 200 -d "$DUR" -w 0s "http://127.0.0.1:$PORT$ROUTE" >/dev/null
        after=$(metric rtserve_requests_total "$route_name\",status=\"200")
        runs+=("$(( (after - before) / secs ))")
        stop_server
    done
    printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p
}

echo "| setting | policy (${DISCIPLINE:-adaptive-lifo}) | C (2xx/s) | offered | goodput/s | % of C | within deadline + 1 ms | admitted that missed | over-refused | median 503 | p99 2xx | steal ms | generator lag p99 |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for setting in "${SETTINGS[@]}"; do
    for policy in $POLICIES; do
        start_neighbour "$setting"
        [ -z "${C_OF[$setting]:-}" ] && C_OF[$setting]=$(capacity)
        c=${C_OF[$setting]}
        start_server "$policy" "$DEADLINE" "${DISCIPLINE:-adaptive-lifo}"
        for mult in 1 2 4; do
            rate=$(python3 -c "print(round($c*$mult))")
            g0=$(metric rtserve_goodput_total "$route_name"); m0=$(metric rtserve_admitted_missed_total "$route_name")
            r0=$(metric rtserve_requests_total "$route_name"); o0=$(metric rtserve_over_refused_total "$route_name")
            q0=$(shed queue-full); e0=$(shed expected-miss); s0=$(steal)
            json=$(taskset -c 1 "$LOAD" -q --json -r "$rate" -c 200 -d "$DUR" -w 1s --deadline-ms "$DEADLINE" "http://127.0.0.1:$PORT$ROUTE")
            s1=$(steal)
            m1=$(metric rtserve_admitted_missed_total "$route_name"); r1=$(metric rtserve_requests_total "$route_name")
            o1=$(metric rtserve_over_refused_total "$route_name"); q1=$(shed queue-full); e1=$(shed expected-miss)
            echo "$json" | python3 -c "
import json,sys
r=json.load(sys.stdin); c=$c
d=r['duration_s']; dl=r.get('deadline',{})
good=dl.get('goodput_rate', 0)
within=dl.get('share_within_plus_1ms', 0)
admitted=($r1-$r0)-(($q1-$q0)+($e1-$e0))
missed=($m1-$m0)
print('| $setting | $policy | %d | %d× | %d | %.0f %% | %.1f %% | %.2f %% | %d | %d µs | %d µs | %d | %d µs |' % (
  c, $mult, good, 100*good/c, 100*within, 100*missed/max(admitted,1), $o1-$o0,
  r['latency_us']['503']['p50'], r['latency_us']['2xx']['p99'], ($s1-$s0)*10, r['latency_us']['schedule_lag']['p99']))
"
        done
        stop_server
        stop_neighbour
    done
done
