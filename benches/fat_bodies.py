#!/usr/bin/env python3
"""Fat request bodies: how a server holds up when many clients pin memory with bodies.

What it measures
----------------
N "attacker" connections each send

    POST /echo HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: <body-size>\\r\\n\\r\\n

then <send-first> body bytes as fast as the socket takes them, then one more byte every
<trickle-s> seconds (while the declared body is not complete), for <duration-s> seconds.
A body that is complete (send-first >= body-size, or --complete-fraction) is answered and
the connection is then left idle. The script reports

  * the share of attacker connections the server closed (EOF, or reset on read or write)
    within the attack, and the times by which 50 % and 90 % of them were closed;
  * the status lines the attackers got (first response on each connection), with counts;
  * the server's RSS (VmRSS from /proc/PID/status, sampled every 0.5 s): before the attack,
    peak during it, at its end, and 5 s and 15 s after the script has closed every attacker
    connection (no connection open then), with a breakdown of the RSS by mapping from
    /proc/PID/smaps ([heap], anonymous mappings, stacks, files) at the end and at +15 s;
  * with --load-cmd (path to rtserve-load): the p99 latency of GET /hello at a modest
    keep-alive rate (1000 req/s on 10 connections, 10 s), once before the attack (baseline)
    and once during it, and their ratio.

The script starts the server itself (--server-cmd, a shell command line), finds the PID of the
process that owns the listening socket (so wrappers such as `taskset`, `env` or `sh` are fine),
and kills the processes it started, by PID, at the end.

How to run
----------
Pin the server and the load apart, e.g. on two cores:

    taskset -c 1 benches/fat_bodies.py \\
        --server-cmd "taskset -c 0 target/release/rtserve --bind 127.0.0.1:19100 --threads 1" \\
        --url http://127.0.0.1:19100 --load-cmd target/release/rtserve-load

(the attackers and rtserve-load inherit the script's CPU affinity). Add --json for
machine-readable output. To test a malloc setting, put it in the server command:
`--server-cmd "env MALLOC_ARENA_MAX=2 taskset -c 0 target/release/rtserve ..."`.

Python 3 standard library only. Linux only (/proc).
"""

import argparse
import errno
import json
import os
import resource
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

# The helpers the attack scripts share: the server's process, its memory, the load runs.
from attacklib import (Sampler, comm, find_server_pid, load_result, process_tree, rss_kb,
                       run_load, wait_port)

HOLD_CHUNK = 256 * 1024  # largest single send() in the fast phase
CONNECT_BATCH = 200  # connects started per loop turn
WRAPPERS = {"sh", "bash", "dash", "taskset", "env", "timeout", "nice", "numactl", "chrt", "setsid"}


def log(msg):
    print(f"[fat_bodies {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- /proc helpers


def tcp_conns_on_port(port):
    """Sockets on the server's port that are not LISTEN (either side, any state)."""
    states = {}
    names = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "04": "FIN_WAIT1",
             "05": "FIN_WAIT2", "09": "LAST_ACK", "0B": "CLOSING", "02": "SYN_SENT",
             "03": "SYN_RECV", "07": "CLOSE"}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state = parts[1], parts[3]
                    if state != "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        name = names.get(state, state)
                        states[name] = states.get(name, 0) + 1
        except OSError:
            pass
    return states


def smaps_breakdown(pid, top=6):
    """RSS (kB) by kind of mapping, and the largest anonymous mappings."""
    kinds = {"heap": 0, "anon": 0, "stack": 0, "file": 0, "other": 0}
    anon = []
    cur = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if "-" in first and not first.endswith(":"):
                    parts = line.split()
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    name = parts[5] if len(parts) > 5 else ""
                    if name == "[heap]":
                        kind = "heap"
                    elif name == "":
                        kind = "anon"
                    elif name.startswith("[stack"):
                        kind = "stack"
                    elif name.startswith("/"):
                        kind = "file"
                    else:
                        kind = "other"
                    cur = {"start": parts[0].split("-")[0], "size_kb": (hi - lo) // 1024,
                           "perms": parts[1], "kind": kind, "name": name}
                elif first == "Rss:" and cur is not None:
                    rss = int(line.split()[1])
                    kinds[cur["kind"]] += rss
                    if cur["kind"] == "anon":
                        cur["rss_kb"] = rss
                        anon.append(cur)
    except OSError:
        return None
    anon.sort(key=lambda m: -m["rss_kb"])
    return {"rss_kb_by_kind": kinds, "anon_mappings": len(anon),
            "top_anon": [{k: m[k] for k in ("start", "size_kb", "rss_kb", "perms")}
                         for m in anon[:top]]}


