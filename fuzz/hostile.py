"""Hypothesis properties: hostile bytes against the engine, both roles.

Each property is a plain ``@given`` test; ``tests/test_fuzz_smoke.py`` runs them
with few examples, ``python -m fuzz`` with many. The outcome is always events,
a documented error, or a close with a sendable code (§7.4.1), within the limits.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfc6455 import (
    Binary,
    ClientConnection,
    ConnectionClosed,
    HTTPRequest,
    Limits,
    Request,
    ServerConnection,
    State,
    Text,
)
from rfc6455.errors import RemoteProtocolError
from rfc6455.extensions.permessage_deflate import PerMessageDeflate

from .common import (
    DEFLATE_OFFER,
    FIXED_KEY,
    build_frame,
    check_wire,
    drive,
    open_client,
    open_server,
)

__all__ = ["BASE", "COUNTS", "PROPERTIES", "build"]

#: Examples run per property (read by ``python -m fuzz``).
COUNTS: dict[str, int] = {}


#: name -> (test body, its strategies); see :func:`build`.
PROPERTIES: dict[str, tuple[Callable[..., None], dict[str, Any]]] = {}


def prop(**strategies: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a property; :func:`build` turns it into a hypothesis test."""
    def register(fn: Callable[..., None]) -> Callable[..., None]:
        PROPERTIES[fn.__name__] = (fn, strategies)
        return fn
    return register


def build(name: str, max_examples: int, **overrides: Any) -> Callable[[], None]:
    """A fresh hypothesis test of property ``name`` running ``max_examples`` examples."""
    fn, strategies = PROPERTIES[name]
    test = given(**strategies)(fn)
    return settings(max_examples=max_examples, **{**BASE, **overrides})(test)


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


#: Settings every run shares; the example count is chosen by the caller.
BASE = {"deadline": None, "suppress_health_check": list(HealthCheck), "database": None}


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, duplicates ignored)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = []
    last = 0
    for point in [*points, len(data)]:
        if point > last:
            pieces.append(data[last:point])
            last = point
    return pieces


# ------------------------------------------------------------------ handshake

_HEADER_NAMES = ["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                 "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions", "Origin",
                 "Sec-WebSocket-Accept", "Content-Length", "Transfer-Encoding", "X-Other"]
_HEADER_VALUES = ["websocket", "Upgrade", "keep-alive, upgrade", FIXED_KEY, "13", "8, 13",
                  "chat, superchat", "permessage-deflate", DEFLATE_OFFER,
                  "permessage-deflate; server_max_window_bits=8; client_max_window_bits",
                  "permessage-deflate; client_max_window_bits=16",
                  "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                  'permessage-deflate; server_max_window_bits="10"', "x; y=\"", "",
                  "http://example.com", "null", "0", "5", "chunked", "example.com:80",
                  "a" * 300, "\t ", ",,,", "dGhlIHNhbXBsZSBub25jZQ==", "é"]
_header = st.tuples(st.sampled_from(_HEADER_NAMES) | st.text(min_size=1, max_size=10),
                    st.sampled_from(_HEADER_VALUES) | st.text(max_size=30))
_method = st.sampled_from(["GET", "POST", "HEAD", "get", "CONNECT", "G\x00T"])
_target = st.sampled_from(["/", "/chat", "*", "http://example.com/x", "", "/a b", "/%zz"])
_version = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1 x"])


@st.composite
def _request_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    base = [("Host", "example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", FIXED_KEY), ("Sec-WebSocket-Version", "13")]
    headers = draw(st.lists(st.sampled_from(base), max_size=5)) + draw(
        st.lists(_header, max_size=5))
    headers = draw(st.permutations(headers))
    line = f"{draw(_method)} {draw(_target)} {draw(_version)}"
    text = "\r\n".join([line] + [f"{k}: {v}" for k, v in headers]) + "\r\n\r\n"
    data = text.encode("utf-8") + draw(st.binary(max_size=20))
    return data


@prop(data=_request_bytes(), cuts=st.lists(st.integers(0, 500), max_size=4),
       eof=st.booleans(), deflate=st.booleans())
