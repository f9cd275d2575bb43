#!/usr/bin/env bash
# Caller deadlines, measured at the server: a job of 30 ms (`/slow?ms=30`) on a server whose
# deadline is 50 ms, its callers stating a budget in `x-budget`.
#
#   benches/caller_deadline.sh [target/release]
#
# - budget 10 ms: every request is answered 503: at the caller's deadline, or at once when the
#   pool has learnt that the job cannot make it (expected-miss); the server's deadline-lateness
#   histogram (`rtserve_deadline_lateness_seconds`) says how long after the deadline each 503
#   at the deadline went out (goal: within 0.2 ms; its buckets end at 0.1 and 0.25 ms);
# - budget 0.5 ms (`500u`): refused (`caller-budget`) without running the job; the server's
#   request-duration histogram says how long after the request's arrival each refusal went
#   out (goal: within 0.1 ms; refused before the router ran, they are filed under the route
#   "other"), and the pool's queue-wait count that no job ran;
# - no budget: the control, every job answered 200 within the 50 ms deadline.
# The server runs on CPU 0 (--threads 1 --workers 8), the generator on CPU 1, 200 req/s on 20
# connections for 5 s each (and the generator's 1 s warm-up, which the server's counts include).
# Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}
PORT=${PORT:-19271}
RATE=${RATE:-200}
DUR=${DUR:-5s}
taskset -c 0 "$BIN/rtserve" --threads 1 --workers 8 --deadline-ms 50 \
    --deadline-header x-budget --bind "127.0.0.1:$PORT" -q 2>/dev/null &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$PORT/hello" >/dev/null 2>&1 && break
    sleep 0.1
done
METRICS=$(mktemp -d)

scrape() { curl -fsS "http://127.0.0.1:$PORT/metrics" >"$METRICS/$1"; }

echo "| caller budget | 200 | 503 deadline | 503 expected-miss | 503 caller-budget | jobs run | server: 503 after the deadline | server: refusal after arrival | client p50 / p99 |"
echo "|---|---|---|---|---|---|---|---|---|"
for budget in 10 500u none; do
    header=()
    [ "$budget" != none ] && header=(-H "x-budget: $budget")
    scrape before
    out=$(taskset -c 1 "$BIN/rtserve-load" "http://127.0.0.1:$PORT/slow?ms=30" \
        --rate "$RATE" --connections 20 --duration "$DUR" "${header[@]}" --json)
    scrape after
    python3 - "$budget" "$METRICS/before" "$METRICS/after" "$out" <<'EOF'
import json, re, sys

budget, before, after, report = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])

def samples(path):
    values = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
    return values

b, a = samples(before), samples(after)
delta = lambda name: a.get(name, 0) - b.get(name, 0)

def share_within(family, labels, les):
    """The shares of a histogram's new observations at or under each bucket in `les`."""
    count = delta(f"{family}_count{{{labels}}}" if labels else f"{family}_count")
    if not count:
        return "none"
    shares = []
    for le in les:
        inner = f'{labels},le="{le}"' if labels else f'le="{le}"'
        within = delta(f"{family}_bucket{{{inner}}}")
        shares.append(f"{within / count * 100:.1f} % ≤ {float(le) * 1000:g} ms")
    return ", ".join(shares) + f" (of {count:.0f})"

def shed(reason):
    """503s for `reason`, on every route."""
    names = set(a) | set(b)
    return sum(delta(n) for n in names
               if n.startswith("rtserve_shed_total{") and f'reason="{reason}"' in n)
ok = delta('rtserve_requests_total{route="/slow",status="200"}')
jobs = delta("rtserve_queue_wait_seconds_count")
lateness = share_within("rtserve_deadline_lateness_seconds", "", ["0.0001", "0.00025"])
# Refused before the router ran, so filed under no route.
refusal = share_within("rtserve_request_duration_seconds", 'route="other"', ["0.0001", "0.00025"])
lat = report["latency_us"]["corrected"]
print(f"| {budget} | {ok:.0f} | {shed('deadline'):.0f} | {shed('expected-miss'):.0f} | "
      f"{shed('caller-budget'):.0f} | {jobs:.0f} | {lateness if budget == '10' else '—'} | "
      f"{refusal if budget == '500u' else '—'} | {lat['p50']} / {lat['p99']} µs |")
EOF
done
rm -r "$METRICS"
