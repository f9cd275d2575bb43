"""Helpers shared by the attack scripts (starve_uploads.py, unread_echo.py, closed_memory.py).

Not a script: the attack scripts import it from their own directory. It starts the server
(a shell command line), finds the PID that owns the listening socket (so wrappers such as
`taskset`, `env`, `prlimit` or `sh` are fine), samples its RSS from /proc/PID/status and the
host's TCP memory from /proc/net/sockstat, counts sockets on the server's port by state from
/proc/net/tcp, runs rtserve-load, and kills what it started, by PID. Python 3 standard library
only; Linux only (/proc).
"""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
WRAPPERS = {"sh", "bash", "dash", "taskset", "env", "timeout", "nice", "numactl", "chrt",
            "setsid", "prlimit"}
TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def make_log(name):
    def log(msg):
        print(f"[{name} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    return log


def raise_nofile(want, log=None):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < want and log:
        log(f"warning: RLIMIT_NOFILE hard limit {hard} < {want}")
    return new


# ----------------------------------------------------------------------------- /proc


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def sockstat():
    """The TCP line of /proc/net/sockstat as a dict (inuse, orphan, tw, alloc, mem [pages])."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()[1:]
                return {fields[i]: int(fields[i + 1]) for i in range(0, len(fields) - 1, 2)}
    raise RuntimeError("no TCP line in /proc/net/sockstat")


def tcp_mem_limits():
    """net.ipv4.tcp_mem (min, pressure, max), in pages."""
    with open("/proc/sys/net/ipv4/tcp_mem") as f:
        return tuple(int(x) for x in f.read().split())


def pages_mb(pages):
    return pages * PAGE / 2**20


def port_sockets(port, side="local"):
    """Sockets whose local (side="local") or remote port is `port`, LISTEN excluded:
    {state: [count, tx_queue bytes, rx_queue bytes]}."""
    out = {}
    col = 1 if side == "local" else 2
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    state = parts[3]
                    if state == "0A" or int(parts[col].rsplit(":", 1)[1], 16) != port:
                        continue
                    tx, rx = (int(x, 16) for x in parts[4].split(":"))
                    e = out.setdefault(TCP_STATES.get(state, state), [0, 0, 0])
                    e[0] += 1
                    e[1] += tx
                    e[2] += rx
        except OSError:
            pass
    return out


def listening_inodes(port):
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except OSError:
            pass
    return inodes


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def process_tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children_of(p))
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def find_server_pid(root, port):
    """The process of the tree under `root` owning the listening socket, else the leaf."""
    tree = process_tree(root)
    inodes = listening_inodes(port)
    for pid in tree:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return pid
        except OSError:
            continue
    for pid in reversed(tree):
        if comm(pid) not in WRAPPERS:
            return pid
    return tree[-1]


def nofile_limit(pid):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError):
        pass
    return None


# ----------------------------------------------------------------------------- server


def wait_port(host, port, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class Server:
    """Starts `cmd` (shell), waits for the port, finds the server PID; stop() kills the tree
    it started, by PID."""

    def __init__(self, cmd, host, port, log, startup_timeout=15.0):
        if wait_port(host, port, 0.2):
            raise SystemExit(f"something already listens on {host}:{port}")
        log(f"starting server: {cmd}")
        self.proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.started = [self.proc.pid]
        if not wait_port(host, port, startup_timeout):
            self.stop()
            raise SystemExit("server did not start listening")
        self.pid = find_server_pid(self.proc.pid, port)
        self.started = process_tree(self.proc.pid)
        log(f"server pid {self.pid} ({comm(self.pid)}), nofile {nofile_limit(self.pid)}; "
            f"tree {self.started}")

    def stop(self):
        """SIGTERM to the processes started (server first), SIGKILL to any left after 10 s."""
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            for pid in reversed(self.started):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + wait_s
            while time.monotonic() < end:
                self.proc.poll()
                if not any(_alive(p) for p in self.started):
                    return
                time.sleep(0.1)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


class Sampler(threading.Thread):
    """Every `period` s: (monotonic time, server RSS kB, host TCP mem pages, orphans)."""

    def __init__(self, pid, period=0.5):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples = []
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            s = sockstat()
            self.samples.append((time.monotonic(), rss_kb(self.pid), s.get("mem", 0),
                                 s.get("orphan", 0)))
            self.stop_event.wait(self.period)

    def peak(self, t0, t1, col=1):
        vals = [s[col] for s in self.samples if t0 <= s[0] <= t1 and s[col] is not None]
        return max(vals) if vals else None

    def stop(self):
        self.stop_event.set()


# ----------------------------------------------------------------------------- rtserve-load


def run_load(load_cmd, url, rate, conns, seconds):
    cmd = [load_cmd, "--json", "-q", "-r", str(rate), "-c", str(conns), "-d", f"{seconds}s",
           url.rstrip("/") + "/hello"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def load_result(proc, timeout):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": "timed out"}
    try:
        j = json.loads(out)
    except ValueError:
        return {"error": f"rc={proc.returncode} no JSON: {err.strip()[-300:]}"}
    lat = j["latency_us"]["corrected"]
    return {"p50_us": lat["p50"], "p99_us": lat["p99"], "p99_9_us": lat["p99_9"],
            "max_us": lat["max"],
            "completed": j["requests"]["completed"], "scheduled": j["requests"]["scheduled"],
            "errors": j["errors"]["total"], "status": j["status"]["by_code"]}


# ----------------------------------------------------------------------------- HTTP client


def read_response(sock, deadline):
    """Reads one HTTP/1.1 response with a Content-Length body from a blocking socket.
    Returns (status line, headers dict (lower-case names), body, leftover)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF before the response head" if not buf else
                                  "EOF inside the response head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    parts, have = [rest], len(rest)
    while have < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(min(1 << 20, n - have))
        if not chunk:
            raise ConnectionError(f"EOF inside the body ({have} of {n})")
        parts.append(chunk)
        have += len(chunk)
    body = b"".join(parts)
    return lines[0], headers, body[:n], body[n:]


def quantiles(values, qs=(0.5, 0.99)):
    if not values:
        return {f"p{int(q * 100)}": None for q in qs}
    v = sorted(values)
    return {f"p{int(q * 100)}": v[min(len(v) - 1, int(q * len(v)))] for q in qs}
