"""The engine's façade, one class per role.

Typical server loop (any event loop; see docs for complete examples)::

    conn = ServerConnection()
    conn.receive_data(sock.recv(65536))
    for event in conn.events():
        if isinstance(event, Request):
            conn.accept()
        elif isinstance(event, Text):
            conn.send(event.data)
    out = conn.data_to_send()   # bytes, or EOF: shut the socket down
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

from ._core import EOF, Connection, Limits, State
from .errors import CloseCode, LocalProtocolError, RemoteProtocolError
from .events import Accepted, Event, Rejected, Request
from .extensions.base import ClientExtensionFactory, ServerExtensionFactory
from .handshake import ClientHandshake, OriginAllowList, ServerHandshake
from .headers import Headers
from .uri import parse_uri

__all__ = ["EOF", "ClientConnection", "Limits", "ServerConnection", "State"]

_AUTO = object()


class ServerConnection(Connection):
    """Server role of one WebSocket connection, from the first request byte to the close.

    ``origins`` is the origin policy (see :func:`rfc6455.handshake.origin_allowed`):
    ``None`` allows requests without ``Origin`` and same-host origins only; a list
    allows exactly its origins (``None`` in it: requests without ``Origin``); an
    :class:`~rfc6455.handshake.OriginAllowList` is such a list parsed once.
    ``check_origin(request)`` replaces that policy: False, or an exception, refuses
    the request with 403 (the exception is the ``__cause__`` of the reported error).
    ``subprotocols`` are the ones the server speaks, most preferred first;
    ``extensions`` the extension factories it may negotiate.
    """

    __slots__ = ("_handshake", "request", "subprotocol")

    def __init__(
        self,
        *,
        origins: Collection[str | None] | OriginAllowList | None = None,
        check_origin: Callable[[Request], bool] | None = None,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ServerExtensionFactory] = (),
        limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
        streaming: bool = False,
        auto_pong: bool = True,
        fragment_size: int | None = None,
    ) -> None:
        super().__init__(client=False, limits=limits, streaming=streaming,
                         auto_pong=auto_pong, fragment_size=fragment_size)
        self._handshake: ServerHandshake | None = ServerHandshake(
            max_header_bytes=limits.max_header_bytes, origins=origins,
            check_origin=check_origin, subprotocols=subprotocols, extensions=extensions)
        #: The WebSocket request once received.
        self.request: Request | None = None
        #: The subprotocol chosen by :meth:`accept`, if any.
        self.subprotocol: str | None = None

    def _receive_handshake_data(self, data: bytes) -> None:
        assert self._handshake is not None
        self._handshake.receive_data(data)

    def _receive_handshake_eof(self) -> None:
        handshake = self._handshake
        if handshake is None:
            return
        # A request head that arrived whole before the EOF is still surfaced, so the
        # application can answer it (an HTTP client may half-close after its request).
        event = self._handshake_event()
        if event is not None:
            self._events.insert(0, event)
        handshake.receive_data(b"")
        if self._state is State.CONNECTING and not handshake.complete:
            self._finish(CloseCode.ABNORMAL_CLOSURE, "", RemoteProtocolError(
                "connection closed during the opening handshake", CloseCode.ABNORMAL_CLOSURE))

    def _handshake_event(self) -> Event | None:
        handshake = self._handshake
        if handshake is None or self.request is not None:
            return None
        event = handshake.next_event()
        if isinstance(event, RemoteProtocolError):
            # §4.2.1: a bad upgrade gets an HTTP error, never a 101.
            if event.status is not None:
                self._write(handshake.answer_error(event))
            self._finish(CloseCode.ABNORMAL_CLOSURE, "", event)
            return self._events.pop(0)
        if isinstance(event, Request):
            self.request = event
        return event

    def accept(self, subprotocol: str | object | None = _AUTO,
               extra_headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer the :class:`Request` with 101 and open the connection (§4.2.2).

        By default the subprotocol is the first of the server's that the client
        offered; pass one explicitly (or None) to override.
        """
        handshake = self._handshake
        if self._state is not State.CONNECTING or self.request is None or handshake is None:
            raise LocalProtocolError("no WebSocket request to accept")
        chosen = handshake.select_subprotocol(self.request) if subprotocol is _AUTO \
            else subprotocol
        assert chosen is None or isinstance(chosen, str)
        self._write(handshake.accept(chosen, extra_headers))
        self.subprotocol = handshake.subprotocol
        # The HTTP parser is done for good: drop it (and its buffers) so that an
        # open connection holds no handshake state (idle memory, GitHub issue #7).
        self._handshake = None
        self._open(handshake.extension, handshake.trailing_data())

    def reject(self, status: int = 403, headers: Iterable[tuple[str, str]] = (),
               body: bytes = b"") -> None:
        """Refuse the WebSocket request, or answer a plain :class:`HTTPRequest`, and close."""
        handshake = self._handshake
        if self._state is not State.CONNECTING or handshake is None:
            raise LocalProtocolError("the opening handshake is already over")
        if not 200 <= status <= 599 or status == 101:
            raise LocalProtocolError(f"cannot answer with status {status}")
        self._write(handshake.respond(status, headers, body))
        self._finish(CloseCode.ABNORMAL_CLOSURE, "", None)
        self._want_eof()

    respond = reject