def server_handshake_bytes(data: bytes, cuts: list[int], eof: bool, deflate: bool) -> None:
    """§4.2.1: any request bytes give a Request, an HTTPRequest, or an HTTP error + close."""
    _count("server_handshake_bytes")
    from rfc6455.extensions.permessage_deflate import ServerPerMessageDeflate

    server = ServerConnection(extensions=[ServerPerMessageDeflate()] if deflate else [])
    events: list[object] = []
    for piece in split(data, cuts):
        server.receive_data(piece)
        events.extend(server.events())
    if eof:
        server.receive_eof()
        events.extend(server.events())
    for event in events:
        assert isinstance(event, (Request, HTTPRequest, ConnectionClosed)), event
    out = server.data_to_send()
    if any(isinstance(e, Request) for e in events) and server.state is State.CONNECTING:
        # §10.4: bytes behind an unanswered request are held, and counted as such.
        before = server.buffered_bytes
        server.receive_data(b"\x82\x80" + bytes(300))
        assert server.buffered_bytes == before + 302
        server.accept()
        out = server.data_to_send()
        assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 101 "), out
        assert server.state is State.OPEN  # type: ignore[comparison-overlap]
    elif any(isinstance(e, HTTPRequest) for e in events) and server.state is State.CONNECTING:
        server.respond(200, [("content-type", "text/plain")], b"ok")
        out = server.data_to_send()
        assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 200 "), out
    elif isinstance(out, bytes) and out:
        # §4.2.1: a refused upgrade is answered with an HTTP error status.
        assert out.startswith(b"HTTP/1.1 4") or out.startswith(b"HTTP/1.1 5"), out
        assert server.state is State.CLOSED


_response_header_values = [*_HEADER_VALUES, "@ACCEPT@", "permessage-deflate; "
                           "server_no_context_takeover", "permessage-deflate; "
                           "client_max_window_bits=9", "foo"]


