#!/usr/bin/env python3
"""Starved uploads: can connections that declare large bodies and never (or slowly) send them
take the body budget from legitimate uploads?

What it measures
----------------
N attacker connections each send

    POST /echo HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 1048576\\r\\n\\r\\n

and then, by --attack:

  * idle:   nothing more;
  * slow:   body bytes at --rate bytes/s per connection (default 6144, just above rtserve's
            default 4 KiB/s minimum body rate), --chunk bytes at a time;
  * expect: the head carries `Expect: 100-continue`, and nothing more is sent (a
            `100 Continue` is counted, and the attacker keeps waiting: it is not final).

An attacker whose connection the server closes, or that gets a final response, reconnects at
once (counted). With --attacker-addrs K the attackers bind to 127.0.0.2 .. 127.0.0.(K+1) in
turn before connecting; the legitimate clients use 127.0.0.1.

Meanwhile --clients threads of legitimate clients POST bodies of random size (64 KB..1 MB,
random bytes) to /echo at full speed (sendall), one request per connection, one after
another (after a failure, --failure-pause-ms first, so that their own retries of bodies the
server refuses, reads and discards do not become the load), read the whole answer, and check
status 200 and that the body echoed is the one sent.
They run --baseline-s seconds before the attack (alone) and --duration-s seconds during it
(after --warmup-s for the attackers to connect). The script reports, for each phase, attempts,
successes, success %, and the failures by status line (and `rtserve-shed` header) or error;
the attackers' reconnects and the status lines they got; the server's RSS (VmRSS, sampled
every 0.5 s): baseline, peak, end; the CPU time of the server and of this script during the
attack (on 2 cores, a script at 100 % also slows rtserve-load, which shares its core); and,
with --load-cmd (path to rtserve-load), the p99 of GET /hello at 1000 req/s on 10
connections for 10 s: with nothing else (load_idle), beside the legitimate clients before the
attack (load_baseline, what the attack is judged against: the uploads at full speed load the
server more than the attack does), and during the attack (load_during).

The script starts the server itself (--server-cmd, a shell command line), finds the PID that
owns the listening socket, and kills what it started, by PID, at the end. Everything stops by
itself after the baseline and the attack.

How to run
----------
    taskset -c 1 benches/starve_uploads.py --attack idle --attackers 1000 \\
        --server-cmd "taskset -c 0 target/release/rtserve --bind 127.0.0.1:19300 \\
                      --threads 1 --body-budget 128M" \\
        --url http://127.0.0.1:19300 --load-cmd target/release/rtserve-load

Add --json for machine-readable output. Python 3 standard library only; Linux only (/proc).
Traffic goes to loopback only.
"""

import argparse
import errno
import heapq
import json
import os
import random
import selectors
import socket
import sys
import threading
import time
import urllib.parse

import attacklib as lib

log = lib.make_log("starve_uploads")
CONNECT_BATCH = 100


# ----------------------------------------------------------------------------- legit clients


