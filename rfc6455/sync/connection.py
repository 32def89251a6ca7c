"""One WebSocket connection over a non-blocking socket, with a reader thread.

The reader thread moves bytes from the socket to the engine and runs the
timers; the application's threads call ``recv()`` / ``send()``. Writing goes
through an outbox drained by one thread at a time, in the order the engine made
the frames. The reader thread only ever writes what the socket takes at once
and waits for room together with incoming data, so whatever the peer does it
still answers pings and runs the ping timeout and close deadline. A sender
waits for room in ``poll()``; dropping the connection (``shutdown()``) ends
that wait. This costs no thread beyond the reader: with two per connection,
thousands of threads already contend for the GIL when many clients come or go
at once (see ``Server.switch_interval``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from .._core import EOF, State
from .._driver import (
    KEEP,
    PING,
    WANT_MESSAGE,
    WANT_NOTHING,
    WANT_PIECE,
    CommonOptions,
    ConcurrencyError,
    ConnectionClosedOK,
    ConnectionView,
    Data,
    Driver,
    Fragments,
)
from .._fanout import BUSY, NOT_OPEN, SENT, SLOW, BroadcastResult, Frames, SlowPolicy, fan_out
from ..connection import ClientConnection, ServerConnection
from ..errors import CloseCode, LocalProtocolError

__all__ = ["BroadcastResult", "Connection", "broadcast"]

#: After a message went to a waiting reader, parsing resumes this soon even if it
#: does not come back, so pings and closes are answered (the asyncio adapter uses
#: the next loop iteration).
_SOON = 0.05
_EOF_MARK = b""  # in the outbox: shut the write side down here
#: A write that TLS cannot make before it reads (a key update) retries this often (ms):
#: the reader thread does the reading.
_WANT_READ_POLL_MS = 50
#: How long the reader thread, ending, lets a writer leave the socket (s).
_WRITER_EXIT_WAIT = 1.0


class _Ping:
    """A ping waiter: an event plus the latency once answered."""

    __slots__ = ("event", "latency")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.latency: float | None = None


class _Transport(ConnectionView):
    """The socket's half of a connection: the reader thread that feeds the engine
    and runs the timers, and the outbox that writes what it has to send.
    :class:`Connection` adds what the application calls."""

    __slots__ = (
        "_close_deadline",
        "_cond",
        "_driver",
        "_eof_received",
        "_hold_since",
        "_in_callbacks",
        "_io_lock",
        "_lost",
        "_options",
        "_outbox",
        "_outbox_bytes",
        "_parts_owner",
        "_reader",
        "_recv_active",
        "_recv_waiting",
        "_recv_want",
        "_writing",
        "engine",
        "handler_thread",
        "logger",
        "sock",
    )

    def __init__(self, sock: socket.socket, engine: ServerConnection | ClientConnection,
                 options: CommonOptions, logger: logging.Logger) -> None:
        self.sock = sock
        self.engine = engine
        self._options = options
        self.logger = logger
        self._driver: Driver[_Ping] = Driver(engine, options, time.monotonic())
        self._cond = threading.Condition(threading.Lock())
        self._outbox: deque[bytes | memoryview] = deque()
        self._outbox_bytes = 0
        self._writing = False
        self._parts_owner: int | None = None
        self._recv_active = False
        self._recv_waiting = False
        self._recv_want = WANT_NOTHING
        self._hold_since = 0.0
        self._in_callbacks = False  # a thread runs on_ping / on_pong callbacks
        self._close_deadline: float | None = None
        self._eof_received = False
        self._lost = False
        self._reader: threading.Thread | None = None
        self.handler_thread: threading.Thread | None = None
        # OpenSSL allows one call at a time on a connection: a read and a write at
        # once from two threads can make either fail with a wrong error (seen as a
        # spurious EOF). Every call is non-blocking, so this lock is held briefly;
        # a writer waits for room in poll(), without it.
        self._io_lock = threading.Lock() if isinstance(sock, ssl.SSLSocket) else None

    # ------------------------------------------------- engine driving (locked)

    def _progress(self) -> None:
        """Pull per the policy and wake whoever waits; call with the lock held."""
        driver = self._driver
        now = time.monotonic()
        if self._recv_waiting:
            if driver.pull(self._recv_want, now) or driver.closed is not None:
                self._recv_waiting = False
                self._cond.notify_all()
        else:
            driver.pull(WANT_NOTHING, now)
        if driver.hold and not self._hold_since:
            self._hold_since = now
        self._after_pull()

    def _after_pull(self) -> None:
        driver = self._driver
        acked = driver.acked
        if acked:
            driver.acked = None
            for waiter, latency in acked:
                waiter.latency = latency
                waiter.event.set()
        self._collect()

    def _collect(self, force: bool = False) -> None:
        """Move what the engine has to send into the outbox; arm the close deadline.

        While the outbox is over ``write_limit`` the peer is not reading: output
        stays in the engine, where a new automatic pong takes the place of an
        unsent one (§5.5.3), unless ``force`` (a sender's own frames, which it
        then waits to write).
        """
        engine = self.engine
        outbox = self._outbox
        if force or self._outbox_bytes <= self._options.write_limit:
            while True:
                parts = engine.data_to_send_parts()
                if type(parts) is not list:  # EOF
                    outbox.append(_EOF_MARK)
                    continue
                if not parts:
                    break
                # A large payload is its own part: sent as it is, never copied into a frame.
                outbox.extend(parts)
                self._outbox_bytes += sum(map(len, parts))
        if self._close_deadline is None and (
                engine.close_expected()
                # The peer ended its side: what we still have to send is bounded in time.
                or (self._eof_received and (outbox or engine.has_data_to_send))):
            timeout = self._options.close_timeout
            self._close_deadline = time.monotonic() + (1e9 if timeout is None else timeout)
            self._cond.notify_all()
            if timeout is not None and not self._lost \
                    and threading.current_thread() is not self._reader:
                # The reader thread may be in poll() with a timeout set before this
                # deadline existed (waiting for room, or for input): the background
                # writer's thread keeps it too.
                _background_writer.wake_at(self, self._close_deadline)

    @property
    def _backed_up(self) -> bool:
        return self._outbox_bytes > self._options.write_limit

    def _write(self, wait: bool) -> None:
        """A sender's write: the outbox in order, blocking; call with the lock held.

        Waits for the writer role unless the outbox is low already (another
        thread is writing it); with ``wait`` False returns at once instead.
        """
        cond = self._cond
        low = self._options.low_water
        while self._writing:
            if not wait or self._outbox_bytes <= low or self._lost:
                return
            cond.wait()
        self._drain(block=True)

    def _write_nowait(self, hand_over: bool = True) -> bool:
        """Write what the socket takes now, never waiting; True once all is written.

        What is left goes to the background writer (see :class:`_BackgroundWriter`)
        unless ``hand_over`` is False: the reader thread waits for room itself.
        The reader thread writes this way only: it must stay free to read and to
        run the timers (ping timeout, close deadline) whatever the peer does.
        """
        if self._writing:
            return False  # that writer writes what we queued, or hands it over
        if self._drain(block=False):
            return True
        if hand_over and self._outbox and not self._lost:
            _background_writer.watch(self)
        return False

    def _drain(self, block: bool) -> bool:
        """Write the outbox as the one writer (lock held, released while writing).

        Bytes leave the outbox count only once written, so :attr:`pending_bytes`
        includes a frame being written. Without ``block``, stop when the socket
        is full; with it, wait for room (a close deadline or ping timeout in the
        reader thread ends the wait: ``_lose`` shuts the socket down).
        """
        cond = self._cond
        outbox = self._outbox
        limit = self._options.write_limit
        self._writing = True
        try:
            while not self._lost:
                if not outbox:
                    self._collect()
                    if not outbox:
                        return True
                data = outbox[0]
                if not data:  # the engine's EOF
                    outbox.popleft()
                    self._send_eof()
                    continue
                cond.release()
                try:
                    sent = self._send_some(data, block)
                except OSError:
                    sent = -1
                cond.acquire()
                if self._lost:
                    break
                if sent < 0:
                    self._lose()
                    break
                if not sent:
                    return False
                before = self._outbox_bytes
                self._outbox_bytes -= sent
                if sent == len(data):
                    outbox.popleft()
                else:
                    outbox[0] = memoryview(data)[sent:]
                if before > limit >= self._outbox_bytes:
                    cond.notify_all()  # the reader thread may wait for room
            outbox.clear()
            self._outbox_bytes = 0
            return True
        finally:
            self._writing = False
            cond.notify_all()

    def _send_some(self, data: bytes | memoryview, block: bool) -> int:
        """Send from ``data`` on the non-blocking socket; the count sent (0: full)."""
        sock = self.sock
        io_lock = self._io_lock
        while True:
            try:
                if io_lock is None:
                    return sock.send(data)
                with io_lock:
                    return sock.send(data)
            except (BlockingIOError, ssl.SSLWantWriteError):
                events = select.POLLOUT
            except ssl.SSLWantReadError:
                # TLS needs the peer's bytes first (a key update): the reader gets them.
                events = select.POLLIN | select.POLLOUT
            if not block:
                return 0
            # An ssl.SSLSocket retries with the same buffer (OpenSSL's rule for a write
            # that wanted more room); a plain socket took nothing either.
            poller = select.poll()
            poller.register(sock, events)
            poller.poll(_WANT_READ_POLL_MS if events & select.POLLIN else None)

    def _send_eof(self) -> None:
        """The engine's EOF, lock held: half-close, or end when both sides are done."""
        if self._eof_received:
            # Both sides are done: the reader thread closes the socket.
            self._lose()
            return
        # Half-close below TLS too: the peer's read ends, its close reply can still come.
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            self._lose()

    def _lose(self) -> None:
        """The transport is gone (or must go): wake everything; call with the lock held."""
        if self._lost:
            return
        self._lost = True
        _background_writer.forget(self)
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        if not self._eof_received:
            self._eof_received = True
            self.engine.receive_eof()
        self._progress()
        self._driver.ended(time.monotonic())
        if not self._writing:  # else the writer does, as it leaves
            self._outbox.clear()
            self._outbox_bytes = 0
        for waiter in self._driver.abandon_pings():
            waiter.event.set()
        self._cond.notify_all()

    # ------------------------------------------------------------ reader thread

    def _read_loop(self) -> None:
        cond = self._cond
        sock = self.sock
        driver = self._driver
        engine = self.engine
        # A server stops reading while its output is backed up, so a peer that sends
        # but never reads (pings, or messages to echo) stops costing us anything.
        # A client keeps reading: when two peers both stop reading until their own
        # writes drain, bulk traffic both ways (an echo) deadlocks; a client's
        # unread output stays bounded all the same (in the engine, pongs coalesce).
        pause_when_backed_up = isinstance(engine, ServerConnection)
        poller = select.poll()
        registered = select.POLLIN
        poller.register(sock, registered)
        try:
            with cond:
                self._progress()  # bytes that came with the handshake
                self._run_callbacks()
            while True:
                with cond:
                    timeout = self._timers()
                    if driver.callbacks is not None:  # noted by a pull in another thread
                        self._run_callbacks()
                    if self._lost:
                        break
                    if self._outbox or engine.has_data_to_send:
                        self._write_nowait(hand_over=False)
                    if self._lost or (self._eof_received and engine.state is State.CLOSED
                                      and not self._outbox and not engine.has_data_to_send):
                        break
                    want_out = bool(self._outbox) and not self._writing
                    want_in = not self._eof_received and not (
                        driver.queue_full and driver.closed is None) and not (
                        pause_when_backed_up and self._backed_up)
                    if not (want_in or want_out):
                        # Nothing to read (or the application or the peer is behind),
                        # and another thread writes: wait for either of them.
                        cond.wait(timeout)
                        continue
                events = (select.POLLIN if want_in else 0) | (select.POLLOUT if want_out else 0)
                if events != registered:
                    poller.modify(sock, events)
                    registered = events
                if not (want_in and self._tls_pending()):
                    ready = poller.poll(
                        None if timeout is None else max(0, int(timeout * 1000) + 1))
                    if not ready or not want_in:
                        continue  # a timer is due, or the socket takes more: the loop writes
                    if not ready[0][1] & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        continue
                data = self._recv()
                if data is None:
                    continue
                with cond:
                    if self._lost:
                        break
                    if data:
                        engine.receive_data(data)
                    else:
                        self._eof_received = True
                        engine.receive_eof()
                    self._progress()
                    if driver.callbacks is not None:
                        self._run_callbacks()
        except Exception:  # pragma: no cover - a bug: log it, do not hang the app
            self.logger.exception("reader thread failed")
        finally:
            with cond:
                self._lose()
                # The writer wakes at once (the socket is shut down): let it leave
                # the socket before its descriptor is closed and reused.
                cond.wait_for(lambda: not self._writing, _WRITER_EXIT_WAIT)
            with contextlib.suppress(OSError):
                sock.close()

    def _run_callbacks(self) -> bool:
        """Run the on_ping / on_pong callbacks the pull noted (lock held, released
        while they run: they may send, pong or close), pulling on while more are due.

        One thread at a time, so that they run in order: False (nothing done) if
        another thread runs them; it takes those noted meanwhile too.
        """
        if self._in_callbacks:
            return False
        cond = self._cond
        driver = self._driver
        self._in_callbacks = True
        try:
            while (due := driver.take_callbacks()) is not None:
                cond.release()
                try:
                    ok = driver.run_callbacks(due, self, self.logger)
                finally:
                    cond.acquire()
                if not ok:
                    if not self._lost:
                        self._start_close(CloseCode.INTERNAL_ERROR, "")
                    break
                if self._lost:
                    break
                self._progress()  # the pull stopped for them (Driver._callback_due)
        finally:
            self._in_callbacks = False
        return True

    def _recv(self) -> bytes | None:
        """Read what the socket has (b"": the peer's EOF, or the socket failed);
        None to poll again: part of a TLS record came, or TLS wants to write first."""
        try:
            io_lock = self._io_lock
            if io_lock is None:
                return self.sock.recv(65536)
            with io_lock:
                return self.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except (OSError, ValueError):
            return b""

    def _tls_pending(self) -> bool:
        """Whether TLS holds decrypted bytes already (poll() would not see them)."""
        io_lock = self._io_lock
        if io_lock is None:
            return False
        with io_lock:
            return bool(self.sock.pending())  # type: ignore[attr-defined]

    def _write_ready(self) -> bool:
        """The background writer's turn: the socket takes more. True: forget this one
        (all written, closed, or another thread is writing: it hands the rest over)."""
        with self._cond:
            if self._lost or self._writing:
                return True
            return self._drain(block=False)

    def _close_deadline_passed(self, now: float) -> bool:
        """Drop the connection once its close deadline is past (§7.1.1); lock held."""
        if self._close_deadline is None or now < self._close_deadline or self._lost:
            return False
        self.logger.debug("close timeout: aborting the connection")
        self._lose()
        return True

    def _deadline_due(self) -> None:
        """The background writer's thread, at the close deadline."""
        with self._cond:
            self._close_deadline_passed(time.monotonic())

    def _timers(self) -> float | None:
        """Run due timers (locked); return the time until the next one."""
        now = time.monotonic()
        driver = self._driver
        if self._close_deadline_passed(now):
            return 0
        if driver.hold and self._hold_since and now - self._hold_since >= _SOON:
            driver.hold = False
            self._hold_since = 0.0
            self._progress()
        verdict = driver.keepalive_step(now, self.logger)
        if verdict == PING:
            self._collect()
        elif verdict != KEEP:
            self._closing_started()
        deadlines = [d for d in (driver.next_deadline(), self._close_deadline) if d is not None]
        if driver.hold:
            deadlines.append(self._hold_since + _SOON)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _start_close(self, code: int | None, reason: str) -> None:
        self._driver.begin_close(code, reason)
        self._closing_started()

    def _closing_started(self) -> None:
        """The close was started (locked): write it as far as the socket takes now,
        and let every waiter see it."""
        self._progress()
        self._write_nowait()
        self._cond.notify_all()


