#!/usr/bin/env python3
"""Unread echoes: how much memory clients can pin with large responses they never read.

What it measures
----------------
--clients connections (2000) each send one `POST /echo` with a --body-size (1,000,000 B)
body at full speed and then never read: the answer, as large as the body, stays with the
server (in its output buffer and its socket's send queue) and in the client's receive queue,
and the connection is held open for --hold-s seconds after the last body was sent. At most
--in-flight connections are in flight at once: from the connect until the first byte of the
answer can be read (not read: the body has been read, echoed and has left the budget), so
that the answers, not the body budget, are what is measured. Meanwhile a
legitimate client loops on GET /hello and POST /echo with a 64 KB body (one request per
connection, --client-timeout-s each) and counts successes and the slowest answer, alone for
--baseline-s and then during the attack.

The script reports the server's RSS (VmRSS, sampled every 0.5 s): before, peak, end of the
hold; the host's TCP memory (`TCP: mem` pages of /proc/net/sockstat times the page size,
which on loopback counts both ends): before, peak, end of the hold and 3 s after the clients
closed; the server's sockets on the port by state, with their send and receive queues (from
/proc/net/tcp); what the attackers got (the first bytes of their receive queue, read with
MSG_PEEK, so nothing is taken out); and the legitimate client's results.

Guard: when host TCP memory passes net.ipv4.tcp_mem's pressure threshold (the kernel starts
to shrink every socket's buffers there), no further attackers are started, and the report
says so (--no-guard to go on).

The script starts the server itself (--server-cmd, a shell command line), finds the PID that
owns the listening socket, and kills what it started, by PID, at the end.

How to run
----------
    taskset -c 1 benches/unread_echo.py --url http://127.0.0.1:19310 \\
        --server-cmd "taskset -c 0 target/release/rtserve --bind 127.0.0.1:19310 --threads 1"

and again with `--send-buffer 64K --recv-buffer 64K` in the server command. rtserve raises its
own soft RLIMIT_NOFILE to the hard limit; otherwise prefix the server command with
`prlimit --nofile=65536`. Add --json for machine-readable output. Python 3 standard library
only; Linux only (/proc). Traffic goes to loopback only.
"""

import argparse
import errno
import json
import selectors
import socket
import sys
import threading
import time
import urllib.parse

import attacklib as lib

log = lib.make_log("unread_echo")
CHUNK = 256 * 1024


class Legit(threading.Thread):
    """GET /hello, then POST /echo of 64 KB, one connection each, in a loop."""

    def __init__(self, host, port, timeout, pause_s=0.05):
        super().__init__(daemon=True)
        self.host, self.port, self.timeout, self.pause_s = host, port, timeout, pause_s
        self.phase = None
        self.stats = {}
        self.stop_event = threading.Event()
        self.body = bytes(range(256)) * 250  # 64,000 B

    def request(self, raw, expect_body):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        deadline = time.monotonic() + self.timeout
        try:
            s.settimeout(self.timeout)
            s.connect((self.host, self.port))
            s.sendall(raw)
            status, headers, body, _ = lib.read_response(s, deadline)
            if not status.startswith("HTTP/1.1 200"):
                return status
            if expect_body is not None and body != expect_body:
                return "wrong body"
            return "ok"
        except socket.timeout:
            return "timeout"
        except (OSError, ConnectionError) as e:
            return f"{type(e).__name__}"
        finally:
            s.close()

    def run(self):
        hello = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        echo = (f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(self.body)}\r\n"
                f"Connection: close\r\n\r\n").encode() + self.body
        while not self.stop_event.is_set():
            for name, raw, expect in (("hello", hello, None), ("echo64k", echo, self.body)):
                phase = self.phase
                t = time.monotonic()
                outcome = self.request(raw, expect)
                dt = time.monotonic() - t
                if phase is None:
                    continue
                st = self.stats.setdefault(f"{phase}/{name}", {
                    "attempts": 0, "ok": 0, "failures": {}, "max_s": 0.0, "lat": []})
                st["attempts"] += 1
                st["max_s"] = max(st["max_s"], dt)
                if outcome == "ok":
                    st["ok"] += 1
                    st["lat"].append(dt)
                else:
                    st["failures"][outcome] = st["failures"].get(outcome, 0) + 1
            self.stop_event.wait(self.pause_s)

    def summary(self):
        out = {}
        for k, st in self.stats.items():
            out[k] = {"attempts": st["attempts"], "ok": st["ok"], "failures": st["failures"],
                      "max_s": round(st["max_s"], 3),
                      "p50_s": lib.quantiles(st["lat"])["p50"]}
            if out[k]["p50_s"] is not None:
                out[k]["p50_s"] = round(out[k]["p50_s"], 4)
        return out