class Legit:
    """Legitimate uploaders: `threads` threads, one request per connection, in a loop."""

    def __init__(self, host, port, threads, min_size, max_size, timeout, pause_s, seed=1):
        self.host, self.port, self.threads, self.pause_s = host, port, threads, pause_s
        self.min_size, self.max_size, self.timeout = min_size, max_size, timeout
        rnd = random.Random(seed)
        self.pool = rnd.randbytes(2 * max_size)
        self.lock = threading.Lock()
        self.phase = None
        self.stats = {}

    def _record(self, phase, outcome, seconds):
        with self.lock:
            st = self.stats.setdefault(phase, {"attempts": 0, "ok": 0, "failures": {},
                                               "ok_latency_s": []})
            st["attempts"] += 1
            if outcome == "ok":
                st["ok"] += 1
                st["ok_latency_s"].append(seconds)
            else:
                st["failures"][outcome] = st["failures"].get(outcome, 0) + 1

    def one(self, rnd):
        size = rnd.randint(self.min_size, self.max_size)
        off = rnd.randrange(0, len(self.pool) - size)
        body = self.pool[off:off + size]
        head = (f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n"
                f"Connection: close\r\n\r\n").encode()
        deadline = time.monotonic() + self.timeout
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        send_err = None
        try:
            s.bind(("127.0.0.1", 0))
            s.settimeout(self.timeout)
            s.connect((self.host, self.port))
            try:
                s.sendall(head)
                s.sendall(body)
            except OSError as e:  # the server may answer (503) and close before the body
                send_err = e
            try:
                status, headers, got, _ = lib.read_response(s, deadline)
            except (OSError, ConnectionError) as e:
                if send_err is not None:
                    return f"send error: {type(send_err).__name__}"
                if isinstance(e, socket.timeout):
                    return "timeout"
                return f"read error: {type(e).__name__}: {e}"
            if not status.startswith("HTTP/1.1 200"):
                shed = headers.get("rtserve-shed")
                return status + (f" (rtserve-shed: {shed})" if shed else "")
            if got != body:
                return f"200 with a wrong body ({len(got)} of {size} B)"
            return "ok"
        except socket.timeout:
            return "timeout"
        except OSError as e:
            return f"connect error: {type(e).__name__}"
        finally:
            s.close()

    def worker(self, idx, stop):
        rnd = random.Random(1000 + idx)
        while not stop.is_set():
            phase = self.phase
            t = time.monotonic()
            outcome = self.one(rnd)
            if phase is not None:
                self._record(phase, outcome, time.monotonic() - t)
            if outcome != "ok" and self.pause_s:
                stop.wait(self.pause_s)

    def start(self):
        self.stop_event = threading.Event()
        self.workers = [threading.Thread(target=self.worker, args=(i, self.stop_event),
                                         daemon=True) for i in range(self.threads)]
        for w in self.workers:
            w.start()

    def stop(self):
        self.stop_event.set()
        for w in self.workers:
            w.join(self.timeout + 5)

    def summary(self, phase):
        st = self.stats.get(phase, {"attempts": 0, "ok": 0, "failures": {},
                                    "ok_latency_s": []})
        lat = st["ok_latency_s"]
        return {"attempts": st["attempts"], "ok": st["ok"],
                "success_pct": 100.0 * st["ok"] / st["attempts"] if st["attempts"] else None,
                "failures": dict(sorted(st["failures"].items(), key=lambda kv: -kv[1])),
                "ok_latency_s": {k: (round(v, 3) if v is not None else None)
                                 for k, v in lib.quantiles(lat).items()}}


# ----------------------------------------------------------------------------- attackers


