"""Memory held by idle WebSocket connections on an asyncio server (GitHub issue #7).

Usage::

    python benchmarks/idle_memory.py [--count 2000] [--top 0]

For each server kind (rfc6455 without and with permessage-deflate, websockets
17 likewise) a server runs in a subprocess whose handler waits in ``async for``
for messages that never come: the usual shape of an idle connection. The
parent opens ``--count`` connections with raw sockets (the opening handshake
written by hand, RFC 6455 §4.1, so the client side costs next to nothing) and
measures, in the server:

* RSS: growth of ``VmRSS`` (``/proc/PID/status``) over the connections, per
  connection. Includes the kernel-independent part of the socket (the
  transport's objects), the allocator's overhead and fragmentation.
* tracemalloc: growth of traced Python memory per connection, in a second run
  of the same server with tracemalloc on (so its own overhead does not inflate
  the RSS figure). ``--top N`` prints the N biggest allocation sites per
  connection, grouped by traceback, for finding what a connection holds.

Both figures are after a warm-up batch of connections (so that one-time
allocations -- imports, caches, the first handshake -- are not counted) and
after ``gc.collect()``.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import time

WARMUP = 100

SERVER = r"""
import asyncio, gc, os, sys, tracemalloc
kind, trace, depth = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
if trace:
    tracemalloc.start(depth)

async def handler(ws):
    try:
        async for _ in ws:
            pass
    except Exception:
        pass  # the benchmark drops its sockets without a closing handshake

async def main():
    if kind.startswith("rfc6455"):
        from rfc6455.asyncio import serve
        compression = "deflate" if kind.endswith("deflate") else None
        server = await serve(handler, "127.0.0.1", 0, compression=compression)
        port = server.port
    else:
        from websockets.asyncio.server import serve
        compression = "deflate" if kind.endswith("deflate") else None
        server = await serve(handler, "127.0.0.1", 0, compression=compression)
        port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    snapshot = None
    while True:
        line = (await reader.readline()).decode().split()
        if not line:
            os._exit(0)  # no orderly shutdown of thousands of connections to wait for
        gc.collect()
        if line[0] == "mark":
            if trace:
                snapshot = tracemalloc.take_snapshot()
            print(tracemalloc.get_traced_memory()[0] if trace else 0, flush=True)
        elif line[0] == "diff":
            count, top = int(line[1]), int(line[2])
            if trace and top:
                stats = tracemalloc.take_snapshot().compare_to(snapshot, "traceback")
                for stat in stats[:top]:
                    frames = " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}"
                                         for f in reversed(stat.traceback[-5:]))
                    print(f"  {stat.size_diff / count:8.0f} B/conn  {frames}", file=sys.stderr)
            print(tracemalloc.get_traced_memory()[0] if trace else 0, flush=True)

asyncio.run(main())
"""


def _request(port: int, deflate: bool) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _open(port: int, count: int, deflate: bool) -> list[socket.socket]:
    """``count`` raw sockets through the opening handshake (101 checked)."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(_request(port, deflate))
        socks.append(sock)
    for sock in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("server closed a connection during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"handshake refused: {head[:60]!r}")
    return socks


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class _Server:
    def __init__(self, kind: str, trace: bool, depth: int = 1) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, kind, "1" if trace else "0", str(depth)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(kind: str, count: int, top: int = 0) -> tuple[float, float]:
    """(RSS KiB per connection, tracemalloc KiB per connection) for one server kind."""
    deflate = kind.endswith("deflate")
    results = []
    for trace in (False, True):
        server = _Server(kind, trace, depth=8 if top else 1)
        try:
            warm = _open(server.port, WARMUP, deflate)
            time.sleep(0.2)
            traced_before = int(server.ask("mark"))
            rss_before = _rss_kib(server.proc.pid)
            socks = _open(server.port, count, deflate)
            time.sleep(0.5)  # let the handlers start and the first hold timers pass
            rss_after = _rss_kib(server.proc.pid)
            if trace and top:
                print(f"{kind}: biggest allocation sites per connection", file=sys.stderr)
            traced_after = int(server.ask(f"diff {count} {top if trace else 0}"))
            if trace:
                results.append((traced_after - traced_before) / 1024 / count)
            else:
                results.append((rss_after - rss_before) / count)
            for sock in socks + warm:
                sock.close()
        finally:
            server.stop()
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--top", type=int, default=0,
                        help="print the N biggest allocation sites per connection")
    parser.add_argument("--kinds", default="rfc6455,rfc6455-deflate,websockets,websockets-deflate")
    args = parser.parse_args()
    rows = []
    for kind in args.kinds.split(","):
        rss, traced = measure(kind, args.count, args.top)
        rows.append((kind, rss, traced))
    print(f"{'server':<20} {'RSS KiB/conn':>13} {'tracemalloc KiB/conn':>21}   ({args.count} idle)")
    for kind, rss, traced in rows:
        print(f"{kind:<20} {rss:>13.2f} {traced:>21.2f}")


if __name__ == "__main__":
    main()
