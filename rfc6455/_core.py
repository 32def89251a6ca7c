"""The engine shared by both roles: reading frames, writing frames, closing.

Theory of operation
-------------------
Bytes go in with :meth:`receive_data` / :meth:`receive_eof`; nothing is parsed
then. Events come out of :meth:`next_event`, which parses just enough of the
buffer to produce one event. Parsing lazily matters: a protocol violation is
only discovered (and the connection failed) after the application has handled
every event before it, so an echo of a good message goes out before the close
that a following bad frame causes -- what Autobahn calls strict behaviour.

Protocol duties happen while parsing, without the application's help: a ping
queues a pong (§5.5.2), a close queues the reply close (§5.5.1), a violation
queues a close with the right code and ends the connection (§7.1.7). Whatever
must go out is collected by :meth:`data_to_send`, which returns :data:`EOF`
once the transport must be shut down.

States (one attribute, changed only in this module)::

    CONNECTING --accept/Accepted--> OPEN --close() sent--> CLOSING --close rcvd--> CLOSED
         |                            |                                           ^
         +--reject/respond/error------+--close rcvd (reply sent) / failure / EOF--+

The server closes the TCP connection first (§7.1.1): it gets :data:`EOF` from
``data_to_send`` as soon as the closing handshake is done. The client waits for
the server's EOF; :meth:`close_expected` tells the adapter to arm a timer for it.
"""

from __future__ import annotations

import codecs
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Final, TypeVar

from ._mask import ACCELERATED, KEY_POOL, SHORT_LOW, SHORT_REPEAT, mask, mask_join, new_key
from .errors import CloseCode, LocalProtocolError, RemoteProtocolError
from .events import Binary, ConnectionClosed, Event, Ping, Pong, Text
from .extensions.base import Extension
from .frames import (
    MAX_CONTROL_PAYLOAD,
    Opcode,
    build_close_payload,
    masked_frame,
    parse_close_payload,
    serialize_frame,
    serialize_frame_parts,
)

__all__ = ["EOF", "Limits", "State"]


class State(Enum):
    CONNECTING = "CONNECTING"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


class _EOFType:
    """Sentinel returned by ``data_to_send()``: shut down the transport's write side now."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EOF"


EOF: Final = _EOFType()


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on everything a peer can make us hold. ``None`` lifts a bound.

    * ``max_header_bytes`` -- size of the opening handshake's HTTP head (431/400 past it).
    * ``max_message_size`` -- bytes of one message after decompression (close 1009).
      In streaming mode too, unless set to ``None``.
    * ``max_frame_size`` -- payload bytes of one frame (close 1009).
    * ``max_fragments`` -- frames in one message (close 1009).
    """

    max_header_bytes: int = 16 * 1024
    max_message_size: int | None = 1024 * 1024
    max_frame_size: int | None = None
    max_fragments: int | None = 4096


_unpack_16 = struct.Struct("!H").unpack_from
_pack_short_header = struct.Struct("!BB").pack
_pack_medium_header = struct.Struct("!BBH").pack
_unpack_64 = struct.Struct("!Q").unpack_from
_TEXT: Final = 1
_BINARY: Final = 2
_NO_FRAME: Final = -1
_Piece = TypeVar("_Piece", str, bytes)
_Arg = TypeVar("_Arg")
# Payloads from this size are queued apart from their frame header rather than
# copied into one frame: data_to_send_parts() hands them on as they are.
_UNJOINED_SIZE: Final = 65536
# A masked payload shorter than this is sliced out of the buffer before being
# unmasked: a copy of a few KiB costs less than a memoryview and its slice.
_SLICED_MASK_MAX: Final = 4096
_new_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_from_bytes = int.from_bytes
_OPEN: Final = State.OPEN
_CLOSING: Final = State.CLOSING
# Unsent output frames past which a new automatic pong replaces an unsent one
# instead of adding to them (§5.5.3; see Connection._queue_pong).
_PONG_BACKLOG: Final = 16

# The C accelerator's version of next_event's fast path (same frames, same
# events): _speedups.next_frame(connection) reads the members of its base class.
_next_frame: Callable[[PythonEngine], Event | None] | None = None
if ACCELERATED:  # pragma: no cover - depends on the build
    from . import _speedups

    _speedups.configure(Text, Binary)
    _next_frame = _speedups.next_frame


# Whole-message events built without the dataclass __init__, for the pure-Python
# hot paths: about 100 ns less per event. They fill the same two slots __init__
# does (a frozen dataclass sets its fields with object.__setattr__; the slots'
# descriptors do the same), final=True. tests/test_fast_path.py checks the fields.
_new_object = object.__new__
_set_text_data = Text.__dict__["data"].__set__
_set_text_final = Text.__dict__["final"].__set__
_set_binary_data = Binary.__dict__["data"].__set__
_set_binary_final = Binary.__dict__["final"].__set__


def _text(data: str) -> Text:
    """``Text(data)``, the fields set directly."""
    event = _new_object(Text)
    _set_text_data(event, data)
    _set_text_final(event, True)
    return event


def _binary(data: bytes) -> Binary:
    """``Binary(data)``, the fields set directly."""
    event = _new_object(Binary)
    _set_binary_data(event, data)
    _set_binary_final(event, True)
    return event


def _text_event_python(data: bytes) -> Text | None:
    """``Text`` of UTF-8 bytes; None when they are not valid UTF-8 (the caller fails, §8.1)."""
    try:
        return _text(str(data, "utf-8"))
    except UnicodeDecodeError:
        return None


