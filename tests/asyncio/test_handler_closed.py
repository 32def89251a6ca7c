"""A peer that vanishes mid-handler is not a server fault (RFC 6455 §7.1.5, §7.4.1)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import pytest

from rfc6455 import sync as rsync
from rfc6455.asyncio import Connection, connect, serve


def test_7_1_5_abnormal_peer_close_is_not_logged_as_handler_failure_asyncio(
        caplog: pytest.LogCaptureFixture) -> None:
    """The handler's recv() raises ConnectionClosedError (1006); no traceback, no 1011."""
    finished = asyncio.Event()

    async def handler(ws: Connection) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        finally:
            finished.set()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            client = await connect(f"ws://127.0.0.1:{server.port}/")
            await client.send("x")
            assert await client.recv() == "x"
            assert client.transport is not None
            client.transport.abort()
            await asyncio.wait_for(finished.wait(), 10)
            await asyncio.sleep(0.05)

    with caplog.at_level(logging.DEBUG, logger="rfc6455.server"):
        asyncio.run(main())
    assert not any("handler failed" in r.getMessage() for r in caplog.records)


def test_7_1_5_abnormal_peer_close_is_not_logged_as_handler_failure_sync(
        caplog: pytest.LogCaptureFixture) -> None:
    finished = threading.Event()

    def handler(ws: rsync.Connection) -> None:
        try:
            for message in ws:
                ws.send(message)
        finally:
            finished.set()

    with caplog.at_level(logging.DEBUG, logger="rfc6455.server"), \
            rsync.serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        client = rsync.connect(f"ws://127.0.0.1:{port}/")
        client.send("x")
        assert client.recv(timeout=10) == "x"
        client.sock.shutdown(socket.SHUT_RDWR)
        assert finished.wait(10)
        client.close()  # its reader thread and socket stay until the application closes it
        server.shutdown()
    assert not any("handler failed" in r.getMessage() for r in caplog.records)
