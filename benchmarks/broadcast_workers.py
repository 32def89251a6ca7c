"""Broadcast fan-out throughput: one process vs ``--workers N``, measured in one run.

    python benchmarks/broadcast_workers.py [--clients 1000] [--messages 200] [--workers 2]

Starts ``python -m rfc6455 broadcast`` (compression off) once as a single
process and once with ``--workers N`` (embedded relay), connects the clients
(raw sockets that only count bytes, so the load generator stays cheap), has one
client send ``--messages`` 64-byte messages, and reports messages delivered
per second: clients * messages / time until the last client has them all.
Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import subprocess
import sys
import tempfile
import time

PAYLOAD = b"x" * 64
FRAME_SIZE = 2 + len(PAYLOAD)  # server frames: 2-byte header, no mask (RFC 6455 §5.2)


def _masked_frame(payload: bytes) -> bytes:
    key = os.urandom(4)
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + key + masked


class Counter(asyncio.Protocol):
    def __init__(self, expected: int, done: asyncio.Future[None]) -> None:
        self.head = b""
        self.upgraded = asyncio.get_running_loop().create_future()
        self.received = 0
        self.expected = expected
        self.done = done
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            data = self.head[end + 4:]
            self.upgraded.set_result(None)
        self.received += len(data)
        if self.received >= self.expected and not self.done.done():
            self.done.set_result(None)


async def _run(url_host: str, port: int, clients: int, messages: int) -> float:
    loop = asyncio.get_running_loop()
    request = (f"GET /ws HTTP/1.1\r\nHost: {url_host}:{port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
               f"{base64.b64encode(os.urandom(16)).decode()}\r\n\r\n").encode()
    counters: list[Counter] = []
    dones: list[asyncio.Future[None]] = []
    for _ in range(clients):
        done = loop.create_future()
        _, counter = await loop.create_connection(
            lambda d=done: Counter(messages * FRAME_SIZE, d), url_host, port)  # type: ignore[misc]
        assert counter.transport is not None
        counter.transport.write(request)
        await counter.upgraded
        counters.append(counter)
        dones.append(done)
    await asyncio.sleep(1.0)  # every server process has registered its clients
    sender = counters[0].transport
    assert sender is not None
    frames = b"".join(_masked_frame(PAYLOAD) for _ in range(messages))
    start = time.perf_counter()
    sender.write(frames)
    await asyncio.wait_for(asyncio.gather(*dones), 120)
    elapsed = time.perf_counter() - start
    for counter in counters:
        assert counter.transport is not None
        counter.transport.abort()
    return clients * messages / elapsed


def _start(workers: int) -> tuple[subprocess.Popen[bytes], int, str]:
    log = tempfile.mkstemp(prefix="rfc6455-bench-", suffix=".log")[1]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rfc6455", "broadcast", "--port", "0", "--no-compression",
             "--workers", str(workers), "--log-level", "info", "--client-buffer", "64M",
             "--ping-interval", "none"], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with open(log, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
        starts = text.count("(asyncio backend) listening on")
        match = re.search(r"listening on ws://([\d.]+):(\d+)/", text)
        if match and starts >= workers:
            return proc, int(match.group(2)), log
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"1 process": [], f"{args.workers} workers": []}
    for _ in range(args.rounds):
        for label, workers in (("1 process", 1), (f"{args.workers} workers", args.workers)):
            proc, port, _log = _start(workers)
            try:
                rate = asyncio.run(_run("127.0.0.1", port, args.clients, args.messages))
            finally:
                proc.terminate()
                proc.wait(30)
            results[label].append(rate)
    print(f"broadcast of {args.messages} x 64 B messages to {args.clients} clients "
          f"(median of {args.rounds})")
    base = sorted(results["1 process"])[len(results["1 process"]) // 2]
    for label, rates in results.items():
        median = sorted(rates)[len(rates) // 2]
        print(f"  {label:>10}: {median:>12,.0f} messages delivered/s   ({median / base:.2f}x)")


if __name__ == "__main__":
    main()