class Connection(_Transport):
    """A WebSocket connection: ``recv()`` / iteration to receive, ``send()`` (thread-safe)."""

    __slots__ = ()

    def _start(self) -> None:
        """The handshake is done: start the reader thread (:func:`start_reader`)."""
        # Non-blocking from now on: the reader thread must never wait in a write,
        # and a blocking writer waits in poll(), which a shutdown() ends.
        self.sock.settimeout(0)
        # The application is about to call recv(): give it the first message before
        # parsing on (see the pull policy in rfc6455._driver).
        self._driver.hold = True
        self._hold_since = time.monotonic()
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"rfc6455-reader-{self.sock.fileno()}")
        self._reader.start()

    # ------------------------------------------------------------ properties

    @property
    def remote_address(self) -> Any:
        try:
            return self.sock.getpeername()
        except OSError:
            return None

    # ------------------------------------------------------------- receiving

    def _receive(self, want: int, timeout: float | None) -> Any:
        driver = self._driver
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._recv_active:
                raise ConcurrencyError("recv() is already running")
            self._recv_active = True
            try:
                while True:
                    if driver.has_message if want == WANT_MESSAGE else driver.has_piece:
                        result = driver.take_message() if want == WANT_MESSAGE \
                            else driver.take_piece()
                        self._cond.notify_all()  # the reader may wait for queue room
                        return result
                    if driver.closed is not None:
                        raise driver.closed_error()
                    self._hold_since = 0.0
                    satisfied = driver.pull(want, time.monotonic())
                    if driver.hold:
                        self._hold_since = time.monotonic()
                    self._after_pull()
                    if driver.callbacks is not None and self._run_callbacks():
                        continue
                    self._write_nowait()
                    # _write_nowait() releases the lock while it writes: the reader thread
                    # may have queued what we want meanwhile, and will not wake us.
                    if satisfied or driver.closed is not None or (
                            driver.has_message if want == WANT_MESSAGE else driver.has_piece):
                        continue
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("timed out waiting for a message")
                    self._recv_waiting = True
                    self._recv_want = want
                    self._cond.notify_all()
                    self._cond.wait(remaining)
                    self._recv_waiting = False
            finally:
                self._recv_active = False

    def recv(self, timeout: float | None = None) -> Data:
        """The next message (``str`` or ``bytes``); ``TimeoutError`` after ``timeout`` s.

        Raises :class:`ConnectionClosedOK` / :class:`ConnectionClosedError` once
        closed and every queued message was received.
        """
        result: Data = self._receive(WANT_MESSAGE, timeout)
        return result

    def recv_streaming(self, timeout: float | None = None) -> Iterator[Data]:
        """The next message as the pieces it arrives in."""
        while True:
            piece = self._receive(WANT_PIECE, timeout)
            yield piece.data
            if piece.final:
                return

    def __iter__(self) -> Iterator[Data]:
        """Messages until a normal close; an abnormal one raises ConnectionClosedError."""
        try:
            while True:
                yield self.recv()
        except ConnectionClosedOK:
            return

    def recv_json(self, timeout: float | None = None) -> Any:
        return json.loads(self.recv(timeout))

    # --------------------------------------------------------------- sending

    def _send_locked(self, data: Data | bytearray | memoryview, final: bool) -> None:
        try:
            self.engine.send(data, final=final)
        except LocalProtocolError:
            if self.engine.state is not State.OPEN:
                raise self._driver.closed_error() from None
            raise
        self._collect(force=True)
        self._write(True)

    def _wait_parts(self) -> None:
        me = threading.get_ident()
        while self._parts_owner is not None and self._parts_owner != me:
            self._cond.wait()

    def send(self, message: Data | bytearray | memoryview | Iterable[Data]) -> None:
        """Send a message (``str`` as text, bytes-like as binary) or, from an
        iterable of fragments, one message in parts (§5.4). Thread-safe; blocks
        while the outgoing buffer is above the write limit.
        """
        with self._cond:
            self._wait_parts()
            if isinstance(message, (str, bytes, bytearray, memoryview)):
                self._send_locked(message, True)
                return
            if isinstance(message, dict):
                raise TypeError("use send_json() for a dict")
            self._parts_owner = threading.get_ident()
        try:
            fragments = Fragments()
            for part in message:
                with self._cond:
                    self._send_locked(fragments.add(part), False)
            if fragments.end is not None:
                with self._cond:
                    self._send_locked(fragments.end, True)
        finally:
            with self._cond:
                self._parts_owner = None
                self._cond.notify_all()

    # Non-blocking sends (a broadcast writes to many connections and must not wait
    # for any): the outbox is the queue; what the socket does not take at once
    # the background writer (_BackgroundWriter) writes as the peer reads.

    @property
    def pending_bytes(self) -> int:
        """Bytes queued in the outbox, not yet written to the socket."""
        return self._outbox_bytes

    def queue_frame(self, frame: bytes) -> bool:
        """Send a message serialized once by :func:`rfc6455.frames.serialize_frame`
        (server role) without waiting, as :meth:`send_nowait` does; False if the
        connection is not open."""
        with self._cond:
            if self.engine.state is not State.OPEN:
                return False
            self.engine.send_frame_bytes(frame)
            self._collect(force=True)
            self._write_nowait()
            return True

    def _fan_out(self, frames: Frames, limit: int | None) -> int:
        """One member's part of :func:`broadcast` (the rules are in rfc6455._fanout)."""
        with self._cond:
            engine = self.engine
            if engine.state is not State.OPEN or self._lost:
                return NOT_OPEN
            if frames.over_limit(self._outbox_bytes,
                                 self._options.write_limit if limit is None else limit):
                return SLOW
            if self._parts_owner is not None:
                return BUSY
            frame = frames.frame_for(engine)
            if frame is None:
                engine.send(frames.message)  # compressed or masked by this engine
            else:
                engine.send_frame_bytes(frame)
            self._collect(force=True)
            self._write_nowait()
            return SENT

    def send_nowait(self, message: Data) -> bool:
        """Send a message without waiting: the socket gets now what it takes, the
        rest is written in the background (by the adapter's writer thread) as the
        peer reads.

        Returns False, sending nothing, if the connection is not open. Nothing
        bounds what waits for a peer that does not read: watch
        :attr:`pending_bytes`, or use :func:`broadcast`, which does.
        """
        with self._cond:
            if self.engine.state is not State.OPEN:
                return False
            self.engine.send(message)
            self._collect(force=True)
            self._write_nowait()
            return True

    def start_close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake without waiting; the close timeout still applies."""
        with self._cond:
            self._driver.begin_close(code, reason)
            self._progress()
            self._write_nowait()
            self._cond.notify_all()

    def flush(self, block: bool = True) -> None:
        """Write the outbox; returns at once if another thread is writing it (that
        thread, or the reader thread, writes the rest).

        Never needed after :meth:`send_nowait` (which writes in the background);
        ``block=False`` writes only what the socket takes now.
        """
        with self._cond:
            if not self._writing:
                self._drain(block)

    def send_json(self, value: Any) -> None:
        self.send(json.dumps(value, separators=(",", ":")))

    def ping(self, data: bytes | None = None, timeout: float | None = None) -> float:
        """Send a ping and wait for its pong; return the round-trip latency in seconds."""
        waiter = _Ping()
        with self._cond:
            self._driver.check_open()
            self.engine.ping(self._driver.new_ping(time.monotonic(), waiter, data))
            # The pong must be parsed even if a message handed out is still being handled.
            self._driver.hold = False
            self._hold_since = 0.0
            self._collect(force=True)
            self._write(True)
        if not waiter.event.wait(timeout):
            raise TimeoutError("no pong in time")
        if waiter.latency is None:
            raise self._driver.closed_error()
        return waiter.latency

    def pong(self, data: bytes = b"") -> None:
        """Send an unsolicited pong, a one-way heartbeat (§5.5.3)."""
        with self._cond:
            self._driver.check_open()
            self.engine.pong(data)
            self._collect(force=True)
            self._write(True)

    # --------------------------------------------------------------- closing

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Closing handshake (§7.1.2), then wait (at most ``close_timeout``) for the end."""
        with self._cond:
            if self.engine.state is State.CONNECTING:
                self._lose()
                return
            self._start_close(code, reason)
        self.wait_closed()

    def wait_closed(self, timeout: float | None = None) -> None:
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)

    def abort(self) -> None:
        """Drop the connection without a closing handshake."""
        with self._cond:
            self._lose()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def broadcast(connections: Iterable[Connection], message: Data | bytearray | memoryview, *,
              slow: SlowPolicy = "skip", limit: int | None = None,
              close_code: int = CloseCode.POLICY_VIOLATION) -> BroadcastResult[Connection]:
    """Send ``message`` to every open connection of ``connections`` without waiting for any.

    The same as :func:`rfc6455.asyncio.broadcast` (one frame per compression
    setting, the slow-member policy, the log; :doc:`/guides/broadcast`), with
    :meth:`Connection.send_nowait`'s writes of this adapter.

    Callable from any thread, and from several at once. Raises
    :class:`TypeError` for a message that is neither ``str`` nor bytes-like and
    :class:`ValueError` for a bad option, before sending anything; otherwise it
    raises nothing and returns what it did.
    """
    return fan_out(connections, message, Connection._fan_out, Connection.start_close,
                   slow=slow, limit=limit, close_code=close_code)


