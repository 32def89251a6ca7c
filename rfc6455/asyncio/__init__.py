"""WebSocket client and server over asyncio (works under uvloop too).

::

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 8765) as server:
        await server.serve_forever()

    async with connect("ws://127.0.0.1:8765/") as ws:
        await ws.send("hello")
        print(await ws.recv())
"""

from .._driver import (
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidRedirect,
    InvalidStatus,
)
from .client import connect
from .connection import BroadcastResult, Connection, broadcast
from .listener import Listener, serve_listener
from .server import Server, serve

__all__ = [
    "BroadcastResult",
    "ConcurrencyError",
    "Connection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "InvalidRedirect",
    "InvalidStatus",
    "Listener",
    "Server",
    "broadcast",
    "connect",
    "serve",
    "serve_listener",
]
