"""One WebSocket connection over asyncio: an :class:`asyncio.Protocol` around the engine.

The protocol (``_Transport``) moves bytes, runs timers and wakes waiters;
:class:`Connection` adds what the application calls. The engine decides
everything about the protocol and :class:`rfc6455._driver.Driver` holds the
queue, pull policy and keepalive bookkeeping shared with the blocking adapter.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Collection,
    Generator,
    Iterable,
)
from time import monotonic as _now
from typing import TYPE_CHECKING, Any

from .._core import State
from .._driver import (
    KEEP,
    PING,
    WANT_MESSAGE,
    WANT_NOTHING,
    WANT_PIECE,
    CommonOptions,
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedOK,
    ConnectionView,
    Data,
    Driver,
    Fragments,
)
from .._mask import ACCELERATED
from ..connection import ClientConnection, ServerConnection
from ..errors import CloseCode, LocalProtocolError

__all__ = ["Connection"]


async def _ready(message: Data) -> Data:
    return message


async def _failed(error: BaseException) -> Data:
    try:
        raise error
    finally:
        del error  # no cycle through the traceback's frame (see _MessageWait.throw)


class _PythonFutureWait(Generator[Any, None, Data]):
    """Awaiting it awaits ``future`` the way asyncio's Future.__await__ does, and
    its value is the future's result (``_speedups.FutureWait`` in C)."""

    __slots__ = ("_driver", "_future")

    def __init__(self, driver: Driver[Any], future: asyncio.Future[Data]) -> None:
        self._driver = driver
        self._future = future

    def __await__(self) -> _PythonFutureWait:
        return self  # an iterator with send/throw/close: what ``await`` drives

    def __next__(self) -> asyncio.Future[Data]:
        future = self._future
        if not future.done():
            future._asyncio_future_blocking = True  # what Future.__await__ sets for the task
            return future
        raise StopIteration(future.result())  # or the close, as an exception

    def send(self, value: object) -> asyncio.Future[Data]:
        return self.__next__()


# In C, a message costs no Python frame here: a coroutine echo round trip made
# four calls to the Python one (__init__, __await__, two __next__).
if TYPE_CHECKING or not ACCELERATED:
    _FutureWait = _PythonFutureWait
else:  # pragma: no cover - depends on the build
    from .._speedups import FutureWait as _FutureWait  # type: ignore[no-redef, unused-ignore]


def _thrown(typ: Any, val: Any, tb: Any) -> BaseException:
    """What generator.throw(typ, val, tb) raises."""
    if not isinstance(val, BaseException):
        if isinstance(typ, BaseException):
            val = typ
        else:
            val = typ() if val is None else typ(*val) if isinstance(val, tuple) else typ(val)
    return val.with_traceback(tb) if tb is not None else val  # type: ignore[no-any-return]


class _MessageWait(_FutureWait, Generator[Any, None, Data]):
    """What a reader awaits while no message is there: the future that
    :meth:`_Transport._progress` resolves with the message, awaited the way a
    future is, plus cancel safety.

    ``_progress`` takes the message from the queue as it resolves the future;
    if the reader's task is cancelled before it runs, the cancellation is thrown
    in here, and the message goes back to the front of the queue for the next
    reader. Not a coroutine: an idle ``async for`` holds this object and the
    future, not a coroutine frame (idle memory, GitHub issue #7).
    """

    __slots__ = ()

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> asyncio.Future[Data]:
        # throw(exception) or the older throw(type, value, traceback), as generators.
        self._abandon()
        try:
            raise _thrown(typ, val, tb)
        finally:
            # The traceback keeps this frame, and the frame its locals: this object,
            # its future and the exception would make a cycle (exception ->
            # traceback -> frame -> exception) that only the cycle collector frees,
            # with the reader's frames, its connection and the transport behind it
            # (256 KiB of TLS buffers each).
            del self, typ, val, tb

    def close(self) -> None:
        self._abandon()

    def _abandon(self) -> None:
        """The reader is gone: keep what was handed to it, stop what was not."""
        future = self._future
        if not future.done():
            future.cancel()  # so that _progress hands this future nothing
        elif not future.cancelled() and future.exception() is None:
            self._driver.put_back(future.result())

