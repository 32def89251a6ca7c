"""Broadcast fan-out: serialize once, write the same bytes everywhere, bound every client.

Theory of operation
-------------------
A message to broadcast becomes at most a handful of frames, whatever the number
of clients: one uncompressed frame (server frames are not masked, RFC 6455
§5.1, so the same bytes are valid on every connection) and one compressed frame
per set of permessage-deflate parameters among connections whose server side
resets its context between messages (``server_no_context_takeover``, RFC 7692
§7.1.1.1): for them a message compresses the same way every time. A connection
that keeps its compression context must compress each message itself; the hub
hands it the message instead of a frame.

Each member reports how many bytes wait to be written to it. Past the hub's
``buffer_limit`` the member is a slow client: the message is dropped for it
(counted and logged), or it is closed with 1008/1013 (RFC 6455 §7.4.1) -- it
never delays anyone else and never makes the server hold more than the limit
(plus one message) for it. The hub is used from one event loop (asyncio) or
from many threads (sync backend); its own state is guarded by a lock that is
never held while writing.

A member may also name its engine and an asyncio-style transport (``direct``
in :meth:`Hub.join`): while the engine allows it
(:attr:`~rfc6455.ServerConnection.frame_bytes_direct`) the hub writes the plain
frame to that transport itself. What costs in a fan-out to a thousand
connections is not Python's work but memory: every write is a system call,
after which each object the next member touches is a cache (and TLB) miss,
about half a microsecond each on our machines. The direct path touches the
engine and the transport, against six objects through the member's methods.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from ..frames import RSV1, Opcode, serialize_frame

if TYPE_CHECKING:
    from ..connection import ServerConnection

__all__ = ["Hub", "Member"]

logger = logging.getLogger("rfc6455.broadcast")


class Member(Protocol):
    """One connection as the hub sees it; implemented by each backend's glue."""

    def pending(self) -> int:
        """Bytes queued for this connection and not yet handed to the kernel."""
        ...

    def write_frame(self, frame: bytes) -> bool:
        """Queue a whole serialized server frame; False if the connection takes no more."""
        ...

    def write_message(self, message: str | bytes) -> bool:
        """Queue a message this connection compresses with its own context."""
        ...

    def close_slow(self, code: int, reason: str) -> None:
        """Start closing this connection because it does not keep up."""
        ...


class WriteTransport(Protocol):
    """What the direct path uses of an asyncio transport (uvloop's included)."""

    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...


@dataclass(slots=True)
class _Entry:
    member: Member
    label: str
    # How the member takes a message that its extension would compress:
    # None -- no extension, the plain frame always; a key -- a compressed frame
    # shared with every member of equal key; _OWN -- the member compresses it.
    share: tuple[Any, ...] | None
    extension: Any
    # The member's two calls per message, bound once: the fan-out loop then
    # touches the entry but not the member object (fewer cold cache lines per
    # member when a broadcast walks a thousand of them).
    pending: Callable[[], int]
    write_frame: Callable[[bytes], bool]
    # The member's engine and transport when the hub may write to it itself (join).
    direct: tuple[ServerConnection, WriteTransport] | None
    dropped: int = 0


_OWN: Final = ("own",)


def _share_key(extension: Any) -> tuple[Any, ...] | None:
    """How a connection with ``extension`` negotiated takes broadcast frames.

    permessage-deflate with ``server_no_context_takeover`` (the extension's
    ``send_reset``) compresses every message from a fresh state, so its output
    depends only on the parameters that make up the key: those connections can
    share a frame. Any other extension compresses with a context of its own.
    """
    if extension is None:
        return None
    if getattr(extension, "name", None) == "permessage-deflate" and \
            getattr(extension, "send_reset", False) is True:
        return (type(extension), *extension.output_settings)
    return _OWN


def _compresses(extension: Any, size: int) -> bool:
    """Whether ``extension`` would compress a whole message of ``size`` bytes (RFC 7692 §6)."""
    if getattr(extension, "name", None) == "permessage-deflate":
        # begin_outgoing is a pure function of the size for permessage-deflate.
        return bool(extension.begin_outgoing(size, None))
    return True


def _shared_frame(opcode: int, payload: bytes, extension: Any) -> bytes:
    # A copy per message: the extension resets its compressor after each message
    # (send_reset), so the copy starts from the same fresh state, and threads
    # broadcasting at once never share a zlib object.
    encoder = copy.copy(extension)
    return serialize_frame(opcode, encoder.encode(payload, True), rsv=RSV1)


