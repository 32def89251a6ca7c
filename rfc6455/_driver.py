"""What the asyncio and blocking adapters share: everything but the waiting.

An adapter owns a transport and a :class:`Driver`. It feeds received bytes to
the engine, then calls :meth:`Driver.pull`, writes what the engine wants sent,
and wakes whoever waits. Every protocol decision stays in the engine; this
module holds the adapter-side policy that both adapters need exactly once:

Pull policy
    The engine parses lazily, so a violation is only found once the events
    before it were pulled. :meth:`Driver.pull` pulls until the waiting reader
    has what it wants (one message, or one piece in streaming), then *holds*:
    nothing more is parsed until the reader comes back (or the adapter resumes
    soon after, so that control frames are still answered). That lets an echo
    of a good message go out before the close a following bad frame causes.
    With no reader waiting it pulls eagerly into a queue bounded by
    ``max_queue`` messages; past it (or when the engine holds more than
    ``read_limit`` unparsed bytes) the adapter stops reading the transport.

Keepalive
    Pings in flight with their send times; a pong acknowledges its ping and
    every earlier one (§5.5.3 allows a pong to answer only the latest) and
    gives the round-trip latency. Deadlines are computed from a ``now`` that
    the adapter passes in, so one ticker can serve many connections.
    :meth:`Driver.keepalive_step` queues a ping that is due in the engine, or
    starts the close (1011 after an unanswered ping, 1001 when idle, §7.4.1);
    the adapter then writes.

Around the connection
    The handler's outcome (:func:`handler_close_code`), the server's answer
    (:class:`Admission`, :func:`answer_request`), the send-parts loop
    (:class:`Fragments`), and the client's side: the handshake's outcome
    (:func:`handshake_failure`), redirects (:class:`Redirects`), TLS
    (:func:`client_tls`) and the proxy tunnel (:class:`ProxyAnswer`).
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

from ._core import Limits, State
from .connection import ClientConnection, ServerConnection
from .errors import CloseCode, WebSocketError
from .events import Accepted, Binary, HTTPRequest, Pong, Rejected, Request, Text
from .events import ConnectionClosed as ClosedEvent
from .extensions.base import ClientExtensionFactory, ServerExtensionFactory
from .handshake import validate_origin_options
from .headers import Headers
from .uri import parse_uri

__all__ = [
    "ClientOptions",
    "CommonOptions",
    "ConcurrencyError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "Driver",
    "InvalidRedirect",
    "InvalidStatus",
    "ServerOptions",
]

server_logger = logging.getLogger("rfc6455.server")
client_logger = logging.getLogger("rfc6455.client")

Data = str | bytes
W = TypeVar("W")
_Arg = TypeVar("_Arg")

#: What :meth:`Driver.pull` is asked to get.
WANT_NOTHING: Final = 0  # no reader: fill the queue
WANT_MESSAGE: Final = 1  # a reader waits for a whole message
WANT_PIECE: Final = 2  # a streaming reader waits for the next piece of a message

#: :meth:`Driver.keepalive` verdicts.
KEEP: Final = 0
PING: Final = 1
PING_TIMEOUT: Final = 2
IDLE_TIMEOUT: Final = 3


# ---------------------------------------------------------------- exceptions


class ConnectionClosed(WebSocketError):
    """The connection is closed: raised by receiving or sending after the close.

    ``code`` and ``reason`` are those the engine reports (the peer's close frame,
    the code we failed with, or 1006 when the transport ended abruptly).
    """

    def __init__(self, code: int, reason: str = "", error: Exception | None = None) -> None:
        super().__init__(f"connection closed: {code}" + (f" {reason}" if reason else ""))
        self.code = code
        self.reason = reason
        self.error = error


class ConnectionClosedOK(ConnectionClosed):
    """Closed with 1000 (normal) or 1001 (going away) (§7.4.1)."""


class ConnectionClosedError(ConnectionClosed):
    """Closed by a failure, an abnormal closure or an error code."""


class ConcurrencyError(WebSocketError, RuntimeError):
    """Two coroutines or threads received (or sent parts) on one connection at once."""


class InvalidStatus(WebSocketError):
    """Client: the server answered the opening handshake with something other than 101."""

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        super().__init__(f"server rejected the WebSocket upgrade with HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body


class InvalidRedirect(WebSocketError):
    """Client: the server redirected the opening handshake somewhere the client will not go.

    The server's fault: ``status`` and ``location`` are its 3xx answer's, ``reason``
    says why it was not followed: it leaves TLS (``wss`` to ``ws`` or ``http``), its
    scheme is not ws, wss, http or https, or the Location is not a URI.
    """

    def __init__(self, status: int, location: str, reason: str) -> None:
        super().__init__(f"server redirected the WebSocket upgrade with HTTP {status} to "
                         f"{location!r}, not followed: {reason}")
        self.status = status
        self.location = location
        self.reason = reason


def closed_exception(code: int | None, reason: str, error: Exception | None) -> ConnectionClosed:
    """The exception matching a final close status."""
    if code is None:
        code = CloseCode.ABNORMAL_CLOSURE
    if error is None and code in (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY):
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason, error)


# ---------------------------------------------------------------- options


def _deflate(role: str, compression: str | None, params: dict[str, Any]) -> list[Any]:
    """permessage-deflate factories (RFC 7692) when asked for and available."""
    if compression is None:
        return []
    if compression != "deflate":
        raise ValueError(f"unsupported compression {compression!r}")
    try:
        from .extensions import permessage_deflate as pmd
    except ImportError:  # the extension module is optional
        return []
    name = "ServerPerMessageDeflate" if role == "server" else "ClientPerMessageDeflate"
    factory = getattr(pmd, name, None)
    return [] if factory is None else [factory(**params)]


@dataclass(frozen=True)
class CommonOptions:
    """The options both roles share (see ``serve``'s and ``connect``'s docstrings)."""

    max_size: int | None = 1024 * 1024
    max_fragments: int | None = 4096
    max_header_bytes: int = 16 * 1024
    max_queue: int = 16
    read_limit: int = 256 * 1024
    write_limit: int = 64 * 1024
    write_low: int | None = None
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    open_timeout: float | None = 10.0
    close_timeout: float | None = 10.0
    idle_timeout: float | None = None
    compression: str | None = "deflate"
    #: Keyword arguments of the permessage-deflate factory (window bits, takeover...).
    compression_options: dict[str, Any] = field(default_factory=dict)
    limits: Limits | None = None

    def engine_limits(self) -> Limits:
        if self.limits is not None:
            return self.limits
        limits: Limits = self._once("_engine_limits", lambda: Limits(
            max_header_bytes=self.max_header_bytes, max_message_size=self.max_size,
            max_fragments=self.max_fragments))
        return limits

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        """A value made once per options object and shared by all its connections.

        Options are frozen and immutable values (Limits, the stateless extension
        factories) need no copy per connection (idle memory, GitHub issue #7).
        The instance ``__dict__`` is written directly: frozen forbids setattr only.
        """
        try:
            return self.__dict__[key]
        except KeyError:
            value = self.__dict__[key] = make()
            return value

    @property
    def low_water(self) -> int:
        return self.write_limit // 4 if self.write_low is None else self.write_low


@dataclass(frozen=True)
class ServerOptions(CommonOptions):
    """Server options, shared by both adapters (see ``serve``'s docstring)."""

    origins: Collection[str | None] | None = None
    #: Replaces the ``origins`` policy: ``check_origin(request)`` False refuses with 403.
    check_origin: Callable[[Request], bool] | None = None
    subprotocols: Sequence[str] = ()
    extensions: Sequence[ServerExtensionFactory] | None = None
    extra_headers: Sequence[tuple[str, str]] = ()
    process_request: Callable[..., Any] | None = None
    max_connections: int | None = None
    max_connections_per_ip: int | None = None

    def __post_init__(self) -> None:
        # Refused when the server is set up, not at its first connection; the list
        # is parsed once, here, for all connections (frozen forbids setattr only).
        self.__dict__["_origin_allow_list"] = validate_origin_options(
            self.origins, self.check_origin)

    def new_engine(self) -> ServerConnection:
        extensions = self.extensions
        if extensions is None:
            extensions = self._once("_extensions", lambda: tuple(
                _deflate("server", self.compression, self.compression_options)))
        return ServerConnection(origins=self.__dict__["_origin_allow_list"],
                                check_origin=self.check_origin,
                                subprotocols=self.subprotocols,
                                extensions=extensions, limits=self.engine_limits(),
                                streaming=False)


@dataclass(frozen=True)
class ClientOptions(CommonOptions):
    """Client options, shared by both adapters (see ``connect``'s docstring)."""

    origin: str | None = None
    subprotocols: Sequence[str] = ()
    extensions: Sequence[ClientExtensionFactory] | None = None
    extra_headers: Sequence[tuple[str, str]] = field(default_factory=tuple)
    max_redirects: int = 3
    proxy: str | None = None

    def new_engine(self, uri: str, extra_headers: Sequence[tuple[str, str]] | None = None
                   ) -> ClientConnection:
        """The engine of one opening handshake to ``uri``; ``extra_headers`` replaces the
        option's (after a cross-origin redirect, see :func:`redirect`)."""
        extensions = self.extensions
        if extensions is None:
            extensions = self._once("_extensions", lambda: tuple(
                _deflate("client", self.compression, self.compression_options)))
        if extra_headers is None:
            extra_headers = self.extra_headers
        return ClientConnection(uri, origin=self.origin, subprotocols=self.subprotocols,
                                extensions=extensions, extra_headers=extra_headers,
                                limits=self.engine_limits(), streaming=False)


# ---------------------------------------------------------------- redirects

#: Schemes a redirect may name, and the WebSocket scheme each means: RFC 6455 §3
#: makes ws and wss URIs stand for the same resources as http and https, and
#: servers behind HTTP frameworks answer with http(s) Locations.
_REDIRECT_SCHEMES: Final = {"ws": "ws", "http": "ws", "wss": "wss", "https": "wss"}

#: Headers that carry the caller's credentials: never sent on to another origin
#: (RFC 9110 §15.4 asks a client following a redirect to consider removing them).
CREDENTIAL_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})


