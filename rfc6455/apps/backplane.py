"""Backplanes: carry broadcast messages between server processes and hosts.

One process fans out to its own clients (:class:`~rfc6455.apps.hub.Hub`); a
backplane makes a message sent by a client of *any* process reach the hubs of
*all* of them. Every message takes the same path, the sender's process
included: publish once, receive it back from the backplane, fan out locally.
So delivery order is the backplane's order, which keeps each sender's messages
in the order it sent them (one publishing connection per process, and both
brokers below deliver in publish order).

* :class:`RedisBackplane` -- Redis pub/sub (``--redis redis://HOST:PORT/DB``):
  across processes and hosts, what such deployments already run.
* :class:`RelayBackplane` -- the embedded default of ``--workers N`` without
  Redis: the supervising parent process relays between its own workers over a
  Unix socket. Nothing to install; one host only.

A backplane never takes a server down: when the broker is unreachable, the
messages that could not be published or received are counted and logged, the
connection is retried with exponential backoff, and clients stay connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["Backplane", "RedisBackplane", "Relay", "RelayBackplane", "decode", "encode"]

logger = logging.getLogger("rfc6455.backplane")

Deliver = Callable[[str | bytes], object]

_TEXT = b"t"
_BINARY = b"b"
_LENGTH = struct.Struct("!I")
#: Messages waiting to be published; past it new ones are dropped (counted).
DEFAULT_BACKLOG = 10_000


def encode(message: str | bytes) -> bytes:
    """One byte for the type (text or binary, RFC 6455 §5.6), then the payload."""
    if isinstance(message, str):
        return _TEXT + message.encode("utf-8")
    return _BINARY + bytes(message)


def decode(data: bytes) -> str | bytes:
    kind, payload = data[:1], data[1:]
    if kind == _TEXT:
        return payload.decode("utf-8")
    if kind == _BINARY:
        return payload
    raise ValueError(f"not a backplane message: {data[:16]!r}")


#: How long a server waits for its broker before it listens anyway (seconds).
BROKER_WAIT = 5.0


def wait_for_broker(backplane: Backplane) -> None:
    """Block (at most :data:`BROKER_WAIT`) until the broker answered; warn if not."""
    if not backplane.connected.wait(BROKER_WAIT):
        warn_no_broker()


def warn_no_broker() -> None:
    logger.warning("backplane: no broker after %.0f s; serving, messages counted as "
                   "undelivered until it answers", BROKER_WAIT)


class Backplane(Protocol):
    """What a broadcast server needs from a message bus. Add a broker by implementing it."""

    #: Messages this process could not hand to the broker, or that arrived garbled.
    undelivered: int
    #: Set once the broker first answered; a server waits on it (bounded) before it
    #: listens, so the first messages are not lost to a broker still connecting.
    connected: threading.Event

    def publish(self, message: str | bytes) -> None:
        """Queue ``message`` for every process; callable from any thread, never blocks."""
        ...

    async def run(self, deliver: Deliver) -> None:
        """Connect, and call ``deliver`` for every message published anywhere, until cancelled."""
        ...


class _QueuedBackplane:
    """The part both brokers share: a bounded publish queue fed from any thread."""

    def __init__(self, backlog: int) -> None:
        self.undelivered = 0
        self.connected = threading.Event()
        self.published = 0
        self.received = 0
        self._backlog = backlog
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[bytes] | None = None
        self._connected = False
        self._attempt = 0
        self._where = ""

    def publish(self, message: str | bytes) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._lost(1, "backplane not running")
            return
        data = encode(message)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(data)
        else:
            loop.call_soon_threadsafe(self._enqueue, data)

    def _enqueue(self, data: bytes) -> None:
        assert self._queue is not None
        if not self._connected:
            # Not queued while the broker is away: a burst of stale messages after
            # a long outage is worse than a counted gap.
            self._lost(1, "broker unreachable")
            return
        try:
            self._queue.put_nowait(data)
        except asyncio.QueueFull:
            self._lost(1, "publish backlog full")

    def _lost(self, count: int, why: str) -> None:
        self.undelivered += count
        if self.undelivered == count or self.undelivered % 1000 < count:
            logger.warning("backplane: %d message(s) not delivered (%s); %d so far",
                           count, why, self.undelivered)

    def _start(self) -> asyncio.Queue[bytes]:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(self._backlog)
        return self._queue

    def _drop_queue(self) -> None:
        queue = self._queue
        if queue is not None and queue.qsize():
            self._lost(queue.qsize(), "connection to the broker lost")
            while not queue.empty():
                queue.get_nowait()

    def _connected_now(self) -> None:
        """Called by a session once the broker answers: publishing may resume."""
        self._connected = True
        self.connected.set()
        if self._attempt:
            logger.info("backplane: reconnected to %s", self._where)
        self._attempt = 0

    async def _reconnecting(self, session: Callable[[asyncio.Queue[bytes]], Awaitable[None]],
                            errors: tuple[type[BaseException], ...], where: str) -> None:
        """Run ``session`` again and again: a broker outage is counted and logged, never fatal."""
        queue = self._start()
        self._attempt = 0
        self._where = where
        while True:
            try:
                await session(queue)
            except errors as exc:
                self._drop_queue()
                logger.warning("backplane: %s unreachable (%s); retrying", where, exc)
                self._attempt += 1
            finally:
                self._connected = False
            await asyncio.sleep(min(5.0, 0.1 * 2 ** min(self._attempt, 6)))


class RedisBackplane(_QueuedBackplane):
    """Redis pub/sub on ``channel`` (the ``redis`` package's asyncio API)."""

    def __init__(self, url: str, channel: str = "rfc6455:broadcast", *,
                 backlog: int = DEFAULT_BACKLOG) -> None:
        super().__init__(backlog)
        self.url = url
        self.channel = channel

    async def run(self, deliver: Deliver) -> None:
        try:
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError("--redis needs the 'redis' package: pip install redis") from exc
        await self._reconnecting(lambda queue: self._session(deliver, queue),
                                 (RedisError, OSError), f"Redis at {self.url}")

    async def _session(self, deliver: Deliver, queue: asyncio.Queue[bytes]) -> None:
        import redis.asyncio as aioredis

        client: Any = aioredis.Redis.from_url(self.url, socket_connect_timeout=2,
                                              health_check_interval=5)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        publisher: asyncio.Task[None] | None = None
        try:
            await pubsub.subscribe(self.channel)
            self._connected_now()
            publisher = asyncio.create_task(self._publish_loop(client, queue))
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if publisher.done():
                    publisher.result()  # re-raises the publisher's connection error
                if message is None or message.get("type") != "message":
                    continue
                self._deliver(deliver, message["data"])
        finally:
            if publisher is not None:
                publisher.cancel()
                with contextlib.suppress(BaseException):
                    await publisher
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _publish_loop(self, client: Any, queue: asyncio.Queue[bytes]) -> None:
        while True:
            data = await queue.get()
            try:
                await client.publish(self.channel, data)
            except BaseException:
                self._lost(1, "publish failed")
                raise
            self.published += 1

    def _deliver(self, deliver: Deliver, data: bytes) -> None:
        try:
            message = decode(data)
        except ValueError:
            self._lost(1, "garbled message on the channel")
            return
        self.received += 1
        deliver(message)


class RelayBackplane(_QueuedBackplane):
    """A worker's side of the embedded relay: a Unix socket to the supervising parent."""

    def __init__(self, path: str, *, backlog: int = DEFAULT_BACKLOG) -> None:
        super().__init__(backlog)
        self.path = path

    async def run(self, deliver: Deliver) -> None:
        await self._reconnecting(lambda queue: self._session(deliver, queue),
                                 (OSError, asyncio.IncompleteReadError), f"relay {self.path}")

    async def _session(self, deliver: Deliver, queue: asyncio.Queue[bytes]) -> None:
        reader, writer = await asyncio.open_unix_connection(self.path)
        sender: asyncio.Task[None] | None = None
        try:
            self._connected_now()
            sender = asyncio.create_task(self._send_loop(writer, queue))
            while True:
                (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
                data = await reader.readexactly(size)
                try:
                    message = decode(data)
                except ValueError:
                    self._lost(1, "garbled relay message")
                    continue
                self.received += 1
                deliver(message)
        finally:
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(BaseException):
                    await sender
            writer.close()

    async def _send_loop(self, writer: asyncio.StreamWriter, queue: asyncio.Queue[bytes]) -> None:
        while True:
            data = await queue.get()
            writer.write(_LENGTH.pack(len(data)) + data)
            await writer.drain()
            self.published += 1


class Relay:
    """The parent's side of the embedded backplane: every frame in goes to every worker.

    Frames are handled one at a time per worker stream and forwarded in arrival
    order, so each worker's messages keep their order everywhere. A worker that
    stops reading has its relay buffer bounded (``max_buffer``); past it, the
    worker is disconnected (it reconnects and resumes, the gap counted).
    """

    def __init__(self, path: str, *, max_buffer: int = 64 * 1024 * 1024) -> None:
        self.path = path
        self.max_buffer = max_buffer
        self.forwarded = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(_LENGTH.size)
                data = await reader.readexactly(_LENGTH.unpack(header)[0])
                frame = header + data
                for peer in list(self._writers):
                    transport = peer.transport
                    if transport.get_write_buffer_size() > self.max_buffer:
                        logger.warning("relay: a worker is not reading; disconnecting it")
                        peer.close()
                        self._writers.discard(peer)
                        continue
                    peer.write(frame)
                self.forwarded += 1
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
