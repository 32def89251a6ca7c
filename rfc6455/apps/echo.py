"""The echo server: every message goes back to its sender, text as text, binary as binary.

Fragmented messages arrive reassembled (RFC 6455 §5.4 lets any intermediary
refragment) and are echoed as one message of the same type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..asyncio import Connection as AsyncConnection
    from ..sync import Connection as SyncConnection

__all__ = ["echo_async", "echo_sync"]


async def echo_async(ws: AsyncConnection) -> None:
    """Handler for :func:`rfc6455.asyncio.serve`."""
    async for message in ws:
        await ws.send(message)


def echo_sync(ws: SyncConnection) -> None:
    """Handler for :func:`rfc6455.sync.serve` (one thread per connection)."""
    for message in ws:
        ws.send(message)
