# shellcheck shell=bash
# Shared by the benches' shell scripts (`. "$(dirname "$0")/lib.sh"`): nginx's configuration
# for a run, waiting for a server to listen, and rtserve's per-reactor counters.

# nginx_conf DIR PORT [SED_EXPR...]: prints benches/nginx.conf for an nginx whose logs and pid
# go under DIR (made here), listening on 127.0.0.1:PORT, with the further sed expressions
# applied (e.g. "s#reuseport;#reuseport deferred;#").
nginx_conf() {
    local dir=$1 port=$2
    shift 2
    local exprs=(-e "s#/tmp/rtserve-nginx#$dir#g" -e "s#127.0.0.1:8081#127.0.0.1:$port#")
    local expr
    for expr in "$@"; do exprs+=(-e "$expr"); done
    mkdir -p "$dir"
    sed "${exprs[@]}" "$(dirname "${BASH_SOURCE[0]}")/nginx.conf"
}

# await_port PID PORT: waits, 5 s at most, until 127.0.0.1:PORT takes connections. Fails,
# saying why, if process PID exits first or the port never opens.
await_port() {
    local pid=$1 port=$2
    for _ in $(seq 50); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "the server (pid $pid) exited before it listened on port $port" >&2
            return 1
        fi
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $port after 5 s (pid $pid)" >&2
    return 1
}

# reactor_counts URL: rtserve's per-reactor counters from URL/metrics, one "KIND REACTOR
# VALUE" line each; KIND is connections (rtserve_connections_accepted_total) or requests
# (rtserve_reactor_requests_total).
reactor_counts() {
    curl -fsS "$1/metrics" | awk '
        /^rtserve_connections_accepted_total\{.*reactor=/ { kind = "connections" }
        /^rtserve_reactor_requests_total\{.*reactor=/ { kind = "requests" }
        kind { match($0, /reactor="[0-9]+"/)
               print kind, substr($0, RSTART + 9, RLENGTH - 10), $2; kind = "" }'
}

# The server a script runs now (its PID, or empty). stop_server stops it; after
# `stop_on_exit [DIR]` it is stopped, and DIR removed, however the script ends.
SERVER=""
stop_server() {
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    SERVER=""
}
stop_on_exit() {
    STOP_ON_EXIT_DIR=${1:-}
    trap 'stop_server; wait 2>/dev/null; [ -z "$STOP_ON_EXIT_DIR" ] || rm -rf "$STOP_ON_EXIT_DIR"' EXIT
}
