"""rfc6455 as uvicorn's WebSocket protocol: ``--ws rfc6455.uvicorn:WebSocketProtocol``.

uvicorn's HTTP protocol (h11 or httptools) parses the upgrade request, then hands
the transport over: it makes this protocol, calls ``connection_made`` and feeds
it the request head again with ``data_received``. From there this module drives
the sans-I/O engine (:class:`rfc6455.ServerConnection`) directly, the way
uvicorn's own protocols drive wsproto or websockets, and speaks ASGI to the
application (the ``websocket`` scope, ``websocket.http.response`` included).

The engine does the protocol duties (pongs, the close reply, failing with 1002,
1007 or 1009) and holds the limits; this module adds what ASGI and uvicorn ask
for: the receive queue and its flow control, keepalive pings, the close timer
and the graceful shutdown (1012, as uvicorn's protocols send).

Importing this module imports uvicorn; ``import rfc6455`` never does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast
from urllib.parse import unquote

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent, WebSocketScope
from uvicorn.config import Config
from uvicorn.logging import TRACE_LOG_LEVEL
from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_local_addr,
    get_path_with_query_string,
    get_remote_addr,
    is_ssl,
)
from uvicorn.server import ServerState

from ._core import EOF, Limits, State
from .connection import ServerConnection
from .errors import CloseCode, LocalProtocolError
from .events import Binary, ConnectionClosed, HTTPRequest, Pong, Request, Text
from .extensions.base import ServerExtensionFactory
from .handshake import OriginAllowList, validate_origin_options

__all__ = ["WebSocketProtocol"]

#: Bytes of received messages queued for an application that does not receive,
#: past which the engine parses nothing more (and the transport stays paused):
#: with one message of up to ``ws_max_size`` in progress, that bounds what a peer
#: can make a busy application's connection hold.
QUEUE_BYTES = 256 * 1024

#: The fragment size for which a message of ``ws_max_size`` is allowed its fragments.
MIN_FRAGMENT = 64

_OPEN = State.OPEN
#: An ASGI message this protocol queues for receive() (an ``ASGIReceiveEvent``).
_Message = dict[str, Any]


@dataclass(frozen=True)
class _EngineOptions:
    """What every connection of one uvicorn ``Config`` shares (made once per config)."""

    limits: Limits
    extensions: tuple[ServerExtensionFactory, ...]
    max_queue: int


_options_of: weakref.WeakKeyDictionary[Config, _EngineOptions] = weakref.WeakKeyDictionary()


def _engine_options(config: Config) -> _EngineOptions:
    options = _options_of.get(config)
    if options is None:
        extensions: tuple[ServerExtensionFactory, ...] = ()
        if config.ws_per_message_deflate:
            from .extensions.permessage_deflate import ServerPerMessageDeflate

            # 12-bit windows both ways (the factory's defaults): 4 KiB of history
            # per direction instead of 32 KiB, for idle memory per connection.
            extensions = (ServerPerMessageDeflate(),)
        # uvicorn has no option for the fragments of one message: allow a message of
        # ws_max_size in 64-byte fragments (Autobahn's 9.3.1 sends 4 MiB so), at least
        # the engine's default. Each fragment costs a little memory beyond its
        # payload, so the count stays bounded.
        fragments = max(Limits().max_fragments or 0, config.ws_max_size // MIN_FRAGMENT)
        options = _EngineOptions(
            Limits(max_message_size=config.ws_max_size, max_fragments=fragments),
            extensions, max(1, config.ws_max_queue))
        _options_of[config] = options
    return options


def _size(message: _Message) -> int:
    """What a queued message counts for :data:`QUEUE_BYTES` (as :meth:`_deliver` counted it)."""
    data = message.get("text") or message.get("bytes")
    return 0 if data is None else len(data)


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection under uvicorn, from the upgrade request to the close.

    uvicorn creates it with ``(config=..., server_state=..., app_state=...)``; use it
    as ``--ws rfc6455.uvicorn:WebSocketProtocol`` or ``Config(app, ws=WebSocketProtocol)``.
    The origin policy is the class's :attr:`origins` / :attr:`check_origin`; make a
    subclass with other values with :meth:`configure`.
    """

    #: The origin policy (RFC 6455 §10.2), as :class:`rfc6455.ServerConnection` takes
    #: it: None allows requests without ``Origin`` and same-host origins (the default);
    #: a list allows exactly its origins (``None`` in it: no ``Origin``; ``"*"``: any).
    origins: ClassVar[Collection[str | None] | OriginAllowList | None] = None
    #: Replaces :attr:`origins`: ``check_origin(request)`` False refuses with 403.
    check_origin: ClassVar[Callable[[Request], bool] | None] = None

    @classmethod
    def configure(cls, *, origins: Collection[str | None] | None = None,
                  check_origin: Callable[[Request], bool] | None = None,
                  ) -> type[WebSocketProtocol]:
        """A subclass with this origin policy, for ``Config(ws=...)`` or a module-level
        name given to ``--ws``. The options are checked now (``TypeError``/``ValueError``)."""
        allowed = validate_origin_options(origins, check_origin)
        attributes: dict[str, Any] = {"origins": allowed}
        if check_origin is not None:
            attributes["check_origin"] = staticmethod(check_origin)
        return type(cls.__name__, (cls,), attributes)

    def __init__(self, config: Config, server_state: ServerState,
                 app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_running_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.default_headers = server_state.default_headers
        options = _engine_options(config)
        policy = type(self)
        self.engine = ServerConnection(
            origins=policy.origins, check_origin=policy.check_origin,
            extensions=options.extensions, limits=options.limits)
        self._max_queue = options.max_queue

        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int | None] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme: Literal["ws", "wss"] = "ws"
        self.scope: WebSocketScope = None  # type: ignore[assignment]

        # The ASGI receive side: messages the application has not taken yet, their
        # size, and the future of a receive() waiting for one.
        self._messages: deque[_Message] = deque()
        self._queued_bytes = 0
        self._receiver: asyncio.Future[_Message] | None = None
        # The websocket.disconnect message once queued: receive() returns it again
        # after it was taken (the connection is over, nothing else can come).
        self._disconnect: _Message | None = None

        # The opening handshake: answered with 101 (accepted), or with a denial
        # (websocket.http.response.*, whose status and headers wait for the body).
        self.handshake_complete = False
        self.accepted = False
        self._denial: tuple[int, list[tuple[str, str]], bytearray] | None = None
        # The application sent websocket.close: what it sends next is its error.
        self._app_closed = False
        # Received messages are dropped from now on (we sent a close, §7.1.2).
        self._discarding = False
        # A message was handed to the application: parse nothing more until it is
        # back for the next (receive()) or has had its turn (_resume). The bytes
        # behind a message are then parsed only after the application could answer
        # it: an echo goes out before the close that a bad frame behind it causes
        # (what Autobahn calls strict), and pings are still answered within a turn
        # of the loop while the application is busy.
        self._hold = False
        self._resume_scheduled = False

        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._lost = False
        self._writelines: Callable[[list[bytes]], object] | None = None

        #: Seconds to wait for the peer's close reply (uvicorn's protocols: 10).
        self.close_timeout = 10.0
        #: Armed while we wait for the peer's close reply (§7.1.1).
        self.close_timer: asyncio.TimerHandle | None = None
        # Armed once the transport is closed: a peer that never reads would keep
        # our last bytes, and the transport, in the write buffer for ever.
        self._abort_timer: asyncio.TimerHandle | None = None

        # Keepalive (uvicorn's ws_ping_interval / ws_ping_timeout).
        self.ping_interval = config.ws_ping_interval
        self.ping_timeout = config.ws_ping_timeout
        self.ping_timer: asyncio.TimerHandle | None = None
        self.pong_timer: asyncio.TimerHandle | None = None
        self.ping_sent_at = 0.0
        self.last_ping_rtt = 0.0
        self._ping_payload: bytes | None = None

    # ------------------------------------------------------ protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._writelines = getattr(transport, "writelines", None)
        self.connections.add(self)  # type: ignore[arg-type]
        self.server = get_local_addr(self.transport)
        self.client = get_remote_addr(self.transport)
        self.scheme = "wss" if is_ssl(self.transport) else "ws"
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection made", self._prefix())

    def data_received(self, data: bytes) -> None:
        self.engine.receive_data(data)
        self._pull()

    def eof_received(self) -> bool:
        self.engine.receive_eof()
        self._pull()
        return False  # the transport closes: nothing more can be received

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._stop_keepalive()
        for timer in (self.close_timer, self._abort_timer):
            if timer is not None:
                timer.cancel()
        self.close_timer = self._abort_timer = None
        self.connections.discard(self)
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket connection lost", self._prefix())
        # §7.1.5: the connection ended without a closing handshake: 1006.
        self._queue_disconnect({"type": "websocket.disconnect",
                                "code": CloseCode.ABNORMAL_CLOSURE})
        self.handshake_complete = True
        self._wake_drain()

    def pause_writing(self) -> None:
        self._writing_paused = True
        # A peer that sends without reading would make us queue pongs and close
        # replies without end: read nothing until it reads what we wrote.
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain()
        self._flush()
        self._update_reading()

    def _wake_drain(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -------------------------------------------------------- engine driving

    def _pull(self) -> None:
        """Take the engine's events, within the receive queue's bounds; write; update reads."""
        engine = self.engine
        while not self._hold and (self._discarding or (len(self._messages) < self._max_queue
                                                       and self._queued_bytes < QUEUE_BYTES)):
            event = engine.next_event()
            if event is None:
                break
            cls = type(event)
            if cls is Text:
                if not self._discarding:
                    text = event.data  # type: ignore[union-attr]
                    self._deliver({"type": "websocket.receive", "text": text}, len(text))
                    self._hold = True
            elif cls is Binary:
                if not self._discarding:
                    data = event.data  # type: ignore[union-attr]
                    self._deliver({"type": "websocket.receive", "bytes": data}, len(data))
                    self._hold = True
            elif cls is Pong:
                self._pong(event.payload)  # type: ignore[union-attr]
            elif cls is ConnectionClosed:
                self._closed(event)  # type: ignore[arg-type]
            elif cls is Request:
                self._request(event)  # type: ignore[arg-type]
            elif cls is HTTPRequest:
                # uvicorn hands over only requests with "Upgrade: websocket".
                engine.reject(400, [("content-type", "text/plain; charset=utf-8")],
                              b"Bad Request: not a WebSocket upgrade.\n")
            # Ping: the engine queued the pong itself (§5.5.2).
        if self._hold and not self._resume_scheduled and engine.input_pending \
                and not self._lost:
            # The application's task was woken first: it runs, then this.
            self._resume_scheduled = True
            self.loop.call_soon(self._resume)
        self._flush()
        self._update_reading()

    def _resume(self) -> None:
        self._resume_scheduled = False
        if self._hold:
            self._hold = False
            self._pull()

    def _flush(self, force: bool = False) -> None:
        """Write what the engine has to send; close the transport when it says EOF.

        While the transport is over its write limit and the connection open, what
        the engine produced on its own (pongs) stays in the engine, which replaces
        an unsent pong by a newer one (§5.5.3): a peer that does not read cannot
        grow our output. ``force`` writes anyway (the application's sends, which
        wait for the buffer to drain first; pings; closes).
        """
        engine = self.engine
        if not engine.has_data_to_send:
            return
        if self._writing_paused and not force and engine.state is _OPEN:
            return
        parts = engine.data_to_send_parts()
        transport = self.transport
        if parts is EOF:
            self._close_transport()
            return
        assert isinstance(parts, list)
        if transport.is_closing():
            return
        if len(parts) == 1:
            transport.write(parts[0])
        elif self._writelines is not None:
            self._writelines(parts)  # a large payload is its own part: not copied
        else:
            transport.write(b"".join(parts))
        if engine.has_data_to_send:  # EOF right behind the bytes (a failure, a reply)
            self._flush(force)

    def _update_reading(self) -> None:
        """Pause reading while the application has messages to take (parsing stops at
        the queue's bounds, so the engine then holds at most what came in one read),
        or while the peer does not read what we write."""
        if self._lost or self.transport.is_closing():
            return
        state = self.engine.state
        if state is State.CONNECTING:
            # Nothing may come before the answer to the request (resumed by accept).
            pause = self.handshake_complete is False and self.engine.request is not None
        elif self._discarding:
            pause = False  # the peer's close reply must get through
        else:
            pause = bool(self._messages) or (self._writing_paused and state is _OPEN)
        if pause and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        elif not pause and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    def _close_transport(self) -> None:
        transport = self.transport
        if self._lost:
            return
        if not transport.is_closing():
            transport.close()
        if self._abort_timer is None:
            # close() first writes what is buffered: bound how long a peer that does
            # not read can make that take.
            self._abort_timer = self.loop.call_later(self.close_timeout, self._abort)

    def _abort(self) -> None:
        self._abort_timer = None
        if not self._lost:
            abort = getattr(self.transport, "abort", None)
            if abort is not None:
                abort()

    # --------------------------------------------------------------- events

    def _request(self, request: Request) -> None:
        raw_path, _, query = request.target.partition("?")
        root_path = self.config.root_path
        self.scope = {
            "type": "websocket",
            "asgi": {"version": self.config.asgi_version, "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": self.scheme,
            "server": self.server,
            "client": self.client,
            "root_path": root_path,
            "path": root_path + unquote(raw_path),
            "raw_path": (root_path + raw_path).encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": [(name.encode("latin-1"), value.encode("latin-1"))
                        for name, value in request.headers],
            "subprotocols": list(request.subprotocols),
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}},
        }
        self._deliver({"type": "websocket.connect"}, 0)
        task = self.loop.create_task(self.run_asgi())
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _deliver(self, message: _Message, size: int) -> None:
        receiver = self._receiver
        if receiver is not None and not receiver.done() and not self._messages:
            self._receiver = None
            receiver.set_result(message)
            return
        self._messages.append(message)
        self._queued_bytes += size

    def _queue_disconnect(self, message: _Message) -> None:
        if self._disconnect is None:
            self._disconnect = message
            self._deliver(message, 0)

    def _closed(self, event: ConnectionClosed) -> None:
        if self.close_timer is not None:
            # Our close was answered: the closing handshake is complete (§7.1.1).
            self.close_timer.cancel()
            self.close_timer = None
        self._stop_keepalive()
        if event.error is not None and self.engine.request is None:
            # A bad request, already answered with an HTTP error by the engine.
            self.logger.info("Invalid WebSocket upgrade request: %s", event.error)
            self.handshake_complete = True
            return
        message: dict[str, Any] = {"type": "websocket.disconnect", "code": event.code}
        if event.code != CloseCode.ABNORMAL_CLOSURE:
            message["reason"] = event.reason
        self._queue_disconnect(message)

    # ------------------------------------------------------------- keepalive

    def _start_keepalive(self) -> None:
        if self.ping_interval is not None and self.ping_interval > 0:
            self._schedule_ping()

    def _stop_keepalive(self) -> None:
        for timer in (self.ping_timer, self.pong_timer):
            if timer is not None:
                timer.cancel()
        self.ping_timer = self.pong_timer = None
        self._ping_payload = None

    def _schedule_ping(self) -> None:
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)
        self.ping_timer = self.loop.call_later(delay, self._send_ping)

    def _send_ping(self) -> None:
        self.ping_timer = None
        if self.engine.state is not _OPEN or self._lost:
            return
        # A fresh payload per ping: a pong answers it only if it echoes it (§5.5.3).
        self._ping_payload = os.urandom(4)
        self.ping_sent_at = self.loop.time()
        self.engine.ping(self._ping_payload)
        self._flush(force=True)
        if self.ping_timeout is not None:
            self.pong_timer = self.loop.call_later(self.ping_timeout, self._ping_timed_out)
        else:
            self._schedule_ping()

    def _pong(self, payload: bytes) -> None:
        if self._ping_payload is None or payload != self._ping_payload:
            return  # unsolicited (§5.5.3) or stale: nothing to acknowledge
        self._ping_payload = None
        self.last_ping_rtt = self.loop.time() - self.ping_sent_at
        if self.pong_timer is not None:
            self.pong_timer.cancel()
            self.pong_timer = None
            self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self.pong_timer = None
        if self.engine.state is not _OPEN or self._lost:
            self._ping_payload = None
            return
        if self._reading_paused and not self._writing_paused and self._messages:
            # Reading stopped because the application is behind, not the peer: its
            # pong may well be among the bytes not read yet. Wait once more.
            assert self.ping_timeout is not None
            self.pong_timer = self.loop.call_later(self.ping_timeout, self._ping_timed_out)
            return
        self._ping_payload = None
        if self.logger.level <= TRACE_LOG_LEVEL:
            self.logger.log(TRACE_LOG_LEVEL, "%sWebSocket keepalive ping timeout",
                            self._prefix())
        # §7.4.1: 1011, a condition the server could not handle; the peer stopped
        # answering, so do not wait for its close reply either.
        reason = "keepalive ping timeout"
        self._queue_disconnect({
            "type": "websocket.disconnect", "code": CloseCode.INTERNAL_ERROR,
            "reason": reason})
        self.engine.close(CloseCode.INTERNAL_ERROR, reason)
        self._flush(force=True)
        self._close_transport()

    # -------------------------------------------------------------- shutdown

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: 1012 (service restart) to an open connection,
        then the usual wait for the reply; 500 to a request not answered yet."""
        self._stop_keepalive()
        engine = self.engine
        if self.close_timer is not None or engine.state is not _OPEN:
            # Our close is already out (or the connection is over): stop waiting.
            if self.close_timer is not None:
                self.close_timer.cancel()
                self.close_timer = None
            if engine.state is State.CONNECTING:
                self._send_500_response()
            self._close_transport()
            return
        self._queue_disconnect({
            "type": "websocket.disconnect", "code": CloseCode.SERVICE_RESTART})
        self._start_close(CloseCode.SERVICE_RESTART, "")

    def _start_close(self, code: int, reason: str) -> None:
        """Send our close (§7.1.2), read on for the reply, at most ``close_timeout``."""
        self.engine.close(code, reason)
        self._discarding = True
        self._hold = False
        self._flush(force=True)
        if self.engine.state is State.CLOSING and not self._lost and self.close_timer is None:
            self.close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)
        self._pull()

    def _close_timed_out(self) -> None:
        self.close_timer = None
        self._close_transport()

    def _send_500_response(self) -> None:
        if self.handshake_complete or self.engine.state is not State.CONNECTING \
                or self.engine.request is None:
            return
        self.handshake_complete = True
        self.engine.reject(500, [("content-type", "text/plain; charset=utf-8")],
                           b"Internal Server Error")
        self._flush(force=True)

    # ------------------------------------------------------------------ ASGI

    async def run_asgi(self) -> None:
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            self.logger.exception("Exception in ASGI application\n")
            self._send_500_response()
        else:
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self._send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.",
                                  result)
        if self._denial is not None and not self._lost:
            # The application ended in the middle of its denial: nothing of it went
            # out yet (the engine sends a response whole), so send what it gave.
            self._send_denial()
        if self.close_timer is None:
            # As uvicorn's protocols: an application that returns without a
            # websocket.close ends the connection without a closing handshake.
            self._close_transport()

    async def receive(self) -> ASGIReceiveEvent:
        messages = self._messages
        self._hold = False  # the application is back for more (see _pull)
        if not messages and self.engine.input_pending:
            self._pull()
        if messages:
            message = messages.popleft()
            self._queued_bytes -= _size(message)
            if not messages:
                self._update_reading()
            return cast(ASGIReceiveEvent, message)
        if self._disconnect is not None:
            # Taken already: the connection is over, nothing else will come.
            return cast(ASGIReceiveEvent, self._disconnect)
        if self._receiver is not None and not self._receiver.done():
            raise RuntimeError("receive() is already waiting on this WebSocket")
        receiver = self.loop.create_future()
        self._receiver = receiver
        try:
            return cast(ASGIReceiveEvent, await receiver)
        except asyncio.CancelledError:
            if receiver.done() and not receiver.cancelled():
                # Handed over, but the task was cancelled before it could run:
                # keep the message for the next receive().
                message = receiver.result()
                messages.appendleft(message)
                self._queued_bytes += _size(message)
            raise
        finally:
            if self._receiver is receiver:
                self._receiver = None

    async def send(self, message: ASGISendEvent) -> None:
        while self._writing_paused and not self._lost:
            waiter: asyncio.Future[None] = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        if self._lost:
            raise ClientDisconnected()
        kind = message["type"]
        if not self.handshake_complete:
            self._handshake_message(kind, message)
        elif self._denial is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError("Expected ASGI message 'websocket.http.response.body' "
                                   f"but got '{kind}'.")
            self._denial_body(message)
        elif self._app_closed:
            raise RuntimeError(f"Unexpected ASGI message '{kind}', after sending "
                               "'websocket.close'.")
        elif not self.accepted or self.engine.state is not _OPEN:
            # The peer closed, the connection failed, or we shut it down.
            raise ClientDisconnected()
        elif kind == "websocket.send":
            data = message.get("bytes")
            if data is None:
                data = message.get("text")
            if data is None:
                raise RuntimeError("websocket.send needs 'bytes' or 'text'")
            self.engine.send(data)  # type: ignore[arg-type]
            self._flush(force=True)
        elif kind == "websocket.close":
            code: int | None = message.get("code")  # type: ignore[assignment]
            if code is None:
                code = CloseCode.NORMAL_CLOSURE
            reason = str(message.get("reason") or "")
            try:
                self.engine.close(code, reason)
            except LocalProtocolError as exc:
                raise RuntimeError(f"Invalid websocket.close: {exc}") from None
            self._app_closed = True
            self._queue_disconnect({
                "type": "websocket.disconnect", "code": code, "reason": reason})
            self._start_close(code, reason)
        else:
            raise RuntimeError("Expected ASGI message 'websocket.send' or 'websocket.close', "
                               f"but got '{kind}'.")

    def _handshake_message(self, kind: str, message: Any) -> None:
        engine = self.engine
        if kind == "websocket.accept":
            self._log_request("[accepted]")
            headers = [(name.decode("latin-1"), value.decode("latin-1"))
                       for name, value in [*self.default_headers, *message.get("headers", ())]]
            try:
                engine.accept(message.get("subprotocol"), headers)
            except LocalProtocolError as exc:
                raise RuntimeError(f"Cannot accept the WebSocket: {exc}") from None
            self.handshake_complete = self.accepted = True
            self._flush(force=True)
            self._start_keepalive()
            self._pull()  # frames that came right behind the request; resumes reading
        elif kind == "websocket.close":
            # ASGI: a close before the accept refuses the connection with 403.
            self._log_request("403")
            self.handshake_complete = True
            self._queue_disconnect({"type": "websocket.disconnect",
                                    "code": CloseCode.ABNORMAL_CLOSURE})
            engine.reject(403)
            self._flush(force=True)
        elif kind == "websocket.http.response.start":
            status = message["status"]
            if not 100 <= status < 600:
                raise RuntimeError(f"Invalid HTTP status code '{status}' in response.")
            if status < 200 or status == 101:
                raise RuntimeError(f"Cannot deny the WebSocket with HTTP {status}.")
            self._log_request(str(status))
            headers = [(name.decode("latin-1"), value.decode("latin-1"))
                       for name, value in message.get("headers", ())]
            self._denial = (status, headers, bytearray())
            self.handshake_complete = True
        else:
            raise RuntimeError("Expected ASGI message 'websocket.accept', 'websocket.close' "
                               f"or 'websocket.http.response.start' but got '{kind}'.")

    def _denial_body(self, message: Any) -> None:
        assert self._denial is not None
        body = self._denial[2]
        body += message.get("body", b"")
        if not message.get("more_body", False):
            self._send_denial()

    def _send_denial(self) -> None:
        assert self._denial is not None
        status, headers, body = self._denial
        self._denial = None
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("content-type", "text/plain; charset=utf-8"))
        self._queue_disconnect({"type": "websocket.disconnect",
                                "code": CloseCode.ABNORMAL_CLOSURE})
        try:
            self.engine.respond(status, [*self._default_headers(), *headers], bytes(body))
        except LocalProtocolError as exc:
            raise RuntimeError(f"Cannot send this response: {exc}") from None
        self._flush(force=True)

    def _default_headers(self) -> list[tuple[str, str]]:
        return [(name.decode("latin-1"), value.decode("latin-1"))
                for name, value in self.default_headers]

    def _prefix(self) -> str:
        return f"{self.client[0]}:{self.client[1]} - " if self.client else ""

    def _log_request(self, outcome: str) -> None:
        self.logger.info('%s - "WebSocket %s" %s', get_client_addr(self.scope),
                         get_path_with_query_string(self.scope), outcome)