_OPEN = State.OPEN
#: Added to ``_recv_want`` (WANT_MESSAGE) when the waiting reader is ``async for``:
#: a normal close then ends the iteration instead of raising.
_ITERATING = 8
#: How long parsing waits for the application's first recv() after the handshake.
_FIRST_HOLD = 0.05
#: Sends made while more input waits are written together at the end of the loop
#: iteration, up to this many bytes (then at once): one write per batch of
#: pipelined messages instead of one system call each.
_COALESCE_LIMIT = 65536


class _Transport(ConnectionView, asyncio.Protocol):
    """The transport's half of a connection: an :class:`asyncio.Protocol` that feeds
    the engine, writes what it has to send, runs the timers and wakes waiters.
    :class:`Connection` adds what the application calls."""

    __slots__ = (
        "_close_timer",
        "_coalesced",
        "_drain_waiters",
        "_driver",
        "_eof_received",
        "_loop",
        "_lost",
        "_lost_waiter",
        "_options",
        "_parts_lock",
        "_reading_paused",
        "_recv_waiter",
        "_recv_want",
        "_resume_scheduled",
        "_writing_paused",
        "engine",
        "logger",
        "transport",
    )

    #: Stop reading while the transport's write buffer is over ``write_limit``,
    #: whatever the frames read (§5.5.3 lets pongs wait; data would pile up in
    #: replies): a peer that sends without reading then holds the server to about
    #: ``write_limit`` of output. True for servers; a client keeps reading. If both
    #: peers stopped reading while their writes are backed up (bulk echo both ways),
    #: neither would drain the other: they would deadlock. Our client reads on, so a
    #: server that stops is safe.
    _reads_follow_writes = False

    def __init__(self, engine: ServerConnection | ClientConnection, options: CommonOptions,
                 logger: logging.Logger) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine = engine
        self._options = options
        self.logger = logger
        self._driver: Driver[asyncio.Future[float]] = Driver(engine, options, _now())
        self.transport: asyncio.Transport | None = None
        self._recv_waiter: asyncio.Future[Any] | None = None
        self._recv_want = WANT_NOTHING
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._parts_lock: asyncio.Lock | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._resume_scheduled = False
        self._eof_received = False
        self._lost = False
        # 0: output is written as it is produced; else 1 + the bytes sent since a
        # write was scheduled for the end of this loop iteration.
        self._coalesced = 0

    # ------------------------------------------------------ protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = transport  # type: ignore[assignment]
        options = self._options
        transport.set_write_buffer_limits(  # type: ignore[attr-defined]
            options.write_limit, options.low_water)
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.engine.receive_data(data)
        self._progress()

    def eof_received(self) -> bool:
        self._eof_received = True
        self.engine.receive_eof()
        self._progress()
        transport = self.transport
        if transport is None:
            return False
        if self.engine.state is State.CLOSED and not transport.is_closing():
            # Nothing more can be exchanged: the peer already ended its side. (Once
            # only: asyncio's TLS transport drops its state on a second close().)
            transport.close()
        # Keep the transport half open while frames are still to be parsed. A TLS
        # transport cannot be half open (it cannot write_eof either): it closes
        # after the peer's close_notify, and would warn about True.
        return transport.can_write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if not self._eof_received:
            self._eof_received = True
            self.engine.receive_eof()
        self._progress()
        for waiter in self._driver.abandon_pings():
            if not waiter.done():
                waiter.set_exception(self._driver.closed_error())
        self._wake_drain()
        if self._lost_waiter is not None and not self._lost_waiter.done():
            self._lost_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._reads_follow_writes and not self._reading_paused \
                and self.engine.state is _OPEN and not self._lost:
            # (Server side: see _reads_follow_writes.) _after_pull keeps it so.
            transport = self.transport
            if transport is not None:
                self._reading_paused = True
                transport.pause_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_drain()
        if self.engine.state is not State.CONNECTING:  # (the server holds reads there)
            # Write what the engine kept while the buffer was full, read again.
            self._after_pull()

    def _wake_drain(self) -> None:
        waiters = self._drain_waiters
        if waiters:
            self._drain_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -------------------------------------------------------- engine driving

    def _progress(self) -> None:
        """New input or a resume: pull per the policy, then write and wake."""
        if self.engine.state is State.CONNECTING:
            self._handshake()
            return
        driver = self._driver
        waiter = self._recv_waiter
        if waiter is not None and waiter.done():
            self._recv_waiter = waiter = None  # cancelled by its reader: nobody to hand to
        if waiter is None:
            driver.pull(WANT_NOTHING, _now())
        elif (want := self._recv_want) == WANT_PIECE:
            if driver.pull(WANT_PIECE, _now()) or driver.closed is not None:
                self._recv_waiter = None
                waiter.set_result(None)  # _recv_piece takes it
        else:
            # A reader waits for a whole message: it gets the first one parsed,
            # without the queue when nothing is queued before it, and then parsing
            # holds until it is back (the pull policy, Driver.pull).
            message = driver.pull_message(_now())
            if message is not None:
                driver.hold = True
                self._recv_waiter = None
                waiter.set_result(message)
            elif driver.closed is not None:
                self._recv_waiter = None
                waiter.set_exception(self._end_of_messages(want))
        self._after_pull()

    def _handshake(self) -> None:  # pragma: no cover - overridden per role
        raise NotImplementedError

    def _after_pull(self) -> None:
        driver = self._driver
        acked = driver.acked
        if acked:
            driver.acked = None
            for waiter, latency in acked:
                if not waiter.done():
                    waiter.set_result(latency)
        engine = self.engine
        if not self._coalesced and engine.has_data_to_send \
                and not (self._writing_paused and engine.state is _OPEN):
            # (While the transport is over its write limit and the connection open,
            # what the engine produced itself, pongs, stays in the engine, which then
            # lets a new pong replace an unsent one, §5.5.3; resume_writing writes
            # it. Closing frames go out at once and arm the close timer.)
            self._flush()
        buffered = engine.buffered_bytes  # read once: both tests below need it
        transport = self.transport
        if transport is not None and not self._lost:
            if (driver.full_with(buffered)
                    or (self._writing_paused and self._reads_follow_writes
                        and engine.state is _OPEN)) \
                    and driver.closed is None:
                if not self._reading_paused:
                    self._reading_paused = True
                    transport.pause_reading()
            elif self._reading_paused:
                self._reading_paused = False
                transport.resume_reading()
        if driver.hold and not self._resume_scheduled and buffered:
            # A message went to a waiting reader and more input waits: let the
            # reader run first, then resume parsing so that pings and closes are
            # answered even if it stays busy. (With nothing buffered, the next
            # data_received comes back here.)
            self._resume_scheduled = True
            self._loop.call_soon(self._resume)

    def _hold_for_first_recv(self) -> None:
        """The application is about to call recv(): give it the first message before
        parsing on (see the pull policy in rfc6455._driver), then resume shortly."""
        self._driver.hold = True
        if not self._resume_scheduled:
            self._resume_scheduled = True
            self._loop.call_later(_FIRST_HOLD, self._resume)
        self._progress()

    def _resume(self) -> None:
        self._resume_scheduled = False
        if self._driver.hold:
            self._driver.hold = False
            self._progress()

    def _flush(self) -> None:
        """Write what the engine has to send; shut down or arm the close timer as it says."""
        engine = self.engine
        transport = self.transport
        if transport is None:
            return
        while True:
            parts = engine.data_to_send_parts()
            if type(parts) is not list:  # EOF
                if self._lost:
                    break
                if self._eof_received:
                    if not transport.is_closing():
                        transport.close()
                elif transport.can_write_eof():
                    # Half-close: our last frame is followed by FIN, and we read on
                    # (discarding, the engine is closed) until the peer's EOF, so
                    # that closing never leaves unread data for the kernel to answer
                    # with RST, which could destroy our close frame in flight.
                    transport.write_eof()
                elif not transport.is_closing():
                    # TLS cannot half-close below the record layer: close() sends
                    # close_notify, then asyncio's TLS transport reads and discards
                    # until the peer's close_notify or EOF before closing the socket
                    # (the close timer aborts a peer that never ends).
                    transport.close()
                continue
            if not parts:
                break
            if not self._lost and not transport.is_closing():
                # A large payload is its own part: writelines passes it on uncopied.
                if len(parts) == 1:
                    transport.write(parts[0])
                else:
                    transport.writelines(parts)
            if engine.state is _OPEN:
                return  # an open connection queues nothing more, and no EOF or timer
        if self._close_timer is None and not self._lost and engine.close_expected():
            timeout = self._options.close_timeout
            if timeout is not None:
                self._close_timer = self._loop.call_later(timeout, self._abort)

    def _abort(self) -> None:
        self._close_timer = None
        if self.transport is not None and not self._lost:
            self.logger.debug("close timeout: aborting the connection")
            self.transport.abort()

    def _keepalive(self, now: float) -> None:
        """Called by the server's ticker (:func:`run_keepalive`) or the client's timer."""
        verdict = self._driver.keepalive_step(now, self.logger)
        if verdict == PING:
            self._flush()
        elif verdict != KEEP:
            self._progress()  # the close was started: write it, drop what comes

    def _end_of_messages(self, want: int) -> BaseException:
        """What a reader gets once the connection is closed and its queue empty."""
        error = self._driver.closed_error()
        if want & _ITERATING and isinstance(error, ConnectionClosedOK):
            return StopAsyncIteration()
        return error


