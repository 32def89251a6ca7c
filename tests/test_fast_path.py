"""The parser's fast path for whole small frames changes nothing observable (§5.2, §5.3).

A frame takes the fast path only when it is complete in the buffer, so feeding
the same bytes one at a time forces the general path. For any stream of frames,
valid or not, both ways must give the same events, the same bytes to send, and
the same close. This holds with and without the C accelerator (CI runs both).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfc6455 import (
    Binary,
    ConnectionClosed,
    Event,
    Limits,
    LocalProtocolError,
    Request,
    ServerConnection,
    Text,
    _core,
)
from rfc6455.extensions.permessage_deflate import ServerPerMessageDeflate

from .helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    TEXT,
    client_request,
    close_payload,
    drain,
    frame,
    open_client,
    open_server,
    parse_frames,
)

Outcome = tuple[list[object], list[object], bool]


def _outcome(events: list[Event], written: bytes, eof: bool) -> Outcome:
    """What the application and the peer see. For a close, only its code: two checks of
    the general path word the same 1009 differently depending on how the frame arrived."""
    shown: list[object] = [
        ("closed", e.code, type(e.error)) if isinstance(e, ConnectionClosed) else e
        for e in events
    ]
    frames: list[object] = [
        ("close", f.close_code) if f.opcode == CLOSE else f for f in parse_frames(written)
    ]
    return shown, frames, eof


@st.composite
def frames(draw: st.DrawFn, masked_default: bool) -> bytes:
    opcode = draw(st.sampled_from([TEXT, TEXT, BINARY, BINARY, CONT, PING, CLOSE, 0x3, 0xB]))
    if opcode == TEXT and draw(st.booleans()):
        payload = draw(st.text(max_size=40)).encode()
    else:
        payload = draw(st.binary(max_size=140))
    if opcode == CLOSE:
        payload = close_payload(1000, b"bye")
    fin = draw(st.sampled_from([True, True, True, False]))
    rsv = draw(st.sampled_from([0, 0, 0, 0x40, 0x10]))
    masked = draw(st.sampled_from([masked_default] * 5 + [not masked_default]))
    form = draw(st.sampled_from([None, None, None, 16]))
    key = draw(st.binary(min_size=4, max_size=4))
    return frame(opcode, payload, fin=fin, rsv=rsv, masked=masked, key=key, form=form)


limits = st.builds(
    Limits,
    max_message_size=st.sampled_from([None, 0, 5, 16, 200, 1 << 20]),
    max_frame_size=st.sampled_from([None, 3, 16, 1 << 20]),
)


def _run(server: bool, limit: Limits, stream: bytes, sizes: list[int]) -> Outcome:
    conn = open_server(limits=limit) if server else open_client(limits=limit)
    events: list[Event] = []
    position = 0
    for size in sizes:
        if position >= len(stream):
            break
        conn.receive_data(stream[position:position + size])
        position += size
        events.extend(conn.events())
    if position < len(stream):
        conn.receive_data(stream[position:])
        events.extend(conn.events())
    written, eof = drain(conn)
    return _outcome(events, written, eof)


@pytest.mark.parametrize("server", [True, False], ids=["server", "client"])
@settings(max_examples=150, deadline=None)
@given(data=st.data(), limit=limits)
def test_fast_path_matches_general_path_section_5_2(
    server: bool, data: st.DataObject, limit: Limits
) -> None:
    stream = b"".join(data.draw(st.lists(frames(masked_default=server), max_size=12)))
    whole = _run(server, limit, stream, [len(stream) or 1])
    one_by_one = _run(server, limit, stream, [1] * len(stream))
    assert whole == one_by_one
    sizes = data.draw(st.lists(st.integers(1, 64), max_size=len(stream)))
    assert _run(server, limit, stream, sizes) == whole


def _run_delivering(server: bool, limit: Limits, stream: bytes, sizes: list[int],
                    close_after: int | None) -> tuple[Outcome, int]:
    """_run with ``deliver_messages`` feeding the engine: whole messages to a callback,
    the rest from next_event. The callback (or the loop) closes after ``close_after``
    messages. Also returns how many messages the callback took."""
    conn = open_server(limits=limit) if server else open_client(limits=limit)
    events: list[Event] = []
    delivered = 0

    def note(event: Event) -> None:
        events.append(event)
        if close_after is not None and sum(isinstance(e, (Text, Binary)) for e in events) \
                == close_after:
            conn.close(1000)

    def deliver(sink: list[Event], message: str | bytes) -> None:
        nonlocal delivered
        assert sink is events
        delivered += 1
        note(Text(message) if isinstance(message, str) else Binary(message))

    chunks = [stream[sum(sizes[:i]):sum(sizes[:i + 1])] for i in range(len(sizes))]
    rest = stream[sum(sizes):]
    for chunk in [c for c in chunks if c] + ([rest] if rest else []):
        conn.deliver_messages(chunk, deliver, events)
        for event in conn.events():
            note(event)
    written, eof = drain(conn)
    return _outcome(events, written, eof), delivered


def _run_closing(server: bool, limit: Limits, stream: bytes, close_after: int | None) -> Outcome:
    """_run in one read, closing after ``close_after`` messages as _run_delivering does."""
    conn = open_server(limits=limit) if server else open_client(limits=limit)
    events: list[Event] = []
    conn.receive_data(stream)
    for event in conn.events():
        events.append(event)
        if close_after is not None and sum(isinstance(e, (Text, Binary)) for e in events) \
                == close_after:
            conn.close(1000)
    written, eof = drain(conn)
    return _outcome(events, written, eof)


@pytest.mark.parametrize("server", [True, False], ids=["server", "client"])
@settings(max_examples=150, deadline=None)
@given(data=st.data(), limit=limits, close_after=st.sampled_from([None, None, 1, 2, 3]))
def test_delivered_messages_match_next_event_section_5_2(
    server: bool, data: st.DataObject, limit: Limits, close_after: int | None
) -> None:
    """deliver_messages(): the same messages, in the same order among the other events,
    the same bytes sent and the same close as receive_data() and next_event(), however
    the stream is split, with or without a close sent from the callback."""
    stream = b"".join(data.draw(st.lists(frames(masked_default=server), max_size=12)))
    expected = _run_closing(server, limit, stream, close_after)
    sizes = data.draw(st.lists(st.integers(1, 64), max_size=len(stream)))
    for chunking in ([len(stream) or 1], sizes):
        outcome, delivered = _run_delivering(server, limit, stream, chunking, close_after)
        assert outcome == expected
        # Messages only: every one went to the callback (else those behind a control
        # frame or a close went through next_event, as documented).
        messages = [e for e in expected[0] if isinstance(e, (Text, Binary))]
        assert delivered <= len(messages)
        if close_after is None and len(messages) == len(expected[0]):
            assert delivered == len(messages)


def test_deliver_messages_hands_over_whole_messages_section_5_2() -> None:
    """The common case takes the callback: nothing is left for next_event."""
    conn = open_server()
    got: list[str | bytes] = []
    stream = frame(TEXT, "héllo".encode(), masked=True) + frame(BINARY, b"\x00" * 300,
                                                                masked=True)
    count = conn.deliver_messages(stream, lambda sink, message: sink.append(message), got)
    assert count == 2 and got == ["héllo", b"\x00" * 300]
    assert not conn.input_pending


def test_deliver_messages_callback_exception_propagates_section_5_2() -> None:
    """The failing message is consumed; the next one is still there for next_event."""
    conn = open_server()
    stream = frame(TEXT, b"one", masked=True) + frame(TEXT, b"two", masked=True)

    def fail(arg: None, message: str | bytes) -> None:
        raise ValueError(message)

    with pytest.raises(ValueError, match="one"):
        conn.deliver_messages(stream, fail, None)
    assert conn.next_event() == Text("two")


@pytest.mark.parametrize("split", [3, 10], ids=["inside-frame", "between-frames"])
def test_deliver_messages_leaves_a_message_in_parts_to_the_parser_section_5_4(
    split: int,
) -> None:
    """A whole frame arriving while a fragmented message (or a frame) is in progress is
    not a message of its own: §5.4 makes a new data frame there a protocol error."""
    conn = open_server()
    first = frame(TEXT, b"part", fin=False, masked=True)  # 10 bytes
    stream = first + frame(TEXT, b"new", masked=True)
    got: list[str | bytes] = []
    conn.deliver_messages(stream[:split], lambda sink, message: sink.append(message), got)
    events = list(conn.events())
    conn.deliver_messages(stream[split:], lambda sink, message: sink.append(message), got)
    events += list(conn.events())
    assert got == []
    assert isinstance(events[-1], ConnectionClosed) and events[-1].code == 1002


def test_deliver_messages_after_eof_is_misuse() -> None:
    conn = open_server()
    conn.receive_eof()
    with pytest.raises(LocalProtocolError):
        conn.deliver_messages(b"x", lambda arg, message: None, None)


@pytest.mark.parametrize("server", [True, False], ids=["server", "client"])
def test_fast_path_after_a_split_frame_section_5_2(server: bool) -> None:
    """Once a frame arrived in pieces the buffer is a bytearray; later whole frames still parse."""
    conn = open_server() if server else open_client()
    first = frame(TEXT, b"split across reads", masked=server)
    rest = b"".join(frame(op, b"x" * n, masked=server) for op, n in [(TEXT, 5), (BINARY, 125)])
    conn.receive_data(first[:7])
    assert list(conn.events()) == []
    conn.receive_data(first[7:] + rest)
    got = list(conn.events())
    assert got[0] == Text("split across reads")
    assert got[1] == Text("xxxxx")
    assert got[2].data == b"x" * 125  # type: ignore[union-attr]
    assert type(got[2].data) is bytes  # type: ignore[union-attr]


@pytest.mark.parametrize(("cls", "build", "data"), [
    (Text, _core._text, "héllo"), (Binary, _core._binary, b"\x00\xff")])
def test_events_built_directly_equal_the_dataclass_ones(
    cls: type[Any], build: Callable[[Any], Event], data: str | bytes
) -> None:
    """The pure-Python fast path builds Text/Binary by filling their slots: the same
    objects as the constructor's, as long as the fields are exactly these two."""
    assert [(f.name, f.default) for f in dataclasses.fields(cls)] == \
        [("data", dataclasses.MISSING), ("final", True)]
    assert not hasattr(cls, "__post_init__")
    expected = cls(data)
    event = build(data)
    assert type(event) is cls
    assert event == expected and hash(event) == hash(expected) and repr(event) == repr(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = data  # type: ignore[misc, union-attr]


def test_fast_path_invalid_utf8_fails_with_1007_section_8_1() -> None:
    conn = open_server()
    conn.receive_data(frame(TEXT, b"ok", masked=True) + frame(TEXT, b"\xff\xfe", masked=True))
    got = list(conn.events())
    assert got[0] == Text("ok")
    assert isinstance(got[1], ConnectionClosed) and got[1].code == 1007


def test_fast_path_respects_message_limit_section_10_4() -> None:
    conn = open_server(limits=Limits(max_message_size=4))
    conn.receive_data(frame(TEXT, b"four", masked=True) + frame(TEXT, b"fives", masked=True))
    got = list(conn.events())
    assert got[0] == Text("four")
    assert isinstance(got[1], ConnectionClosed) and got[1].code == 1009


# ------------------------------------------------------ compressed (RFC 7692 §6, §7.2)


def _deflate(data: bytes) -> bytes:
    """One message compressed without context (RFC 7692 §7.2.1): tail 00 00 ff ff removed."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def _deflate_server(limit: Limits) -> ServerConnection:
    """A server that negotiated permessage-deflate, the client resetting its context."""
    server = ServerConnection(limits=limit, extensions=[ServerPerMessageDeflate(
        client_max_window_bits=None, client_no_context_takeover=True)])
    server.receive_data(client_request(extra=[("Sec-WebSocket-Extensions",
                                               "permessage-deflate")]))
    assert isinstance(server.next_event(), Request)
    server.accept()
    drain(server)
    assert server.extension is not None
    return server


@st.composite
def compressed_frames(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["text", "binary", "bad-utf8", "garbage", "fragment",
                                 "empty", "plain"]))
    text = draw(st.text(max_size=300))
    key = draw(st.binary(min_size=4, max_size=4))
    if kind == "text":
        return frame(TEXT, _deflate(text.encode()), rsv=0x40, key=key)
    if kind == "binary":
        return frame(BINARY, _deflate(draw(st.binary(max_size=300)) * 3), rsv=0x40, key=key)
    if kind == "bad-utf8":
        return frame(TEXT, _deflate(b"ok \xed\xa0\x80"), rsv=0x40, key=key)
    if kind == "garbage":
        return frame(BINARY, b"\xff\xff\xff\xff", rsv=0x40, key=key)
    if kind == "fragment":
        payload = _deflate(text.encode())
        cut = len(payload) // 2
        return (frame(TEXT, payload[:cut], rsv=0x40, fin=False, key=key)
                + frame(CONT, payload[cut:], key=key))
    if kind == "empty":
        return frame(BINARY, _deflate(b""), rsv=0x40, key=key)
    return frame(TEXT, text.encode(), key=key)


# A message both over max_message_size and invalid UTF-8 may fail with either code
# depending on where the reads split it (UTF-8 is checked as the text inflates), so
# the limits here never make the 6-byte invalid message too big.
deflate_limits = st.builds(
    Limits,
    max_message_size=st.sampled_from([None, 50, 200, 1 << 20]),
    max_frame_size=st.sampled_from([None, 16, 1 << 20]),
)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), limit=deflate_limits)
def test_compressed_whole_frames_match_general_path_rfc7692_section_7_2(
    data: st.DataObject, limit: Limits
) -> None:
    stream = b"".join(data.draw(st.lists(compressed_frames(), max_size=8)))
    outcomes = []
    for sizes in ([len(stream) or 1], [1] * len(stream)):
        server = _deflate_server(limit)
        events: list[Event] = []
        position = 0
        for size in sizes:
            server.receive_data(stream[position:position + size])
            position += size
            events.extend(server.events())
        written, eof = drain(server)
        outcomes.append(_outcome(events, written, eof))
    assert outcomes[0] == outcomes[1]
