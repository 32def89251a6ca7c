"""The broadcast server: every message any client sends goes to every connected client.

Each backend's handler makes its connection a member of the
:class:`~rfc6455.apps.hub.Hub` and publishes what it receives; the hub hands
each message to the library's ``broadcast()``, which writes it to every member
without waiting for any (the sync adapter's background writer finishes what a
socket does not take at once).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .hub import Hub, Publish, member_label

if TYPE_CHECKING:
    from ..asyncio import Connection as AsyncConnection
    from ..sync import Connection as SyncConnection

__all__ = ["broadcast_async", "broadcast_sync", "member_label"]


async def broadcast_async(hub: Hub[AsyncConnection], ws: AsyncConnection,
                          publish: Publish | None = None) -> None:
    """Handler for :func:`rfc6455.asyncio.serve`.

    ``publish`` hands each message to a backplane instead of the local hub; the
    backplane brings it back to every process's hub (see backplane.py).
    """
    if publish is None:
        publish = hub.broadcast
    hub.join(ws, member_label(ws.remote_address))
    try:
        async for message in ws:
            publish(message)
            # Let other connections' handlers and the transport's writes run
            # between messages of a client that sends faster than others.
            await asyncio.sleep(0)
    finally:
        hub.leave(ws)


def broadcast_sync(hub: Hub[SyncConnection], ws: SyncConnection,
                   publish: Publish | None = None) -> None:
    """Handler for :func:`rfc6455.sync.serve` (one thread per connection)."""
    if publish is None:
        publish = hub.broadcast
    hub.join(ws, member_label(ws.remote_address))
    try:
        for message in ws:
            publish(message)
    finally:
        hub.leave(ws)
