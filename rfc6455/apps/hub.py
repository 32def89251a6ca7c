"""The broadcast server's policy: who gets each message, what a slow client costs it.

The fan-out itself -- one serialization per compression setting, a write to
each transport that never waits, the slow-member rule -- is the library's
``broadcast()`` (:func:`rfc6455.asyncio.broadcast`, :func:`rfc6455.sync.broadcast`).
The hub keeps what is this server's choice: the members (every open
connection of the app), the buffer each may hold (``--client-buffer``), what
happens past it (``--slow-policy drop|close``, ``--slow-close-code``), the
counters, and a log line per client that lost messages.

It is used from one event loop (asyncio) or from many threads (sync backend);
its own state is guarded by a lock that is never held while writing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from ..sync import BroadcastResult

__all__ = ["FanOut", "Hub"]

logger = logging.getLogger("rfc6455.broadcast")

C = TypeVar("C")



class FanOut(Protocol[C]):
    """An adapter's ``broadcast()``."""

    def __call__(self, connections: Iterable[C], message: str | bytes, *,
                 slow: Literal["skip", "close"], limit: int | None,
                 close_code: int) -> BroadcastResult[C]: ...


class Hub(Generic[C]):
    """The set of connected members and the server's slow-client policy.

    ``policy`` is ``"drop"`` (skip the message for a slow client) or ``"close"``;
    ``close_code`` 1008 or 1013 (RFC 6455 §7.4.1).
    """

    def __init__(self, fan_out: FanOut[C], *, buffer_limit: int = 1024 * 1024,
                 policy: str = "drop", close_code: int = 1008) -> None:
        if policy not in ("drop", "close"):
            raise ValueError(f"unknown slow-client policy {policy!r}")
        self._fan_out = fan_out
        self._slow: Literal["skip", "close"] = "skip" if policy == "drop" else "close"
        self.buffer_limit = buffer_limit
        self.policy = policy
        self.close_code = close_code
        self._lock = threading.Lock()
        self._labels: dict[C, str] = {}
        self._dropped: dict[C, int] = {}
        # What broadcast() hands to the library, remade on every join and leave.
        self._members: tuple[C, ...] = ()
        #: Messages broadcast, deliveries queued, deliveries dropped, clients closed as slow.
        self.messages = 0
        self.delivered = 0
        self.dropped = 0
        self.closed_slow = 0

    def __len__(self) -> int:
        return len(self._members)

    def join(self, member: C, label: str = "") -> None:
        with self._lock:
            self._labels[member] = label or repr(member)
            self._members = tuple(self._labels)

    def leave(self, member: C) -> None:
        with self._lock:
            label = self._labels.pop(member, None)
            dropped = self._dropped.pop(member, 0)
            self._members = tuple(self._labels)
        if label is not None and dropped:
            logger.info("%s left; %d broadcast messages were dropped for it", label, dropped)

    def broadcast(self, message: str | bytes) -> int:
        """Send ``message`` to every member; returns how many members took it."""
        result = self._fan_out(self._members, message, slow=self._slow,
                               limit=self.buffer_limit, close_code=self.close_code)
        reports: list[tuple[str, int]] = []
        with self._lock:
            self.messages += 1
            self.delivered += result.sent
            self.dropped += len(result.skipped)
            for member in result.skipped:
                label = self._labels.get(member)
                if label is not None:
                    dropped = self._dropped[member] = self._dropped.get(member, 0) + 1
                    if dropped == 1 or dropped % 1000 == 0:
                        reports.append((label, dropped))
            closed = [self._labels.pop(member) for member in result.closed
                      if member in self._labels]
            if closed:
                # Counted once, whichever thread saw it slow first.
                self.closed_slow += len(closed)
                for member in result.closed:
                    self._dropped.pop(member, None)
                self._members = tuple(self._labels)
        for label, dropped in reports:
            logger.warning("%s is not reading: %d broadcast messages dropped for it so far",
                           label, dropped)
        for label in closed:
            logger.warning("%s is not reading: closing it with %d", label, self.close_code)
        return result.sent

def member_label(remote: object) -> str:
    if isinstance(remote, tuple) and len(remote) >= 2:
        return f"client {remote[0]}:{remote[1]}"
    return f"client {remote}"


Publish = Callable[[str | bytes], object]
