"""Events the engine produces: small frozen dataclasses, one per protocol action.

They describe what the peer did (or what the engine did on its own, such as
:class:`ConnectionClosed`); what we do is a method call on the connection
(``send``, ``ping``, ``pong``, ``close``), not an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import CloseCode, RemoteProtocolError
from .headers import Headers

__all__ = [
    "Accepted",
    "Binary",
    "ConnectionClosed",
    "Event",
    "ExtensionOffer",
    "HTTPRequest",
    "Ping",
    "Pong",
    "Rejected",
    "Request",
    "Text",
]

ExtensionParams = tuple[tuple[str, "str | None"], ...]


@dataclass(frozen=True, slots=True)
class ExtensionOffer:
    """One element of a ``Sec-WebSocket-Extensions`` header (§9.1)."""

    name: str
    params: ExtensionParams = ()


@dataclass(frozen=True, slots=True)
class Request:
    """Server role: a client asks to open a WebSocket (§4.2.1).

    Answer with ``accept()`` or ``reject()`` on the connection.
    """

    target: str
    headers: Headers
    subprotocols: tuple[str, ...] = ()
    extensions: tuple[ExtensionOffer, ...] = ()

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def host(self) -> str | None:
        return self.headers.get("host")

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """Server role: a plain HTTP request without an upgrade (a health check, a page).

    Answer it with ``respond()``; the connection closes after the response.
    """

    method: str
    target: str
    headers: Headers

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]


@dataclass(frozen=True, slots=True)
class Accepted:
    """Client role: the server answered 101 and the response was valid (§4.1)."""

    headers: Headers
    subprotocol: str | None = None
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """Client role: the server answered something other than 101 (§4.1)."""

    status: int
    headers: Headers
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Text:
    """A text message, or a piece of one in streaming mode (``final`` marks the last)."""

    data: str
    final: bool = True


@dataclass(frozen=True, slots=True)
class Binary:
    """A binary message, or a piece of one in streaming mode (``final`` marks the last)."""

    data: bytes
    final: bool = True


@dataclass(frozen=True, slots=True)
class Ping:
    """The peer sent a ping; the engine answers it by itself unless told not to."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong:
    """The peer sent a pong (an answer to our ping, or an unsolicited heartbeat)."""

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The last event of every connection.

    ``code``/``reason`` are those of the peer's close frame when one arrived
    (1005 if it carried none), the code we failed the connection with after a
    protocol violation (``error`` is then set), or 1006 when the transport
    ended without a closing handshake (§7.1.5).
    """

    code: int = CloseCode.NO_STATUS_RCVD
    reason: str = ""
    error: RemoteProtocolError | None = field(default=None, compare=False)


Event = (
    Request | HTTPRequest | Accepted | Rejected | Text | Binary | Ping | Pong | ConnectionClosed
)
