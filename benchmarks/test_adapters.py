"""Adapter benchmarks over loopback: rfc6455's asyncio echo (``serve`` and
``serve_listener``) and broadcast servers.

Smoke versions of ``benchmarks/servers.py`` (which compares with the peers):
the server runs in a child process, the same raw-socket client drives it. Run
``pytest benchmarks/test_adapters.py --benchmark-enable`` to time them (wall
clock of the whole workload, client included); without the flag each runs once
and checks that every reply arrived, byte for byte. Compression is off.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from servers import (
    Client,
    Server,
    Spec,
    echo_run,
    masked_frame,
    measure_broadcast,
    open_client,
    reply_size,
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module", params=["accelerated", "pure", "listener"])
def echo_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    # The default event loop: uvloop is an optional extra (bench), absent in CI.
    # "listener": serve_listener's callbacks instead of serve's coroutine.
    kind = "rfc6455-listener" if request.param == "listener" else "rfc6455"
    server = Server(Spec("rfc6455", kind, uvloop=False, pure=request.param == "pure"))
    yield server
    server.stop()


@pytest.fixture
def client(echo_server: Server, loop: asyncio.AbstractEventLoop) -> Iterator[Client]:
    client = loop.run_until_complete(open_client(echo_server.port))
    yield client
    assert client.transport is not None
    client.transport.close()
    loop.run_until_complete(asyncio.sleep(0))


def test_echo_reply_is_the_unmasked_frame(client: Client,
                                          loop: asyncio.AbstractEventLoop) -> None:
    """§5.1/§5.3: the server unmasks the client's frame and replies unmasked, same opcode."""
    payload = os.urandom(32)
    kept = client.kept = bytearray()
    assert client.transport is not None
    done: asyncio.Future[None] = loop.create_future()

    def check() -> None:
        if len(kept) >= 34 and not done.done():
            done.set_result(None)

    client.on_bytes = check
    client.transport.write(masked_frame(payload))
    loop.run_until_complete(asyncio.wait_for(done, 10))
    assert bytes(kept) == bytes([0x82, 32]) + payload


@pytest.mark.parametrize(("size", "count", "window"), [
    (32, 200, 1),          # ping-pong: one round trip at a time
    (32, 5000, 256),       # pipelined small messages
    (4096, 1000, 64),      # pipelined medium messages
    (256 * 1024, 20, 8),   # pipelined large messages (§5.2 64-bit length)
], ids=["pingpong-32B", "pipelined-32B", "pipelined-4KiB", "pipelined-256KiB"])
def test_echo(benchmark: Any, client: Client, loop: asyncio.AbstractEventLoop,
              size: int, count: int, window: int) -> None:
    """§5.2 framing through the asyncio adapter: every message echoed as one frame."""
    benchmark.extra_info["messages"] = count
    benchmark.extra_info["payload_bytes"] = size * count
    before = client.received
    runs = [0]

    def run() -> float:
        runs[0] += 1
        return loop.run_until_complete(echo_run(client, size, count, window, False))

    benchmark(run)
    # echo_run raises unless exactly the expected reply bytes arrived; check the sum too.
    assert client.received - before == runs[0] * count * reply_size(size, False)


def test_idle_connections_stay_open(echo_server: Server,
                                    loop: asyncio.AbstractEventLoop) -> None:
    """§4.1: 100 opened connections stay open while idle; the server's RSS is readable."""
    before = echo_server.rss_kib()

    async def main() -> list[Client]:
        clients = [await open_client(echo_server.port) for _ in range(100)]
        await asyncio.sleep(0.3)
        return clients

    clients = loop.run_until_complete(main())
    assert not any(c.lost for c in clients)
    assert echo_server.rss_kib() > 0 and before > 0
    for c in clients:
        assert c.transport is not None
        c.transport.close()
    loop.run_until_complete(asyncio.sleep(0.1))


def test_broadcast(benchmark: Any) -> None:
    """One 64-byte message reaches all 100 clients of ``python -m rfc6455 broadcast``."""
    from servers import Sizes

    server = Server(Spec("rfc6455", "rfc6455-cli", uvloop=False))
    sizes = Sizes(pingpong=0, small=0, medium=0, large=0, idle=0, clients=100, rounds=3)
    try:
        result = benchmark.pedantic(lambda: asyncio.run(measure_broadcast(server, sizes)),
                                    rounds=1, iterations=1)
    finally:
        server.stop()
    benchmark.extra_info.update(result)  # the fan-out time itself, median of the rounds
    assert result["broadcast ms"] > 0


def test_interleaved_pingpong_table() -> None:
    """``servers.py --pingpong-rounds``: every server answers each round; one row each."""
    from servers import interleaved_pingpong

    specs = [Spec("serve", "rfc6455", uvloop=False),
             Spec("listener", "rfc6455-listener", uvloop=False)]
    lines = asyncio.run(interleaved_pingpong(specs, rounds=2, count=50))
    assert len(lines) == 2 + len(specs)
    for line, spec in zip(lines[2:], specs, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == spec.name
        assert float(cells[1]) > 0  # CPU time per round trip was measured
