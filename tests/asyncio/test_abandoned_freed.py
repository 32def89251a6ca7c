"""A connection its client abandoned is freed by reference counting, not by the cycle collector.

RFC 6455 §7.1.1 lets the server drop a connection whose TCP side is gone (FIN
or RST, no closing handshake). What the connection held must go as soon as it
is dropped: over TLS that is the SSL object and asyncio's 256 KiB read buffer
per connection. If a reference cycle kept it (an exception whose traceback
holds the handler's frame, which holds the connection), it would wait for a
full collection of the oldest generation, which runs rarely: a peer opening
and abandoning connections then makes the server hold one buffer per
abandoned connection (measured: +53 MiB after 300 TLS connections, +124 MiB
after 1500, against a flat +27 MiB for a bare asyncio TLS protocol; see
tests/adversarial/test_abandoned.py).

The tests run with the cycle collector disabled: the transport must be freed
all the same (and the connection object, whatever the transport).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import socket
import struct
import weakref
from collections.abc import Awaitable, Callable, Iterator

import pytest

from rfc6455.asyncio import Connection, serve

from ..conftest import Transport


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _reads_until_closed(ws: Connection) -> None:
    async for _ in ws:  # the abandonment raises ConnectionClosedError here (1006)
        pass


async def _reads_after_close(ws: Connection) -> None:
    await ws.wait_closed()
    await ws.recv()  # raises ConnectionClosedError: the connection is already closed


async def _pings(ws: Connection) -> None:
    await ws.ping()  # the peer never answers: raises ConnectionClosedError


HANDLERS: dict[str, Callable[[Connection], Awaitable[None]]] = {
    "reading": _reads_until_closed,
    "reading-after-close": _reads_after_close,
    "pinging": _pings,
}


async def _open_and_abandon(transport: Transport, server: object, reset: bool) -> None:
    if transport.name == "unix":
        reader, writer = await asyncio.open_unix_connection(**transport.connect_kwargs)
    else:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port,  # type: ignore[attr-defined]
            server_hostname="127.0.0.1" if transport.name == "tls" else None,
            **transport.connect_kwargs)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    sock = writer.get_extra_info("socket")
    if reset:
        # SO_LINGER with a zero timeout: closing sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        # FIN below TLS: no close_notify, no close frame.
        sock.shutdown(socket.SHUT_WR)
    writer.transport.abort()


def _connections_alive() -> int:
    """Connection objects in existence (with the collector off, cycles stay listed)."""
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Connection))


@pytest.mark.usefixtures("no_cycle_collector")
@pytest.mark.parametrize("handler", sorted(HANDLERS))
@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_abandoned_connection_is_freed_without_the_cycle_collector(
        transport: Transport, handler: str, reset: bool) -> None:
    async def main() -> None:
        held: list[weakref.ref[asyncio.BaseTransport]] = []
        ended = asyncio.Event()
        run = HANDLERS[handler]

        async def serve_one(ws: Connection) -> None:
            assert ws.transport is not None
            held.append(weakref.ref(ws.transport))
            try:
                await run(ws)
            finally:
                ended.set()

        async with serve(serve_one, **transport.serve_kwargs, close_timeout=2) as server:
            await _open_and_abandon(transport, server, reset)
            await asyncio.wait_for(ended.wait(), 5)
            for _ in range(100):  # up to 5 s: a few loop iterations are enough
                if not server.connections and not _connections_alive():
                    break
                await asyncio.sleep(0.05)
            assert not server.connections
            alive = _connections_alive()
            assert not alive, f"{alive} connection objects still alive, in a reference cycle"
            if transport.name == "tls":
                # (asyncio's TCP transport is in a cycle of its own, its read callback:
                # small, and not ours. The TLS one holds the SSL state and buffers.)
                assert held[0]() is None, "the TLS transport is still alive"

    asyncio.run(main())