class Connection(_Transport):
    """A WebSocket connection: receive with ``recv()`` or ``async for``, send with ``send()``."""

    __slots__ = ()

    # ------------------------------------------------------------ properties

    @property
    def remote_address(self) -> Any:
        return None if self.transport is None else self.transport.get_extra_info("peername")

    @property
    def local_address(self) -> Any:
        return None if self.transport is None else self.transport.get_extra_info("sockname")

    # ------------------------------------------------------------- receiving

    async def recv(self) -> Data:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Raises :class:`ConnectionClosedOK` / :class:`ConnectionClosedError` once
        the connection is closed and every queued message was received.
        """
        return await self.__anext__(WANT_MESSAGE)

    # The connection is its own async iterator rather than handing out an async
    # generator, and when no message is there __anext__ returns a _MessageWait
    # rather than a coroutine waiting for one: an idle ``async for`` then holds
    # that small object and a future, no generator, no coroutine frame (idle
    # memory, GitHub issue #7), and a message wakes the reader's task with the
    # message itself.
    def __aiter__(self) -> Connection:
        return self

    def __anext__(self, want: int = WANT_MESSAGE | _ITERATING) -> Awaitable[Data]:
        """The next message; iteration ends at a normal close (1000/1001, §7.4.1)
        and an abnormal one raises ConnectionClosedError.

        To await: at once when one is queued or the connection is closed (a
        coroutine that returns it: cheaper than a done future), else through a
        future that :meth:`_progress` resolves when one comes. (``recv()`` passes
        ``want=WANT_MESSAGE``: a normal close raises there too. One method for
        both: a Python call less per message.)
        """
        if self._recv_waiter is not None:
            self._check_no_reader()
        driver = self._driver
        while True:
            if driver.complete:
                message = driver.take_message()
                if self._reading_paused:
                    self._after_pull()
                return _ready(message)
            if driver.closed is not None:
                return _failed(self._end_of_messages(want))
            if self.engine.input_pending or self._reading_paused:
                if driver.pull(WANT_MESSAGE, _now()):
                    self._after_pull()
                    continue
                self._after_pull()
                if driver.closed is not None:
                    continue
            else:
                # Nothing to parse (the common case once a message was taken): what
                # pull() would do is only to end the hold, since we are back.
                driver.hold = False
            future: asyncio.Future[Data] = self._loop.create_future()
            self._recv_waiter = future
            self._recv_want = want
            return _MessageWait(driver, future)

    def _check_no_reader(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None:
            if not waiter.done():
                raise ConcurrencyError("recv() is already running")
            self._recv_waiter = None  # its reader was cancelled

    async def _wait_for(self, want: int) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._recv_waiter = waiter
        self._recv_want = want
        try:
            await waiter
        finally:
            if self._recv_waiter is waiter:
                self._recv_waiter = None

    async def _recv_piece(self) -> Any:
        driver = self._driver
        while True:
            if driver.has_piece:
                piece = driver.take_piece()
                if self._reading_paused:
                    self._after_pull()
                return piece
            if driver.closed is not None:
                raise driver.closed_error()
            if driver.pull(WANT_PIECE, _now()):
                self._after_pull()
                continue
            self._after_pull()
            if driver.closed is not None:
                continue
            await self._wait_for(WANT_PIECE)

    async def recv_streaming(self) -> AsyncIterator[Data]:
        """The next message as the pieces it arrives in (a ``str`` or ``bytes`` each)."""
        self._check_no_reader()
        while True:
            piece = await self._recv_piece()
            yield piece.data
            if piece.final:
                return

    async def recv_json(self) -> Any:
        return json.loads(await self.recv())

    # --------------------------------------------------------------- sending

    def _send_now(self, data: Data | bytearray | memoryview, final: bool) -> None:
        engine = self.engine
        try:
            engine.send(data, final=final)
        except LocalProtocolError:
            if engine.state is not State.OPEN:
                raise self._driver.closed_error() from None
            raise
        coalesced = self._coalesced
        if coalesced:
            coalesced += len(data)
            if coalesced < _COALESCE_LIMIT:
                self._coalesced = coalesced
                return
            self._coalesced = 1  # the scheduled write finds less (or nothing) to do
        elif engine.buffered_bytes:
            # More input is already here, so more sends are likely before the loop
            # polls again (pipelined messages): write them all at the end of this
            # iteration. A lone send (request/response) is written at once.
            self._coalesced = 1 + len(data)
            self._loop.call_soon(self._write_coalesced)
            return
        self._write_open()  # the send succeeded: the connection is open

    def _write_open(self) -> None:
        """What :meth:`_flush` does while the connection is open, without its
        closing checks: there is no EOF to send nor close timer to arm."""
        parts = self.engine.data_to_send_parts()
        transport = self.transport
        if parts and transport is not None and not self._lost and not transport.is_closing():
            assert type(parts) is list  # no EOF while open
            if len(parts) == 1:
                transport.write(parts[0])
            else:
                transport.writelines(parts)

    def _write_coalesced(self) -> None:
        self._coalesced = 0
        self._flush()

    async def send(self, message: Data | bytearray | memoryview | Iterable[Data]
                   | AsyncIterable[Data]) -> None:
        """Send a message (``str`` as text, bytes-like as binary), or one in parts.

        Parts come from an iterable or async iterable of all-``str`` or all-bytes
        fragments; each becomes a frame of one fragmented message (§5.4). Waits
        while the transport's buffer is above the write limit.
        """
        lock = self._parts_lock
        if lock is not None and lock.locked():
            async with lock:
                pass
        if isinstance(message, (str, bytes, bytearray, memoryview)):
            self._send_now(message, True)
        elif isinstance(message, dict):
            raise TypeError("use send_json() for a dict")
        else:
            await self._send_parts(message)
        if self._writing_paused or self._lost:
            await self.drain()  # (not awaited otherwise: a coroutine less per message)

    async def _send_parts(self, parts: Iterable[Data] | AsyncIterable[Data]) -> None:
        if self._parts_lock is None:
            self._parts_lock = asyncio.Lock()
        async with self._parts_lock:
            fragments = Fragments()
            if isinstance(parts, AsyncIterable):
                async for part in parts:
                    self._send_now(fragments.add(part), False)
                    await self.drain()
            else:
                for part in parts:
                    self._send_now(fragments.add(part), False)
                    await self.drain()
            if fragments.end is not None:
                self._send_now(fragments.end, True)

    # Non-blocking sends for fan-out (a broadcast writes to many connections and
    # must not wait for any): the transport's buffer is the queue.

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet handed to the kernel (the transport's buffer)."""
        transport = self.transport
        return 0 if transport is None or self._lost else transport.get_write_buffer_size()

    def queue_frame(self, frame: bytes) -> bool:
        """Write a message serialized once by :func:`rfc6455.frames.serialize_frame`
        without waiting (server role); False if the connection is not open."""
        engine = self.engine
        transport = self.transport
        # Nothing queued before it: what _flush would write. (A coalesced write
        # pending means output in the engine, so frame_bytes_direct is False;
        # after connection_lost the transport is closing.) The hub's direct
        # path (apps/hub.py) is this test inlined: keep the two alike.
        if engine.frame_bytes_direct and transport is not None and not transport.is_closing():
            transport.write(frame)
            return True
        if engine.state is not _OPEN:
            return False
        engine.send_frame_bytes(frame)
        if not self._coalesced:
            self._flush()
        return True

    def send_nowait(self, message: Data) -> bool:
        """Write a message without waiting for the buffer to drain; False if not open."""
        try:
            self._send_now(message, True)
        except ConnectionClosed:  # what _send_now raises when the engine is not open
            return False
        return True

    def start_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake without waiting; the close timeout still applies.

        Before the opening handshake is done there is no closing handshake to
        start: the connection is dropped.
        """
        if self.engine.state is State.CONNECTING:
            if self.transport is not None and not self._lost:
                self.transport.abort()
            return
        self._driver.begin_close(code, reason)
        self._progress()

    async def send_json(self, value: Any) -> None:
        await self.send(json.dumps(value, separators=(",", ":")))

    async def drain(self) -> None:
        """Wait until the transport's buffer is below the low-water mark."""
        while self._writing_paused and not self._lost:
            waiter: asyncio.Future[None] = self._loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = []
            self._drain_waiters.append(waiter)
            await waiter
        if self._lost and self.engine.state is not State.CLOSED:
            raise self._driver.closed_error()

    async def ping(self, data: bytes | None = None) -> float:
        """Send a ping and wait for its pong; return the round-trip latency in seconds."""
        self._driver.check_open()
        waiter: asyncio.Future[float] = self._loop.create_future()
        payload = self._driver.new_ping(_now(), waiter, data)
        self.engine.ping(payload)
        self._flush()
        if self._driver.hold:
            self._driver.hold = False
        # The pong is parsed by the pull loop, even while nobody calls recv().
        self._progress()
        try:
            return await waiter
        finally:
            # If the close fails the waiter, its exception's traceback keeps this
            # frame: without the waiter, no cycle (see _MessageWait.throw).
            del waiter

    async def pong(self, data: bytes = b"") -> None:
        """Send an unsolicited pong, a one-way heartbeat (§5.5.3)."""
        self._driver.check_open()
        self.engine.pong(data)
        self._flush()

    # --------------------------------------------------------------- closing

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (§7.1.2) and wait until the connection is closed.

        Waits at most ``close_timeout`` for the peer, then aborts the transport.
        Messages not received yet are dropped.
        """
        self.start_close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the transport is closed."""
        if self._lost:
            return
        if self._lost_waiter is None:
            self._lost_waiter = self._loop.create_future()
        await asyncio.shield(self._lost_waiter)

    def abort(self) -> None:
        """Drop the connection without a closing handshake."""
        if self.transport is not None and not self._lost:
            self.transport.abort()


def run_keepalive(connections: Collection[Connection], now: float) -> None:
    """A server's ticker: every connection's keepalive at ``now`` (one timer for all
    of them, nothing per idle connection)."""
    for conn in connections:
        conn._keepalive(now)