# The C accelerator's version builds the event directly (no dataclass __init__).
_text_event: Callable[[bytes], Text | None] = _text_event_python
if ACCELERATED:  # pragma: no cover - depends on the build
    _text_event = _speedups.text_event


class _Fail(Exception):
    """Internal: the peer violated the protocol; carries the error to fail with."""

    def __init__(self, error: RemoteProtocolError) -> None:
        self.error = error


def _violation(message: str, code: int = CloseCode.PROTOCOL_ERROR) -> _Fail:
    return _Fail(RemoteProtocolError(message, code))


def _invalid_utf8() -> _Fail:
    """§8.1: invalid UTF-8 in a text message fails the connection (every path)."""
    return _violation("invalid UTF-8 in a text message", CloseCode.INVALID_FRAME_PAYLOAD_DATA)


def _check_limits(limits: Limits, frame: int, message: int | None, fragments: int) -> None:
    """The limits on what a peer makes us hold (close 1009), checked as each frame
    begins: its payload size, the message's size so far with it (None: compressed,
    checked while inflating instead) and the message's frame count."""
    if limits.max_frame_size is not None and frame > limits.max_frame_size:
        raise _violation(f"frame of {frame} bytes exceeds {limits.max_frame_size}",
                         CloseCode.MESSAGE_TOO_BIG)
    if message is not None and limits.max_message_size is not None \
            and message > limits.max_message_size:
        raise _violation(f"message exceeds {limits.max_message_size} bytes",
                         CloseCode.MESSAGE_TOO_BIG)
    if limits.max_fragments is not None and fragments > limits.max_fragments:
        raise _violation(f"message in more than {limits.max_fragments} frames",
                         CloseCode.MESSAGE_TOO_BIG)


def _parse_header(buf: bytes, pos: int, client: bool) -> tuple[int, int, int, bytes | None] | None:
    """A frame header at ``pos`` (§5.2): first byte, payload length, payload start and
    masking key; None while incomplete. Masking is checked by role (§5.1)."""
    avail = len(buf) - pos
    if avail < 2:
        return None
    b1 = buf[pos + 1]
    length = b1 & 0x7F
    header = 2
    if length == 126:
        if avail < 4:
            return None
        (length,) = _unpack_16(buf, pos + 2)
        header = 4
    elif length == 127:
        if avail < 10:
            return None
        (length,) = _unpack_64(buf, pos + 2)
        header = 10
        if length >> 63:
            raise _violation("64-bit length with the most significant bit set")
    # §5.1: clients mask every frame, servers none.
    if not b1 & 0x80:
        if not client:
            raise _violation("unmasked frame from the client")
        return buf[pos], length, pos + header, None
    if client:
        raise _violation("masked frame from the server")
    if avail < header + 4:
        return None
    return buf[pos], length, pos + header + 4, buf[pos + header:pos + header + 4]


#: The engine state the accelerator's methods read: members of its C base class
#: when it is built, else slots of _PythonState (the same names either way).
ENGINE_MEMBERS: Final = (
    "_buf",
    "_client",
    "_eof_pending",
    "_eof_received",
    "_eof_sent",
    "_events",
    "_extension",
    "_fast_limit",
    "_fragment_size",
    "_frame_left",
    "_more",
    "_more_size",
    "_msg_opcode",
    "_out",
    "_out_opcode",
    "_pos",
    "_state",
)