@st.composite
def _response_bytes(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    base = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", "@ACCEPT@")]
    headers = draw(st.lists(st.sampled_from(base), max_size=4)) + draw(st.lists(st.tuples(
        st.sampled_from(_HEADER_NAMES), st.sampled_from(_response_header_values)), max_size=4))
    headers = draw(st.permutations(headers))
    status = draw(st.sampled_from(["101 Switching Protocols", "200 OK", "100 Continue",
                                   "403 Forbidden", "101", "999 x", "30 x"]))
    text = "\r\n".join([f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers])
    return (text + "\r\n\r\n").encode("utf-8") + draw(st.binary(max_size=30))


@prop(data=_response_bytes(), cuts=st.lists(st.integers(0, 400), max_size=4),
       eof=st.booleans(), deflate=st.booleans())
def client_handshake_bytes(data: bytes, cuts: list[int], eof: bool, deflate: bool) -> None:
    """§4.1: any response bytes give Accepted, Rejected, or a failed connection."""
    _count("client_handshake_bytes")
    from rfc6455.extensions.permessage_deflate import ClientPerMessageDeflate

    client = ClientConnection("ws://example.com/",
                              extensions=[ClientPerMessageDeflate()] if deflate else [])
    client.data_to_send()
    key = client.request_headers.get("sec-websocket-key")
    assert key is not None
    from rfc6455.handshake import accept_token

    data = data.replace(b"@ACCEPT@", accept_token(key).encode())
    outcome = drive(client, split(data, cuts), eof=eof, limits=Limits(), streaming=False)
    if client.state is State.OPEN:
        assert outcome.events and type(outcome.events[0]).__name__ == "Accepted"


# ------------------------------------------------------------------ frames

_SMALL = Limits(max_message_size=300, max_frame_size=200, max_fragments=5)


@st.composite
def _frame(draw: st.DrawFn, masked: bool) -> bytes:
    opcode = draw(st.sampled_from([0, 0, 1, 1, 2, 2, 8, 9, 10, 3, 0xB]))
    if opcode == 8 and draw(st.booleans()):
        code = draw(st.sampled_from([1000, 1001, 1002, 1005, 1006, 999, 3000, 4999, 5000,
                                     1015, 1004, 2000]))
        payload = code.to_bytes(2, "big") + draw(st.sampled_from(
            [b"", b"bye", b"\xff", "é".encode(), b"x" * 130]))
    elif opcode == 1 and draw(st.booleans()):
        payload = draw(st.text(max_size=40)).encode("utf-8")
        if payload and draw(st.booleans()):
            cut = draw(st.integers(0, len(payload)))
            payload = payload[:cut]  # possibly ends inside a code point
    else:
        payload = draw(st.binary(max_size=140))
    rsv = draw(st.sampled_from([0, 0, 0, 0x40, 0x20, 0x10, 0x70]))
    fin = draw(st.booleans()) if opcode < 8 else draw(st.sampled_from([True, True, False]))
    mask_it = masked if draw(st.integers(0, 9)) else not masked
    key = draw(st.binary(min_size=4, max_size=4)) if mask_it else None
    length = None
    form = None
    if draw(st.integers(0, 9)) == 0:
        length = draw(st.sampled_from([0, 1, 125, 126, 65535, 65536, 2**31, 2**63 - 1, 2**63,
                                       2**64 - 1]))
    if draw(st.integers(0, 9)) == 0:
        form = draw(st.integers(0, 2))  # non-minimal lengths are allowed (§5.2 says must not)
    return build_frame(opcode, payload, fin=fin, rsv=rsv, key=key, length=length,
                       length_form=form)


@st.composite
def _deflated_frame(draw: st.DrawFn, masked: bool) -> bytes:
    """A compressed message (RSV1), sometimes corrupt, sometimes a bomb (RFC 7692)."""
    kind = draw(st.integers(0, 3))
    if kind == 0:
        raw = draw(st.binary(max_size=200))
    elif kind == 1:
        raw = b"a" * draw(st.sampled_from([100, 299, 300, 301, 5000, 100_000]))
    else:
        raw = draw(st.text(max_size=60)).encode("utf-8")
    comp = zlib.compressobj(draw(st.integers(0, 9)), zlib.DEFLATED, -15)
    body = comp.compress(raw) + comp.flush(zlib.Z_SYNC_FLUSH)
    if body.endswith(b"\x00\x00\xff\xff") and draw(st.booleans()):
        body = body[:-4]
    if draw(st.integers(0, 4)) == 0 and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([body[at] ^ (1 << draw(st.integers(0, 7)))]) + body[at + 1:]
    opcode = 1 if kind == 2 else 2
    key = draw(st.binary(min_size=4, max_size=4)) if masked else None
    if draw(st.booleans()) or len(body) < 2:
        return build_frame(opcode, body, rsv=0x40, key=key)
    cut = draw(st.integers(1, len(body) - 1))
    return (build_frame(opcode, body[:cut], fin=False, rsv=0x40, key=key)
            + build_frame(0, body[cut:], key=key))


@prop(role=st.sampled_from(["server", "client"]), deflate=st.booleans(),
       streaming=st.booleans(), small=st.booleans(), eof=st.booleans(), data=st.data())
def frame_stream(role: str, deflate: bool, streaming: bool, small: bool, eof: bool,
                 data: st.DataObject) -> None:
    """§5-§7: any sequence of frames (lies included) after a valid handshake."""
    _count("frame_stream")
    masked = role == "server"  # what the engine expects of its peer (§5.1)
    frame = _frame(masked) | _deflated_frame(masked) if deflate else _frame(masked)
    stream = b"".join(data.draw(st.lists(frame, max_size=8)))
    stream += data.draw(st.binary(max_size=8))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    limits = _SMALL if small else Limits()
    conn = (open_server if role == "server" else open_client)(
        deflate=deflate, limits=limits, streaming=streaming)
    drive(conn, split(stream, cuts), eof=eof, limits=limits, streaming=streaming)


def _valid_stream(masked: bool, deflate: bool, messages: list[bytes | str]) -> bytes:
    """Frames a real engine of the other role writes for ``messages``, ping and close."""
    if masked:
        sender: ClientConnection | ServerConnection = open_client(deflate=deflate)
    else:
        sender = open_server(deflate=deflate)
    for message in messages:
        if len(message) > 3:
            half = len(message) // 2
            sender.send(message[:half], final=False)
            sender.ping(b"p")
            sender.send(message[half:], final=True)
        else:
            sender.send(message)
    sender.close(1000, "done")
    out = sender.data_to_send()
    assert isinstance(out, bytes)
    return out


_messages = st.lists(st.binary(max_size=300) | st.text(max_size=100), max_size=5)


@prop(role=st.sampled_from(["server", "client"]), deflate=st.booleans(),
       streaming=st.booleans(), messages=_messages, data=st.data())
def mutated_stream(role: str, deflate: bool, streaming: bool, messages: list[bytes | str],
                   data: st.DataObject) -> None:
    """A valid stream with bit flips, truncation or a length-field lie (§5.2)."""
    _count("mutated_stream")
    masked = role == "server"
    stream = bytearray(_valid_stream(masked, deflate, messages))
    for _ in range(data.draw(st.integers(1, 3))):
        how = data.draw(st.sampled_from(["flip", "truncate", "lie", "insert"]))
        if how == "flip" and stream:
            at = data.draw(st.integers(0, len(stream) - 1))
            stream[at] ^= 1 << data.draw(st.integers(0, 7))
        elif how == "truncate":
            del stream[data.draw(st.integers(0, len(stream))):]
        elif how == "lie" and len(stream) > 2:
            # The first frame's length field claims something else.
            stream[1] = (stream[1] & 0x80) | data.draw(st.sampled_from([125, 126, 127]))
            stream[2:2] = data.draw(st.sampled_from(
                [b"\xff\xff", b"\x7f\xff\xff\xff\xff\xff\xff\xff",
                 b"\x00\x00\x00\x01\x00\x00\x00\x00", b""]))
        elif how == "insert":
            at = data.draw(st.integers(0, len(stream)))
            stream[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    limits = Limits(max_message_size=1000)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=5))
    conn = (open_server if role == "server" else open_client)(
        deflate=deflate, limits=limits, streaming=streaming)
    drive(conn, split(bytes(stream), cuts), eof=data.draw(st.booleans()), limits=limits,
          streaming=streaming)


