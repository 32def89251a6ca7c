"""The asyncio WebSocket server: ``async with serve(handler, host, port) as server``."""

from __future__ import annotations

import asyncio
import asyncio.constants as asyncio_constants
import logging
from collections.abc import Awaitable, Callable, Generator
from time import monotonic as _now
from typing import Any

from .._driver import (
    ACCEPT_RESOURCE_ERRORS,
    AcceptFailures,
    ServerOptions,
    check_callback,
    server_logger,
    split_options,
    tick_interval,
)
from ..errors import CloseCode
from ._serving import ServerProtocol, Serving, handler_tasks
from .connection import Connection, run_keepalive

__all__ = ["Server", "serve"]

Handler = Callable[[Connection], Awaitable[None]]


#: How long asyncio's selector loop waits before it retries a failed accept().
_ACCEPT_RETRY_DELAY: float = getattr(asyncio_constants, "ACCEPT_RETRY_DELAY", 1.0)


class _AcceptErrorHandler:
    """The event loop's exception handler while a :class:`Server` runs: it takes
    the loop's reports of accept() failing for lack of resources on that server's
    listening sockets, and passes every other report on to the handler it replaced.

    asyncio's selector loop already backs off (it stops polling the listening
    socket for a second), but reports each failed accept() as an ERROR with a
    traceback, and it retries the whole backlog in one go before backing off: a
    server out of descriptors logged hundreds of records a second. The server
    reports the episode once instead (:class:`AcceptFailures`). An exception
    handler rather than a filter on the ``asyncio`` logger: the loop hands it the
    exception and the socket themselves, so it matches exactly our sockets and
    the resource errors, whatever the wording of the message and the logging
    configuration, and only on this loop. uvloop needs nothing here: libuv sheds
    the connections it cannot accept (each is accepted on a descriptor held in
    reserve and closed at once) and reports nothing, so the episode is not seen.
    """

    __slots__ = ("_factory", "_failures", "_fds", "_loop", "_previous")

    def __init__(self, loop: asyncio.AbstractEventLoop, fds: frozenset[int],
                 factory: Callable[[], object], failures: AcceptFailures) -> None:
        self._loop = loop
        self._fds = fds
        self._factory = factory
        self._failures = failures
        self._previous = loop.get_exception_handler()
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        sock = context.get("socket")
        if isinstance(error, OSError) and error.errno in ACCEPT_RESOURCE_ERRORS \
                and sock is not None and sock.fileno() in self._fds:
            self._failures.failed(error, _now())
        elif isinstance(error, ValueError) and self._is_stale_retry(context.get("handle")):
            pass  # the retry has nothing left to do: the server is closed
        elif self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def _is_stale_retry(self, handle: object) -> bool:
        """A back-off retry of ours that ran after the server closed.

        asyncio does not cancel the retries it scheduled when the server closes
        (one per failed accept() of the batch), and each then fails to poll the
        closed socket with ValueError, an ERROR and a traceback. The retry is
        known by its arguments, which start with our protocol factory (an
        attribute of asyncio's handles: there is no public way to tell).
        """
        args = getattr(handle, "_args", None)
        return isinstance(args, tuple) and bool(args) and args[0] == self._factory

    def remove(self) -> None:
        """Give the loop its handler back (once closed, the listening sockets'
        descriptors may be reused: match none of them from now on), after the
        pending retries if the server closes during an episode."""
        self._fds = frozenset()
        pending = self._failures.last_failure + _ACCEPT_RETRY_DELAY + 0.5 - _now()
        if pending > 0:
            self._loop.call_later(pending, self._give_back)
        else:
            self._give_back()

    def _give_back(self) -> None:
        if self._loop.get_exception_handler() is self:
            self._loop.set_exception_handler(self._previous)
        # Else a handler set after ours runs instead, and ours, if it chained to
        # it, only passes reports on.


