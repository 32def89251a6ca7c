"""Each adapter's client against the other adapter's server, over TCP, TLS and unix
sockets: a fault of one role shows up alone (the guard in tests/conftest.py fails the
test on any ERROR either side logs, and on any connection left open)."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from rfc6455 import sync
from rfc6455.asyncio import Connection, connect, serve
from tests.conftest import Transport

SIZES = [0, 125, 126, 65536, 300_000]


def test_asyncio_client_against_sync_server_rfc6455_s5_2_s7_1(transport: Transport) -> None:
    """§5.2 frames of every length form, then §7.1 closing handshake started by the client:
    both sides see 1000."""
    server_codes: list[int | None] = []

    def echo(ws: sync.Connection) -> None:
        try:
            for message in ws:
                ws.send(message)
        finally:
            server_codes.append(ws.close_code)

    server = sync.serve(echo, **transport.serve_kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    async def main() -> int | None:
        async with connect(transport.url(server), **transport.connect_kwargs) as ws:
            for size in SIZES:
                data = os.urandom(size)
                await ws.send(data)
                assert await ws.recv() == data
        return ws.close_code

    try:
        assert asyncio.run(asyncio.wait_for(main(), 30)) == 1000
    finally:
        server.shutdown()
        thread.join(5)
    assert server_codes == [1000]


def test_sync_client_against_asyncio_server_rfc6455_s5_2_s7_1(transport: Transport) -> None:
    """The same, roles swapped: the asyncio server, the blocking client."""
    server_codes: list[int | None] = []
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def echo(ws: Connection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            await ws.wait_closed()
            server_codes.append(ws.close_code)

    async def serve_until_stopped() -> None:
        async with serve(echo, **transport.serve_kwargs) as server:
            box["server"], box["stop"] = server, asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve_until_stopped(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with sync.connect(transport.url(box["server"]), **transport.connect_kwargs) as ws:
            for size in SIZES:
                data = os.urandom(size)
                ws.send(data)
                assert ws.recv(timeout=10) == data
        assert ws.close_code == 1000
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
    assert not thread.is_alive()
    assert server_codes == [1000]