@prop(role=st.sampled_from(["server", "client"]), deflate=st.booleans(),
       streaming=st.booleans(), messages=_messages, data=st.data())
def split_invariance(role: str, deflate: bool, streaming: bool, messages: list[bytes | str],
                     data: st.DataObject) -> None:
    """How the bytes are cut never changes the messages, the close, or what goes out
    (the close frame, and a pong for the last ping)."""
    _count("split_invariance")
    masked = role == "server"
    stream = _valid_stream(masked, deflate, messages)
    if data.draw(st.booleans()):
        stream += data.draw(_frame(masked))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), min_size=1, max_size=8))
    results = []
    for pieces in ([stream], split(stream, cuts)):
        conn = (open_server if role == "server" else open_client)(
            deflate=deflate, streaming=streaming)
        outcome = drive(conn, pieces, eof=False, limits=Limits(), streaming=streaming)
        frames = check_wire(outcome.wire, client=not masked)
        # Pongs depend on when output was taken (§5.5.3: an unsent pong gives way to
        # the next ping's), so only the last one is compared.
        pongs = [f.payload for f in frames if f.opcode == 10]
        results.append((_merge(outcome.events), [f.payload for f in frames if f.opcode == 8],
                        pongs[-1:], conn.close_code))
    assert results[0] == results[1]


def _merge(events: Sequence[object]) -> list[object]:
    """Streaming pieces joined into whole messages, for comparison across splits."""
    merged: list[object] = []
    parts: list[str | bytes] = []
    for event in events:
        if isinstance(event, (Text, Binary)):
            parts.append(event.data)
            if event.final:
                merged.append("".join(parts) if isinstance(event, Text)  # type: ignore[arg-type]
                               else b"".join(parts))  # type: ignore[arg-type]
                parts = []
        elif isinstance(event, ConnectionClosed):
            merged.append((event.code, event.reason))
        else:
            merged.append(event)
    return merged


# ------------------------------------------------------------------ inflater