class ClientConnection(Connection):
    """Client role of one WebSocket connection.

    The opening request is queued at construction: call :meth:`data_to_send`
    and write it once the transport is connected.
    """

    __slots__ = ("_handshake", "_request_headers", "response", "subprotocol")

    def __init__(
        self,
        uri: str | None = None,
        *,
        host: str | None = None,
        target: str | None = None,
        origin: str | None = None,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[ClientExtensionFactory] = (),
        extra_headers: Iterable[tuple[str, str]] = (),
        limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
        streaming: bool = False,
        auto_pong: bool = True,
        fragment_size: int | None = None,
    ) -> None:
        super().__init__(client=True, limits=limits, streaming=streaming,
                         auto_pong=auto_pong, fragment_size=fragment_size)
        if uri is not None:
            parsed = parse_uri(uri)
            # Explicit arguments override what the URI says.
            host = host or parsed.host_header
            target = target or parsed.target
        if host is None:
            raise ValueError("a URI or a host is required")
        if target is None:
            target = "/"
        self._handshake: ClientHandshake | None = ClientHandshake(
            host=host, target=target, origin=origin, subprotocols=subprotocols,
            extensions=extensions, extra_headers=extra_headers,
            max_header_bytes=limits.max_header_bytes)
        self._write(self._handshake.request_bytes)
        self._request_headers = self._handshake.request_headers
        #: The 101 response headers once accepted.
        self.response: Headers | None = None
        self.subprotocol: str | None = None

    @property
    def request_headers(self) -> Headers:
        """The headers of the opening request this client sent."""
        return self._request_headers

    def _receive_handshake_data(self, data: bytes) -> None:
        assert self._handshake is not None
        self._handshake.receive_data(data)

    def _receive_handshake_eof(self) -> None:
        if self._handshake is not None:
            self._handshake.receive_data(b"")
            # A rejection whose body ends at EOF is reported by the next event.
            event = self._handshake_event()
            if event is not None:
                self._events.insert(0, event)
            if self._state is State.CONNECTING:
                self._finish(CloseCode.ABNORMAL_CLOSURE, "", RemoteProtocolError(
                    "connection closed during the opening handshake",
                    CloseCode.ABNORMAL_CLOSURE))

    def _handshake_event(self) -> Event | None:
        handshake = self._handshake
        if handshake is None or self._state is not State.CONNECTING:
            return None
        event = handshake.next_event()
        if event is None:
            return None
        if isinstance(event, Accepted):
            self.response = event.headers
            self.subprotocol = event.subprotocol
            # No HTTP parsing from here on: drop the parser and its buffers.
            self._handshake = None
            self._open(handshake.extension, handshake.trailing_data())
            return event
        if isinstance(event, Rejected):
            self._finish(CloseCode.ABNORMAL_CLOSURE, "", RemoteProtocolError(
                f"server rejected the WebSocket upgrade with HTTP {event.status}",
                CloseCode.ABNORMAL_CLOSURE, event.status))
            return event
        # §4.1: an invalid 101 means _Fail the WebSocket Connection_; no frame can be
        # sent before the connection is established, so just drop it.
        self._finish(event.code, "", event)
        return self._events.pop(0)


