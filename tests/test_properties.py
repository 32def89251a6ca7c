"""Properties of the engine, checked with hypothesis (RFC 6455 §5, §7).

* Any split of the same byte stream gives the same events and the same output.
* Serialize then parse is the identity, both roles.
* Garbage after a valid handshake never raises and ends in a valid close.
* Masking twice is the identity (§5.3).
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfc6455 import (
    Accepted,
    Binary,
    ClientConnection,
    ConnectionClosed,
    Event,
    HTTPRequest,
    Limits,
    Request,
    ServerConnection,
    Text,
)
from rfc6455._mask import mask, mask_python
from rfc6455.frames import Opcode, is_valid_close_code, serialize_frame

from .helpers import (
    CLOSE,
    Engine,
    Pair,
    Scrambler,
    ScramblerClientFactory,
    ScramblerServerFactory,
    client_key,
    client_request,
    drain,
    frame,
    open_client,
    open_server,
    open_server_with,
    parse_frames,
    server_response,
    xor,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# A frame as a test describes it: (opcode, payload, fin, rsv, masked-as-the-role-requires).
FrameSpec = tuple[int, bytes, bool, int, bool]

_text_payloads = st.text(max_size=40).map(lambda s: s.encode("utf-8"))
# Sizes around every length encoding (§5.2) and the limits the tests set.
_sizes = st.sampled_from([0, 1, 125, 126, 149, 150, 151, 200, 299, 300, 301, 400, 65535, 65536])
_payloads = st.one_of(st.binary(max_size=40), _text_payloads,
                      st.builds(lambda n, b: b * n, _sizes, st.sampled_from([b"a", b"\xff"])))


@st.composite
def frame_specs(draw: st.DrawFn) -> FrameSpec:
    """Mostly plausible frames, now and then a broken one."""
    kind = draw(st.sampled_from(["data"] * 6 + ["cont"] * 4 + ["ping", "pong", "close",
                                                                "odd"]))
    if kind == "data":
        opcode = draw(st.sampled_from([1, 2]))
        payload = draw(_payloads)
    elif kind == "cont":
        opcode, payload = 0, draw(_payloads)
    elif kind in ("ping", "pong"):
        opcode, payload = (9 if kind == "ping" else 10), draw(st.binary(max_size=125))
    elif kind == "close":
        opcode = 8
        payload = draw(st.one_of(
            st.just(b""),
            st.builds(lambda c, r: c.to_bytes(2, "big") + r,
                      st.sampled_from([1000, 1001, 1003, 1004, 1005, 2999, 3000, 4999, 5000]),
                      _text_payloads),
            st.binary(max_size=5)))
    else:
        opcode = draw(st.integers(0, 15))
        payload = draw(st.binary(max_size=200))
    fin = draw(st.booleans()) if kind in ("data", "cont", "odd") else True
    rsv = draw(st.sampled_from([0] * 30 + [0x40, 0x10]))
    proper_mask = draw(st.sampled_from([True] * 30 + [False]))
    return opcode, payload, fin, rsv, proper_mask


def encode(specs: list[FrameSpec], *, to_server: bool) -> bytes:
    out = []
    for opcode, payload, fin, rsv, proper in specs:
        masked = to_server if proper else not to_server
        out.append(frame(opcode, payload, fin=fin, rsv=rsv, masked=masked))
    return b"".join(out)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """Split ``data`` at the given offsets (taken modulo its length)."""
    if not data:
        return [data]
    offsets = sorted({p % len(data) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(offsets)]


def run(conn: Engine, pieces: list[bytes], eof: bool = True) -> tuple[list[Event], bytes]:
    """Feed pieces, collecting events after each; return the events and everything written.

    The output is taken after every event: a pong still unsent when the next ping
    arrives is replaced by that ping's (§5.5.3), so output taken less often
    depends on where the input was split.
    """
    evs: list[Event] = []
    written = []
    for piece in pieces:
        conn.receive_data(piece)
        for event in conn.events():
            evs.append(event)
            written.append(drain(conn)[0])
        written.append(drain(conn)[0])
    if eof:
        conn.receive_eof()
        for event in conn.events():
            evs.append(event)
            written.append(drain(conn)[0])
    written.append(drain(conn)[0])
    return evs, b"".join(written)


def new_engine(role: str, **kwargs: object) -> Engine:
    return open_server(**kwargs) if role == "server" else open_client(**kwargs)


# ---------------------------------------------------------------- split invariance


@settings(SETTINGS, max_examples=500)
@given(specs=st.lists(frame_specs(), max_size=12), points=st.lists(st.integers(0, 10**6),
                                                                     max_size=12),
       role=st.sampled_from(["server", "client"]),
       limit=st.sampled_from([None, 300, 1 << 20]))
def test_5_2_any_split_gives_the_same_events(specs: list[FrameSpec], points: list[int],
                                             role: str, limit: int | None) -> None:
    data = encode(specs, to_server=role == "server")
    limits = Limits(max_message_size=limit, max_frame_size=limit and limit // 2,
                    max_fragments=5)
    whole_events, whole_out = run(new_engine(role, limits=limits), [data])
    split_events, split_out = run(new_engine(role, limits=limits), cut(data, points))
    assert split_events == whole_events
    assert isinstance(whole_events[-1], ConnectionClosed)
    if role == "server":  # unmasked output: byte for byte identical
        assert split_out == whole_out
    else:
        assert [(f.opcode, f.payload) for f in parse_frames(split_out)] == [
            (f.opcode, f.payload) for f in parse_frames(whole_out)]


def _messages(evs: list[Event]) -> list[object]:
    """Streaming events folded into whole messages (data pieces concatenated)."""
    folded: list[object] = []
    current: list[str | bytes] = []
    for event in evs:
        if isinstance(event, (Text, Binary)):
            current.append(event.data)
            if event.final:
                kind = type(event)
                joined = "".join(current) if kind is Text else b"".join(current)  # type: ignore[arg-type]
                folded.append((kind.__name__, joined))
                current = []
        else:
            folded.append(event)
    if current:
        folded.append(("partial", current[0][:0].join(current)))  # type: ignore[arg-type]
    return folded


@SETTINGS
@given(specs=st.lists(frame_specs(), max_size=12), points=st.lists(st.integers(0, 10**6),
                                                                     max_size=12),
       role=st.sampled_from(["server", "client"]))
def test_5_4_streaming_split_gives_the_same_messages(specs: list[FrameSpec], points: list[int],
                                                     role: str) -> None:
    data = encode(specs, to_server=role == "server")
    whole_events, whole_out = run(new_engine(role, streaming=True), [data])
    split_events, split_out = run(new_engine(role, streaming=True), cut(data, points))
    whole, split = _messages(whole_events), _messages(split_events)
    # A message cut short by a failure may have delivered more of its start when split.
    assert [m for m in split if not _is_partial(m)] == [m for m in whole if not _is_partial(m)]
    if role == "server":
        assert split_out == whole_out


def _is_partial(message: object) -> bool:
    return isinstance(message, tuple) and message[0] == "partial"


@SETTINGS
@given(specs=st.lists(frame_specs(), max_size=8), role=st.sampled_from(["server", "client"]))
def test_5_4_streaming_and_assembled_modes_agree(specs: list[FrameSpec], role: str) -> None:
    data = encode(specs, to_server=role == "server")
    assembled, _ = run(new_engine(role), [data])
    streamed, _ = run(new_engine(role, streaming=True), cut(data, list(range(0, 10**4, 7))))
    assert [m for m in _messages(streamed) if not _is_partial(m)] == _messages(assembled)


@SETTINGS
@given(specs=st.lists(frame_specs(), max_size=10), points=st.lists(st.integers(0, 10**6),
                                                                     max_size=10),
       switches=st.lists(st.booleans(), min_size=1, max_size=30),
       role=st.sampled_from(["server", "client"]))
def test_5_4_switching_streaming_between_reads_gives_the_same_messages(
        specs: list[FrameSpec], points: list[int], switches: list[bool], role: str) -> None:
    # The adapters switch streaming on only while recv_streaming() waits: whatever the
    # switches and the cuts, the messages are those of the assembled mode.
    data = encode(specs, to_server=role == "server")
    assembled, _ = run(new_engine(role), [data])
    conn = new_engine(role)
    evs: list[Event] = []
    for i, piece in enumerate(cut(data, points)):
        conn.streaming = switches[i % len(switches)]
        conn.receive_data(piece)
        evs.extend(conn.events())
    conn.receive_eof()
    evs.extend(conn.events())
    assert [m for m in _messages(evs) if not _is_partial(m)] == \
        [m for m in _messages(assembled) if not _is_partial(m)]


# ---------------------------------------------------------------- serialize -> parse


@SETTINGS
@given(opcode=st.sampled_from(list(Opcode)), payload=st.binary(max_size=70000),
       fin=st.booleans(), rsv=st.sampled_from([0, 0x40, 0x20, 0x10, 0x70]),
       masked=st.booleans())
def test_5_2_serialize_then_parse_is_identity(opcode: int, payload: bytes, fin: bool, rsv: int,
                                              masked: bool) -> None:
    (parsed,) = parse_frames(serialize_frame(opcode, payload, fin=fin, rsv=rsv, masked=masked))
    assert (parsed.opcode, parsed.payload, parsed.fin, parsed.rsv, parsed.masked) == (
        opcode, payload, fin, rsv, masked)


# Big messages are built from a repeated byte: hypothesis is slow to draw 64 KiB at random.
_message = st.one_of(st.text(max_size=300), st.binary(max_size=300),
                     st.builds(lambda n, b: b * n, st.sampled_from([65535, 65536, 70000]),
                               st.sampled_from([b"a", b"\x00"])))
# The receiver's fragment limit is policy, not the property under test.
_NO_FRAGMENT_LIMIT = Limits(max_fragments=None)


@SETTINGS
@given(messages=st.lists(_message, max_size=6), chunk=st.sampled_from([None, 1, 3, 1000]),
       fragment_size=st.sampled_from([None, 7, 1000, 4096]),
       parts=st.integers(1, 3))
def test_6_messages_round_trip_both_roles(messages: list[str | bytes], chunk: int | None,
                                          fragment_size: int | None, parts: int) -> None:
    if chunk is not None and any(len(m) > 1000 for m in messages):
        chunk = 997  # byte-sized pieces of 64 KiB messages only cost time
    pair = Pair(chunk=chunk, handshake=False,
                server=ServerConnection(fragment_size=fragment_size, limits=_NO_FRAGMENT_LIMIT),
                client=ClientConnection("ws://h/", fragment_size=fragment_size,
                                        limits=_NO_FRAGMENT_LIMIT))
    pair.handshake()
    expected = [Text(m) if isinstance(m, str) else Binary(m) for m in messages]
    for sender in (pair.client, pair.server):
        for message in messages:
            step = max(1, len(message) // parts)
            pieces = [message[i:i + step] for i in range(0, len(message), step)] or [message]
            for piece in pieces[:-1]:
                sender.send(piece, final=False)
            sender.send(pieces[-1])
    assert pair.to_server() == expected
    assert pair.to_client() == expected


# ---------------------------------------------------------------- garbage


@SETTINGS
@given(garbage=st.binary(min_size=1, max_size=600), points=st.lists(st.integers(0, 600),
                                                                     max_size=5),
       role=st.sampled_from(["server", "client"]), streaming=st.booleans())
def test_7_1_7_garbage_never_raises_and_ends_with_a_valid_close(
        garbage: bytes, points: list[int], role: str, streaming: bool) -> None:
    conn = new_engine(role, streaming=streaming, limits=Limits(max_message_size=200))
    evs, out = run(conn, cut(garbage, points))
    closed = evs[-1]
    assert isinstance(closed, ConnectionClosed)
    assert sum(isinstance(e, ConnectionClosed) for e in evs) == 1
    frames = parse_frames(out)
    closes = [f for f in frames if f.opcode == CLOSE]
    assert len(closes) <= 1
    for f in frames:
        assert f.masked is (role == "client")
        assert len(f.payload) <= 125
    if closes:
        code = closes[0].close_code
        assert code is None or is_valid_close_code(code)
    if closed.error is not None:
        assert closes and closes[0].close_code == closed.error.code == closed.code
        assert closed.code in (1002, 1007, 1009)
    assert frames == [] or frames[-1].opcode == CLOSE or closed.code == 1006


@SETTINGS
@given(garbage=st.binary(max_size=300))
def test_4_2_1_garbage_request_never_raises(garbage: bytes) -> None:
    server = ServerConnection()
    server.receive_data(garbage)
    evs = list(server.events())
    server.receive_eof()
    evs += list(server.events())
    assert evs
    if isinstance(evs[-1], (Request, HTTPRequest)):  # a whole head: the application answers
        server.respond(404)
        evs += list(server.events())
    assert isinstance(evs[-1], ConnectionClosed)
    data, eof = drain(server)
    assert eof
    assert data == b"" or data.startswith(b"HTTP/1.1 4")


@SETTINGS
@given(garbage=st.binary(max_size=300))
def test_4_1_garbage_response_never_raises(garbage: bytes) -> None:
    client = ClientConnection("ws://h/")
    drain(client)
    client.receive_data(garbage)
    evs = list(client.events())
    client.receive_eof()
    evs += list(client.events())
    assert evs and isinstance(evs[-1], ConnectionClosed)
    assert drain(client) == (b"", True)


# ---------------------------------------------------------------- masking


@SETTINGS
@given(data=st.binary(max_size=5000), key=st.binary(min_size=4, max_size=4),
       start=st.integers(0, 7))
def test_5_3_masking_twice_is_identity(data: bytes, key: bytes, start: int) -> None:
    view = memoryview(data)[start:]
    once = mask(view, key)
    assert once == xor(bytes(view), key) == mask_python(view, key)
    assert mask(once, key) == bytes(view)


@SETTINGS
@given(messages=st.lists(st.tuples(_message, st.sampled_from([None, True, False])), max_size=5),
       chunk=st.sampled_from([None, 1, 7, 1000]),
       fragment_size=st.sampled_from([None, 7, 1000, 4096]), parts=st.integers(1, 3),
       streaming=st.booleans())
def test_9_extension_round_trip_with_parts(messages: list[tuple[str | bytes, bool | None]],
                                           chunk: int | None, fragment_size: int | None,
                                           parts: int, streaming: bool) -> None:
    """Messages through a negotiated extension, whole or in parts, come out unchanged."""
    if chunk is not None and any(len(m) > 1000 for m, _ in messages):
        chunk = 997  # byte-sized pieces of 64 KiB messages only cost time
    pair = Pair(chunk=chunk, handshake=False,
                server=ServerConnection(extensions=[ScramblerServerFactory()],  # type: ignore[list-item]
                                        fragment_size=fragment_size, streaming=streaming,
                                        limits=_NO_FRAGMENT_LIMIT),
                client=ClientConnection("ws://h/", extensions=[ScramblerClientFactory()],  # type: ignore[list-item]
                                        fragment_size=fragment_size, streaming=streaming,
                                        limits=_NO_FRAGMENT_LIMIT))
    pair.handshake()
    assert pair.server.extension is not None and pair.client.extension is not None
    for sender in (pair.client, pair.server):
        for message, compress in messages:
            step = max(1, len(message) // parts)
            pieces = [message[i:i + step] for i in range(0, len(message), step)] or [message]
            for piece in pieces[:-1]:
                sender.send(piece, final=False, compress=compress)
            sender.send(pieces[-1], compress=compress)
    expected = [("Text" if isinstance(m, str) else "Binary", m) for m, _ in messages]
    assert _messages(pair.to_server()) == expected
    assert _messages(pair.to_client()) == expected


@SETTINGS
@given(specs=st.lists(frame_specs(), max_size=10), points=st.lists(st.integers(0, 10**6),
                                                                     max_size=8))
def test_9_garbage_with_extension_never_raises(specs: list[FrameSpec], points: list[int]) -> None:
    specs = [(op, p, fin, 0x20 if rsv else 0, m) for op, p, fin, rsv, m in specs]
    data = encode(specs, to_server=True)
    whole_events, whole_out = run(open_server_with(Scrambler(), limits=Limits(
        max_message_size=300)), [data])
    split_events, split_out = run(open_server_with(Scrambler(), limits=Limits(
        max_message_size=300)), cut(data, points))
    assert split_events == whole_events
    assert split_out == whole_out
    assert isinstance(whole_events[-1], ConnectionClosed)


def _serve(pieces: list[bytes]) -> tuple[list[Event], bytes]:
    """A server fed ``pieces`` from its first byte; it accepts the request when it comes."""
    server = ServerConnection()
    evs: list[Event] = []
    written = []
    for piece in [*pieces, None]:
        if piece is None:
            server.receive_eof()
        else:
            server.receive_data(piece)
        for event in server.events():
            evs.append(event)
            if isinstance(event, Request):
                server.accept()
        written.append(drain(server)[0])
    return evs, b"".join(written)


@SETTINGS
@given(specs=st.lists(frame_specs(), max_size=6), points=st.lists(st.integers(0, 10**6),
                                                                    max_size=10))
def test_4_2_2_handshake_and_frames_any_split_same_events(specs: list[FrameSpec],
                                                          points: list[int]) -> None:
    """Frames right behind the request reach the parser however the bytes are cut."""
    data = client_request(key="dGhlIHNhbXBsZSBub25jZQ==") + encode(specs, to_server=True)
    whole_events, whole_out = _serve([data])
    split_events, split_out = _serve(cut(data, points))
    assert split_events == whole_events
    assert split_out == whole_out
    assert isinstance(whole_events[0], Request)
    assert isinstance(whole_events[-1], ConnectionClosed)


def _connect(pieces_of: object, specs: list[FrameSpec]) -> tuple[list[Event], bytes]:
    client = ClientConnection("ws://h/")
    drain(client)
    data = server_response(client_key(client)) + encode(specs, to_server=False)
    evs, out = run(client, pieces_of(data))  # type: ignore[operator]
    return evs, out


@SETTINGS
@given(specs=st.lists(frame_specs(), max_size=6), points=st.lists(st.integers(0, 10**6),
                                                                    max_size=10))
def test_4_1_response_and_frames_any_split_same_events(specs: list[FrameSpec],
                                                       points: list[int]) -> None:
    """Frames right behind the 101 reach the client's parser however the bytes are cut."""
    whole_events, whole_out = _connect(lambda data: [data], specs)
    split_events, split_out = _connect(lambda data: cut(data, points), specs)
    assert isinstance(whole_events[0], Accepted)
    assert split_events[1:] == whole_events[1:]  # Accepted carries the random key's answer
    assert isinstance(split_events[0], Accepted)
    assert [(f.opcode, f.payload) for f in parse_frames(split_out)] == [
        (f.opcode, f.payload) for f in parse_frames(whole_out)]