class _BackgroundWriter:
    """One thread per process that finishes the writes nobody waits for.

    :meth:`Connection.send_nowait` and :func:`broadcast` write what a socket
    takes at once; a connection with bytes left is watched here until its
    socket takes more (``poll()`` for POLLOUT over all of them, plus a pipe that
    wakes the thread when one is added). The reader thread cannot do it: it may
    be waiting in its own ``poll()`` for input only, for as long as the peer is
    silent. For the same reason the thread also keeps the close deadlines armed
    by other threads (``start_close``, a slow member closed by a broadcast).
    It starts when needed and ends when it has nothing to watch or wait for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, _Transport] = {}
        self._deadlines: dict[_Transport, float] = {}
        self._thread: threading.Thread | None = None
        self._wake_w = -1

    def watch(self, connection: _Transport) -> None:
        """Write the rest of ``connection``'s outbox when its socket takes more."""
        fd = connection.sock.fileno()
        if fd < 0:
            return
        with self._lock:
            if self._watched.get(fd) is connection:
                return
            # A descriptor watched for another connection was closed and reused:
            # that connection is gone (its writes stopped with _lose).
            self._watched[fd] = connection
            self._wake()

    def wake_at(self, connection: _Transport, when: float) -> None:
        """Check ``connection``'s close deadline at ``when``."""
        with self._lock:
            self._deadlines[connection] = when
            self._wake()

    def forget(self, connection: _Transport) -> None:
        """``connection`` is gone: nothing more to write or check for it."""
        with self._lock:
            changed = self._deadlines.pop(connection, None) is not None
            fd = connection.sock.fileno()
            if self._watched.get(fd) is connection:
                del self._watched[fd]
                changed = True
            if changed and self._thread is not None:
                self._wake()  # it may have nothing left: let it end

    def _wake(self) -> None:
        """Start the thread, or make it look at the new work (lock held)."""
        if self._thread is None:
            wake_r, self._wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._thread = threading.Thread(target=self._run, args=(wake_r,), daemon=True,
                                            name="rfc6455-background-writer")
            self._thread.start()
            return
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending
            os.write(self._wake_w, b"\0")

    def _run(self, wake_r: int) -> None:
        poller = select.poll()
        poller.register(wake_r, select.POLLIN)
        polled: dict[int, _Transport] = {}
        while True:
            with self._lock:
                now = time.monotonic()
                due = [c for c, when in self._deadlines.items() if when <= now]
                for connection in due:
                    del self._deadlines[connection]
                watched = dict(self._watched)
                if not watched and not self._deadlines and not due:
                    # Nothing left: end; the next watch() or wake_at() starts a thread.
                    self._thread = None
                    os.close(wake_r)
                    os.close(self._wake_w)
                    self._wake_w = -1
                    return
                wait = min(self._deadlines.values(), default=now) - now \
                    if self._deadlines else None
            for connection in due:
                connection._deadline_due()
            if due:
                continue
            for fd in polled.keys() - watched.keys():
                poller.unregister(fd)
            for fd, connection in watched.items():
                if polled.get(fd) is not connection:
                    poller.register(fd, select.POLLOUT)
            polled = watched
            for fd, _ in poller.poll(None if wait is None else max(0, int(wait * 1000) + 1)):
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    continue
                connection = polled[fd]
                try:
                    done = connection._write_ready()
                except Exception:  # pragma: no cover - a bug: log it, keep serving the others
                    connection.logger.exception("background write failed")
                    done = True
                if done:
                    with self._lock:
                        if self._watched.get(fd) is connection:
                            del self._watched[fd]

    def _after_fork(self) -> None:
        # The thread does not exist in a forked child: start afresh there.
        self._lock = threading.Lock()
        self._watched = {}
        self._deadlines = {}
        self._thread = None
        self._wake_w = -1


