#!/usr/bin/env python3
"""Closed connections: does the kernel memory of connections the server has closed come back?

What it measures
----------------
--batches batches (6), one every --interval-s seconds (5), of --clients connections (200)
each. Every client sends --requests pipelined `POST /echo` requests with a --body-size body
(default 8 x 64 KiB, so 512 KiB of answers), never reads, and keeps its socket open for the
whole run. The server (run with short `--write-timeout-ms` and `--idle-timeout-ms`) drops
each client that takes nothing; what it had queued to send stays in the kernel if the socket
is closed with a plain close(): the socket is orphaned in FIN-WAIT-1 behind a zero window,
its send queue held, and the client (alive, answering the zero-window probes) keeps it there.

Just before each next batch (and once more after the last) the script reports the host's
TCP memory (`TCP: mem` of /proc/net/sockstat, in MB; on loopback it counts both ends), the
host's orphan count (`TCP: orphan`), and the server-side sockets on the port by state, with
the bytes in their send queues (from /proc/net/tcp; FIN_WAIT1 is state 04), and the server's
RSS. The figure: whether TCP memory and FIN-WAIT-1 sockets grow with every batch or stay
flat. At the end it closes every client socket (unread data: the kernel resets the
connection, which frees both ends) and reports the same figures 3 s later.

Guard: no new batch starts once host TCP memory is past net.ipv4.tcp_mem's first value
(below it the kernel does not regulate TCP memory at all); the report says so.

The script starts the server itself (--server-cmd, a shell command line), finds the PID that
owns the listening socket, and kills what it started, by PID, at the end.

How to run
----------
    taskset -c 1 benches/closed_memory.py --url http://127.0.0.1:19320 \\
        --server-cmd "taskset -c 0 target/release/rtserve --bind 127.0.0.1:19320 \\
                      --max-connections 200 --write-timeout-ms 2000 --idle-timeout-ms 2000 \\
                      --threads 1"

Add --json for machine-readable output. Python 3 standard library only; Linux only (/proc).
Traffic goes to loopback only.
"""

import argparse
import errno
import json
import socket
import sys
import time
import urllib.parse

import attacklib as lib

log = lib.make_log("closed_memory")


def snapshot(server_pid, port, label, t0):
    st = lib.sockstat()
    socks = lib.port_sockets(port)
    return {"label": label, "t_s": round(time.monotonic() - t0, 1),
            "tcp_mem_mb": round(lib.pages_mb(st["mem"]), 1), "orphan": st.get("orphan"),
            "tcp_inuse": st.get("inuse"), "rss_kb": lib.rss_kb(server_pid),
            "server_sockets": {k: {"n": v[0], "sendq_mb": round(v[1] / 2**20, 1),
                                   "recvq_mb": round(v[2] / 2**20, 1)}
                               for k, v in sorted(socks.items())}}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-cmd", required=True, help="shell command line starting the server")
    p.add_argument("--url", default="http://127.0.0.1:19320", help="server base URL")
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--interval-s", type=float, default=5.0)
    p.add_argument("--clients", type=int, default=200, help="per batch")
    p.add_argument("--requests", type=int, default=8, help="pipelined per client")
    p.add_argument("--body-size", type=int, default=64 * 1024)
    p.add_argument("--no-guard", action="store_true")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = p.parse_args()

    u = urllib.parse.urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    if not host.startswith("127."):
        p.error("loopback only")
    lib.raise_nofile(args.batches * args.clients + 256, log)
    tcp_min = lib.tcp_mem_limits()[0]
    request = (f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {args.body_size}\r\n\r\n"
               .encode() + b"x" * args.body_size) * args.requests

    server = lib.Server(args.server_cmd, host, port, log)
    result = {"config": vars(args), "server_pid": server.pid,
              "server_comm": lib.comm(server.pid), "snapshots": [], "guard": None}
    clients = []  # [sock, bytes sent]
    failures = {}
    t0 = time.monotonic()
    try:
        time.sleep(0.5)
        result["snapshots"].append(snapshot(server.pid, port, "before", t0))
        for b in range(args.batches):
            if not args.no_guard and lib.sockstat()["mem"] > tcp_min:
                result["guard"] = f"stopped before batch {b + 1}: host TCP memory past tcp_mem min"
                log(result["guard"])
                break
            t_batch = time.monotonic()
            batch = []
            for _ in range(args.clients):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((host, port))
                if err not in (0, errno.EINPROGRESS):
                    k = errno.errorcode.get(err, str(err))
                    failures[k] = failures.get(k, 0) + 1
                    s.close()
                    continue
                batch.append([s, 0])
            clients.extend(batch)
            log(f"batch {b + 1}: {len(batch)} clients")
            # send what the sockets take, for the batch's interval; never read
            end = t_batch + args.interval_s
            while time.monotonic() < end:
                for c in batch:
                    if c[1] < len(request) and c[0] is not None:
                        try:
                            c[1] += c[0].send(request[c[1]:c[1] + 262144])
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError as e:
                            k = "send " + errno.errorcode.get(e.errno, str(e.errno))
                            failures[k] = failures.get(k, 0) + 1
                            c[1] = len(request)
                time.sleep(0.02)
            snap = snapshot(server.pid, port, f"after batch {b + 1}", t0)
            snap["clients_open"] = len(clients)
            snap["bytes_sent_mb"] = round(sum(c[1] for c in clients) / 2**20, 1)
            result["snapshots"].append(snap)
    finally:
        for c in clients:
            c[0].close()
        t_closed = time.monotonic()
        time.sleep(max(0.0, t_closed + 3 - time.monotonic()))
        result["snapshots"].append(snapshot(server.pid, port, "3 s after closing clients", t0))
        server.stop()
    result["failures"] = failures
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        report(result)


def report(r):
    c = r["config"]
    print(f"server: {c['server_cmd']}  (pid {r['server_pid']}, {r['server_comm']})")
    print(f"{c['batches']} batches of {c['clients']} clients every {c['interval_s']} s, each "
          f"{c['requests']} pipelined POST /echo of {c['body_size']} B, never read, held open")
    if r["guard"]:
        print(f"  GUARD: {r['guard']}")
    print(f"  client errors: {r['failures'] or '-'}")
    print(f"{'when':28} {'t s':>6} {'TCP mem MB':>10} {'orphan':>7} {'FIN_WAIT1':>9} "
          f"{'sendq MB':>8} {'ESTAB':>6} {'RSS MiB':>7}  other server-side states")
    for s in r["snapshots"]:
        ss = s["server_sockets"]
        fw = ss.get("FIN_WAIT1", {"n": 0, "sendq_mb": 0})
        est = ss.get("ESTABLISHED", {"n": 0})
        other = ", ".join(f"{k} {v['n']}" for k, v in ss.items()
                          if k not in ("FIN_WAIT1", "ESTABLISHED"))
        rss = "-" if s["rss_kb"] is None else f"{s['rss_kb'] / 1024:.1f}"
        print(f"{s['label']:28} {s['t_s']:6.1f} {s['tcp_mem_mb']:10.1f} {s['orphan']:7d} "
              f"{fw['n']:9d} {fw['sendq_mb']:8.1f} {est['n']:6d} {rss:>7}  {other or '-'}")


if __name__ == "__main__":
    sys.exit(main())
