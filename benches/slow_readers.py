#!/usr/bin/env python3
"""Slow readers: how much kernel memory clients that never read can make a server's sockets hold.

Each of --clients connections sends --requests pipelined `POST /echo` requests with a
--body-size body (so every response is as large as its request) and then reads nothing for
--hold-s seconds. The server writes answers until its socket buffers and its own output limit
are full, and stops reading requests once its output is over its limit: the requests sent
after that wait in its receive buffers. At the end of the hold the script reports the memory
of the server's sockets (from `ss -tm`: bytes queued to send plus bytes received and not read,
summed over the server's end of each connection), and the host's TCP memory (`TCP: mem` in
/proc/net/sockstat, in 4 KiB pages), which on loopback counts the clients' ends as well.

    benches/slow_readers.py --url http://127.0.0.1:19300 [--clients 200]

Run it against `rtserve` with and without `--send-buffer` to see what the flag bounds. Standard
library only; traffic goes to the given URL only, and the script stops by itself.
"""

import argparse
import re
import resource
import socket
import subprocess
import time
import urllib.parse

PAGE = 4096


def tcp_mem_pages():
    """The host's TCP memory in pages, from /proc/net/sockstat."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1])
    raise RuntimeError("no TCP line in /proc/net/sockstat")


def server_socket_memory(port):
    """Bytes queued to send and received but unread, over the server's end of each connection
    (skmem w and r of `ss -tm`), and the number of such sockets."""
    out = subprocess.run(
        ["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True, text=True, check=True,
    ).stdout
    total = count = 0
    for skmem in re.findall(r"skmem:\(([^)]*)\)", out):
        fields = dict(re.match(r"([a-z]+)(\d+)", f).groups() for f in skmem.split(","))
        total += int(fields["r"]) + int(fields["w"])
        count += 1
    return total, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="server base URL, http://HOST:PORT")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=64, help="pipelined per client")
    parser.add_argument("--body-size", type=int, default=64 * 1024)
    parser.add_argument("--hold-s", type=float, default=5.0)
    args = parser.parse_args()

    url = urllib.parse.urlsplit(args.url)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients + 64)), hard))
    request = (
        f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {args.body_size}\r\n\r\n".encode()
        + b"x" * args.body_size
    )
    before = tcp_mem_pages()
    clients = []
    for _ in range(args.clients):
        sock = socket.create_connection((url.hostname, url.port), timeout=5)
        sock.setblocking(False)
        clients.append([sock, request * args.requests, 0])
    # Send what each socket takes, never reading, until the hold ends.
    end = time.monotonic() + args.hold_s
    while time.monotonic() < end:
        for client in clients:
            sock, data, sent = client
            if sent < len(data):
                try:
                    client[2] += sock.send(data[sent : sent + 65536])
                except (BlockingIOError, InterruptedError):
                    pass
        time.sleep(0.01)
    during = tcp_mem_pages()
    server, sockets = server_socket_memory(url.port)
    sent = sum(c[2] for c in clients)
    for client in clients:
        client[0].close()
    grown = (during - before) * PAGE
    print(
        f"{args.clients} clients that never read: the server's {sockets} sockets hold "
        f"{server / 2**20:.1f} MiB ({server / max(sockets, 1) / 1024:.0f} KiB each); "
        f"host TCP memory {before * PAGE / 2**20:.1f} -> "
        f"{during * PAGE / 2**20:.1f} MiB, {grown / 2**20:.1f} MiB more, "
        f"{grown / args.clients / 1024:.0f} KiB per connection ({sent / 2**20:.0f} MiB sent)"
    )


if __name__ == "__main__":
    main()
