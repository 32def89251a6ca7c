"""What every harness shares: opened engines, a frame builder, the outcome checks.

The checks encode the engine's contract (rfc6455/errors.py, rfc6455/_core.py):
whatever the peer sends, the engine yields events or fails the connection
itself with a close code that may go on the wire (§7.4.1); it never raises
anything but :class:`LocalProtocolError` for API misuse, and it never holds more
than the configured limits allow.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from rfc6455 import (
    EOF,
    Accepted,
    Binary,
    ClientConnection,
    ConnectionClosed,
    Event,
    Limits,
    Ping,
    Pong,
    Request,
    ServerConnection,
    State,
    Text,
)
from rfc6455.extensions.permessage_deflate import (
    ClientPerMessageDeflate,
    ServerPerMessageDeflate,
)
from rfc6455.frames import is_valid_close_code
from rfc6455.handshake import accept_token

__all__ = [
    "MAX_PENDING",
    "Outcome",
    "build_frame",
    "check_wire",
    "client_request",
    "drive",
    "open_client",
    "open_server",
    "parse_wire",
    "server_response",
]

#: After events are drained, at most one incomplete frame header plus a whole
#: control frame's payload may wait in the engine's buffer (§5.2: 14-byte header
#: at most, §5.5: control payload at most 125 bytes); data payloads stream.
MAX_PENDING = 14 + 125

#: Codes an engine may report for a connection it closed itself (never sent).
_REPORT_ONLY = {1005, 1006}

FIXED_KEY = base64.b64encode(b"fuzz-fixed-key16").decode("ascii")


def client_request(key: str = FIXED_KEY, extensions: str | None = None) -> bytes:
    """A valid opening request (§4.1)."""
    lines = [
        "GET /chat?x=1 HTTP/1.1",
        "Host: example.com",
        "Upgrade: websocket",
        "Connection: keep-alive, Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def server_response(key: str, extensions: str | None = None) -> bytes:
    """A valid 101 answer to the client whose key is ``key`` (§4.2.2)."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_token(key)}",
    ]
    if extensions is not None:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
DEFLATE_ANSWER = "permessage-deflate"


def open_server(*, deflate: bool = False, limits: Limits = Limits(),  # noqa: B008
                streaming: bool = False) -> ServerConnection:
    """A server engine past the opening handshake; its 101 is discarded."""
    server = ServerConnection(
        limits=limits, streaming=streaming,
        extensions=[ServerPerMessageDeflate(client_max_window_bits=None)] if deflate else [])
    server.receive_data(client_request(extensions=DEFLATE_OFFER if deflate else None))
    event = server.next_event()
    assert isinstance(event, Request), event
    server.accept()
    out = server.data_to_send()
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 101 "), out
    assert (server.extension is not None) == deflate
    return server


def open_client(*, deflate: bool = False, limits: Limits = Limits(),  # noqa: B008
                streaming: bool = False) -> ClientConnection:
    """A client engine past the opening handshake; its request is discarded."""
    client = ClientConnection(
        "ws://example.com/", limits=limits, streaming=streaming,
        extensions=[ClientPerMessageDeflate()] if deflate else [])
    client.data_to_send()
    key = client.request_headers.get("sec-websocket-key")
    assert key is not None
    client.receive_data(server_response(key, DEFLATE_ANSWER if deflate else None))
    event = client.next_event()
    assert isinstance(event, Accepted), event
    assert (client.extension is not None) == deflate
    return client


def build_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
                key: bytes | None = None, length: int | None = None,
                length_form: int | None = None) -> bytes:
    """A frame with every field under control, lies included (§5.2).

    ``length`` overrides the announced payload length; ``length_form`` forces the
    7-bit (0), 16-bit (1) or 64-bit (2) encoding, minimal or not.
    """
    size = len(payload) if length is None else length
    form = length_form
    if form is None:
        form = 0 if size < 126 else 1 if size < 65536 else 2
    first = (0x80 if fin else 0) | (rsv & 0x70) | (opcode & 0x0F)
    mask_bit = 0x80 if key is not None else 0
    if form == 0:
        header = bytes([first, mask_bit | (size & 0x7F)])
    elif form == 1:
        header = bytes([first, mask_bit | 126]) + struct.pack("!H", size & 0xFFFF)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack("!Q", size & (2**64 - 1))
    if key is None:
        return header + payload
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return header + key + masked


@dataclass
class WireFrame:
    opcode: int
    fin: bool
    rsv: int
    payload: bytes


