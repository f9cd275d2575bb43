#!/usr/bin/env python3
"""A Redis downstream of known capacity: a TCP proxy in front of redis-server that serves at
most K commands at once, each holding its slot for D ms (or longer, if Redis takes longer),
so that its capacity is K / D commands per second.

    benches/bottleneck_proxy.py --listen 19501 --redis 19500 --slots 4 --delay-ms 2

Design: K upstream connections to Redis, one per slot. Every command from every client
connection joins one FIFO queue; a slot takes the oldest, forwards it on its own upstream
connection, reads the one reply, waits out the rest of D, and is free again (D is counted on
the slot's own timeline, so that a late wake-up of the event loop's 1 ms timer does not lower
the capacity: measured 2000/s for 4 x 2 ms with a client pipelining GETs). Each client
connection gets its replies in the order of its commands (RESP has no request ids), whatever
slot served them. A command whose client has given up is still served: the proxy cannot
know (as a real overloaded downstream does not).

RESP2 parsing only as far as needed to frame one command and one reply: arrays (of anything),
bulk strings (nil included), simple strings, errors, integers; and inline commands. RESP3
push frames are not expected (the client speaks RESP2 by default).

Prints one line on stderr per --stats-every seconds: commands served, queue length.
Stops on SIGTERM / SIGINT.
"""
import argparse
import asyncio
import collections
import signal
import sys
import time


class Incomplete(Exception):
    pass


def frame_end(buf, pos):
    """The end of the RESP2 frame starting at `pos` in `buf`; raises Incomplete."""
    if pos >= len(buf):
        raise Incomplete
    kind = buf[pos:pos + 1]
    eol = buf.find(b"\r\n", pos)
    if eol < 0:
        raise Incomplete
    if kind in (b"+", b"-", b":"):
        return eol + 2
    if kind == b"$":
        n = int(buf[pos + 1:eol])
        if n < 0:
            return eol + 2
        end = eol + 2 + n + 2
        if end > len(buf):
            raise Incomplete
        return end
    if kind == b"*":
        n = int(buf[pos + 1:eol])
        p = eol + 2
        for _ in range(max(n, 0)):
            p = frame_end(buf, p)
        return p
    if kind in (b"_", b"#", b",", b"(", b"="):  # RESP3 scalars, in case
        if kind == b"=":
            raise ValueError("verbatim strings not supported")
        return eol + 2
    if kind in (b"%", b"~", b">"):
        n = int(buf[pos + 1:eol])
        p = eol + 2
        for _ in range(n * (2 if kind == b"%" else 1)):
            p = frame_end(buf, p)
        return p
    # An inline command: one line.
    return eol + 2


class Proxy:
    def __init__(self, args):
        self.args = args
        self.queue = collections.deque()  # (command bytes, future, arrival time)
        self.ready = asyncio.Event()
        self.delay = args.delay_ms / 1000.0
        self.served = 0

    async def slot(self, n):
        reader, writer = await asyncio.open_connection(self.args.redis_host, self.args.redis)
        buf = b""
        loop = asyncio.get_running_loop()
        # When the slot is free, on its own timeline: a command starts at this time or at its
        # arrival, whichever is later, and frees the slot D after its start. A sleep that wakes late
        # (the event loop's timer has 1 ms granularity) is paid back by the next command's
        # start, so that a busy slot serves one command per D on average.
        free_at = 0.0
        while True:
            while not self.queue:
                self.ready.clear()
                await self.ready.wait()
            command, fut, arrived = self.queue.popleft()
            start = max(arrived, free_at)
            writer.write(command)
            while True:
                try:
                    end = frame_end(buf, 0)
                    break
                except Incomplete:
                    data = await reader.read(65536)
                    if not data:
                        raise SystemExit(f"slot {n}: redis closed")
                    buf += data
            reply, buf = buf[:end], buf[end:]
            free_at = start + self.delay
            left = free_at - loop.time()
            if left > 0:
                await asyncio.sleep(left)
            self.served += 1
            if not fut.done():
                fut.set_result(reply)

    async def client(self, reader, writer):
        order = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def replies():
            while True:
                fut = await order.get()
                if fut is None:
                    break
                writer.write(await fut)
                if order.empty():
                    await writer.drain()

        replier = asyncio.create_task(replies())
        buf = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buf += data
                now = loop.time()
                pos = 0
                while True:
                    try:
                        end = frame_end(buf, pos)
                    except Incomplete:
                        break
                    fut = loop.create_future()
                    self.queue.append((buf[pos:end], fut, now))
                    order.put_nowait(fut)
                    pos = end
                buf = buf[pos:]
                self.ready.set()
        except (ConnectionError, OSError):
            pass
        finally:
            order.put_nowait(None)
            try:
                await replier
            except (ConnectionError, OSError):
                pass
            writer.close()

    async def stats(self):
        last = 0
        while True:
            await asyncio.sleep(self.args.stats_every)
            print(f"proxy: {(self.served - last) / self.args.stats_every:.0f} commands/s, "
                  f"queue {len(self.queue)}", file=sys.stderr, flush=True)
            last = self.served

    async def main(self):
        slots = [asyncio.create_task(self.slot(n)) for n in range(self.args.slots)]
        server = await asyncio.start_server(self.client, "127.0.0.1", self.args.listen)
        print(f"proxy: 127.0.0.1:{self.args.listen} -> {self.args.redis_host}:{self.args.redis}, "
              f"{self.args.slots} slots x {self.args.delay_ms} ms = "
              f"{self.args.slots / self.delay if self.delay else float('inf'):.0f} commands/s", file=sys.stderr, flush=True)
        tasks = slots
        if self.args.stats_every > 0:
            tasks = tasks + [asyncio.create_task(self.stats())]
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait(tasks + [waiter], return_when=asyncio.FIRST_COMPLETED)
        server.close()
        for t in tasks + [waiter]:
            t.cancel()
        for t in done:
            if t is not waiter and t.exception():
                raise t.exception()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--redis", type=int, required=True, help="redis-server port")
    ap.add_argument("--redis-host", default="127.0.0.1")
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--delay-ms", type=float, default=2.0)
    ap.add_argument("--stats-every", type=float, default=0)
    asyncio.run(Proxy(ap.parse_args()).main())


if __name__ == "__main__":
    main()
