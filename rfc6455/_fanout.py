"""Broadcast: one message to many connections, serialized once, waiting for none.

What both adapters' ``broadcast()`` share: which frame each connection sends,
the slow-member rule and policy, the result and the log. How a frame is
written without waiting is each adapter's (``Connection._fan_out``).

Theory of operation
-------------------
Server frames are not masked (RFC 6455 §5.1), so a message serialized once is
valid on every server connection that sends it uncompressed. With
permessage-deflate, a connection whose server side resets its compression
context after each message (``server_no_context_takeover``, RFC 7692
§7.1.1.1) compresses a message the same way every time: connections with
equal compression settings share one compressed frame. A connection that
keeps its context (RFC 7692's default) compresses the message itself, its
output depending on what it sent before; so does a client connection (each of
its frames is masked with a fresh key, §5.3) and one with another extension.
So a broadcast serializes a message at most once per distinct compression
setting, plus once per connection that keeps its context.

Each member's write goes as far as its transport takes it at once; the rest
waits in the member's buffer for the adapter's background writing. A member
whose buffer already holds more than its limit (the connection's
``write_limit`` unless the caller gives one) is slow: the message is skipped
for it (``slow="skip"``, the default) or it is closed (``slow="close"``, with
1008 or 1013, §7.4.1). Either way it never delays anyone else, and what waits
for it stays below its limit plus one message.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

from ._core import State
from .connection import ClientConnection, ServerConnection
from .errors import CloseCode
from .extensions.permessage_deflate import PerMessageDeflate
from .frames import Opcode, serialize_frame

__all__ = ["BroadcastResult", "SlowPolicy"]

logger = logging.getLogger("rfc6455.broadcast")

#: What :func:`broadcast` does with a member whose buffer is over its limit.
SlowPolicy = Literal["skip", "close"]

_OPEN: Final = State.OPEN

# What one member's step (an adapter's ``Connection._fan_out``) reports.
SENT: Final = 0
NOT_OPEN: Final = 1
SLOW: Final = 2
#: Sending a message in parts: a data frame cannot go between its frames (§5.4).
BUSY: Final = 3

#: The reason of the close frame a slow member gets (policy "close").
SLOW_REASON: Final = "too slow for broadcast"
#: Skips are logged at once, then at most this often (s), counted in between.
REPORT_INTERVAL: Final = 10.0

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class BroadcastResult(Generic[C]):
    """What a broadcast did; the connections that were not open are in none of these."""

    #: How many connections the message was queued for.
    sent: int
    #: Open connections that did not get the message: slow ones (policy "skip")
    #: and those sending a message in parts (§5.4).
    skipped: tuple[C, ...] = ()
    #: Slow connections whose closing handshake was started (policy "close").
    closed: tuple[C, ...] = ()


class Frames:
    """One message and the frames it is sent as, each serialized at most once."""

    __slots__ = ("_compressed", "_plain", "message", "opcode", "payload", "size")

    def __init__(self, message: str | bytes | bytearray | memoryview) -> None:
        if isinstance(message, str):
            self.opcode: int = Opcode.TEXT
            self.payload = message.encode("utf-8")
        elif isinstance(message, (bytes, bytearray, memoryview)):
            self.opcode = Opcode.BINARY
            self.payload = bytes(message)
        else:
            raise TypeError("broadcast() sends a str (text message) or a bytes-like object "
                            f"(binary message), not {type(message).__name__}")
        self.message: str | bytes = message if isinstance(message, str) else self.payload
        self.size = len(self.payload)
        self._plain: bytes | None = None
        self._compressed: dict[tuple[int, int, int, int], bytes] | None = None

    def over_limit(self, pending: int, limit: int) -> bool:
        """Whether a member with ``pending`` bytes waiting is too slow to take this message.

        A member that has caught up (nothing waiting) takes even a message larger
        than its limit (so a caller with nothing pending may skip the call).
        """
        return pending != 0 and pending + self.size > limit

    def frame_for(self, engine: ServerConnection | ClientConnection) -> bytes | None:
        """The frame ``engine`` sends this message as; None when it must make its own."""
        extension = engine.extension
        if extension is None:
            if isinstance(engine, ClientConnection):
                return None  # §5.3: a fresh masking key per frame
            return self._plain or self.plain()
        if type(extension) is not PerMessageDeflate or not extension.send_reset \
                or isinstance(engine, ClientConnection):
            return None  # its output depends on what it compressed before
        # RFC 7692 §6: whether a whole message is compressed depends on its size
        # and the settings only (the threshold is among them).
        rsv = extension.begin_outgoing(self.size, None)
        if not rsv:
            return self.plain()
        key = extension.output_settings
        compressed = self._compressed
        if compressed is None:
            compressed = self._compressed = {}
        frame = compressed.get(key)
        if frame is None:
            # A copy has the same settings and a fresh compressor: the connection's
            # own is untouched, and threads broadcasting at once never share one.
            payload = copy.copy(extension).encode(self.payload, True)
            frame = compressed[key] = serialize_frame(self.opcode, payload, rsv=rsv)
        return frame

    def plain(self) -> bytes:
        frame = self._plain
        if frame is None:
            frame = self._plain = serialize_frame(self.opcode, self.payload)
        return frame


class _SkipReport:
    """The log of skipped members: the first at once, then a count every interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = -REPORT_INTERVAL
        self._unreported = 0

    def skipped(self, slow: int, busy: int, clock: Callable[[], float] = time.monotonic) -> None:
        now = clock()
        with self._lock:
            self._unreported += slow + busy
            if now - self._last < REPORT_INTERVAL:
                return
            count, self._unreported, self._last = self._unreported, 0, now
        logger.warning("broadcast: message dropped for %d connection(s) (%d slow: buffer over "
                       "its limit, %d sending a message in parts); %d dropped since the last "
                       "report", slow + busy, slow, busy, count)


