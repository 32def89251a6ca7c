"""WebSocket client and server over blocking sockets (a thread per connection).

::

    from rfc6455.sync import connect

    with connect("ws://127.0.0.1:8765/") as ws:
        ws.send("hello")
        print(ws.recv(timeout=5))
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
    "Server",
    "broadcast",
    "connect",
    "serve",
]
