"""The server side of one asyncio connection, and what it sees of its server.

:class:`ServerProtocol` runs the opening handshake, then the handler (or, in
``listener.py``, the listener); :class:`Serving` is the state of a server that
its connections share: the handler, the options, admission and the set of
connections. :class:`rfc6455.asyncio.Server` owns one and runs the rest
(listening, the keepalive ticker, shutting down).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .._core import State
from .._driver import (
    Admission,
    ServerOptions,
    answer_request,
    handler_close_code,
    http_linger,
    internal_error_response,
    ip_of,
)
from ..connection import ServerConnection
from ..errors import CloseCode
from ..events import ConnectionClosed as ClosedEvent
from ..events import HTTPRequest, Request
from .connection import Connection

__all__ = ["Response", "ServerProtocol", "Serving", "handler_tasks"]

Response = tuple[int, Any, bytes]


class Serving:
    """What a server's connections share and see of it."""

    __slots__ = ("admission", "connections", "context", "handler", "logger", "options")

    def __init__(self, handler: Callable[..., Any], options: ServerOptions,
                 logger: logging.Logger) -> None:
        #: The connection handler (a listener factory for ``serve_listener``).
        self.handler = handler
        self.options = options
        self.logger = logger
        #: Every connection made and not lost yet, open or not.
        self.connections: set[ServerProtocol] = set()
        self.admission = Admission(options, logger)
        #: The context the handlers' ends run in: the server's, not a copy per
        #: connection (64 bytes each).
        self.context = contextvars.copy_context()


class ServerProtocol(Connection):
    """Server side of one connection: the opening handshake, then the handler."""

    __slots__ = ("_handler_task", "_ip", "_open_timer", "_serving")

    _reads_follow_writes = True  # (why: see connection._Transport)

    def __init__(self, serving: Serving) -> None:
        options = serving.options
        super().__init__(options.new_engine(), options, serving.logger)
        self._serving = serving
        self._open_timer: asyncio.TimerHandle | None = None
        self._handler_task: asyncio.Future[None] | None = None
        # The address admitted, released as it was counted: a closed TLS
        # transport no longer knows its peer.
        self._ip: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._serving.connections.add(self)
        timeout = self._options.open_timeout
        if timeout is not None:
            # Bounds a client that sends its request slowly (slowloris).
            self._open_timer = self._loop.call_later(timeout, self._open_timeout)

    def _open_timeout(self) -> None:
        self._open_timer = None
        if self.engine.state is State.CONNECTING and self.transport is not None:
            self.logger.info("opening handshake timed out from %s", self.remote_address)
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        super().connection_lost(exc)
        self._serving.connections.discard(self)
        self._serving.admission.forget(self, self._ip)

    @property
    def _engine(self) -> ServerConnection:
        engine = self.engine
        assert isinstance(engine, ServerConnection)
        return engine

    def _handshake(self) -> None:
        engine = self._engine
        event = engine.next_event()
        if event is None:
            self._flush()
            return
        if isinstance(event, ClosedEvent):
            # The engine already answered the bad request with an HTTP error (§4.2.1).
            self._flush_answer()
            return
        assert isinstance(event, (Request, HTTPRequest))
        # Stop reading until the request is answered: nothing else may come first.
        if self.transport is not None:
            self.transport.pause_reading()
            self._reading_paused = True
        response = self._serving.admission.check(self, ip_of(self.remote_address), event)
        if inspect.isawaitable(response):
            self._handler_task = self._loop.create_task(self._answer_later(event, response))
        else:
            self._answer(event, response)

    async def _answer_later(self, event: Request | HTTPRequest,
                            response: Awaitable[Response | None]) -> None:
        try:
            result = await response
        except Exception:
            self.logger.exception("error in process_request")
            result = internal_error_response()
        self._handler_task = None
        self._answer(event, result)

    def _answer(self, event: Request | HTTPRequest, response: Response | None) -> None:
        engine = self._engine
        if self._lost or engine.state is not State.CONNECTING:
            return
        if not answer_request(engine, event, response, self._serving.options):
            self._flush_answer()
            if self._reading_paused and self.transport is not None:
                # Read on, to see the client close its side after the response.
                self._reading_paused = False
                self.transport.resume_reading()
            return
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        # The address admitted, released as it was counted (connection_lost).
        self._ip = ip_of(self.remote_address)
        self._serving.admission.opened(self, self._ip)
        self._flush()
        self._start_application()

    def _flush_answer(self) -> None:
        """Write an HTTP answer and our FIN, then wait for the client's close at
        most ``http_linger(close_timeout)`` (RFC 9112 §9.6, the lingering close).

        The close timeout bounds a closing handshake; an answer has none to wait
        for, and a client that never closes would otherwise hold a descriptor per
        refusal for the whole close timeout, enough to run the server out of them
        past its connection cap. The timer armed here is the one _flush would arm.
        """
        if self._close_timer is None and not self._lost:
            self._close_timer = self._loop.call_later(
                http_linger(self._options.close_timeout), self._abort)
        self._flush()

    def _start_application(self) -> None:
        # The handler runs as a task of its own coroutine, and its end is handled by
        # a callback rather than a wrapping coroutine: one frame less per
        # connection while it waits (idle memory, GitHub issue #7).
        serving = self._serving
        try:
            task = asyncio.ensure_future(serving.handler(self))
        except Exception as exc:
            # The handler raised before its first await, or returned no awaitable
            # (not a coroutine function): serve() refuses what it can tell early.
            self.logger.error("connection handler %r could not start: %s: %s",
                              serving.handler, type(exc).__name__, exc)
            # §7.4.1: 1011, the server met a condition it could not handle.
            self.start_close(CloseCode.INTERNAL_ERROR, "")
            return
        # The server's context rather than a copy per connection (64 bytes each):
        # _handler_done reads no context variable.
        task.add_done_callback(self._handler_done, context=serving.context)
        self._handler_task = task
        self._hold_for_first_recv()  # bytes that came after the request, then resume reading

    def _handler_done(self, task: asyncio.Future[None]) -> None:
        # The task is done: holding it would keep its exception, whose traceback
        # holds the handler's frame, which holds this connection: a cycle that
        # only the cycle collector frees, with the transport and its buffers.
        self._handler_task = None
        if task.cancelled():
            return  # the server is shutting down; it closes the connection itself
        code = handler_close_code(task.exception(), self.logger)
        if code is not None:
            self.start_close(code, "")


def handler_tasks(connections: Iterable[ServerProtocol]) -> list[asyncio.Future[None]]:
    """The handlers of ``connections`` still running (or their process_request hook)."""
    return [conn._handler_task for conn in connections if conn._handler_task is not None]