@prop(pieces=st.lists(st.tuples(st.binary(max_size=100), st.booleans()), max_size=6),
       recv_bits=st.integers(8, 15), reset=st.booleans(),
       max_length=st.none() | st.integers(0, 2000), data=st.data())
def inflater_bytes(pieces: list[tuple[bytes, bool]], recv_bits: int, reset: bool,
                   max_length: int | None, data: st.DataObject) -> None:
    """RFC 7692 §7.2.2: arbitrary (or valid-then-corrupted) deflate data never escapes
    as anything but RemoteProtocolError, and never inflates past ``max_length``."""
    _count("inflater_bytes")
    ext = PerMessageDeflate(recv_bits=recv_bits, recv_reset=reset)
    if data.draw(st.booleans()):
        comp = zlib.compressobj(6, zlib.DEFLATED, -recv_bits if recv_bits > 8 else -9)
        raw = data.draw(st.binary(max_size=3000))
        body = comp.compress(raw) + comp.flush(zlib.Z_SYNC_FLUSH)
        pieces = [(body[:len(body) // 2], False), (body[len(body) // 2:], True), *pieces]
    for piece, final in pieces:
        try:
            out = ext.decode(piece, final, max_length)
        except RemoteProtocolError as exc:
            assert exc.code in (1007, 1009), exc.code
            continue
        if max_length is not None:
            assert len(out) <= max_length


@prop(messages=st.lists(st.binary(max_size=2000) | st.text(max_size=300), max_size=6),
       send_bits=st.integers(8, 15), reset=st.booleans(), level=st.integers(0, 9))
def deflate_round_trip(messages: list[bytes | str], send_bits: int, reset: bool,
                       level: int) -> None:
    """RFC 7692 §7.2: what one side deflates, a peer with the matching window inflates."""
    _count("deflate_round_trip")
    tx = PerMessageDeflate(send_bits=send_bits, send_reset=reset, compress_level=level)
    rx = PerMessageDeflate(recv_bits=send_bits, recv_reset=reset)
    for message in messages:
        raw = message.encode("utf-8") if isinstance(message, str) else message
        wire = tx.encode(raw, True)
        assert rx.decode(wire, True, None) == raw



@prop(role=st.sampled_from(["server", "client"]), deflate=st.booleans(),
      streaming=st.booleans(), small=st.booleans(), data=st.data())
def accelerator_agrees(role: str, deflate: bool, streaming: bool, small: bool,
                       data: st.DataObject) -> None:
    """The C fast path (_speedups.next_frame) gives the same events, close and replies
    as pure Python for any frames (_core.next_event: "no behaviour of its own"), and
    so does deliver_messages."""
    _count("accelerator_agrees")
    from rfc6455 import _core

    accelerated = _core._next_frame
    masked = role == "server"
    frame = _frame(masked) | _deflated_frame(masked) if deflate else _frame(masked)
    stream = b"".join(data.draw(st.lists(frame, max_size=6)))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=4))
    limits = _SMALL if small else Limits()
    results = []
    try:
        # C parser, pure Python, and messages handed over by deliver_messages
        # (the C method with the accelerator).
        for reader, deliver in ((accelerated, False), (None, False), (accelerated, True)):
            _core._next_frame = reader
            conn = (open_server if role == "server" else open_client)(
                deflate=deflate, limits=limits, streaming=streaming)
            outcome = drive(conn, split(stream, cuts), eof=False, limits=limits,
                            streaming=streaming, deliver=deliver)
            results.append((outcome.events, [(f.opcode, f.payload) for f in check_wire(
                outcome.wire, client=not masked)], conn.close_code, conn.close_reason))
    finally:
        _core._next_frame = accelerated
    # Errors compare by code and text (exception objects compare by identity).
    closes = [[(e.code, e.reason, str(e.error)) for e in r[0] if isinstance(e, ConnectionClosed)]
              for r in results]
    strip = [[e for e in r[0] if not isinstance(e, ConnectionClosed)] for r in results]
    for other in (1, 2):
        assert closes[0] == closes[other]
        assert strip[0] == strip[other]
        assert results[0][1:] == results[other][1:]
