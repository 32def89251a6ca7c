"""Broadcast fan-out time: one 64-byte message to N clients, ours vs a websockets server.

Usage: ``python benchmarks/broadcast_fanout.py [--clients 1000] [--rounds 30]``

Each server runs in its own process on loopback. N raw-socket clients per
server (one thread, epoll, no WebSocket library: the measuring side costs the
same for every server) complete the opening handshake; then, per round (the
servers take turns, so load on the machine hits all alike), client 0 sends one
masked 64-byte binary message and the clock runs until all N clients have
received the 66-byte frame the server fans out. Reported: median and spread of
that time over the rounds. Bounded: N <= 5000 clients, rounds <= 1000.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import time

_PORT = re.compile(rb"ws://[^:/\s]+:(\d+)")
PAYLOAD = 64


def _websockets_server(port: int) -> None:
    """The reference: websockets' own ``broadcast()`` helper, compression off."""
    from websockets.asyncio.server import broadcast, serve

    async def main() -> None:
        async def handler(ws):  # type: ignore[no-untyped-def]
            async for message in ws:
                broadcast(server.connections, message)

        async with serve(handler, "127.0.0.1", port, compression=None,
                         max_queue=16) as server:
            print(f"websockets broadcast listening on ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/",
                  file=sys.stderr, flush=True)
            await server.serve_forever()

    asyncio.run(main())


def _start(cmd: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    seen = b""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        match = _PORT.search(line)
        if match:
            # Keep draining stderr so a chatty server never blocks on a full pipe.
            drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
            del drain
            return proc, int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"server did not start: {cmd}\n{seen.decode(errors='replace')}")


def _open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    if head.index(b"\r\n\r\n") + 4 != len(head):
        raise RuntimeError("unexpected bytes after the 101 response")
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _masked_binary(payload: bytes) -> bytes:
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + key + masked


class Fleet:
    """N raw-socket clients of one server, and one timed broadcast at a time."""

    def __init__(self, port: int, clients: int) -> None:
        self.socks = [_open(port) for _ in range(clients)]
        self.selector = selectors.DefaultSelector()
        for index, sock in enumerate(self.socks):
            self.selector.register(sock, selectors.EVENT_READ, index)

    def round(self) -> float:
        """Client 0 sends one message; seconds until every client has received it."""
        frame_size = 2 + PAYLOAD
        clients = len(self.socks)
        received = [0] * clients
        done = 0
        message = _masked_binary(os.urandom(PAYLOAD))
        start = time.perf_counter()
        self.socks[0].sendall(message)
        deadline = start + 60
        while done < clients:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"only {done}/{clients} clients got the message")
            for key, _ in self.selector.select(1.0):
                index = key.data
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                if not data:
                    raise RuntimeError("a client was disconnected")
                before = received[index]
                received[index] += len(data)
                if before < frame_size <= received[index]:
                    done += 1
        return time.perf_counter() - start

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.selector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--servers", default="asyncio,sync,websockets",
                        help="comma-separated subset of asyncio,sync,websockets")
    parser.add_argument("--websockets-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.websockets_server is not None:
        _websockets_server(args.websockets_server)
        return
    clients = max(1, min(args.clients, 5000))
    rounds = max(1, min(args.rounds, 1000))
    servers = {
        "asyncio": [sys.executable, "-m", "rfc6455", "broadcast", "--port", "0",
                            "--no-compression", "--log-level", "info", "--backend",
                            "asyncio"],
        "sync": [sys.executable, "-m", "rfc6455", "broadcast", "--port", "0",
                         "--no-compression", "--log-level", "info", "--backend", "sync"],
        "websockets": [sys.executable, __file__, "--websockets-server", "0"],
    }
    print(f"fan-out of one {PAYLOAD}-byte message to {clients} clients, "
          f"{rounds} interleaved rounds, loopback, load average {os.getloadavg()[0]:.1f}")
    names = {"asyncio": "rfc6455 asyncio", "sync": "rfc6455 sync",
             "websockets": "websockets asyncio (broadcast())"}
    keys = args.servers.split(",")
    procs: list[subprocess.Popen[bytes]] = []
    fleets: dict[str, Fleet] = {}
    times: dict[str, list[float]] = {key: [] for key in keys}
    try:
        for key in keys:
            proc, port = _start(servers[key])
            procs.append(proc)
            fleets[key] = Fleet(port, clients)
        # A client becomes a member when the server's handler for it runs, a moment
        # after its handshake: give the last ones time to join, then warm up.
        time.sleep(1.0)
        for r in range(rounds + 2):
            # Interleaved rounds: a load spike on the machine hits every server alike.
            for key in keys:
                elapsed = fleets[key].round()
                if r >= 2:
                    times[key].append(elapsed)
                time.sleep(0.02)
    finally:
        for fleet in fleets.values():
            fleet.close()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    for key in keys:
        ms = sorted(t * 1000 for t in times[key])
        p90 = ms[max(0, int(len(ms) * 0.9) - 1)]
        print(f"{names[key]:34} median {statistics.median(ms):7.2f} ms   "
              f"min {ms[0]:7.2f} ms   p90 {p90:7.2f} ms")


if __name__ == "__main__":
    main()