# ----------------------------------------------------------------------------- RSS sampler


# ----------------------------------------------------------------------------- load generator


# ----------------------------------------------------------------------------- attackers


class Attacker:
    __slots__ = ("sock", "state", "to_send", "sent_body", "next_trickle", "closed_at",
                 "close_kind", "status", "rbuf", "want_write", "complete_at")

    def __init__(self):
        self.sock = None
        self.state = "new"  # new, connecting, fast, trickle, done, closed
        self.to_send = b""  # head still to send (then body from the shared buffer)
        self.sent_body = 0
        self.next_trickle = None
        self.closed_at = None  # seconds since attack start, when the server closed it
        self.close_kind = None  # eof, reset-read, reset-write, connect-failed
        self.status = None
        self.rbuf = b""
        self.want_write = False
        self.complete_at = None


def attack(args, base_host, base_port, during_load_start, start_load):
    """Runs the attack; returns (attackers, t0, t_end, selector, during-attack load process)."""
    sel = selectors.DefaultSelector()
    head = (f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {args.body_size}\r\n\r\n"
            ).encode()
    body_complete = min(args.send_first, args.body_size)
    n_complete = int(round(args.attackers * args.complete_fraction))
    attackers = [Attacker() for _ in range(args.attackers)]
    first_target = [args.body_size if i < n_complete else body_complete
                    for i in range(args.attackers)]
    fast_body = memoryview(b"a" * max(args.body_size, 1))
    t0 = time.monotonic()
    deadline = t0 + args.duration_s
    pending = list(range(args.attackers))
    pending.reverse()
    trickling = set()

    def server_closed(i, kind):
        a = attackers[i]
        if a.state == "closed":
            return
        a.closed_at = time.monotonic() - t0
        a.close_kind = kind
        a.state = "closed"
        trickling.discard(i)
        try:
            sel.unregister(a.sock)
        except (KeyError, ValueError):
            pass
        a.sock.close()

    def set_interest(i):
        a = attackers[i]
        ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if a.want_write else 0)
        sel.modify(a.sock, ev, i)

    def read(i):
        a = attackers[i]
        while True:
            try:
                data = a.sock.recv(262144)
            except BlockingIOError:
                return
            except (ConnectionResetError, BrokenPipeError, OSError):
                server_closed(i, "reset-read")
                return
            if not data:
                server_closed(i, "eof")
                return
            if a.status is None:
                a.rbuf += data[:256]
                if b"\r\n" in a.rbuf or len(a.rbuf) >= 256:
                    line = a.rbuf.split(b"\r\n", 1)[0].decode("latin-1", "replace")
                    parts = line.split(" ", 2)
                    a.status = parts[1] if len(parts) > 1 and parts[0].startswith("HTTP/") \
                        else "garbage"
                    a.rbuf = b""

    def write(i):
        """Sends what is due; returns whether the attacker is still there."""
        a = attackers[i]
        try:
            while a.to_send:
                n = a.sock.send(a.to_send)
                a.to_send = a.to_send[n:]
            if a.state == "fast":
                target = first_target[i]
                while a.sent_body < target:
                    end = min(target, a.sent_body + HOLD_CHUNK)
                    n = a.sock.send(fast_body[a.sent_body:end])
                    a.sent_body += n
                if a.sent_body >= args.body_size:
                    a.state = "done"
                    a.complete_at = time.monotonic() - t0
                else:
                    a.state = "trickle"
                    a.next_trickle = time.monotonic() + args.trickle_s
                    trickling.add(i)
            elif a.state == "trickle" and a.next_trickle <= time.monotonic():
                n = a.sock.send(b"a")
                if n == 1:
                    a.sent_body += 1
                    if a.sent_body >= args.body_size:
                        a.state = "done"
                        a.complete_at = time.monotonic() - t0
                        trickling.discard(i)
                    else:
                        a.next_trickle = time.monotonic() + args.trickle_s
            if a.want_write:
                a.want_write = False
                set_interest(i)
            return True
        except BlockingIOError:
            if not a.want_write:
                a.want_write = True
                set_interest(i)
            return True
        except (ConnectionResetError, BrokenPipeError, OSError):
            # read first: the server may have answered (e.g. 408) before closing
            read(i)
            server_closed(i, "reset-write")
            return False

    load_proc = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if load_proc is None and during_load_start is not None and now - t0 >= during_load_start:
            load_proc = start_load()
        # start connects in batches
        for _ in range(min(CONNECT_BATCH, len(pending))):
            i = pending.pop()
            a = attackers[i]
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((base_host, base_port))
            if err not in (0, errno.EINPROGRESS):
                a.state, a.close_kind = "closed", "connect-failed"
                a.closed_at = None
                s.close()
                continue
            a.sock, a.state, a.to_send = s, "connecting", head
            sel.register(s, selectors.EVENT_WRITE, i)
        # timers
        timeout = max(0.0, min(deadline - now, 0.05 if pending else 0.25))
        if trickling:
            nxt = min(attackers[i].next_trickle for i in trickling)
            timeout = max(0.0, min(timeout, nxt - now))
        for key, ev in sel.select(timeout):
            i = key.data
            a = attackers[i]
            if a.state == "closed":
                continue
            if a.state == "connecting":
                err = a.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    a.state, a.close_kind = "closed", "connect-failed"
                    sel.unregister(a.sock)
                    a.sock.close()
                    continue
                a.state = "fast"
                a.want_write = True
                set_interest(i)
            if ev & selectors.EVENT_READ:
                read(i)
                if a.state == "closed":
                    continue
            if ev & selectors.EVENT_WRITE:
                write(i)
        now = time.monotonic()
        for i in [i for i in trickling if attackers[i].next_trickle <= now]:
            if attackers[i].state == "trickle" and not attackers[i].want_write:
                write(i)
    t_end = time.monotonic()
    return attackers, t0, t_end, sel, load_proc