class Server:
    """A running WebSocket server (see :func:`serve`)."""

    def __init__(self, handler: Handler, options: ServerOptions, logger: logging.Logger,
                 protocol: Callable[[Serving], ServerProtocol] = ServerProtocol) -> None:
        self.handler = handler
        self._protocol = protocol
        self.options = options
        self.logger = logger
        self._serving = Serving(handler, options, logger)
        self._connections = self._serving.connections
        self._admission = self._serving.admission
        self.server: asyncio.Server | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._accept_failures = AcceptFailures(logger)
        self._accept_errors: _AcceptErrorHandler | None = None

    # ---------------------------------------------------------- bookkeeping

    @property
    def connections(self) -> frozenset[Connection]:
        """Connections whose handshake succeeded and that are not closed yet."""
        return frozenset(self._admission.open)

    @property
    def sockets(self) -> tuple[Any, ...]:
        return () if self.server is None else tuple(self.server.sockets)

    @property
    def port(self) -> int:
        """The TCP port of the first listening socket (handy with ``port=0``)."""
        return int(self.sockets[0].getsockname()[1])

    def _accepted(self) -> ServerProtocol:
        """The protocol factory: called for each accepted connection."""
        if self._accept_failures.failing:
            self._accept_failures.accepted(_now())
        return self._protocol(self._serving)

    def _tick(self) -> None:
        # One timer for every connection's keepalive: nothing per idle connection.
        loop = asyncio.get_running_loop()
        run_keepalive(list(self._admission.open), _now())
        interval = tick_interval(self.options)
        if interval is not None and not self._admission.closing:
            self._ticker = loop.call_later(interval, self._tick)

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str | None, port: int | None, path: str | None,
                    ssl: Any, reuse_port: bool | None, sock: Any) -> None:
        loop = asyncio.get_running_loop()
        if path is not None:
            self.server = await loop.create_unix_server(self._accepted, path,
                                                        ssl=ssl, sock=sock)
        else:
            self.server = await loop.create_server(self._accepted, host, port,
                                                   ssl=ssl, reuse_port=reuse_port, sock=sock)
        self._accept_errors = _AcceptErrorHandler(
            loop, frozenset(s.fileno() for s in self.server.sockets), self._accepted,
            self._accept_failures)
        interval = tick_interval(self.options)
        if interval is not None:
            self._ticker = loop.call_later(interval, self._tick)

    async def serve_forever(self) -> None:
        """Serve until cancelled or closed."""
        assert self.server is not None
        try:
            await self.server.serve_forever()
        except asyncio.CancelledError:
            if not self._admission.closing:
                raise

    def close(self, close_connections: bool = True) -> None:
        """Stop listening; close every connection with 1001 (§7.4.1) in the background."""
        if self._admission.closing:
            return
        self._admission.closing = True
        if self._accept_errors is not None:
            self._accept_errors.remove()
            self._accept_errors = None
        if self.server is not None:
            self.server.close()
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if close_connections:
            for conn in list(self._connections):
                conn.start_close(CloseCode.GOING_AWAY, "server shutting down")

    async def wait_closed(self) -> None:
        """Wait for every connection to close (aborting stragglers) and every handler to end."""
        timeout = self.options.close_timeout
        conns = list(self._connections)
        if conns:
            _done, pending = await asyncio.wait(
                [asyncio.ensure_future(c.wait_closed()) for c in conns], timeout=timeout)
            for conn in conns:
                conn.abort()
            for task in pending:
                task.cancel()
        tasks = handler_tasks(conns)
        if tasks:
            _, pending_tasks = await asyncio.wait(tasks, timeout=timeout)
            for handler in pending_tasks:
                handler.cancel()
        if self.server is not None:
            await self.server.wait_closed()

    async def aclose(self) -> None:
        self.close()
        await self.wait_closed()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class serve:
    """Start a WebSocket server; awaitable and an async context manager.

    ``handler(ws)`` runs for each connection; the connection closes (1000) when
    it returns, 1011 if it raises. Options: ``path`` (unix socket), ``ssl``,
    ``reuse_port``, ``sock``, ``logger``, and every field of
    :class:`rfc6455._driver.ServerOptions` (``max_size``, ``max_queue``,
    ``write_limit``, ``ping_interval``, ``ping_timeout``, ``open_timeout``,
    ``close_timeout``, ``idle_timeout``, ``compression``, ``origins`` or
    ``check_origin`` (see docs/security.rst), ``subprotocols``,
    ``extra_headers``, ``process_request``, ``max_connections``,
    ``max_connections_per_ip``...).

    ``handler`` must be a coroutine function (``async def``) or another callable
    taking the connection and returning an awaitable; a plain function, or a
    wrong signature, is refused here with :class:`TypeError`. If calling it
    raises or gives no awaitable, that is logged and the connection closes
    with 1011.

    ``process_request(ws, request)`` may return ``(status, headers, body)`` to
    answer instead of upgrading (or a coroutine giving it); it sees plain HTTP
    requests too, which get 426 when it returns None.
    """

    def __init__(self, handler: Handler, host: str | None = None, port: int | None = None,
                 *, path: str | None = None, ssl: Any = None, reuse_port: bool | None = None,
                 sock: Any = None, logger: logging.Logger | None = None,
                 **options: Any) -> None:
        self._check_handler(handler)
        self._server = Server(handler, split_options(ServerOptions, options),
                              logger or server_logger, self._protocol)
        self._args = (host, port, path, ssl, reuse_port, sock)

    #: What runs each connection: a coroutine handler here, callbacks in serve_listener.
    _protocol: Callable[[Serving], ServerProtocol] = ServerProtocol

    @staticmethod
    def _check_handler(handler: Any) -> None:
        check_callback(handler, "connection handler", 1, asynchronous=True)

    async def _start(self) -> Server:
        await self._server.start(*self._args)
        return self._server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        return await self._start()

    async def __aexit__(self, *exc: object) -> None:
        await self._server.aclose()