_report = _SkipReport()


def check_options(slow: str, limit: int | None, close_code: int) -> None:
    if slow not in ("skip", "close"):
        raise ValueError(f"slow must be 'skip' or 'close', not {slow!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be at least 0, not {limit}")
    if close_code not in (CloseCode.POLICY_VIOLATION, CloseCode.TRY_AGAIN_LATER) \
            and not 3000 <= close_code <= 4999:
        # §7.4.1/§7.4.2: 1008 (policy) or 1013 (try again later), or an
        # application's own code.
        raise ValueError(f"close_code must be 1008, 1013 or 3000-4999, not {close_code}")


def fan_out(connections: Iterable[C], message: str | bytes | bytearray | memoryview,
            step: Callable[[C, Frames, int | None], int],
            close: Callable[[C, int, str], None], *, slow: SlowPolicy, limit: int | None,
            close_code: int) -> BroadcastResult[C]:
    """The broadcast loop of both adapters; ``step`` writes to one member, ``close`` closes one."""
    check_options(slow, limit, close_code)
    frames = Frames(message)
    sent = 0
    slow_members: list[C] = []
    busy_members: list[C] = []
    for connection in connections:
        outcome = step(connection, frames, limit)
        if outcome == SENT:
            sent += 1
        elif outcome == SLOW:
            slow_members.append(connection)
        elif outcome == BUSY:
            busy_members.append(connection)
    if not slow_members and not busy_members:
        return BroadcastResult(sent)
    closed: tuple[C, ...] = ()
    if slow == "close" and slow_members:
        closed = tuple(slow_members)
        for connection in closed:
            # The close frame goes behind what is buffered; the close timeout
            # then drops a member that does not read it (§7.1.1).
            close(connection, close_code, SLOW_REASON)
        logger.warning("broadcast closed %d slow connection(s) with %d (buffer over its limit)",
                       len(closed), close_code)
        slow_members = []
    if slow_members or busy_members:
        _report.skipped(len(slow_members), len(busy_members))
    return BroadcastResult(sent, (*slow_members, *busy_members), closed)