def redirect(current_uri: str, location: str, extra_headers: Sequence[tuple[str, str]],
             status: int = 302) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Where a ``status`` redirect to ``location`` from ``current_uri`` goes, and the
    extra headers to send there.

    ``location`` may be relative (RFC 9110 §10.2.2); ``http`` and ``https`` mean
    ``ws`` and ``wss`` (RFC 6455 §3); a fragment is dropped (a WebSocket URI has
    none, §3). On a cross-origin redirect (scheme, host or port differ)
    ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` are dropped.
    Raises :class:`InvalidRedirect` for a redirect from ``wss`` to ``ws``, another
    scheme, or a Location that is not a URI.
    """
    # RFC 3986 §2: a URI is printable ASCII; whitespace would also split the
    # request line (RFC 9112 §3).
    if any(not " " < char < "\x7f" for char in location):
        raise InvalidRedirect(status, location, "not a URI (RFC 3986)")
    try:
        parts = urlsplit(location)
        if not parts.scheme:  # a relative reference (RFC 3986 §5.2)
            parts = urlsplit(urljoin(current_uri, location))
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidRedirect(status, location, "not a URI (RFC 3986)") from None
    scheme = _REDIRECT_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise InvalidRedirect(status, location, f"unsupported scheme {parts.scheme!r} "
                              "(ws, wss, http or https only)")
    new_uri = urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    try:
        target = parse_uri(new_uri)
    except ValueError as exc:
        raise InvalidRedirect(status, location, str(exc)) from None
    here = parse_uri(current_uri)
    if here.secure and not target.secure:
        raise InvalidRedirect(status, location, "it leaves TLS (wss to ws)")
    headers = tuple(extra_headers)
    if (target.secure, target.host, target.port) != (here.secure, here.host, here.port):
        headers = tuple((name, value) for name, value in headers
                        if name.lower() not in CREDENTIAL_HEADERS)
    return new_uri, headers


class Redirects:
    """Both clients' redirect loop, less the waiting: where the next attempt goes.

    Start at ``uri`` with the options' extra headers; after each
    :class:`InvalidStatus`, :meth:`follow` moves :attr:`uri` and
    :attr:`extra_headers` to the redirect's target, at most ``max_redirects`` times.
    """

    __slots__ = ("extra_headers", "left", "uri")

    def __init__(self, uri: str, options: ClientOptions) -> None:
        self.uri = uri
        self.extra_headers: tuple[tuple[str, str], ...] = tuple(options.extra_headers)
        self.left = options.max_redirects

    def follow(self, error: InvalidStatus) -> bool:
        """True to try again at the redirect's target, False to raise ``error`` (not a
        redirect, or the last one allowed); :class:`InvalidRedirect` if refused."""
        locations = error.headers.get_all("location")
        if not 300 <= error.status < 400 or not locations or not locations[0] \
                or self.left <= 0:
            return False
        if len(locations) > 1:
            raise InvalidRedirect(error.status, ", ".join(locations),
                                  "several Location headers (RFC 9110 §10.2.2)")
        self.uri, self.extra_headers = redirect(self.uri, locations[0], self.extra_headers,
                                                error.status)
        self.left -= 1
        return True


def handshake_failure(event: object) -> Exception | None:
    """What a client raises for the first event of its opening handshake; None when
    the server accepted (§4.1): :class:`InvalidStatus` for another answer (a
    redirect among them, see :class:`Redirects`), the engine's error for an answer
    that breaks the handshake's rules, ``ConnectionError`` for a server that left."""
    if isinstance(event, Accepted):
        return None
    if isinstance(event, Rejected):
        return InvalidStatus(event.status, event.headers, event.body)
    if isinstance(event, ClosedEvent) and event.error is not None:
        return event.error
    return ConnectionError("connection closed during the opening handshake")


def client_tls(secure: bool, context: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """The TLS context of a client connection: the caller's, or the default one for a
    ``wss`` URI; none for ``ws``."""
    if not secure:
        return None
    return ssl.create_default_context() if context is None else context


def proxy_address(proxy: str) -> tuple[str, int]:
    """Host and port of an HTTP proxy URI, ``http://host[:port]``."""
    parts = urlsplit(proxy)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"unsupported proxy {proxy!r} (http://host:port only)")
    return parts.hostname, parts.port or 80


class ProxyAnswer:
    """A proxy's answer to CONNECT (RFC 9110 §9.3.6), read one byte at a time, so
    that nothing past it (the server's bytes, through the tunnel) is read too."""

    #: The longest answer head taken: a proxy sending more is not answering CONNECT.
    MAX_HEAD: Final = 16384

    __slots__ = ("head",)

    def __init__(self) -> None:
        self.head = b""

    def feed(self, chunk: bytes) -> bool:
        """Take what the proxy sent next (empty: it closed); True once the answer is
        complete and opens the tunnel. Raises ``OSError`` otherwise."""
        if not chunk or len(self.head) > self.MAX_HEAD:
            raise OSError("proxy closed the connection or sent too much")
        self.head += chunk
        if b"\r\n\r\n" not in self.head:
            return False
        status = proxy_connect_status(self.head)
        if status != 200:
            raise OSError(f"proxy refused the tunnel with HTTP {status}")
        return True


def split_options(cls: type[CommonOptions], options: dict[str, Any]) -> Any:
    """Build ``cls`` from keyword options, with a clear error for an unknown one."""
    try:
        return cls(**options)
    except TypeError as exc:
        raise TypeError(f"unknown option: {exc}") from None


def check_callback(callback: object, what: str, positional: int,
                   asynchronous: bool) -> None:
    """Refuse, with a :class:`TypeError` naming ``what``, a callback that cannot run.

    ``callback`` must be callable with ``positional`` positional arguments (checked
    with :func:`inspect.signature` when it has one). ``asynchronous``: the asyncio
    server awaits what a handler returns, so a plain ``def`` function (or a
    :func:`functools.partial` of one, a lambda) is refused there; any other callable
    is accepted, and what its call returns is checked when it runs. Where the
    call's result is used as it is (the blocking server, a listener factory), a
    coroutine function is refused: its coroutine would never run.
    """
    if not callable(callback):
        raise TypeError(f"the {what} must be callable, not {type(callback).__name__}")
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # some builtins have none: the call will tell
        signature = None
    if signature is not None:
        try:
            signature.bind(*[None] * positional)
        except TypeError:
            expected = "no argument" if positional == 0 else \
                f"{positional} positional argument{'s' if positional > 1 else ''}"
            raise TypeError(f"the {what} {callback!r} must be callable with {expected};"
                            f" its signature is {signature}") from None
    coroutine = inspect.iscoroutinefunction(callback) or \
        inspect.iscoroutinefunction(getattr(callback, "__call__", None))  # noqa: B004
    if asynchronous:
        plain: Any = callback
        while isinstance(plain, functools.partial):
            plain = plain.func
        if not coroutine and (inspect.isfunction(plain) or inspect.ismethod(plain)):
            raise TypeError(f"the {what} {callback!r} must be a coroutine function "
                            "(async def) for the asyncio server")
    elif coroutine:
        raise TypeError(f"the {what} {callback!r} is a coroutine function; "
                        "it must be a plain function here")


def default_http_response(request: HTTPRequest) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a plain HTTP request gets without a ``process_request`` hook (RFC 7231 §6.5.15)."""
    return 426, [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                 ("Content-Type", "text/plain; charset=utf-8")], \
        b"This is a WebSocket endpoint: upgrade required.\n"


def answer_request(engine: ServerConnection, event: Request | HTTPRequest, response: Any,
                   options: ServerOptions) -> bool:
    """Answer the opening request: with ``response`` (``(status, headers, body)``),
    with 426 for a plain HTTP request that got none, else with 101 (§4.2.2).
    True when the connection was accepted."""
    if response is None and isinstance(event, HTTPRequest):
        response = default_http_response(event)
    if response is not None:
        status, headers, body = response
        engine.respond(status, list(headers), body)
        return False
    engine.accept(extra_headers=options.extra_headers)
    return True


def handler_close_code(error: BaseException | None, logger: logging.Logger) -> int | None:
    """The close code once a connection handler ended, by returning (``error`` None)
    or raising; a failure is logged. None: the connection is closed already.

    §7.4.1: 1000 when the handler is done, 1011 when it failed, a condition the
    server could not handle. :class:`ConnectionClosed` means the peer went away
    while the handler used the connection: its business, not a server fault (no
    1011, no traceback).
    """
    if error is None:
        return CloseCode.NORMAL_CLOSURE
    if isinstance(error, ConnectionClosed):
        logger.debug("connection closed during the handler: %s", error)
        return None
    logger.error("connection handler failed", exc_info=error)
    return CloseCode.INTERNAL_ERROR


def busy_response() -> tuple[int, list[tuple[str, str]], bytes]:
    """The answer past ``max_connections`` / ``max_connections_per_ip``."""
    return 503, [("Retry-After", "1"), ("Content-Type", "text/plain; charset=utf-8")], \
        b"Too many connections.\n"


#: After an HTTP answer (a refusal, 426, an error status) and our FIN, how long a
#: server waits at most for the client to close its side before closing the
#: socket (both adapters). Waiting is the "lingering close" of RFC 9112 §9.6: a
#: close with unread input makes the kernel reset the connection, which can
#: destroy the answer before the client read it. Not waiting longer bounds what a
#: client that never closes holds: one descriptor per refusal, for this long.
HTTP_LINGER: Final = 1.0


def http_linger(close_timeout: float | None) -> float:
    """How long to linger after an HTTP answer: :data:`HTTP_LINGER`, or the close
    timeout when it is shorter (None or 0 sets no shorter bound)."""
    return min(close_timeout or HTTP_LINGER, HTTP_LINGER)


def proxy_connect_request(host: str, port: int) -> bytes:
    """The HTTP CONNECT request that opens a tunnel through a proxy (RFC 9110 §9.3.6)."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").encode("ascii")


def proxy_connect_status(head: bytes) -> int:
    """Status of a proxy's answer to CONNECT; raises ``OSError`` when it is not HTTP."""
    line = head.split(b"\r\n", 1)[0].split()
    if len(line) < 2 or not line[0].startswith(b"HTTP/") or not line[1].isdigit():
        raise OSError(f"invalid proxy response: {head[:80]!r}")
    return int(line[1])


class Admission:
    """Server bookkeeping shared by both adapters: who is open, caps, the request hook."""

    __slots__ = ("closing", "logger", "open", "options", "per_ip")

    def __init__(self, options: ServerOptions, logger: logging.Logger) -> None:
        self.options = options
        self.logger = logger
        self.open: set[Any] = set()
        self.per_ip: dict[Any, int] = {}
        self.closing = False

    def check(self, conn: Any, ip: Any, event: Request | HTTPRequest) -> Any:
        """None to go on (accept, or 426 for plain HTTP), else a response or an awaitable one."""
        options = self.options
        if isinstance(event, Request):
            # Past a cap, 503 (RFC 9110 §15.6.4): the client may retry later.
            if self.closing:
                return busy_response()
            if options.max_connections is not None and len(self.open) >= options.max_connections:
                return busy_response()
            if options.max_connections_per_ip is not None and \
                    self.per_ip.get(ip, 0) >= options.max_connections_per_ip:
                return busy_response()
        hook = options.process_request
        if hook is None:
            return None
        try:
            return hook(conn, event)
        except Exception:
            self.logger.exception("error in process_request")
            return internal_error_response()

    def opened(self, conn: Any, ip: Any) -> None:
        self.open.add(conn)
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1

    def forget(self, conn: Any, ip: Any) -> None:
        if conn in self.open:
            self.open.discard(conn)
            left = self.per_ip.get(ip, 1) - 1
            if left:
                self.per_ip[ip] = left
            else:
                self.per_ip.pop(ip, None)


#: accept() errors that mean the process or the system is out of a resource
#: (descriptors, socket buffers, memory): retrying at once would fail again, so
#: the server backs off, and reports it once (:class:`AcceptFailures`).
ACCEPT_RESOURCE_ERRORS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                                           errno.ENOMEM})


class AcceptFailures:
    """Reports a listening socket's accept() failing for lack of resources once
    per episode, a WARNING, and its end, at INFO: a server out of descriptors
    fails every retry, and a record each time would flood the log while the
    condition lasts.

    The episode ends with a connection accepted at least :attr:`QUIET` seconds
    after the last failure, that is after a back-off: asyncio accepts a batch of
    connections and makes their protocols later, so a connection of the batch
    that failed, or of a retry that accepted some and failed again, does not end
    it.
    """

    #: Half the event loop's back-off (asyncio waits a second before it retries).
    QUIET: Final = 0.5

    __slots__ = ("failing", "last_failure", "logger")

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.failing = False
        self.last_failure = 0.0

    def failed(self, error: Exception, now: float) -> None:
        """``error``: accept()'s OSError, or a thread that could not start (sync)."""
        self.last_failure = now
        if not self.failing:
            self.failing = True
            number = getattr(error, "errno", None)
            name = errno.errorcode.get(number, str(number)) if number is not None \
                else str(error)
            self.logger.warning("accept failing: %s; backing off", name)

    def accepted(self, now: float) -> None:
        if self.failing and now - self.last_failure >= self.QUIET:
            self.failing = False
            self.logger.info("accepting again")


def internal_error_response() -> tuple[int, list[tuple[str, str]], bytes]:
    return 500, [("Content-Type", "text/plain; charset=utf-8")], b"Internal server error.\n"


def ip_of(address: Any) -> Any:
    """The part of a peer address that ``max_connections_per_ip`` counts."""
    return address[0] if isinstance(address, tuple) else address


class Fragments:
    """The frames of one message sent in parts (§5.4): each part a frame that is
    not final, then an empty final frame of the parts' type, which ends the
    message without knowing in advance which part is the last.

    Both adapters' send loop, less the waiting::

        fragments = Fragments()
        for part in parts:
            send(fragments.add(part), final=False)
        if fragments.end is not None:
            send(fragments.end, final=True)
    """

    __slots__ = ("end",)

    def __init__(self) -> None:
        #: The final frame's payload once a part was added; None before (nothing
        #: was sent, so there is no message to end).
        self.end: Data | None = None

    def add(self, part: Data) -> Data:
        """Note ``part`` and return it, to send as a frame that is not final."""
        self.end = "" if isinstance(part, str) else b""
        return part


def tick_interval(options: CommonOptions) -> float | None:
    """How often a server's one ticker runs every connection's keepalive: a quarter
    of its shortest period (so a deadline is met within a quarter of its period),
    at most 100 times a second; None when no period is set."""
    periods = [period for period in (options.ping_interval, options.ping_timeout,
                                     options.idle_timeout) if period is not None]
    return max(0.01, min(periods) / 4) if periods else None


# ---------------------------------------------------------------- the driver


class Driver(Generic[W]):
    """Queue, pull policy, and keepalive bookkeeping of one connection.

    ``W`` is the adapter's waiter type for pings (an asyncio future, a
    threading event...); the driver only stores and returns them.
    """

    __slots__ = (
        "_pieces",
        "_pings",
        "_streaming",
        "acked",
        "closed",
        "complete",
        "conn",
        "discard",
        "hold",
        "idle_timeout",
        "last_received",
        "latency",
        "max_queue",
        "next_ping",
        "ping_interval",
        "ping_timeout",
        "read_limit",
        "sent_code",
    )

    def __init__(self, conn: ServerConnection | ClientConnection, options: CommonOptions,
                 now: float) -> None:
        self.conn = conn
        self.max_queue = max(1, options.max_queue)
        self.read_limit = options.read_limit
        self.ping_interval = options.ping_interval
        self.ping_timeout = options.ping_timeout
        self.idle_timeout = options.idle_timeout
        # Received pieces (Text/Binary events, ``final`` marks a message's last),
        # created with the first one: an empty deque is ~600 bytes that an idle
        # connection need not hold (GitHub issue #7).
        self._pieces: deque[Text | Binary] | None = None
        #: Whole messages queued (their last piece is): read it, never set it, outside.
        self.complete = 0
        self._streaming = False  # what the engine was last told (new_engine: False)
        #: A message was handed to a waiting reader: parse nothing until it returns.
        self.hold = False
        #: We are closing: drop received data instead of queueing it, so the peer's
        #: close reply is always parsed, whatever the queue holds.
        self.discard = False
        #: The code of the close we started, reported until the peer's reply arrives.
        self.sent_code: int | None = None
        #: The engine's final event, once pulled.
        self.closed: ClosedEvent | None = None
        # Pings in flight, oldest first: payload -> (send time, waiter or None).
        # Created with the first ping, dropped once all are answered: an idle
        # connection holds no empty dict nor list (issue #7).
        self._pings: dict[bytes, tuple[float, W | None]] | None = None
        #: Waiters whose ping was answered, with the latency; the adapter wakes them.
        self.acked: list[tuple[W, float]] | None = None
        self.latency = 0.0
        self.last_received = now
        self.next_ping = None if self.ping_interval is None else now + self.ping_interval

    # ------------------------------------------------------------- receiving

    def pull(self, want: int, now: float) -> bool:
        """Pull engine events per the policy; True when ``want`` is satisfied."""
        if want == WANT_MESSAGE:
            if self.complete:
                return True
        elif want == WANT_PIECE and self._pieces:
            return True
        if self.hold and want == WANT_NOTHING:
            return False
        self.hold = False
        conn = self.conn
        # Pieces only for a streaming reader: a whole message is parsed in one go,
        # its payload copied once however many reads it came in.
        streaming = want == WANT_PIECE
        if streaming is not self._streaming:
            conn.streaming = self._streaming = streaming
        pieces = self._pieces
        limit = self.max_queue
        while self.complete < limit:
            event = conn.next_event()
            if event is None:
                break
            self.last_received = now
            cls = type(event)
            if cls is Text or cls is Binary:
                if self.discard:
                    continue
                if pieces is None:
                    pieces = self._pieces = deque()
                pieces.append(event)  # type: ignore[arg-type]
                if event.final:  # type: ignore[union-attr]
                    self.complete += 1
                    if want == WANT_MESSAGE:
                        self.hold = True
                        return True
                if want == WANT_PIECE:
                    self.hold = True
                    return True
            elif self._control(cls, event, now):
                break
        return want == WANT_NOTHING

    def _control(self, cls: type, event: object, now: float) -> bool:
        """Note an event other than a message's piece; True for the final one."""
        if cls is Pong:
            self._pong(event.payload, now)  # type: ignore[attr-defined]
        elif cls is ClosedEvent:
            self.closed = event  # type: ignore[assignment]
            return True
        # Ping: the engine already queued the pong (§5.5.2).
        return False

    def pull_message(self, now: float) -> Data | None:
        """``pull(WANT_MESSAGE)`` then :meth:`take_message`, or None: for a consumer
        that takes every message as it comes (the listener adapter), or a reader
        that waits for one (the asyncio adapter, which then sets :attr:`hold`).

        A message with nothing queued before it skips the queue altogether;
        anything else goes the general way.
        """
        if not (self.complete or self._pieces or self._streaming or self.discard):
            self.hold = False  # as pull() does: the consumer is back
            conn = self.conn
            while True:
                event = conn.next_event()
                if event is None:
                    return None
                self.last_received = now
                cls = type(event)
                if cls is Text or cls is Binary:
                    # Not streaming, and no piece of a message was queued before
                    # (_pieces): the engine hands over whole messages only.
                    return event.data  # type: ignore[union-attr]
                if self._control(cls, event, now):
                    return None
        return self.take_message() if self.pull(WANT_MESSAGE, now) else None

    def deliver_messages(self, data: bytes, callback: Callable[[_Arg, Data], object],
                         arg: _Arg, now: float) -> None:
        """Feed ``data``; whole messages with nothing queued before them go straight
        to ``callback(arg, message)`` (the engine's :meth:`deliver_messages`) and
        what remains to :meth:`pull_message`: for a consumer that takes every
        message as it comes, like :meth:`pull_message`'s."""
        conn = self.conn
        if self.complete or self._pieces or self._streaming or self.discard:
            conn.receive_data(data)
            return
        self.hold = False  # as pull() does: the consumer is back
        try:
            if conn.deliver_messages(data, callback, arg):
                self.last_received = now
        except Exception:
            self.last_received = now  # the callback failed on a message received
            raise

    def start_discarding(self, sent_code: int | None = None) -> None:
        """The application closes: forget queued messages, parse everything from now on."""
        if self.sent_code is None:
            self.sent_code = sent_code
        self.discard = True
        self.hold = False
        self._pieces = None
        self.complete = 0

    def begin_close(self, code: int | None, reason: str) -> None:
        """The application or the server closes: the engine starts the closing
        handshake if it is open (§7.1.2), and received data is dropped from now on.
        The adapter then pulls and writes as after new input."""
        if self.conn.state is State.OPEN:
            self.conn.close(code, reason)
        self.start_discarding(code)

    @property
    def queue_full(self) -> bool:
        """Stop reading the transport: the app is behind or the engine holds a lot."""
        return self.full_with(self.conn.buffered_bytes)

    def full_with(self, buffered: int) -> bool:
        """:attr:`queue_full`, for a caller that read ``conn.buffered_bytes`` already."""
        return self.complete >= self.max_queue or buffered > self.read_limit

    @property
    def has_message(self) -> bool:
        return self.complete > 0

    @property
    def has_piece(self) -> bool:
        return bool(self._pieces)

    @property
    def finished(self) -> bool:
        """Nothing more will ever be received."""
        return self.closed is not None and not self._pieces

    def take_message(self) -> Data:
        """Pop one whole queued message (check :attr:`has_message` first)."""
        pieces = self._pieces
        assert pieces is not None
        first = pieces.popleft()
        if first.final:
            self.complete -= 1
            return first.data
        parts: list[Any] = [first.data]
        while True:
            piece = pieces.popleft()
            parts.append(piece.data)
            if piece.final:
                break
        self.complete -= 1
        return "".join(parts) if isinstance(first, Text) else b"".join(parts)

    def put_back(self, message: Data) -> None:
        """Queue a whole message first again: it was handed to a reader that was
        cancelled before it could take it (receiving is cancel-safe)."""
        pieces = self._pieces
        if pieces is None:
            pieces = self._pieces = deque()
        pieces.appendleft(Text(message) if isinstance(message, str) else Binary(message))
        self.complete += 1

    def take_piece(self) -> Text | Binary:
        """Pop one queued piece (check :attr:`has_piece` first)."""
        pieces = self._pieces
        assert pieces is not None
        piece = pieces.popleft()
        if piece.final:
            self.complete -= 1
        return piece

    def closed_error(self) -> ConnectionClosed:
        """The exception for receiving or sending after the close."""
        conn = self.conn
        closed = self.closed
        error = None if closed is None else closed.error
        code = conn.close_code
        if code is None:
            if closed is not None:
                code = closed.code
            elif self.sent_code is not None:
                # We are closing and the reply has not come yet: report our own code.
                code = self.sent_code
            else:
                code = CloseCode.ABNORMAL_CLOSURE
        return closed_exception(code, conn.close_reason, error)

    def check_open(self) -> None:
        """Raise :class:`ConnectionClosed` unless messages can be sent."""
        if self.conn.state is not State.OPEN:
            raise self.closed_error()

    # ------------------------------------------------------------- keepalive

    def new_ping(self, now: float, waiter: W | None, payload: bytes | None = None) -> bytes:
        """Record a ping about to be sent; return its payload (random unless given)."""
        pings = self._pings
        if pings is None:
            pings = self._pings = {}
        if payload is None:
            payload = os.urandom(4)
            while payload in pings:
                payload = os.urandom(4)
        elif payload in pings:
            raise ConcurrencyError("a ping with this payload is already in flight")
        pings[payload] = (now, waiter)
        return payload

    def _pong(self, payload: bytes, now: float) -> None:
        pings = self._pings
        if pings is None or payload not in pings:
            return  # unsolicited (§5.5.3): a heartbeat, nothing to acknowledge
        # A pong acknowledges its ping and every earlier one (§5.5.3).
        for key in list(pings):
            sent, waiter = pings.pop(key)
            latency = now - sent
            if waiter is not None:
                if self.acked is None:
                    self.acked = []
                self.acked.append((waiter, latency))
            if key == payload:
                self.latency = latency
                break
        if not pings:
            self._pings = None

    def abandon_pings(self) -> list[W]:
        """The connection ended: every waiter of an unanswered ping."""
        pings = self._pings
        self._pings = None
        return [] if pings is None else [w for _, w in pings.values() if w is not None]

    def keepalive(self, now: float) -> int:
        """What keepalive requires at ``now``: KEEP, PING, PING_TIMEOUT or IDLE_TIMEOUT."""
        if self.conn.state is not State.OPEN:
            return KEEP
        timeout = self.ping_timeout
        if timeout is not None and self._pings:
            oldest = next(iter(self._pings.values()))[0]
            if now - oldest >= timeout:
                return PING_TIMEOUT
        if self.idle_timeout is not None and now - self.last_received >= self.idle_timeout:
            return IDLE_TIMEOUT
        if self.next_ping is not None and now >= self.next_ping:
            assert self.ping_interval is not None
            self.next_ping = now + self.ping_interval
            return PING
        return KEEP

    def keepalive_step(self, now: float, logger: logging.Logger) -> int:
        """Do what keepalive requires at ``now`` as far as the engine goes, and say
        what the adapter does next: KEEP, nothing; PING, a ping is queued in the
        engine: write it; PING_TIMEOUT or IDLE_TIMEOUT, logged, and the close is
        started (:meth:`begin_close`, the code per :func:`keepalive_close`): pull
        and write as after new input."""
        verdict = self.keepalive(now)
        if verdict == PING:
            self.conn.ping(self.new_ping(now, None))
        elif verdict != KEEP:
            code, reason = keepalive_close(verdict)
            logger.info("%s: closing with %d", reason, code)
            self.begin_close(code, reason)
        return verdict

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`keepalive` may answer something other than KEEP."""
        deadlines = []
        if self.next_ping is not None:
            deadlines.append(self.next_ping)
        if self.ping_timeout is not None and self._pings:
            deadlines.append(next(iter(self._pings.values()))[0] + self.ping_timeout)
        if self.idle_timeout is not None:
            deadlines.append(self.last_received + self.idle_timeout)
        return min(deadlines) if deadlines else None


def monotonic() -> float:
    return time.monotonic()


def keepalive_close(verdict: int) -> tuple[int, str]:
    """The close code and reason for a keepalive verdict."""
    if verdict == PING_TIMEOUT:
        # The peer stopped answering pings: an internal error from our side (§7.4.1).
        return CloseCode.INTERNAL_ERROR, "keepalive ping timeout"
    return CloseCode.GOING_AWAY, "idle timeout"


# ------------------------------------------------- what both connections show


class ConnectionView:
    """Read-only state both adapters' connections expose, read from the engine.

    A connection class sets ``engine`` and ``_driver`` in its own slots.
    """

    __slots__ = ()
    engine: ServerConnection | ClientConnection
    _driver: Driver[Any]

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed (§7.1.5), else None."""
        return None if self.engine.state is not State.CLOSED else self.engine.close_code

    @property
    def close_reason(self) -> str | None:
        return None if self.engine.state is not State.CLOSED else self.engine.close_reason

    @property
    def state(self) -> State:
        return self.engine.state

    @property
    def latency(self) -> float:
        """Round-trip time of the last answered ping, in seconds (0 before any)."""
        return self._driver.latency

    @property
    def subprotocol(self) -> str | None:
        return self.engine.subprotocol

    @property
    def request_headers(self) -> Headers | None:
        engine = self.engine
        if isinstance(engine, ServerConnection):
            return None if engine.request is None else engine.request.headers
        return engine.request_headers

    @property
    def response_headers(self) -> Headers | None:
        engine = self.engine
        return engine.response if isinstance(engine, ClientConnection) else None