def parse_wire(data: bytes) -> Iterator[WireFrame]:
    """Frames an engine wrote (well-formed by construction; stops at a partial one)."""
    pos = 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        key = None
        if b1 & 0x80:
            key = data[pos:pos + 4]
            pos += 4
        payload = data[pos:pos + length]
        pos += length
        if key is not None:
            payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
        yield WireFrame(b0 & 0x0F, bool(b0 & 0x80), b0 & 0x70, payload)


def check_wire(data: bytes, *, client: bool) -> list[WireFrame]:
    """What the engine wrote is well-formed and any close carries a sendable code."""
    frames = list(parse_wire(data))
    for frame in frames:
        if frame.opcode == 8:
            # §5.5.1 / §7.4.1: empty, or a 2-byte code that may be sent, and UTF-8.
            assert len(frame.payload) != 1, frame
            if frame.payload:
                code = struct.unpack_from("!H", frame.payload)[0]
                assert is_valid_close_code(code), f"close code {code} on the wire"
                frame.payload[2:].decode("utf-8")
            assert len(frame.payload) <= 125
    return frames


@dataclass
class Outcome:
    """What an engine did with hostile input."""

    events: list[Event] = field(default_factory=list)
    wire: bytes = b""
    eof: bool = False
    closed: ConnectionClosed | None = None
    data_bytes: int = 0  # payload bytes of Text/Binary events (UTF-8 for text)


def _as_event(sink: list[Event], message: str | bytes) -> None:
    sink.append(Text(message) if isinstance(message, str) else Binary(message))


def drive(conn: ServerConnection | ClientConnection, pieces: list[bytes], *, eof: bool,
          limits: Limits, streaming: bool, keep_data: bool = True,
          deliver: bool = False) -> Outcome:
    """Feed ``pieces`` one by one, draining events after each; check every bound.

    Raises AssertionError when the engine breaks its contract; anything else it
    raises propagates (and is a bug: the peer's bytes never cause an exception).
    ``keep_data=False`` counts message bytes without keeping the events (for
    memory measurements). ``deliver=True`` feeds with ``deliver_messages``, the
    messages it hands over counted as events, in order.
    """
    outcome = Outcome()
    msg_size = 0  # bytes of the message being assembled (streaming mode)
    max_msg = limits.max_message_size

    def collect(events: Iterable[Event]) -> None:
        nonlocal msg_size
        for event in events:
            if keep_data or not isinstance(event, (Text, Binary)):
                outcome.events.append(event)
            if isinstance(event, (Text, Binary)):
                size = len(event.data.encode("utf-8") if isinstance(event, Text)
                           else event.data)
                outcome.data_bytes += size
                msg_size += size
                if max_msg is not None:
                    assert msg_size <= max_msg, f"message of {msg_size} > {max_msg}"
                if event.final:
                    msg_size = 0
                assert streaming or event.final
            elif isinstance(event, (Ping, Pong)):
                assert len(event.payload) <= 125
            elif isinstance(event, ConnectionClosed):
                assert outcome.closed is None, "two ConnectionClosed events"
                outcome.closed = event
                assert conn.state is State.CLOSED
                code = event.code
                assert is_valid_close_code(code) or code in _REPORT_ONLY, code
                if event.error is not None:
                    assert event.error.code == code
        # Bounded memory: only a partial header or control frame may wait.
        if conn.state is not State.CLOSED:
            assert conn.buffered_bytes <= MAX_PENDING, conn.buffered_bytes
        else:
            assert conn.buffered_bytes == 0

    for piece in pieces:
        if outcome.eof:
            break
        if deliver:
            delivered: list[Event] = []
            conn.deliver_messages(piece, _as_event, delivered)
            collect([*delivered, *conn.events()])  # the bounds hold once all is read
        else:
            conn.receive_data(piece)
            collect(conn.events())
        out = conn.data_to_send()
        while out:
            if out is EOF:
                outcome.eof = True
                break
            assert isinstance(out, bytes)
            outcome.wire += out
            out = conn.data_to_send()
    if eof:
        conn.receive_eof()
        collect(conn.events())
        assert conn.state is State.CLOSED
    while (out := conn.data_to_send()):
        if out is EOF:
            outcome.eof = True
            break
        assert isinstance(out, bytes)
        outcome.wire += out
    check_wire(outcome.wire, client=isinstance(conn, ClientConnection))
    if outcome.closed is not None and outcome.closed.error is not None:
        # §7.1.7: a failed connection sends its close code, then drops TCP.
        closes = [f for f in parse_wire(outcome.wire) if f.opcode == 8]
        if closes and closes[-1].payload:
            sent = struct.unpack_from("!H", closes[-1].payload)[0]
            assert sent == outcome.closed.error.code or outcome.closed.error.code in _REPORT_ONLY
    return outcome