_background_writer = _BackgroundWriter()
os.register_at_fork(after_in_child=_background_writer._after_fork)


def handshake_io(sock: socket.socket, engine: ServerConnection | ClientConnection,
                 deadline: float | None) -> Any:
    """Blocking opening handshake: write the engine's bytes, read until it has an event.

    Returns the first event (a request, a response, or the final event on a
    failure); raises ``TimeoutError`` past ``deadline`` (which bounds a peer that
    sends its head slowly).
    """
    while True:
        flush_blocking(sock, engine)
        event = engine.next_event()
        if event is not None:
            flush_blocking(sock, engine)
            return event
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("opening handshake timed out")
            sock.settimeout(remaining)
        data = sock.recv(65536)
        if data:
            engine.receive_data(data)
        else:
            engine.receive_eof()


def flush_blocking(sock: socket.socket, engine: ServerConnection | ClientConnection) -> None:
    """Write everything the engine has to send (handshake phase: one thread only)."""
    while True:
        data = engine.data_to_send()
        if data is EOF:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_WR)
            continue
        if not data:
            return
        assert isinstance(data, bytes)
        sock.sendall(data)


def start_reader(conn: Connection) -> None:
    """The opening handshake of ``conn`` succeeded: its reader thread starts, and
    from then on owns (and in the end closes) the socket."""
    conn._start()