# ----------------------------------------------------------------------------- main


def quantile_time(times, n_total, q):
    """Time by which a share q of all attackers had been closed, or None."""
    need = int(-(-q * n_total // 1))  # ceil
    if need == 0 or len(times) < need:
        return None
    return sorted(times)[need - 1]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-cmd", required=True,
                   help="shell command line that starts the server (run by the script)")
    p.add_argument("--url", default="http://127.0.0.1:19100", help="server base URL")
    p.add_argument("--attackers", type=int, default=1000)
    p.add_argument("--body-size", type=int, default=1048576, help="declared Content-Length")
    p.add_argument("--send-first", type=int, default=1000000,
                   help="body bytes sent at once (capped at --body-size)")
    p.add_argument("--trickle-s", type=float, default=5.0,
                   help="seconds between single body bytes after --send-first")
    p.add_argument("--complete-fraction", type=float, default=0.0,
                   help="share of attackers sending the whole body at once (a mix of "
                        "completed and pinned bodies)")
    p.add_argument("--duration-s", type=float, default=60.0, help="attack length")
    p.add_argument("--load-cmd", help="path to rtserve-load: /hello p99 before and during")
    p.add_argument("--load-rate", type=int, default=1000)
    p.add_argument("--load-connections", type=int, default=10)
    p.add_argument("--load-s", type=int, default=10)
    p.add_argument("--load-at-s", type=float, default=None,
                   help="start of the during-attack load run, seconds into the attack "
                        "(default: centred in the attack)")
    p.add_argument("--after-s", type=float, nargs=2, default=[5.0, 15.0],
                   help="RSS this long after all attacker connections are closed")
    p.add_argument("--startup-timeout-s", type=float, default=15.0)
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = p.parse_args()

    u = urllib.parse.urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    if host not in ("127.0.0.1", "localhost"):
        p.error("only a local server (127.0.0.1) is supported")
    host = "127.0.0.1"
    args.send_first = min(args.send_first, args.body_size)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.attackers + 256
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(max(want, soft), hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        if new < want:
            log(f"warning: RLIMIT_NOFILE hard limit {hard} < {want}")

    if wait_port(host, port, 0.2):
        p.error(f"something already listens on {host}:{port}")

    log(f"starting server: {args.server_cmd}")
    server = subprocess.Popen(args.server_cmd, shell=True, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = [server.pid]
    result = {"config": {k: v for k, v in vars(args).items()}}
    sampler = None
    try:
        if not wait_port(host, port, args.startup_timeout_s):
            raise SystemExit("server did not start listening")
        spid = find_server_pid(server.pid, port)
        started = process_tree(server.pid)
        result["server_pid"], result["server_comm"] = spid, comm(spid)
        log(f"server pid {spid} ({comm(spid)}); tree {started}")
        sampler = Sampler(spid)
        sampler.start()
        time.sleep(1.0)
        result["rss_idle_kb"] = rss_kb(spid)

        if args.load_cmd:
            log("baseline load on /hello")
            base = run_load(args.load_cmd, args.url, args.load_rate, args.load_connections,
                            args.load_s)
            result["load_baseline"] = load_result(base, args.load_s + 30)
            time.sleep(1.0)

        result["rss_before_kb"] = rss_kb(spid)
        load_at = None
        if args.load_cmd:
            load_at = args.load_at_s
            if load_at is None:
                load_at = max(0.0, (args.duration_s - args.load_s - 1) / 2)
            if load_at + args.load_s + 1 > args.duration_s:
                log("warning: the during-attack load run outlasts the attack")

        def start_load():
            log("load on /hello during the attack")
            return run_load(args.load_cmd, args.url, args.load_rate, args.load_connections,
                            args.load_s)

        log(f"attack: {args.attackers} connections, Content-Length {args.body_size}, "
            f"{args.send_first} at once, then 1 byte / {args.trickle_s} s, "
            f"{args.duration_s} s")
        attackers, t0, t_end, sel, load_proc = attack(args, host, port, load_at, start_load)
        result["rss_end_kb"] = rss_kb(spid)
        result["rss_peak_kb"] = sampler.peak(t0, t_end)
        result["smaps_end"] = smaps_breakdown(spid)

        # close every attacker connection still open
        still_open = 0
        for a in attackers:
            if a.state not in ("closed", "new") and a.sock is not None:
                still_open += 1
                try:
                    sel.unregister(a.sock)
                except (KeyError, ValueError):
                    pass
                a.sock.close()
        sel.close()
        t_closed = time.monotonic()
        if load_proc is not None:
            result["load_during"] = load_result(load_proc, args.load_s + 30)
        log(f"attack over; closed {still_open} connections still open")

        after = {}
        for s in sorted(args.after_s):
            delay = t_closed + s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            after[s] = {"rss_kb": rss_kb(spid), "conns": tcp_conns_on_port(port)}
        result["rss_after"] = {f"{s:g}s": v for s, v in after.items()}
        result["smaps_after"] = smaps_breakdown(spid)
        result["rss_peak_after_close_kb"] = sampler.peak(t_closed, time.monotonic())

        n = len(attackers)
        closed = [a.closed_at for a in attackers
                  if a.closed_at is not None and a.closed_at <= args.duration_s]
        kinds, statuses = {}, {}
        for a in attackers:
            if a.close_kind:
                kinds[a.close_kind] = kinds.get(a.close_kind, 0) + 1
            key = a.status or "none"
            statuses[key] = statuses.get(key, 0) + 1
        sent = sum(a.sent_body for a in attackers)
        result["attack"] = {
            "attackers": n,
            "connected": sum(1 for a in attackers if a.close_kind != "connect-failed"
                             and a.state != "new"),
            "bodies_completed": sum(1 for a in attackers if a.complete_at is not None),
            "fast_phase_done": sum(1 for a in attackers
                                   if a.sent_body >= min(args.send_first, args.body_size)),
            "body_bytes_sent_total": sent,
            "closed_by_server": len(closed),
            "closed_by_server_share": len(closed) / n if n else 0.0,
            "closed_50pct_at_s": quantile_time(closed, n, 0.5),
            "closed_90pct_at_s": quantile_time(closed, n, 0.9),
            "close_kinds": kinds,
            "statuses": statuses,
            "closed_by_script_at_end": still_open,
        }
        bl, dl = result.get("load_baseline"), result.get("load_during")
        if bl and dl and bl.get("p99_us") and dl.get("p99_us") is not None:
            result["hello_p99_ratio"] = dl["p99_us"] / bl["p99_us"]
        result["rss_series"] = [[round(t - t0, 2), r] for t, r, *_ in sampler.samples
                                if r is not None]
    finally:
        if sampler:
            sampler.stop_event.set()
        # kill what we started, by PID: the server first, then its wrappers
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            for pid in reversed(started):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                server.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                pass

    if args.json:
        print(json.dumps(result, indent=1))
    else:
        report(result)


def mb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def report(r):
    a = r["attack"]
    c = r["config"]
    print(f"server: {c['server_cmd']}  (pid {r['server_pid']}, {r['server_comm']})")
    print(f"attack: {a['attackers']} conns, Content-Length {c['body_size']}, "
          f"{c['send_first']} B at once, then 1 B / {c['trickle_s']} s, {c['duration_s']} s, "
          f"complete-fraction {c['complete_fraction']}")
    print(f"  connected {a['connected']}, fast phase done {a['fast_phase_done']}, bodies "
          f"completed {a['bodies_completed']}, body bytes sent {a['body_bytes_sent_total']}")
    print(f"  closed by server within the attack: {a['closed_by_server']} "
          f"({100 * a['closed_by_server_share']:.1f} %); 50 % by "
          f"{fmt_s(a['closed_50pct_at_s'])}, 90 % by {fmt_s(a['closed_90pct_at_s'])}")
    print(f"  close kinds: {a['close_kinds'] or '-'}; statuses: {a['statuses']}")
    print(f"  still open at the end (closed by the script): {a['closed_by_script_at_end']}")
    print("RSS:")
    print(f"  idle {mb(r['rss_idle_kb'])}, before attack {mb(r['rss_before_kb'])}, "
          f"peak {mb(r['rss_peak_kb'])}, end of attack {mb(r['rss_end_kb'])}")
    for k, v in r["rss_after"].items():
        print(f"  {k} after all closed: {mb(v['rss_kb'])}  (sockets on port: "
              f"{v['conns'] or 'none'})")
    for name in ("smaps_end", "smaps_after"):
        s = r.get(name)
        if s:
            kinds = ", ".join(f"{k} {mb(v)}" for k, v in s["rss_kb_by_kind"].items())
            print(f"  {name}: {kinds}; {s['anon_mappings']} anon mappings, largest RSS: "
                  + ", ".join(f"{m['start']}({m['size_kb'] // 1024} MiB map, "
                              f"{m['rss_kb'] // 1024} MiB rss)" for m in s["top_anon"][:4]))
    if "load_baseline" in r:
        print("/hello (corrected latency):")
        for k in ("load_baseline", "load_during"):
            v = r.get(k)
            if v:
                print(f"  {k}: " + ", ".join(f"{kk} {vv}" for kk, vv in v.items()))
        if "hello_p99_ratio" in r:
            print(f"  p99 during / baseline: {r['hello_p99_ratio']:.2f}x")


def fmt_s(v):
    return "-" if v is None else f"{v:.1f} s"


if __name__ == "__main__":
    main()
