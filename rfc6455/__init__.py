"""rfc6455: a strict, fast, sans-I/O implementation of the WebSocket protocol.

The engine (:class:`ServerConnection`, :class:`ClientConnection`) turns bytes
into events and calls into bytes; the ``rfc6455.asyncio`` and ``rfc6455.sync``
adapters drive it over sockets.
"""

from ._core import EOF, Limits, State
from ._version import __version__ as __version__
from .connection import ClientConnection, ServerConnection
from .errors import CloseCode, LocalProtocolError, RemoteProtocolError, WebSocketError
from .events import (
    Accepted,
    Binary,
    ConnectionClosed,
    Event,
    ExtensionOffer,
    HTTPRequest,
    Ping,
    Pong,
    Rejected,
    Request,
    Text,
)
from .headers import Headers

__all__ = [
    "EOF",
    "Accepted",
    "Binary",
    "ClientConnection",
    "CloseCode",
    "ConnectionClosed",
    "Event",
    "ExtensionOffer",
    "HTTPRequest",
    "Headers",
    "Limits",
    "LocalProtocolError",
    "Ping",
    "Pong",
    "Rejected",
    "RemoteProtocolError",
    "Request",
    "ServerConnection",
    "State",
    "Text",
    "WebSocketError",
]
