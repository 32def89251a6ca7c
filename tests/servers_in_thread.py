"""A server of either adapter running in a thread of the test process, for tests
that talk to it over a real socket from blocking code (raw sockets, the sync client)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

ADAPTERS = ("asyncio", "sync")
#: The adapters' servers, the asyncio callback server (serve_listener) too.
SERVERS = ("asyncio", "listener", "sync")


@contextlib.contextmanager
def running_server(adapter: str, *, server_ping: bytes | None = None,
                   **options: Any) -> Iterator[int]:
    """Serve an echo handler on 127.0.0.1 with ``options``; yield the port.

    ``adapter``: one of :data:`SERVERS`. ``server_ping``: the handler first sends a
    ping with this payload and waits for its pong (not with the listener).
    """
    if adapter == "sync":
        from rfc6455.sync import Connection, serve

        def echo(ws: Connection) -> None:
            if server_ping is not None:
                ws.ping(server_ping, timeout=5)
            for message in ws:
                ws.send(message)

        server = serve(echo, "127.0.0.1", 0, **options)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.port
        finally:
            server.shutdown()
            thread.join(5)
        return

    from rfc6455.asyncio import Connection as AsyncConnection
    from rfc6455.asyncio import Listener, serve_listener
    from rfc6455.asyncio import serve as aserve

    class Echo(Listener):
        def on_message(self, ws: AsyncConnection, message: str | bytes) -> None:
            ws.send_nowait(message)

    ready: list[int] = []
    started = threading.Event()
    stop = threading.Event()

    async def aecho(ws: AsyncConnection) -> None:
        if server_ping is not None:
            await asyncio.wait_for(ws.ping(server_ping), 5)
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        assert adapter in ("asyncio", "listener")
        starting = serve_listener(Echo, "127.0.0.1", 0, **options) if adapter == "listener" \
            else aserve(aecho, "127.0.0.1", 0, **options)
        async with starting as server:
            ready.append(server.port)
            started.set()
            for _ in range(6000):  # at most 60 s
                if stop.is_set():
                    break
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(10), "the asyncio server did not start"
        yield ready[0]
    finally:
        stop.set()
        thread.join(10)