class PythonEngine:
    """The engine's rules, in Python: what every Connection does (the C base class,
    when built, does the common case of a few per-message methods itself and calls
    these for the rest). The state is in Connection's slots and base class."""

    if not TYPE_CHECKING:  # (mypy: the attributes are declared below)
        __slots__ = ()
    else:
        _buf: bytes
        _client: bool
        _eof_pending: bool
        _eof_received: bool
        _eof_sent: bool
        _events: list[Event]
        _extension: Extension | None
        _fast_limit: int
        _fragment_size: int | None
        _frame_left: int
        _more: deque[bytes] | None
        _more_size: int
        _msg_opcode: int
        _out: list[bytes]
        _out_opcode: int
        _pos: int
        _state: State
        _auto_pong: bool
        _close_sent: bool
        _closed_event: bool
        _frame_fin: bool
        _frame_key: bytes | None
        _frame_offset: int
        _limits: Limits
        _msg_compressed: bool
        _msg_fragments: int
        _msg_parts: list[str] | list[bytes] | None
        _msg_size: int
        _out_compressed: bool
        _streaming: bool
        _unsent_pong: bytes | None
        _utf8: codecs.IncrementalDecoder | None
        close_code: int | None
        close_reason: str

    def __init__(
        self,
        *,
        client: bool,
        limits: Limits,
        streaming: bool,
        auto_pong: bool,
        fragment_size: int | None,
    ) -> None:
        if fragment_size is not None and fragment_size < 1:
            raise ValueError("fragment_size must be positive")
        self._client = client
        self._limits = limits
        # The largest payload a single-frame message may have (both limits), for _read's
        # fast path; 2**63 stands for no limit (§5.2 lengths are below 2**63).
        self._fast_limit = min(2**63 if limits.max_message_size is None
                               else limits.max_message_size,
                               2**63 if limits.max_frame_size is None else limits.max_frame_size)
        self._streaming = streaming
        self._auto_pong = auto_pong
        self._fragment_size = fragment_size
        self._state = State.CONNECTING
        self._extension: Extension | None = None
        # Receive side: the chunk being parsed and an offset into it (never re-scanned),
        # then the chunks received behind it, kept as they came (no copy, no growing
        # buffer) until the parser reaches them.
        self._buf = b""
        self._pos = 0
        self._more: deque[bytes] | None = None
        self._more_size = 0  # bytes in _more
        self._frame_left = _NO_FRAME  # payload bytes of the current data frame still to read
        self._frame_fin = False
        self._frame_key: bytes | None = None
        self._frame_offset = 0  # payload bytes of the current frame already read (mask phase)
        self._msg_opcode = 0  # 0: no message in progress, else _TEXT or _BINARY
        self._msg_compressed = False
        self._msg_size = 0
        self._msg_fragments = 0
        self._msg_parts: list[str] | list[bytes] | None = None
        self._utf8: codecs.IncrementalDecoder | None = None
        self._events: list[Event] = []
        self._eof_received = False
        self._closed_event = False
        # Send side.
        self._out: list[bytes] = []
        # The latest automatic pong, while it may still be in _out: a later one may
        # take its place (§5.5.3, _queue_pong).
        self._unsent_pong: bytes | None = None
        self._out_opcode = 0  # opcode of an outgoing message sent in parts, else 0
        self._out_compressed = False
        self._close_sent = False
        self._eof_pending = False
        self._eof_sent = False
        self.close_code: int | None = None
        self.close_reason = ""

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> State:
        return self._state

    @property
    def streaming(self) -> bool:
        """Whether messages are delivered in pieces as frames arrive (else whole).

        May be switched at any time; it applies from the next event. A message
        already partly delivered in pieces then ends with one final piece holding
        the rest.
        """
        return self._streaming

    @streaming.setter
    def streaming(self, value: bool) -> None:
        self._streaming = value

    @property
    def extension(self) -> Extension | None:
        """The negotiated extension, if any."""
        return self._extension

    def close_expected(self) -> bool:
        """Whether the transport should close soon: arm the close timeout when True.

        True once a close frame was sent or the connection failed, until the
        peer's EOF arrives (§7.1.1: the client waits for the server to close TCP).
        """
        return (self._state is State.CLOSING or self._state is State.CLOSED) \
            and not self._eof_received

    @property
    def buffered_bytes(self) -> int:
        """Received bytes not parsed yet: pause reading the transport when this grows."""
        # (Read on every message by the adapters: the common answer, 0, comes first.)
        size = len(self._buf) - self._pos + self._more_size
        if size:
            left = self._frame_left
            if left != _NO_FRAME and self._gathers_whole(left):
                # The rest of a frame being gathered whole is part of a message,
                # bounded by the limits like a message's collected parts: only bytes
                # behind it count, or a reader pausing at a threshold would wait forever.
                return max(0, size - left)
            return size
        if self._state is State.CONNECTING:
            # They wait in the handshake's HTTP parser: a client may send frames right
            # behind its request, before the application accepts it (fuzz/ memory bounds).
            handshake = getattr(self, "_handshake", None)
            return int(getattr(handshake, "buffered_bytes", 0))
        return 0

    @property
    def input_pending(self) -> bool:
        """Whether :meth:`next_event` may have something to return now.

        False means it returns None until more data or the end of input is
        received: nothing is buffered, no event is queued, and no end of input
        is left to report. A driver may then skip asking.
        """
        if self._events or self._pos < len(self._buf) or self._more is not None:
            return True
        state = self._state
        if state is _OPEN or state is _CLOSING:
            return self._eof_received  # the abnormal closure is still to be reported
        return state is State.CONNECTING  # the handshake holds its own buffer

    def _gathers_whole(self, left: int) -> bool:
        """Whether the frame in progress (``left`` payload bytes to come) is gathered
        whole rather than consumed as it arrives: a binary message wanted whole,
        within the limits. Not text: invalid UTF-8 must fail as soon as it arrives
        (§8.1), so text is checked incrementally as the payload comes in."""
        return not self._streaming and left <= self._fast_limit and self._msg_opcode == _BINARY

    # ------------------------------------------------------------------ input

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the transport. Never raises for what the peer sent."""
        if self._eof_received:
            raise LocalProtocolError("data received after EOF")
        if not data or self._state is State.CLOSED:
            return
        if self._state is State.CONNECTING:
            self._receive_handshake_data(bytes(data))
            return
        self._feed(data)

    def _feed(self, data: bytes | bytearray | memoryview) -> None:
        if type(data) is not bytes:
            data = bytes(data)  # the caller may reuse its buffer
        if self._pos >= len(self._buf) and self._more is None:
            # Everything before was consumed: parse the new bytes where they lie.
            self._buf = data
            self._pos = 0
            return
        # Queued as they are: bytes the application is not pulling yet (or the
        # rest of a long frame) cost no copy and no buffer growth here.
        if self._more is None:
            self._more = deque()
        self._more.append(data)
        self._more_size += len(data)

    def _refill(self) -> bool:
        """The parser needs more than the current chunk: move on to the next one.

        What is left of the current chunk is at most an incomplete frame header or
        short frame (payloads are consumed as they arrive), so joining it to the
        next chunk copies little beyond that chunk.
        """
        more = self._more
        if more is None:
            return False
        chunk = more.popleft()
        self._more_size -= len(chunk)
        if not more:
            self._more = None
        buf, pos = self._buf, self._pos
        self._buf = chunk if pos >= len(buf) else b"".join((memoryview(buf)[pos:], chunk))
        self._pos = 0
        return True

    def deliver_messages(self, data: bytes | bytearray | memoryview,
                         callback: Callable[[_Arg, str | bytes], object], arg: _Arg) -> int:
        """:meth:`receive_data`, then hand whole messages to ``callback(arg, message)``.

        While the connection is open and the next event would be a whole text
        or binary message, its payload (``str`` or ``bytes``) goes to the
        callback instead of being returned by :meth:`next_event`. Anything else
        stops the loop and is left, with what follows, to :meth:`next_event`.
        Returns how many messages were delivered. An exception from the
        callback propagates, its message consumed. The callback may send and
        close, but must not read from this connection.

        For a consumer that takes every message as it comes (a callback-style
        adapter): the same messages as :meth:`next_event`, and with the C
        accelerator a message in one frame costs no event object and no Python
        call besides the callback.
        """
        # (The C accelerator replaces this method with one doing the common case
        # itself and calling this for the rest: engine_methods() below.)
        self.receive_data(data)
        count = 0
        while self._state is _OPEN and not self._events:
            event = self.next_event()
            if event is None:
                break
            cls = type(event)
            if (cls is not Text and cls is not Binary) or not event.final:  # type: ignore
                # Back to the front of the queue, exactly where next_event() had it.
                self._events.insert(0, event)
                break
            callback(arg, event.data)  # type: ignore[union-attr]
            count += 1
        return count

    def receive_eof(self) -> None:
        """The transport's read side ended."""
        if self._eof_received:
            return
        self._eof_received = True
        if self._state is State.CONNECTING:
            self._receive_handshake_eof()
        elif self._state is State.CLOSED:
            self._want_eof()
        # OPEN or CLOSING: frames still buffered are parsed first; next_event()
        # reports the abnormal closure once they are exhausted.

    def next_event(self) -> Event | None:
        """The next event, or None when more data is needed (or the connection ended)."""
        if self._events:
            return self._events.pop(0)
        state = self._state
        if state is not _OPEN and state is not _CLOSING:
            return self._handshake_event() if state is State.CONNECTING else None
        try:
            if self._frame_left == _NO_FRAME and not self._msg_opcode:
                # The fast path, with no behaviour of its own: a whole small message
                # in one frame. Anything else, errors included, is left to _read.
                event = self._small_message() if _next_frame is None else _next_frame(self)
                if event is not None:
                    return event
                if self._pos >= len(self._buf) and self._more is None \
                        and not self._eof_received:
                    return None  # nothing buffered: _read would find nothing
            event = self._read()
        except _Fail as failure:
            self._fail(failure.error)
            return self._events.pop(0)
        if event is None and self._eof_received and self._state is not State.CLOSED:
            # §7.1.5: the transport ended without a closing handshake.
            self._finish(CloseCode.ABNORMAL_CLOSURE, "", None)
            return self._events.pop(0)
        return event

    def _small_message(self) -> Event | None:
        """The pure-Python fast path (the C one is _speedups.next_frame): a whole
        unfragmented text/binary frame of under 126 bytes (FIN, no RSV bits), masked as
        §5.1 requires of the peer, within the limits; else None, nothing consumed."""
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 2:
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        length = b1 & 0x7F
        if (b0 != 0x81 and b0 != 0x82) or length >= 126 or length > self._fast_limit:
            return None
        if b1 & 0x80:
            stop = pos + 6 + length
            if stop > len(buf) or self._client:
                return None
            # Unmask (§5.3) as _mask.mask_python does, inline.
            pattern = _from_bytes(buf[pos + 2:pos + 6], "little") \
                * SHORT_REPEAT[length] & SHORT_LOW[length]
            payload = (_from_bytes(buf[pos + 6:stop], "little") ^ pattern).to_bytes(
                length, "little")
        else:
            stop = pos + 2 + length
            if stop > len(buf) or not self._client:
                return None
            payload = buf[pos + 2:stop]
        self._pos = stop
        # The event built as _binary / _text do: a call less per message.
        if b0 == 0x82:
            binary = _new_object(Binary)
            _set_binary_data(binary, payload)
            _set_binary_final(binary, True)
            return binary
        try:
            text = str(payload, "utf-8")
        except UnicodeDecodeError:
            raise _invalid_utf8() from None
        event = _new_object(Text)
        _set_text_data(event, text)
        _set_text_final(event, True)
        return event

    def events(self) -> Iterator[Event]:
        """Iterate over events until more data is needed."""
        while (event := self.next_event()) is not None:
            yield event

    # Hooks for the role classes.
    def _receive_handshake_data(self, data: bytes) -> None:
        raise NotImplementedError

    def _receive_handshake_eof(self) -> None:
        raise NotImplementedError

    def _handshake_event(self) -> Event | None:
        raise NotImplementedError

    def _open(self, extension: Extension | None, trailing: bytes) -> None:
        self._state = State.OPEN
        self._extension = extension
        if trailing:
            self._feed(trailing)

    # ---------------------------------------------------------------- reading

    def _read(self) -> Event | None:
        """Parse until one event is ready or the buffer runs dry (§5.2)."""
        while True:
            if self._frame_left == _NO_FRAME:
                header = _parse_header(self._buf, self._pos, self._client)
                if header is None:
                    step: Event | bool = self._refill()
                elif header[0] & 0x08:
                    step = self._read_control(*header)
                else:
                    step = self._begin_data_frame(*header)
            else:
                step = self._read_payload()
            if step is False:
                return None
            if step is not True:
                return step

    def _read_control(self, b0: int, length: int, start: int, key: bytes | None
                      ) -> Event | bool:
        """A control frame (§5.5): short, never fragmented, never extended. Its event,
        True when it has none, False while incomplete."""
        if not b0 & 0x80:
            raise _violation("fragmented control frame")
        if length > MAX_CONTROL_PAYLOAD:
            raise _violation("control frame payload over 125 bytes")
        if b0 & 0x70:
            raise _violation("reserved bits set on a control frame")
        if len(self._buf) < start + length:
            return self._refill()
        payload = self._buf[start:start + length]
        if key is not None:
            payload = mask(payload, key)
        self._pos = start + length
        event = self._control(b0 & 0x0F, payload)
        return True if event is None else event

    def _begin_data_frame(self, b0: int, length: int, start: int, key: bytes | None
                          ) -> Event | bool:
        """A data frame's header (§5.4, §5.2): the whole message when it is one frame
        already received, else True with the frame's payload to be read."""
        opcode = b0 & 0x0F
        fin = b0 & 0x80
        rsv = b0 & 0x70
        compressed = self._msg_compressed
        if opcode == 0:  # Opcode.CONTINUATION (plain ints: IntEnum compares slowly)
            if not self._msg_opcode:
                raise _violation("continuation frame without a message in progress")
            if rsv:
                # RFC 7692 §6.1: RSV1 only on a message's first frame; others unknown.
                raise _violation("reserved bits set on a continuation frame")
        elif opcode in (_TEXT, _BINARY):
            if self._msg_opcode:
                raise _violation("new message while a fragmented message is in progress")
            # §5.2: RSV bits need a negotiated extension that defines them.
            ext = self._extension
            if rsv and (ext is None or rsv & ~ext.rsv_bits or not ext.begin_incoming(rsv)):
                raise _violation("reserved bits set without a negotiated extension")
            compressed = bool(rsv)
            if fin and len(self._buf) >= start + length:
                return self._whole_message(opcode, compressed, start, length, key)
            self._msg_opcode = opcode
            self._msg_compressed = compressed
        else:
            raise _violation(f"reserved opcode {opcode:#x}")
        self._msg_fragments += 1
        _check_limits(self._limits, length, None if compressed else self._msg_size + length,
                      self._msg_fragments)
        self._pos = start
        self._frame_left = length
        self._frame_fin = bool(fin)
        self._frame_key = key
        self._frame_offset = 0
        return True

    def _whole_message(self, opcode: int, compressed: bool, start: int, length: int,
                       key: bytes | None) -> Event:
        """A message in one frame, all received: what the frame-by-frame path gives
        for it (same checks, same event), in one go."""
        limits = self._limits
        if length > self._fast_limit or (limits.max_fragments is not None \
                and limits.max_fragments < 1):
            _check_limits(limits, length, None if compressed else length, 1)
        buf = self._buf
        self._pos = stop = start + length
        if key is None:
            data = buf[start:stop]  # the chunk itself when it is the whole frame
        elif length < _SLICED_MASK_MAX:
            # Sliced out, then unmasked (§5.3): cheaper than a view when short.
            data = mask(buf[start:stop], key)
        else:
            data = mask(memoryview(buf)[start:stop], key)  # one copy
        if compressed:
            data = self._inflate(data, True, limits.max_message_size)
        if opcode == _BINARY:
            return _binary(data)
        event = _text_event(data)
        if event is None:
            raise _invalid_utf8()
        return event

    def _read_payload(self) -> Event | bool:
        """Part of the current data frame's payload: an event when there is one to
        give, True to go on, False while no more has arrived."""
        buf = self._buf
        pos = self._pos
        left = self._frame_left
        have = len(buf) - pos
        if have < left and self._gathers_whole(left):
            # Wait for the frame's last byte, then copy (and unmask) its
            # payload once, from every chunk it spans.
            event = self._whole_payload()
            if event is not None:
                return event
            return self._frame_left == _NO_FRAME
        if have == 0 and left:
            return self._refill()
        event = self._payload(buf, pos, pos + min(left, have))
        return True if event is None else event

    def _payload(self, buf: bytes, start: int, stop: int) -> Event | None:
        """Consume part of a data frame's payload; an event when there is one to give."""
        size = stop - start
        self._pos = stop
        self._frame_left -= size
        frame_done = self._frame_left == 0
        final = frame_done and self._frame_fin
        if frame_done:
            self._frame_left = _NO_FRAME
        key = self._frame_key
        if key is not None and size:
            phase = self._frame_offset & 3
            if phase:
                key = key[phase:] + key[:phase]
            self._frame_offset += size
            chunk = mask(memoryview(buf)[start:stop], key)
        else:
            chunk = buf[start:stop]  # a whole received chunk is returned as it is, no copy
        if not size and not final:
            return None
        return self._deliver(chunk, final)

    def _whole_payload(self) -> Event | None:
        """The rest of the current frame's payload in one piece, once all of it arrived.

        It starts in the current chunk and ends in a queued one; None (frame still
        open) until enough bytes are queued. The chunks are joined once, unmasking
        on the way (§5.3), and the chunk holding the frame's end becomes current.
        """
        left = self._frame_left
        buf, pos = self._buf, self._pos
        more = self._more
        have = len(buf) - pos
        if more is None or have + self._more_size < left:
            return None
        parts: list[bytes | memoryview] = [memoryview(buf)[pos:]] if have else []
        while True:
            last = more.popleft()
            self._more_size -= len(last)
            have += len(last)
            if have >= left:
                break
            parts.append(last)
        cut = len(last) - (have - left)  # bytes of the last chunk inside this frame
        parts.append(last if cut == len(last) else memoryview(last)[:cut])
        if not more:
            self._more = None
        self._buf, self._pos = last, cut
        self._frame_left = _NO_FRAME
        final = self._frame_fin
        key = self._frame_key
        if key is not None:
            phase = self._frame_offset & 3
            if phase:
                key = key[phase:] + key[:phase]
            self._frame_offset += left
            chunk = mask_join(parts, key)
        else:
            chunk = b"".join(parts)
        return self._deliver(chunk, final)

    def _inflate(self, data: bytes, final: bool, room: int | None) -> bytes:
        """RFC 7692 §7.2.2: the extension decompresses; at most ``room`` bytes out."""
        ext = self._extension
        assert ext is not None
        try:
            return ext.decode(data, final, room)
        except RemoteProtocolError as exc:
            raise _Fail(exc) from None

    def _decode_utf8(self, chunk: bytes, final: bool) -> str:
        """A piece of a text message as text, checked as it comes (§8.1)."""
        decoder = self._utf8
        if decoder is None:
            decoder = self._utf8 = _new_utf8_decoder()
        try:
            # Incremental: fails as soon as the bytes prove the text invalid (§8.1).
            text = decoder.decode(chunk, final)
        except UnicodeDecodeError:
            raise _invalid_utf8() from None
        if not final:
            # CPython's decoder waits for the third byte of ED A0..BF (a UTF-16
            # surrogate), though the first two already prove the text invalid.
            pending = decoder.getstate()[0]
            if len(pending) > 1 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise _invalid_utf8()
        return text

    def _deliver(self, chunk: bytes, final: bool) -> Event | None:
        """Decompress, check and collect (or stream) a piece of a message's payload."""
        if self._msg_compressed:
            limit = self._limits.max_message_size
            chunk = self._inflate(chunk, final, None if limit is None else limit - self._msg_size)
        self._msg_size += len(chunk)
        piece: str | bytes = chunk
        if self._msg_opcode == _TEXT:
            piece = self._decode_utf8(chunk, final)
        if final:
            self._end_message()
        if not self._streaming:
            return self._collect(piece, final)
        if self._msg_parts is not None:
            # Gathered before streaming was switched on.
            piece = self._take_parts(piece)  # type: ignore[type-var]
        if not piece and not final:
            return None
        return Text(piece, final) if isinstance(piece, str) else Binary(piece, final)

    def _take_parts(self, piece: _Piece) -> _Piece:
        """The parts collected so far followed by ``piece``, as one piece (str or bytes)."""
        parts: list[_Piece] | None = self._msg_parts  # type: ignore[assignment]
        self._msg_parts = None
        assert parts is not None
        parts.append(piece)
        return piece[:0].join(parts)

    def _collect(self, piece: str | bytes, final: bool) -> Event | None:
        parts = self._msg_parts
        if final:
            self._msg_parts = None
            if isinstance(piece, str):
                return Text("".join((*parts, piece)) if parts else piece)
            return Binary(b"".join((*parts, piece)) if parts else piece)
        if piece:
            if parts is None:
                self._msg_parts = [piece]  # type: ignore[assignment]
            else:
                parts.append(piece)  # type: ignore[arg-type]
        return None

    def _end_message(self) -> None:
        self._msg_opcode = 0
        self._msg_compressed = False
        self._msg_size = 0
        self._msg_fragments = 0
        if self._utf8 is not None:
            self._utf8.reset()

    def _control(self, opcode: int, payload: bytes) -> Event | None:
        if opcode == Opcode.PING:
            # §5.5.2: answer with the same payload, unless we already sent a close.
            if self._auto_pong and self._state is State.OPEN:
                self._queue_pong(serialize_frame(Opcode.PONG, payload, masked=self._client))
            return Ping(payload)
        if opcode == Opcode.PONG:
            return Pong(payload)
        if opcode == Opcode.CLOSE:
            try:
                code, reason = parse_close_payload(payload)
            except RemoteProtocolError as exc:
                raise _Fail(exc) from None
            if not self._close_sent:
                # §5.5.1: reply with a close, echoing the code (none if none was given).
                reply = b"" if code == CloseCode.NO_STATUS_RCVD else payload[:2]
                self._write(serialize_frame(Opcode.CLOSE, reply, masked=self._client))
                self._close_sent = True
            self._finish(code, reason, None)
            return self._events.pop(0)
        raise _violation(f"reserved control opcode {opcode:#x}")

    # ---------------------------------------------------------------- closing

    def _finish(self, code: int, reason: str, error: RemoteProtocolError | None) -> None:
        """Enter CLOSED: discard unread input, report once, and (server) close TCP first."""
        self._state = State.CLOSED
        self._buf = b""
        self._pos = 0
        self._more = None
        self._more_size = 0
        self._msg_parts = None
        self.close_code = code
        self.close_reason = reason
        if not self._client or error is not None or self._eof_received:
            # §7.1.1: the server closes the TCP connection first; §7.1.7: a failing
            # endpoint drops the connection without waiting.
            self._want_eof()
        if not self._closed_event:
            self._closed_event = True
            self._events.append(ConnectionClosed(code, reason, error))

    def _fail(self, error: RemoteProtocolError) -> None:
        """_Fail the WebSocket Connection_ (§7.1.7): send a close with the code, then drop."""
        if self._state is not State.CONNECTING and not self._close_sent:
            self._close_sent = True
            reason = str(error)
            encoded = reason.encode("utf-8")
            if len(encoded) > MAX_CONTROL_PAYLOAD - 2:
                reason = encoded[:MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore")
            payload = build_close_payload(error.code, reason)
            self._write(serialize_frame(Opcode.CLOSE, payload, masked=self._client))
        self._finish(error.code, str(error), error)

    def _want_eof(self) -> None:
        if not self._eof_sent:
            self._eof_pending = True

    # ----------------------------------------------------------------- output

    def _write(self, data: bytes) -> None:
        self._out.append(data)

    def _queue_pong(self, pong: bytes) -> None:
        """Queue an automatic pong; once output is backed up, in place of one unsent.

        §5.5.3: when several pings are unanswered, a pong may answer only the most
        recent one. Pings that come together are all answered (peers such as the
        Autobahn suite count the pongs), but once ``_PONG_BACKLOG`` frames wait
        unsent the adapter is not writing (its peer does not read), and the new
        pong takes the place of the latest unsent one: however many pings arrive,
        the output grows by at most that many pongs.
        """
        out = self._out
        previous = self._unsent_pong
        self._unsent_pong = pong
        if previous is not None and len(out) >= _PONG_BACKLOG:
            # Each pong is one whole item of _out: swapping it never splits a frame.
            # (Output taken by data_to_send is a new list, where it is not found.)
            for index in range(len(out) - 1, -1, -1):
                if out[index] is previous:
                    out[index] = pong
                    return
        out.append(pong)

    def data_to_send(self) -> bytes | _EOFType:
        """Bytes to write to the transport; :data:`EOF` once it must be shut down; else b""."""
        out = self._out
        self._unsent_pong = None
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            return data
        if self._eof_pending and not self._eof_sent:
            self._eof_sent = True
            return EOF
        return b""

    @property
    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` would return bytes or :data:`EOF` now."""
        return bool(self._out) or (self._eof_pending and not self._eof_sent)

    def data_to_send_parts(self) -> list[bytes] | _EOFType:
        """:meth:`data_to_send` as a list of buffers, for ``writelines`` or ``sendmsg``.

        The bytes are the same, in the same order; a large payload is its own
        item, handed on without being copied into its frame. An empty list when
        there is nothing to send.
        """
        out = self._out
        # (Also where the accelerator hands back an empty list: an idle connection
        # then keeps no reference to a pong it sent.)
        self._unsent_pong = None
        if out:
            self._out = []
            return out
        if self._eof_pending and not self._eof_sent:
            self._eof_sent = True
            return EOF
        return []

    # ---------------------------------------------------------------- sending

    def _check_can_send(self) -> None:
        if self._state is not State.OPEN:
            if self._state is State.CONNECTING:
                raise LocalProtocolError("the opening handshake is not complete")
            raise LocalProtocolError("the connection is closing or closed")

    def send(
        self,
        data: str | bytes | bytearray | memoryview,
        *,
        final: bool = True,
        compress: bool | None = None,
    ) -> None:
        """Send a text (``str``) or binary message, or a part of one (``final=False``).

        Parts of one message must all be ``str`` or all bytes-like. ``compress``
        forces compression on or off for this message when an extension is
        negotiated (None: the extension's threshold decides).
        """
        if self._state is not _OPEN:
            self._check_can_send()
        if isinstance(data, str):
            opcode = _TEXT
            payload: bytes | bytearray | memoryview = data.encode("utf-8")
        else:
            opcode = _BINARY
            payload = data
        ext = self._extension
        if ext is None and final and not self._out_opcode and self._fragment_size is None:
            # Fast path, same frames as below: a whole message in one frame, no extension.
            # (_out_compressed matters only for the later parts of a message sent in
            # parts; the first part of the next message sets it again.)
            if not self._client and len(payload) < 126 and type(payload) is bytes:
                self._out.append(_pack_short_header(0x80 | opcode, len(payload)) + payload)
            else:
                self._queue_frame(opcode, payload, True, 0)
            return
        rsv = 0
        if self._out_opcode:
            if opcode != self._out_opcode:
                raise LocalProtocolError("parts of one message must all be text or all binary")
            frame_opcode: int = Opcode.CONTINUATION
        else:
            frame_opcode = opcode
            if ext is not None:
                rsv = ext.begin_outgoing(len(payload) if final else None, compress)
            self._out_compressed = bool(rsv)
        if self._out_compressed:
            assert ext is not None
            payload = ext.encode(payload if type(payload) is bytes else bytes(payload), final)
        self._out_opcode = 0 if final else opcode
        size = self._fragment_size
        if size is None or len(payload) <= size:
            self._queue_frame(frame_opcode, payload, final, rsv)
            return
        view = memoryview(payload)
        last = len(payload) - size
        for offset in range(0, len(payload), size):
            self._out.append(serialize_frame(
                frame_opcode, view[offset:offset + size], fin=final and offset >= last,
                rsv=rsv, masked=self._client))
            frame_opcode = Opcode.CONTINUATION
            rsv = 0

    def _queue_frame(self, opcode: int, payload: bytes | bytearray | memoryview, fin: bool,
                     rsv: int) -> None:
        """Queue one frame (§5.2, minimal length encoding; masked by a client, §5.3)."""
        if type(payload) is bytes:
            size = len(payload)
            if size >= _UNJOINED_SIZE:
                # Header and payload apart: data_to_send_parts() hands the payload on.
                self._out += serialize_frame_parts(opcode, payload, fin=fin, rsv=rsv,
                                                   masked=self._client)
                return
            # serialize_frame's work done here: two calls less per message.
            first = (0x80 if fin else 0) | rsv | opcode
            if self._client:
                self._out.append(masked_frame(first, payload, new_key()))  # §5.3
            else:
                self._out.append((_pack_short_header(first, size) if size < 126
                                  else _pack_medium_header(first, 126, size)) + payload)
            return
        self._out.append(serialize_frame(opcode, payload, fin=fin, rsv=rsv, masked=self._client))

    def send_frame_bytes(self, frame: bytes) -> None:
        """Queue a whole message already serialized by :func:`rfc6455.frames.serialize_frame`.

        For fan-out: a server serializes a message once and hands the same bytes
        to every connection. Server role only (client frames need fresh masks),
        and not in the middle of a message sent in parts.
        """
        if self._state is not _OPEN or self._client or self._out_opcode:
            if self._client:
                raise LocalProtocolError("clients must mask each frame; use send()")
            self._check_can_send()
            raise LocalProtocolError("a message sent in parts is in progress")
        self._out.append(frame)

    @property
    def frame_bytes_direct(self) -> bool:
        """Whether a frame for :meth:`send_frame_bytes` may skip the queue now.

        True when the connection is open, this is a server, no message sent in
        parts is in progress and nothing waits in :meth:`data_to_send`: the
        caller may then write the frame to the transport itself, with the same
        result on the wire as ``send_frame_bytes(frame)`` and ``data_to_send()``.
        (A fan-out to many connections then touches no queue per connection.)
        """
        return self._state is _OPEN and not self._out and not self._out_opcode \
            and not self._client

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping (§5.5.2); the payload is at most 125 bytes."""
        self._send_control(Opcode.PING, payload)

    def pong(self, payload: bytes = b"") -> None:
        """Send a pong, e.g. an unsolicited heartbeat (§5.5.3)."""
        self._send_control(Opcode.PONG, payload)

    def _send_control(self, opcode: int, payload: bytes) -> None:
        self._check_can_send()
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise LocalProtocolError("control frame payload over 125 bytes")
        self._out.append(serialize_frame(opcode, payload, masked=self._client))

    def close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake (§7.1.2). Does nothing if a close was already sent.

        ``code=None`` sends a close frame without a status code.
        """
        if self._state is State.CONNECTING:
            raise LocalProtocolError("the opening handshake is not complete")
        if self._close_sent or self._state is State.CLOSED:
            return
        try:
            payload = build_close_payload(code, reason)
        except ValueError as exc:
            raise LocalProtocolError(str(exc)) from exc
        self._out.append(serialize_frame(Opcode.CLOSE, payload, masked=self._client))
        self._close_sent = True
        self._state = State.CLOSING


class _PythonState:
    """The engine state as slots, when the C base class is not built."""

    __slots__ = ENGINE_MEMBERS


if TYPE_CHECKING:
    _State = _PythonState
elif ACCELERATED:  # pragma: no cover - depends on the build
    # Same behaviour: the C methods call the PythonEngine ones for what they do not do.
    _State = _speedups.engine_type(
        _OPEN,
        (PythonEngine.deliver_messages, PythonEngine.send, PythonEngine.receive_data,
         PythonEngine.data_to_send_parts, PythonEngine.next_event,
         *(vars(PythonEngine)[name].fget
           for name in ("input_pending", "buffered_bytes", "has_data_to_send"))),
        tuple(
            ("deliver_messages($self, data, callback, arg)\n--\n\n",
             "send($self, data, *, final=True, compress=None)\n--\n\n",
             "receive_data($self, data, /)\n--\n\n", "data_to_send_parts($self, /)\n--\n\n",
             "next_event($self, /)\n--\n\n", "", "", "", "")[index]
            + (getattr(PythonEngine, name).__doc__ or "")
            for index, name in enumerate(
                ("deliver_messages", "send", "receive_data", "data_to_send_parts", "next_event",
                 "state", "input_pending", "buffered_bytes", "has_data_to_send"))),
        KEY_POOL, new_key)  # the same masking keys (§10.3) as the Python code
else:
    _State = _PythonState


class Connection(_State, PythonEngine):
    """State, frame reader and frame writer common to both roles.

    Use :class:`~rfc6455.ServerConnection` or :class:`~rfc6455.ClientConnection`.
    """

    __slots__ = (
        "_auto_pong",
        "_close_sent",
        "_closed_event",
        "_frame_fin",
        "_frame_key",
        "_frame_offset",
        "_limits",
        "_msg_compressed",
        "_msg_fragments",
        "_msg_parts",
        "_msg_size",
        "_out_compressed",
        "_streaming",
        "_unsent_pong",
        "_utf8",
        "close_code",
        "close_reason",
    )
