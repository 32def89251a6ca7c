"""Broadcast fan-out time: one 64-byte message to N clients, ours vs a websockets server.

Usage: ``python benchmarks/broadcast_fanout.py [--clients 1000] [--rounds 30]``

Each server runs in its own process on loopback. N raw-socket clients (one
thread, epoll, no WebSocket library: the measuring side costs the same for every
server) complete the opening handshake; then, per round, client 0 sends one
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


def measure(port: int, clients: int, rounds: int) -> list[float]:
    socks = [_open(port) for _ in range(clients)]
    selector = selectors.DefaultSelector()
    for index, sock in enumerate(socks):
        selector.register(sock, selectors.EVENT_READ, index)
    frame_size = 2 + PAYLOAD
    times: list[float] = []
    try:
        for _ in range(rounds + 2):  # two warm-up rounds
            received = [0] * clients
            done = 0
            message = _masked_binary(os.urandom(PAYLOAD))
            start = time.perf_counter()
            socks[0].sendall(message)
            deadline = start + 30
            while done < clients:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"only {done}/{clients} clients got the message")
                for key, _ in selector.select(1.0):
                    index = key.data
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        raise RuntimeError("a client was disconnected")
                    before = received[index]
                    received[index] += len(data)
                    if before < frame_size <= received[index]:
                        done += 1
            times.append(time.perf_counter() - start)
            time.sleep(0.02)
    finally:
        for sock in socks:
            sock.close()
        selector.close()
    return times[2:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--websockets-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.websockets_server is not None:
        _websockets_server(args.websockets_server)
        return
    clients = max(1, min(args.clients, 5000))
    rounds = max(1, min(args.rounds, 1000))
    servers = {
        "rfc6455 asyncio": [sys.executable, "-m", "rfc6455", "broadcast", "--port", "0",
                            "--no-compression", "--log-level", "info", "--backend",
                            "asyncio"],
        "rfc6455 sync": [sys.executable, "-m", "rfc6455", "broadcast", "--port", "0",
                         "--no-compression", "--log-level", "info", "--backend", "sync"],
        "websockets 17 asyncio": [sys.executable, __file__, "--websockets-server", "0"],
    }
    print(f"fan-out of one {PAYLOAD}-byte message to {clients} clients, "
          f"{rounds} rounds, loopback")
    for name, cmd in servers.items():
        proc, port = _start(cmd)
        try:
            times = measure(port, clients, rounds)
        finally:
            proc.terminate()
            proc.wait(timeout=15)
        ms = sorted(t * 1000 for t in times)
        print(f"{name:24} median {statistics.median(ms):7.2f} ms   min {ms[0]:7.2f} ms   "
              f"p90 {ms[int(len(ms) * 0.9) - 1 if len(ms) > 1 else 0]:7.2f} ms")


if __name__ == "__main__":
    main()
