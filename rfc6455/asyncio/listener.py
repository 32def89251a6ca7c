"""Callbacks instead of a coroutine per connection: ``serve_listener(factory, host, port)``.

A :class:`Listener` is told about each message as the engine delivers it, from
the event loop's read callback, with no task and no waiter in between: the
cheapest way through the adapter for small request/response traffic (an echo
round trip costs about the same CPU as a bare TCP echo), and an idle
connection holds no coroutine frame.

Everything else is the coroutine server's: the same engine, handshake checks,
limits, keepalive, admission, shutdown. The pull policy is the same too: one
message is parsed and handed over at a time, so a reply sent from
:meth:`Listener.on_message` goes out before the close that a following bad
frame causes. Replies are sent with :meth:`Connection.send_nowait`; reading
stops while the transport's write buffer is above ``write_limit``, so a peer
that sends without reading cannot make the server buffer without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic as _now
from typing import Any

from .._core import State
from .._driver import Data, check_callback
from ..errors import CloseCode
from ._serving import ServerProtocol, Serving
from .connection import Connection
from .server import serve

__all__ = ["Listener", "serve_listener"]

_OPEN = State.OPEN


class Listener:
    """Subclass and override what you need; one instance per connection."""

    def on_open(self, ws: Connection) -> None:
        """The opening handshake succeeded (``ws.request_headers`` is set)."""

    def on_message(self, ws: Connection, message: Data) -> None:
        """A whole message: ``str`` for text, ``bytes`` for binary."""

    def on_close(self, ws: Connection, code: int | None, reason: str) -> None:
        """The connection closed (``code`` as in ``ws.close_code``); called once."""


class _ListenerProtocol(ServerProtocol):
    __slots__ = ("_dispatching", "_listener")

    def __init__(self, serving: Serving) -> None:
        super().__init__(serving)
        self._listener: Listener | None = None
        self._dispatching = False

    def _start_application(self) -> None:
        factory: Callable[[], Listener] = self._serving.handler
        try:
            listener = factory()
            listener.on_open(self)
        except Exception:
            self.logger.exception("listener failed in on_open")
            # §7.4.1: 1011, the server met a condition it could not handle.
            self.start_close(CloseCode.INTERNAL_ERROR, "")
            return
        self._listener = listener
        self._progress()  # frames that came right behind the request; reading resumes

    def data_received(self, data: bytes) -> None:
        listener = self._listener
        if listener is None or self._dispatching:
            # The handshake (the listener comes once open), a failed on_open, or
            # data received from inside a callback.
            super().data_received(data)
            return
        # Whole messages go from the engine to the listener as they are parsed
        # (Driver.deliver_messages, which delivers nothing unless open); the rest
        # as in _progress.
        self._dispatching = True
        writing = not self._coalesced
        if writing:
            self._coalesced = 1  # as in _progress
        engine = self.engine
        try:
            try:
                self._driver.deliver_messages(data, listener.on_message, self, _now())
            except Exception:
                self._callback_failed("on_message")
            pending = engine.input_pending
            if pending:
                self._dispatch()  # the general way; _after_pull then sees to the rest
        finally:
            self._dispatching = False
            if writing:
                self._coalesced = 0
        if writing and not pending and engine.state is _OPEN \
                and not (self._reading_paused or self._writing_paused or self._driver.acked):
            # All input handled and nothing paused or waiting: what _after_pull
            # would do comes down to writing the replies.
            self._write_open()
            return
        self._after_pull()

    def _progress(self) -> None:
        if self.engine.state is State.CONNECTING:
            self._handshake()
            return
        if self._dispatching:
            return  # a callback sent or closed: the loop below goes on from here
        self._dispatching = True
        writing = not self._coalesced
        if writing:
            # Replies sent from the callbacks go out in one write once this input is
            # handled (or at once past the coalescing limit), behind nothing else.
            self._coalesced = 1
        try:
            self._dispatch()
        finally:
            self._dispatching = False
            if writing:
                self._coalesced = 0
        self._after_pull()  # writes them

    def _dispatch(self) -> None:
        """Hand the listener every message the engine has, then the close."""
        driver = self._driver
        listener = self._listener
        now = _now()
        while (message := driver.pull_message(now)) is not None:
            if listener is None:
                continue  # on_open failed: the connection is closing
            try:
                listener.on_message(self, message)
            except Exception:
                self._callback_failed("on_message")
        closed = driver.closed
        if closed is not None and listener is not None:
            self._listener = None  # on_close once
            try:
                listener.on_close(self, closed.code, closed.reason)
            except Exception:
                self.logger.exception("listener failed in on_close")

    def _callback_failed(self, name: str) -> None:
        self.logger.exception("listener failed in %s", name)
        if self.engine.state is State.OPEN:
            # §7.4.1: 1011, the server met a condition it could not handle.
            self.start_close(CloseCode.INTERNAL_ERROR, "")


class serve_listener(serve):
    """Start a server whose connections call a :class:`Listener` (awaitable, and an
    async context manager, like :func:`serve`).

    ``factory()`` makes one listener per connection once its handshake
    succeeded; every keyword option of :func:`serve` applies. An exception in a
    callback is logged and closes that connection with 1011.
    """

    def __init__(self, factory: Callable[[], Listener], host: str | None = None,
                 port: int | None = None, **kwargs: Any) -> None:
        super().__init__(factory, host, port, **kwargs)  # type: ignore[arg-type]

    _protocol = _ListenerProtocol

    @staticmethod
    def _check_handler(handler: Any) -> None:
        check_callback(handler, "listener factory", 0, asynchronous=False)