class Hub:
    """The set of connected members and the fan-out to them.

    ``policy`` is ``"drop"`` or ``"close"``; ``close_code`` 1008 or 1013.
    """

    def __init__(self, *, buffer_limit: int = 1024 * 1024, policy: str = "drop",
                 close_code: int = 1008) -> None:
        if policy not in ("drop", "close"):
            raise ValueError(f"unknown slow-client policy {policy!r}")
        self.buffer_limit = buffer_limit
        self.policy = policy
        self.close_code = close_code
        self._lock = threading.Lock()
        self._entries: dict[Member, _Entry] = {}
        # What broadcast() walks, rebuilt on every join and leave: the members
        # without a direct path, and (engine, transport, entry) of the others,
        # flat, so that the loop touches no per-member container.
        self._snapshot: tuple[_Entry, ...] = ()
        self._flat: tuple[Any, ...] = ()
        #: Messages broadcast, deliveries queued, deliveries dropped, clients closed as slow.
        self.messages = 0
        self.delivered = 0
        self.dropped = 0
        self.closed_slow = 0

    def __len__(self) -> int:
        return len(self._entries)

    def join(self, member: Member, extension: Any = None, label: str = "", *,
             direct: tuple[ServerConnection, WriteTransport] | None = None) -> None:
        """Add a member; ``extension`` is the one its connection negotiated, if any.

        ``direct`` is the member's engine and transport when a frame may be
        written to that transport as soon as ``engine.frame_bytes_direct`` is
        True and the transport is not closing, with the same result as
        ``member.write_frame(frame)``; and ``member.pending()`` is the
        transport's ``get_write_buffer_size()``. The asyncio member gives it.
        """
        share = _share_key(extension)
        # A member with an extension may need a compressed frame: general path.
        entry = _Entry(member, label or repr(member), share, extension,
                       member.pending, member.write_frame, direct if share is None else None)
        with self._lock:
            self._entries[member] = entry
            self._rebuild()

    def leave(self, member: Member) -> None:
        with self._lock:
            entry = self._entries.pop(member, None)
            self._rebuild()
        if entry is not None and entry.dropped:
            logger.info("%s left; %d broadcast messages were dropped for it",
                        entry.label, entry.dropped)

    def broadcast(self, message: str | bytes) -> int:
        """Queue ``message`` for every member; returns how many members took it."""
        if isinstance(message, str):
            opcode: int = Opcode.TEXT
            payload = message.encode("utf-8")
        else:
            opcode = Opcode.BINARY
            payload = bytes(message)
        size = len(payload)
        plain: bytes | None = None
        shared: dict[tuple[Any, ...], bytes] = {}
        limit = self.buffer_limit
        taken = 0
        flat = self._flat
        if flat:
            plain = serialize_frame(opcode, payload)
            members = iter(flat)
            for engine, transport, entry in zip(members, members, members, strict=True):
                # The general path below, for a member without extension, with
                # pending() and write_frame() inlined (see join).
                pending = transport.get_write_buffer_size()
                if pending and pending + size > limit:
                    self._slow(entry)
                elif engine.frame_bytes_direct and not transport.is_closing():
                    transport.write(plain)
                    taken += 1
                else:
                    taken += entry.write_frame(plain)
        for entry in self._snapshot:
            pending = entry.pending()
            # A message larger than the limit still reaches a client that has caught up.
            if pending and pending + size > limit:
                self._slow(entry)
                continue
            share = entry.share
            if share is None or not _compresses(entry.extension, size):
                if plain is None:
                    plain = serialize_frame(opcode, payload)
                ok = entry.write_frame(plain)
            elif share is _OWN:
                ok = entry.member.write_message(message)
            else:
                frame = shared.get(share)
                if frame is None:
                    frame = shared[share] = _shared_frame(opcode, payload, entry.extension)
                ok = entry.write_frame(frame)
            taken += ok
        self.messages += 1
        self.delivered += taken
        return taken

    def _slow(self, entry: _Entry) -> None:
        if self.policy == "drop":
            entry.dropped += 1
            self.dropped += 1
            if entry.dropped == 1 or entry.dropped % 1000 == 0:
                logger.warning("%s is not reading: %d broadcast messages dropped for it so far",
                               entry.label, entry.dropped)
            return
        with self._lock:
            if self._entries.pop(entry.member, None) is None:
                return  # another thread closed it already
            self._rebuild()
        self.closed_slow += 1
        logger.warning("%s is not reading: closing it with %d", entry.label, self.close_code)
        entry.member.close_slow(self.close_code, "client too slow for broadcast")

    def _rebuild(self) -> None:
        """Remake what broadcast() walks (with the lock held)."""
        flat: list[Any] = []
        rest: list[_Entry] = []
        for entry in self._entries.values():
            if entry.direct is None:
                rest.append(entry)
            else:
                flat += (*entry.direct, entry)
        self._flat = tuple(flat)
        self._snapshot = tuple(rest)