def peek_status(sock):
    try:
        data = sock.recv(64, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return "nothing yet"
    except OSError as e:
        return f"error {errno.errorcode.get(e.errno, e.errno)}"
    if not data:
        return "EOF"
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server-cmd", required=True, help="shell command line starting the server")
    p.add_argument("--url", default="http://127.0.0.1:19310", help="server base URL")
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--body-size", type=int, default=1000000)
    p.add_argument("--in-flight", type=int, default=8, help="requests not yet answered at once")
    p.add_argument("--send-phase-max-s", type=float, default=30.0,
                   help="stop starting attackers after this long")
    p.add_argument("--hold-s", type=float, default=40.0, help="after the last body was sent")
    p.add_argument("--baseline-s", type=float, default=3.0)
    p.add_argument("--client-timeout-s", type=float, default=5.0)
    p.add_argument("--no-guard", action="store_true",
                   help="go on past net.ipv4.tcp_mem's pressure threshold")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    args = p.parse_args()

    u = urllib.parse.urlsplit(args.url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    if not host.startswith("127."):
        p.error("loopback only")
    lib.raise_nofile(args.clients + 256, log)
    tcp_min, tcp_pressure, tcp_max = lib.tcp_mem_limits()

    server = lib.Server(args.server_cmd, host, port, log)
    result = {"config": vars(args), "server_pid": server.pid,
              "server_comm": lib.comm(server.pid), "server_nofile": lib.nofile_limit(server.pid),
              "tcp_mem_limits_mb": [round(lib.pages_mb(x)) for x in
                                    (tcp_min, tcp_pressure, tcp_max)]}
    sampler = lib.Sampler(server.pid)
    sampler.start()
    legit = Legit(host, port, args.client_timeout_s)
    socks = []
    try:
        time.sleep(0.5)
        result["rss_before_kb"] = lib.rss_kb(server.pid)
        result["tcp_mem_before_pages"] = lib.sockstat()["mem"]
        legit.phase = "baseline"
        legit.start()
        time.sleep(args.baseline_s)
        legit.phase = "attack"

        log(f"attack: {args.clients} clients, {args.body_size} B bodies, never read")
        body = b"x" * args.body_size
        head = (f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {args.body_size}\r\n\r\n"
                ).encode()
        request = memoryview(head + body)
        sel = selectors.DefaultSelector()
        sent = {}  # sock -> bytes sent, until the answer starts (in flight)
        waiting = {}  # sock -> when its request was sent whole
        started = done = 0
        failures = {}
        guard_hit = None
        t0 = time.monotonic()
        while True:
            now = time.monotonic()
            if now - t0 > args.send_phase_max_s:
                log("send phase time limit reached")
                break
            mem = lib.sockstat()["mem"]
            if guard_hit is None and not args.no_guard and mem > tcp_pressure:
                guard_hit = {"clients_started": started, "tcp_mem_mb": round(lib.pages_mb(mem))}
                log(f"guard: host TCP memory {lib.pages_mb(mem):.0f} MB past the pressure "
                    f"threshold; no more attackers")
            while (guard_hit is None and started < args.clients
                   and len(sent) < args.in_flight):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((host, port))
                started += 1
                if err not in (0, errno.EINPROGRESS):
                    k = errno.errorcode.get(err, str(err))
                    failures[k] = failures.get(k, 0) + 1
                    s.close()
                    continue
                sent[s] = 0
                socks.append(s)
                sel.register(s, selectors.EVENT_WRITE)
            if not sent:
                break
            for key, _ in sel.select(0.1):
                s = key.fileobj
                if s in waiting:  # readable: the answer has started (or EOF); not read
                    sel.unregister(s)
                    del sent[s], waiting[s]
                    done += 1
                    continue
                try:
                    while sent[s] < len(request):
                        n = s.send(request[sent[s]:sent[s] + CHUNK])
                        sent[s] += n
                except BlockingIOError:
                    continue
                except OSError as e:
                    k = "send " + errno.errorcode.get(e.errno, str(e.errno))
                    failures[k] = failures.get(k, 0) + 1
                    sel.unregister(s)
                    del sent[s]
                    done += 1
                    continue
                waiting[s] = time.monotonic()
                sel.modify(s, selectors.EVENT_READ)
            for s in [s for s, t in waiting.items() if time.monotonic() - t > 10]:
                sel.unregister(s)  # no answer within 10 s: counted, no longer in flight
                del sent[s], waiting[s]
                done += 1
                failures["no answer within 10 s"] = failures.get("no answer within 10 s", 0) + 1
        t_sent = time.monotonic()
        sel.close()
        result["send_phase"] = {"started": started, "sent_whole": done - sum(
            v for k, v in failures.items() if k.startswith("send")), "failures": failures,
            "still_sending": len(sent), "seconds": round(t_sent - t0, 1),
            "guard": guard_hit}
        log(f"sent {done} requests in {t_sent - t0:.1f} s; holding {args.hold_s} s")
        mid = t_sent + args.hold_s / 2
        while time.monotonic() < t_sent + args.hold_s:
            time.sleep(0.5)
            if mid and time.monotonic() >= mid:
                result["server_sockets_mid_hold"] = lib.port_sockets(port)
                mid = None
        t_end = time.monotonic()
        legit.phase = None
        result["rss_end_kb"] = lib.rss_kb(server.pid)
        result["rss_peak_kb"] = sampler.peak(t0, t_end)
        result["tcp_mem_end_pages"] = lib.sockstat()["mem"]
        result["tcp_mem_peak_pages"] = sampler.peak(t0, t_end, col=2)
        result["server_sockets_end"] = lib.port_sockets(port)
        got = {}
        for s in socks:
            k = peek_status(s)
            got[k] = got.get(k, 0) + 1
        result["attackers_got"] = got
        result["rss_series"] = [[round(t - t0, 1), r, m] for t, r, m, _ in sampler.samples]
    finally:
        legit.stop_event.set()
        for s in socks:
            s.close()
        t_closed = time.monotonic()
        legit.join(args.client_timeout_s * 2 + 2)
        time.sleep(max(0.0, t_closed + 3 - time.monotonic()))
        result["tcp_mem_after_close_pages"] = lib.sockstat()["mem"]
        result["rss_after_close_kb"] = lib.rss_kb(server.pid)
        sampler.stop()
        server.stop()
    result["legit"] = legit.summary()
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        report(result)


def mb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def pmb(pages):
    return "-" if pages is None else f"{lib.pages_mb(pages):.0f} MiB"


def report(r):
    c, sp = r["config"], r["send_phase"]
    print(f"server: {c['server_cmd']}  (pid {r['server_pid']}, {r['server_comm']}, "
          f"nofile {r['server_nofile']})")
    print(f"attack: {c['clients']} clients x POST /echo {c['body_size']} B, never read; "
          f"started {sp['started']}, sent whole {sp['sent_whole']} in {sp['seconds']} s, "
          f"failures {sp['failures'] or '-'}, still sending {sp['still_sending']}; "
          f"held {c['hold_s']} s")
    if sp["guard"]:
        print(f"  GUARD: stopped after {sp['guard']['clients_started']} clients, host TCP "
              f"memory {sp['guard']['tcp_mem_mb']} MB > pressure threshold")
    print(f"  attackers got (peeked): {r['attackers_got']}")
    print(f"server RSS: before {mb(r['rss_before_kb'])}, peak {mb(r['rss_peak_kb'])}, end "
          f"{mb(r['rss_end_kb'])}, 3 s after close {mb(r['rss_after_close_kb'])}")
    print(f"host TCP mem: before {pmb(r['tcp_mem_before_pages'])}, peak "
          f"{pmb(r['tcp_mem_peak_pages'])}, end {pmb(r['tcp_mem_end_pages'])}, 3 s after "
          f"close {pmb(r['tcp_mem_after_close_pages'])} (tcp_mem min/pressure/max "
          f"{r['tcp_mem_limits_mb']} MiB)")
    for k in ("server_sockets_mid_hold", "server_sockets_end"):
        if k in r:
            print(f"  {k}: " + ", ".join(
                f"{st} {n} (sendq {tx / 2**20:.0f} MiB, recvq {rx / 2**20:.0f} MiB)"
                for st, (n, tx, rx) in r[k].items()))
    for k, v in sorted(r["legit"].items()):
        print(f"legit {k}: {v['ok']}/{v['attempts']} ok, p50 {v['p50_s']} s, max "
              f"{v['max_s']} s, failures {v['failures'] or '-'}")


if __name__ == "__main__":
    sys.exit(main())
