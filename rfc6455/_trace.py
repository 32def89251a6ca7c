"""The frame trace: one DEBUG record per frame on the ``rfc6455.trace`` logger.

Opt-in: the logger's level is set to INFO when this module is imported (unless
the application configured it before), so turning on DEBUG for the whole
process does not trace every frame; ``logging.getLogger("rfc6455.trace")
.setLevel(logging.DEBUG)`` does. Whether to trace is decided once per
connection, when its engine is made: a traced connection gets an engine of a
subclass below, which reports the frame headers it sends and receives; any
other connection runs the engine untouched, and tracing costs it nothing.

A record names the connection (its peer's address), the direction (``<``
received, ``>`` sent), the opcode, FIN and RSV1 (compressed, RFC 7692) and the
payload length (§5.2). Payloads are never logged. The headers are read from
the bytes themselves, so the trace shows the frames on the wire: fragments,
compressed sizes, automatic pongs and close replies included. Frames that a
fan-out writes straight to the transport (``apps/hub.py``'s direct path) do
not go through the engine and are not traced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._core import EOF, _EOFType
from .connection import ClientConnection, ServerConnection
from .frames import Opcode

__all__ = ["TracedClientConnection", "TracedServerConnection", "trace_logger"]

trace_logger = logging.getLogger("rfc6455.trace")
if trace_logger.level == logging.NOTSET:
    # Opt-in (see the module docstring): a process-wide DEBUG leaves it off.
    trace_logger.setLevel(logging.INFO)

_OPCODE_NAMES = {int(opcode): opcode.name for opcode in Opcode}
_HEAD_END = b"\r\n\r\n"
_UPGRADE_101 = b"HTTP/1.1 101"


def tracing() -> bool:
    """Whether a connection made now is traced (checked once per connection)."""
    return trace_logger.isEnabledFor(logging.DEBUG)


class FrameScanner:
    """Reads frame headers (RFC 6455 §5.2) from one direction of a connection's
    bytes and skips their payloads.

    The bytes start with the HTTP head of the opening handshake; frames follow
    it when it is a request (``GET``) or a 101 response. After another answer
    (a refusal, its body) nothing is read as frames.
    """

    __slots__ = ("_first", "_head", "_skip", "_tail", "http", "off")

    def __init__(self) -> None:
        #: Still in the HTTP head of the opening handshake.
        self.http = True
        #: The head was not an upgrade: no frames follow.
        self.off = False
        self._first = b""  # the head's first bytes: what kind of head it is
        self._tail = b""  # the end of the head seen so far, for a terminator split in two
        self._head = bytearray()  # a frame header split between two chunks
        self._skip = 0  # payload bytes of the current frame still to come

    def feed(self, data: bytes | bytearray | memoryview,
             report: Callable[[int, int, int], None]) -> None:
        """Scan ``data``; ``report(first_byte, second_byte, length)`` for each header."""
        if self.off:
            return
        view = memoryview(data).cast("B")
        pos = 0
        if self.http:
            chunk = self._tail + bytes(view)
            if len(self._first) < len(_UPGRADE_101):
                self._first += bytes(view[:len(_UPGRADE_101) - len(self._first)])
            end = chunk.find(_HEAD_END)
            if end < 0:
                self._tail = chunk[-3:]
                return
            self.http = False
            pos = end + len(_HEAD_END) - len(self._tail)
            self._tail = b""
            if not self._first.startswith((_UPGRADE_101, b"GET ")):
                self.off = True
                return
        size = len(view)
        head = self._head
        while pos < size:
            if self._skip:
                taken = min(self._skip, size - pos)
                self._skip -= taken
                pos += taken
                continue
            while len(head) < 2 and pos < size:
                head.append(view[pos])
                pos += 1
            if len(head) < 2:
                return
            length = head[1] & 0x7F
            header_size = 2 + (2 if length == 126 else 8 if length == 127 else 0) \
                + (4 if head[1] & 0x80 else 0)
            while len(head) < header_size and pos < size:
                head.append(view[pos])
                pos += 1
            if len(head) < header_size:
                return
            if length == 126:
                length = int.from_bytes(head[2:4], "big")
            elif length == 127:
                length = int.from_bytes(head[2:10], "big")
            report(head[0], head[1], length)
            self._skip = length
            head.clear()


class _Traced:
    """What both traced engines add: scanners on the bytes in and out."""

    __slots__ = ()
    trace_label: str
    _trace_in: FrameScanner
    _trace_out: FrameScanner

    def _report(self, direction: str) -> Callable[[int, int, int], None]:
        def report(first: int, second: int, length: int) -> None:
            trace_logger.debug(
                "%s %s %s%s%s len=%d", self.trace_label, direction,
                _OPCODE_NAMES.get(first & 0x0F, hex(first & 0x0F)),
                " fin" if first & 0x80 else "", " rsv1" if first & 0x40 else "", length)
        return report

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._trace_in.feed(data, self._report("<"))
        super().receive_data(data)  # type: ignore[misc]

    def deliver_messages(self, data: bytes | bytearray | memoryview,
                         callback: Callable[[Any, str | bytes], object], arg: Any) -> int:
        # Delivering none is within the contract: everything goes the general way,
        # through receive_data above (the accelerated method would not call it).
        self.receive_data(data)
        return 0

    def _traced_out(self, parts: list[bytes] | _EOFType) -> list[bytes] | _EOFType:
        if parts is not EOF:
            report = self._report(">")
            scanner = self._trace_out
            for part in parts:  # type: ignore[union-attr]
                scanner.feed(part, report)
        return parts

    def data_to_send_parts(self) -> list[bytes] | _EOFType:
        return self._traced_out(super().data_to_send_parts())  # type: ignore[misc]

    def data_to_send(self) -> bytes | _EOFType:
        data: bytes | _EOFType = super().data_to_send()  # type: ignore[misc]
        if data is not EOF:
            assert isinstance(data, bytes)
            self._trace_out.feed(data, self._report(">"))
        return data


def _trace_state(client: bool) -> tuple[str, FrameScanner, FrameScanner]:
    """A traced engine's label (the peer's address once the adapter knows it) and
    its scanners of the bytes in and out."""
    return f"{'client' if client else 'server'} (opening)", FrameScanner(), FrameScanner()


class TracedServerConnection(_Traced, ServerConnection):
    """A server engine that traces its frames (see the module docstring)."""

    __slots__ = ("_trace_in", "_trace_out", "trace_label")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trace_label, self._trace_in, self._trace_out = _trace_state(client=False)


class TracedClientConnection(_Traced, ClientConnection):
    """A client engine that traces its frames (see the module docstring)."""

    __slots__ = ("_trace_in", "_trace_out", "trace_label")

    def __init__(self, uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(uri, **kwargs)
        self.trace_label, self._trace_in, self._trace_out = _trace_state(client=True)
