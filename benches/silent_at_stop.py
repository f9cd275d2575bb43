#!/usr/bin/env python3
"""What becomes of clients that have connected but sent nothing when rtserve stops, with
TCP_DEFER_ACCEPT on (the default) and off (BENCHMARKS.md, "New connections").

With the option on, such a client is still in the kernel's SYN queue, not accepted: the drain
cannot see it. Two cases, each with the option on and off:
  1. a plain stop: 10 silent clients, SIGTERM, then each sends a request 100 ms later;
  2. a `--shared-port` restart: a new server joins the group, 20 silent clients connect, the
     old server gets SIGTERM and exits, then each sends a request; with
     net.ipv4.tcp_migrate_req at 0 and at 1 (set here, put back after: needs root).
Prints, per case, how the clients' requests ended: answered (200), eof (closed first),
reset.

    benches/silent_at_stop.py [target/release]
"""

import os
import signal
import socket
import subprocess
import sys
import time

BIN = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "target/release", "rtserve")
PORT = 19595
MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req"


STARTED = []


def start(*flags):
    server = subprocess.Popen(
        [BIN, "--bind", f"127.0.0.1:{PORT}", "-q", "--threads", "2", *flags],
        stderr=subprocess.DEVNULL,
    )
    STARTED.append(server)
    # The port answers as soon as any server listens on it (for a joining server, the old
    # one): give this one time to bind its listeners too.
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    time.sleep(1.0)
    return server


def outcome(client):
    try:
        client.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        client.settimeout(5)
        data = client.recv(4096)
    except ConnectionResetError:
        return "reset"
    except BrokenPipeError:
        return "reset"
    except socket.timeout:
        return "timeout"
    if not data:
        return "eof"
    return "answered" if data.startswith(b"HTTP/1.1 200") else "other"


def tally(results):
    return ", ".join(f"{results.count(r)} {r}" for r in sorted(set(results)))


def plain_stop(defer):
    server = start("--defer-accept-secs", defer)
    clients = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(10)]
    time.sleep(0.1)
    server.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    results = [outcome(c) for c in clients]
    server.wait()
    return results


def restart(defer, migrate):
    with open(MIGRATE, "w") as f:
        f.write(migrate)
    old = start("--defer-accept-secs", defer)
    new = start("--defer-accept-secs", defer, "--shared-port")
    clients = [socket.create_connection(("127.0.0.1", PORT)) for _ in range(20)]
    time.sleep(0.1)
    old.send_signal(signal.SIGTERM)
    old.wait()
    results = [outcome(c) for c in clients]
    new.send_signal(signal.SIGTERM)
    new.wait()
    return results


def main():
    if os.geteuid() != 0:
        sys.exit(f"{sys.argv[0]}: needs root, to set {MIGRATE} (and put it back)")
    print("| case | TCP_DEFER_ACCEPT | the silent clients' requests |")
    print("|---|---|---|")
    for defer in ["1", "0"]:
        on = "on (1 s)" if defer == "1" else "off"
        print(f"| plain stop, asking 100 ms after SIGTERM | {on} | {tally(plain_stop(defer))} |")
    with open(MIGRATE) as f:
        saved = f.read().strip()
    try:
        for defer in ["1", "0"]:
            on = "on (1 s)" if defer == "1" else "off"
            for migrate in ["0", "1"]:
                results = restart(defer, migrate)
                print(
                    f"| `--shared-port` restart, tcp_migrate_req={migrate}, asking after the "
                    f"old server exited | {on} | {tally(results)} |"
                )
    finally:
        with open(MIGRATE, "w") as f:
            f.write(saved)


if __name__ == "__main__":
    try:
        main()
    finally:
        for server in STARTED:
            if server.poll() is None:
                server.kill()
                server.wait()
