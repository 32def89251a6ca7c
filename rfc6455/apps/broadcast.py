"""The broadcast server: every message any client sends goes to every connected client.

The fan-out itself is :class:`~rfc6455.apps.hub.Hub`; this module connects it
to each backend's connections, through the engine: a frame serialized once is
queued with :meth:`ServerConnection.send_frame_bytes`, so the engine still
knows the state (nothing is queued after a close) and the adapter's single
write path keeps frames in order with the engine's own pongs and closes.

* asyncio -- the transport's write buffer is the member's queue; a frame is
  written into it at once from the sender's handler, and its size is what the
  hub bounds. Writing never blocks.
* sync -- the adapter's outbox is the member's queue; the sender's thread
  appends to it and writes what the socket takes at once (never waiting), and
  a writer thread per member does the waiting writes, so a client that does
  not read stalls nobody but its own writer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..connection import ServerConnection
from .hub import Hub

if TYPE_CHECKING:
    from ..asyncio import Connection as AsyncConnection
    from ..sync import Connection as SyncConnection

__all__ = ["AsyncMember", "ThreadedMember", "broadcast_async", "broadcast_sync"]


def member_label(remote: object) -> str:
    if isinstance(remote, tuple) and len(remote) >= 2:
        return f"client {remote[0]}:{remote[1]}"
    return f"client {remote}"


class AsyncMember:
    """A hub member over one asyncio connection (used from the event loop's thread)."""

    __slots__ = ("close_slow", "label", "pending", "write_frame", "write_message", "ws")

    def __init__(self, ws: AsyncConnection) -> None:
        self.ws = ws
        self.label = member_label(ws.remote_address)
        transport = ws.transport
        #: Bytes queued for the client: the transport's own counter, bound once.
        self.pending: Callable[[], int] = (
            (lambda: ws.pending_bytes) if transport is None
            else transport.get_write_buffer_size)
        # The adapter's non-blocking fan-out API, bound once: the hub calls these
        # for every message and every member.
        self.write_frame = ws.queue_frame
        self.write_message = ws.send_nowait
        # Queues the close frame behind what is buffered; the close timeout then
        # makes the adapter drop the connection (§7.1.1).
        self.close_slow = ws.start_close


async def broadcast_async(hub: Hub, ws: AsyncConnection,
                          publish: Callable[[str | bytes], object] | None = None) -> None:
    """Handler for :func:`rfc6455.asyncio.serve`.

    ``publish`` hands each message to a backplane instead of the local hub; the
    backplane brings it back to every process's hub (see backplane.py).
    """
    if publish is None:
        publish = hub.broadcast
    member = AsyncMember(ws)
    engine = ws.engine
    transport = ws.transport
    hub.join(member, engine.extension, member.label,
             direct=(engine, transport) if transport is not None
             and isinstance(engine, ServerConnection) else None)
    try:
        async for message in ws:
            publish(message)
            # Let other connections' handlers and the transport's writes run
            # between messages of a client that sends faster than others.
            await asyncio.sleep(0)
    finally:
        hub.leave(member)


class ThreadedMember:
    """A hub member over one sync connection, with a writer thread of its own.

    The hub's calls queue (the adapter's ``queue_frame`` / ``send_nowait`` /
    ``start_close``), then write at once what the socket takes without waiting,
    as an asyncio transport does; only what remains wakes the writer thread,
    which waits for the client. A client that keeps up is therefore served by
    the broadcasting thread itself: it never depends on its writer thread
    getting the GIL among many others before the budget fills (with 50 clients
    that did not read, a client reading at full speed lost half the messages).
    """

    __slots__ = ("_stopped", "_wake", "label", "ws")

    def __init__(self, ws: SyncConnection) -> None:
        self.ws = ws
        self.label = member_label(ws.remote_address)
        self._wake = threading.Event()
        self._stopped = False
        threading.Thread(target=self._run, daemon=True, name=f"writer {self.label}").start()

    def pending(self) -> int:
        return self.ws.pending_bytes

    def _written(self) -> None:
        ws = self.ws
        ws.flush(block=False)
        if ws.pending_bytes:
            self._wake.set()

    def write_frame(self, frame: bytes) -> bool:
        if not self.ws.queue_frame(frame):
            return False
        self._written()
        return True

    def write_message(self, message: str | bytes) -> bool:
        if not self.ws.send_nowait(message):
            return False
        self._written()
        return True

    def close_slow(self, code: int, reason: str) -> None:
        # The close frame goes behind what is queued; the close timeout then
        # makes the adapter drop the connection (§7.1.1).
        self.ws.start_close(code, reason)
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopped:
                return
            # Waits for the client; returns at once if another thread is writing
            # (that one, or the connection's reader thread, writes the rest).
            self.ws.flush()


def broadcast_sync(hub: Hub, ws: SyncConnection,
                   publish: Callable[[str | bytes], object] | None = None) -> None:
    """Handler for :func:`rfc6455.sync.serve` (one thread per connection)."""
    if publish is None:
        publish = hub.broadcast
    member = ThreadedMember(ws)
    hub.join(member, ws.engine.extension, member.label)
    try:
        for message in ws:
            publish(message)
    finally:
        hub.leave(member)
        member.stop()