class Attack:
    def __init__(self, args, host, port):
        self.args, self.host, self.port = args, host, port
        extra = "Expect: 100-continue\r\n" if args.attack == "expect" else ""
        self.head = (f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {args.body_size}\r\n"
                     f"{extra}\r\n").encode()
        self.chunk = b"a" * args.chunk
        self.period = (args.chunk / args.rate
                       if args.attack == "slow" and args.rate > 0 else None)
        self.sel = selectors.DefaultSelector()
        n = args.attackers
        self.sock = [None] * n
        self.gen = [0] * n  # bumped at each (re)connect: stale timer entries are skipped
        self.state = ["new"] * n  # connecting, sending-head, open
        self.sent = [0] * n  # body bytes sent on the current connection
        self.rbuf = [b""] * n
        self.timers = []  # (time, attacker, gen)
        self.connects = 0
        self.reconnects = 0
        self.connect_failures = {}
        self.finals = {}  # final status lines got
        self.interim = 0  # 1xx lines got
        self.closes = {}  # eof / reset, without a response
        self.body_bytes = 0
        self.addr_of = ([None] * n if args.attacker_addrs == 0 else
                        [f"127.0.0.{2 + (i % args.attacker_addrs)}" for i in range(n)])
        self.pending = list(range(n))

    def _count(self, d, k):
        d[k] = d.get(k, 0) + 1

    def connect(self, i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            if self.addr_of[i]:
                s.bind((self.addr_of[i], 0))
            err = s.connect_ex((self.host, self.port))
        except OSError as e:
            err = e.errno
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self._count(self.connect_failures, errno.errorcode.get(err, str(err)))
            self.pending.append(i)  # retried on a later turn
            return
        self.connects += 1
        self.gen[i] += 1
        self.sock[i], self.state[i], self.sent[i], self.rbuf[i] = s, "connecting", 0, b""
        self.sel.register(s, selectors.EVENT_WRITE, i)

    def drop(self, i, why):
        """The server answered or closed: close and reconnect at once."""
        s = self.sock[i]
        if s is not None:
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            s.close()
        self.sock[i] = None
        if why:
            self._count(self.closes, why)
        self.reconnects += 1
        self.connect(i)

    def on_read(self, i):
        s = self.sock[i]
        try:
            data = s.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.drop(i, "reset")
            return
        if not data:
            self.drop(i, "eof" if not self.rbuf[i] else None)
            return
        self.rbuf[i] += data
        while b"\r\n" in self.rbuf[i]:
            line = self.rbuf[i].split(b"\r\n", 1)[0].decode("latin-1")
            if line.startswith("HTTP/1.1 1"):
                self.interim += 1
                end = self.rbuf[i].find(b"\r\n\r\n")
                if end < 0:
                    return
                self.rbuf[i] = self.rbuf[i][end + 4:]
                continue
            self._count(self.finals, line)
            self.drop(i, None)
            return

    def on_write(self, i):
        s = self.sock[i]
        if self.state[i] == "connecting":
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.sel.unregister(s)
                s.close()
                self.sock[i] = None
                self._count(self.connect_failures, errno.errorcode.get(err, str(err)))
                self.pending.append(i)
                return
        try:
            s.send(self.head)  # 70 bytes into an empty socket: taken whole
        except OSError:
            self.drop(i, "reset")
            return
        self.state[i] = "open"
        self.sel.modify(s, selectors.EVENT_READ, i)
        if self.period is not None:
            heapq.heappush(self.timers, (time.monotonic() + self.period, i, self.gen[i]))

    def trickle(self, now):
        while self.timers and self.timers[0][0] <= now:
            t, i, g = heapq.heappop(self.timers)
            if g != self.gen[i] or self.sock[i] is None:
                continue
            want = min(len(self.chunk), self.args.body_size - self.sent[i])
            if want <= 0:
                continue
            try:
                n = self.sock[i].send(self.chunk[:want])
            except BlockingIOError:
                n = 0
            except OSError:
                self.drop(i, "reset")
                continue
            self.sent[i] += n
            self.body_bytes += n
            heapq.heappush(self.timers, (max(t + self.period, now), i, g))

    def run(self, until, on_tick=None):
        while True:
            now = time.monotonic()
            if now >= until:
                return
            if on_tick:
                on_tick(now)
            for _ in range(min(CONNECT_BATCH, len(self.pending))):
                self.connect(self.pending.pop())
            timeout = min(until - now, 0.02 if self.pending else 0.1)
            if self.timers:
                timeout = min(timeout, max(0.0, self.timers[0][0] - now))
            for key, ev in self.sel.select(timeout):
                i = key.data
                if self.sock[i] is None or key.fileobj is not self.sock[i]:
                    continue
                if ev & selectors.EVENT_WRITE:
                    self.on_write(i)
                elif ev & selectors.EVENT_READ:
                    self.on_read(i)
            self.trickle(time.monotonic())

    def open_now(self):
        return sum(1 for s in self.sock if s is not None)

    def close_all(self):
        for i, s in enumerate(self.sock):
            if s is not None:
                try:
                    self.sel.unregister(s)
                except (KeyError, ValueError):
                    pass
                s.close()
                self.sock[i] = None
        self.sel.close()


# ----------------------------------------------------------------------------- main


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-cmd", required=True, help="shell command line starting the server")
    p.add_argument("--url", default="http://127.0.0.1:19300", help="server base URL")
    p.add_argument("--attack", choices=("idle", "slow", "expect"), default="idle")
    p.add_argument("--attackers", type=int, default=128)
    p.add_argument("--attacker-addrs", type=int, default=0, metavar="K",
                   help="bind attackers to 127.0.0.2 .. 127.0.0.(K+1) (0: no bind)")
    p.add_argument("--body-size", type=int, default=1048576, help="declared Content-Length")
    p.add_argument("--rate", type=int, default=6144, help="slow: body bytes/s per attacker")
    p.add_argument("--chunk", type=int, default=1024, help="slow: bytes per send")
    p.add_argument("--clients", type=int, default=4, help="legitimate uploader threads")
    p.add_argument("--min-size", type=int, default=64 * 1000)
    p.add_argument("--max-size", type=int, default=1000 * 1000)
    p.add_argument("--client-timeout-s", type=float, default=10.0)
    p.add_argument("--failure-pause-ms", type=float, default=50.0,
                   help="a legit client waits this long after a failed upload (0: retries at "
                        "once, a flood of bodies the server reads and discards)")
    p.add_argument("--baseline-s", type=float, default=5.0, help="legit clients alone")
    p.add_argument("--warmup-s", type=float, default=3.0, help="attackers connect")
    p.add_argument("--duration-s", type=float, default=30.0, help="legit clients under attack")
    p.add_argument("--load-cmd", help="path to rtserve-load: /hello p99 before and during")
    p.add_argument("--load-rate", type=int, default=1000)
    p.add_argument("--load-connections", type=int, default=10)
    p.add_argument("--load-s", type=int, default=10)
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = p.parse_args()

    u = urllib.parse.urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    if not host.startswith("127."):
        p.error("loopback only")
    if not 0 <= args.attacker_addrs <= 250:
        p.error("--attacker-addrs: 0..250")
    lib.raise_nofile(args.attackers + args.clients + 256, log)

    server = lib.Server(args.server_cmd, host, port, log)
    result = {"config": vars(args), "server_pid": server.pid,
              "server_comm": lib.comm(server.pid)}
    sampler = lib.Sampler(server.pid)
    sampler.start()
    legit = Legit(host, port, args.clients, args.min_size, args.max_size,
                  args.client_timeout_s, args.failure_pause_ms / 1000)
    attack = None
    try:
        time.sleep(0.5)
        result["rss_idle_kb"] = lib.rss_kb(server.pid)
        if args.load_cmd:
            log("load on /hello with nothing else")
            result["load_idle"] = lib.load_result(
                lib.run_load(args.load_cmd, args.url, args.load_rate, args.load_connections,
                             args.load_s), args.load_s + 30)
        log(f"legit clients alone for {args.baseline_s} s")
        legit.phase = "baseline"
        legit.start()
        t_b = time.monotonic()
        if args.load_cmd:
            # The baseline the attack is judged against: the same legitimate uploads, no
            # attack (uploads at full speed load the server as much as anything here).
            log("baseline load on /hello beside the legit clients")
            result["load_baseline"] = lib.load_result(
                lib.run_load(args.load_cmd, args.url, args.load_rate, args.load_connections,
                             args.load_s), args.load_s + 30)
        time.sleep(max(0.0, args.baseline_s - (time.monotonic() - t_b)))
        legit.phase = None
        result["rss_baseline_kb"] = lib.rss_kb(server.pid)
        result["rss_baseline_peak_kb"] = sampler.peak(t_b, time.monotonic())

        log(f"attack {args.attack}: {args.attackers} connections"
            + (f" from {args.attacker_addrs} addresses" if args.attacker_addrs else ""))
        attack = Attack(args, host, port)
        t0 = time.monotonic()
        cpu0 = cpu_seconds(server.pid), os.times()
        attack.run(t0 + args.warmup_s)
        result["attackers_open_after_warmup"] = attack.open_now()
        legit.phase = "attack"
        t1 = time.monotonic()
        load = {"proc": None}
        load_at = t1 + max(0.0, (args.duration_s - args.load_s) / 2)

        def tick(now):
            if args.load_cmd and load["proc"] is None and now >= load_at:
                log("load on /hello during the attack")
                load["proc"] = lib.run_load(args.load_cmd, args.url, args.load_rate,
                                            args.load_connections, args.load_s)

        attack.run(t1 + args.duration_s, tick)
        legit.phase = None
        t_end = time.monotonic()
        cpu1 = cpu_seconds(server.pid), os.times()
        wall = t_end - t0
        result["cpu_during_attack_pct"] = {
            "server": round(100 * (cpu1[0] - cpu0[0]) / wall),
            "script": round(100 * ((cpu1[1].user + cpu1[1].system)
                                   - (cpu0[1].user + cpu0[1].system)) / wall)}
        result["rss_end_kb"] = lib.rss_kb(server.pid)
        result["rss_peak_kb"] = sampler.peak(t0, t_end)
        result["attack"] = {
            "open_at_end": attack.open_now(), "connects": attack.connects,
            "reconnects": attack.reconnects,
            "reconnects_per_s": round(attack.reconnects / (t_end - t0), 1),
            "final_statuses": attack.finals, "interim_1xx": attack.interim,
            "closed_without_response": attack.closes,
            "connect_failures": attack.connect_failures,
            "body_bytes_sent": attack.body_bytes, "seconds": round(t_end - t0, 1)}
        if load["proc"] is not None:
            result["load_during"] = lib.load_result(load["proc"], args.load_s + 30)
    finally:
        legit.phase = None
        legit.stop()
        if attack is not None:
            attack.close_all()
        sampler.stop()
        server.stop()
    result["legit_baseline"] = legit.summary("baseline")
    result["legit_attack"] = legit.summary("attack")
    bl, dl = result.get("load_baseline"), result.get("load_during")
    if bl and dl and bl.get("p99_us") and dl.get("p99_us") is not None:
        result["hello_p99_ratio"] = round(dl["p99_us"] / bl["p99_us"], 2)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        report(result)


def mb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def report(r):
    c, a = r["config"], r["attack"]
    print(f"server: {c['server_cmd']}  (pid {r['server_pid']}, {r['server_comm']})")
    print(f"attack: {c['attack']}, {c['attackers']} connections, Content-Length "
          f"{c['body_size']}"
          + (f", {c['rate']} B/s each" if c["attack"] == "slow" else "")
          + (f", from {c['attacker_addrs']} source addresses" if c["attacker_addrs"] else "")
          + f"; {a['seconds']} s")
    print(f"  open after warm-up {r['attackers_open_after_warmup']}, at the end "
          f"{a['open_at_end']}; connects {a['connects']}, reconnects {a['reconnects']} "
          f"({a['reconnects_per_s']}/s); body bytes sent {a['body_bytes_sent']}")
    print(f"  final statuses: {a['final_statuses'] or '-'}; 1xx: {a['interim_1xx']}; "
          f"closed without response: {a['closed_without_response'] or '-'}; connect "
          f"failures: {a['connect_failures'] or '-'}")
    for phase in ("legit_baseline", "legit_attack"):
        s = r[phase]
        pct = "-" if s["success_pct"] is None else f"{s['success_pct']:.1f} %"
        print(f"{phase}: {s['ok']}/{s['attempts']} ok ({pct}), latency of successes "
              f"{s['ok_latency_s']}")
        for k, v in s["failures"].items():
            print(f"    {v:6d} x {k}")
    cpu = r.get("cpu_during_attack_pct")
    if cpu:
        print(f"CPU during the attack: server {cpu['server']} % of a core, this script "
              f"{cpu['script']} % (attackers and legit clients; rtserve-load not counted)")
    print(f"RSS: idle {mb(r['rss_idle_kb'])}, baseline {mb(r['rss_baseline_kb'])} (peak "
          f"{mb(r['rss_baseline_peak_kb'])}), attack peak {mb(r['rss_peak_kb'])}, end "
          f"{mb(r['rss_end_kb'])}")
    if "load_baseline" in r:
        for k in ("load_idle", "load_baseline", "load_during"):
            if k in r:
                print(f"/hello {k}: " + ", ".join(f"{kk} {vv}" for kk, vv in r[k].items()))
        if "hello_p99_ratio" in r:
            print(f"  p99 during / baseline: {r['hello_p99_ratio']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
