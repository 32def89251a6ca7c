"""The compiled accelerator and the pure-Python masking agree (RFC 6455 §5.3).

§5.3: octet i of the transformed data is octet i of the original XOR octet
``i MOD 4`` of the masking key. Every implementation is checked against that
definition, written out byte by byte here, and against each other.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rfc6455 import Binary, Text, _mask, frames
from rfc6455._mask import mask_inplace_python, mask_python
from tests.helpers import open_server, parse_frames


def _load_speedups() -> ModuleType | None:
    try:
        return importlib.import_module("rfc6455._speedups")
    except ImportError:
        return None


speedups = _load_speedups()
needs_speedups = pytest.mark.skipif(speedups is None, reason="C accelerator not built")

keys = st.binary(min_size=4, max_size=4)
payloads = st.binary(min_size=0, max_size=300)
as_buffer = st.sampled_from([bytes, bytearray, memoryview])


def _reference(data: bytes, key: bytes) -> bytes:
    """§5.3 literally: transformed-octet-i = original-octet-i XOR masking-key-octet-(i MOD 4)."""
    return bytes(octet ^ key[i % 4] for i, octet in enumerate(data))


@given(payloads, keys, as_buffer)
def test_python_mask_matches_section_5_3(
    data: bytes, key: bytes, wrap: Callable[[bytes], bytes | bytearray | memoryview]
) -> None:
    assert mask_python(wrap(data), key) == _reference(data, key)


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 1535, 1536, 1537, 4099, 70_001])
def test_python_mask_both_strategies_section_5_3(size: int) -> None:
    """Sizes around the switch from the integer XOR to the translate lanes."""
    data = os.urandom(size)
    key = os.urandom(4)
    assert mask_python(data, key) == _reference(data, key)
    buffer = bytearray(data)
    mask_inplace_python(buffer, key)
    assert buffer == _reference(data, key)


@given(payloads, keys)
def test_mask_is_an_involution_section_5_3(data: bytes, key: bytes) -> None:
    """Unmasking is the same operation as masking (§5.3)."""
    assert mask_python(mask_python(data, key), key) == data


@needs_speedups
@pytest.mark.parametrize("size", range(301))
def test_c_mask_agrees_for_every_length_section_5_3(size: int) -> None:
    """Every length 0..300 covers all vector/word/byte tail combinations."""
    assert speedups is not None
    data = os.urandom(size)
    key = os.urandom(4)
    expected = mask_python(data, key)
    assert speedups.mask(data, key) == expected
    buffer = bytearray(data)
    speedups.mask_inplace(buffer, key)
    assert buffer == expected


@needs_speedups
@given(payloads, keys, as_buffer)
def test_c_mask_agrees_with_python_section_5_3(
    data: bytes, key: bytes, wrap: Callable[[bytes], bytes | bytearray | memoryview]
) -> None:
    assert speedups is not None
    result = speedups.mask(wrap(data), key)
    assert type(result) is bytes
    assert result == mask_python(data, key)


@needs_speedups
@given(st.binary(min_size=0, max_size=300), keys, st.integers(0, 7), st.integers(0, 7))
def test_c_mask_on_unaligned_views_section_5_3(
    data: bytes, key: bytes, head: int, tail: int
) -> None:
    """Slices of a buffer start at any alignment; the parser hands such views over."""
    assert speedups is not None
    padded = os.urandom(head) + data + os.urandom(tail)
    view = memoryview(padded)[head:head + len(data)]
    assert speedups.mask(view, key) == mask_python(data, key)
    writable = bytearray(padded)
    speedups.mask_inplace(memoryview(writable)[head:head + len(data)], key)
    assert writable[head:head + len(data)] == mask_python(data, key)
    assert writable[:head] == padded[:head]
    assert writable[head + len(data):] == padded[head + len(data):]


@needs_speedups
def test_c_mask_large_buffer_releases_gil_path_section_5_3() -> None:
    """Payloads of 512 KiB and more take the path that releases the GIL."""
    assert speedups is not None
    data = os.urandom(600_000 + 3)
    key = os.urandom(4)
    assert speedups.mask(data, key) == mask_python(data, key)


@needs_speedups
def test_c_mask_rejects_bad_arguments() -> None:
    assert speedups is not None
    with pytest.raises(ValueError, match="4 bytes"):
        speedups.mask(b"abc", b"123")
    with pytest.raises(TypeError):
        speedups.mask("text", b"1234")
    with pytest.raises(BufferError):  # bytes are read-only
        speedups.mask_inplace(b"read-only", b"1234")
    with pytest.raises(TypeError):
        speedups.mask(b"abc")  # type: ignore[call-arg]


def test_no_extensions_variable_forces_pure_python() -> None:
    """RFC6455_NO_EXTENSIONS=1 selects the pure-Python masking in a fresh interpreter."""
    code = "from rfc6455 import _mask; print(_mask.ACCELERATED, _mask.mask.__module__)"
    env = dict(os.environ, RFC6455_NO_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["False", "rfc6455._mask"]


def test_accelerated_flag_matches_what_is_in_use() -> None:
    assert (_mask.mask is not mask_python) == _mask.ACCELERATED
    if speedups is not None and not os.environ.get("RFC6455_NO_EXTENSIONS"):
        assert _mask.mask is speedups.mask


def _key_of(frame: bytes) -> bytes:
    assert frame[1] & 0x80
    return frame[2:6]


def test_masking_keys_are_fresh_per_frame_section_10_3() -> None:
    """§10.3: keys come from a strong source, a new one per frame, even when pooled."""
    keys = {_key_of(frames.serialize_frame(2, b"x", masked=True)) for _ in range(300)}
    # 300 independent 32-bit keys collide with probability below 1e-5.
    assert len(keys) == 300


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_reuse_parent_keys_section_10_3() -> None:
    """A child process must not mask with keys its parent holds and may also use."""
    frames.serialize_frame(2, b"x", masked=True)  # the parent now holds pooled keys
    assert frames._keys
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        os.write(write_end, b"empty" if not frames._keys else b"kept")
        os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 16)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer == b"empty"


# ------------------------------------------------------------- read_frame (§5.2)


@pytest.fixture
def configured() -> None:
    """rfc6455._core configures the event types only when the accelerator is in use."""
    if speedups is not None:
        speedups.configure(Text, Binary)


def _wire(opcode: int, payload: bytes, *, masked: bool, fin: bool = True, rsv: int = 0,
          form16: bool = False) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if masked else 0
    if len(payload) >= 65536:
        head = bytes([first, mbit | 127]) + len(payload).to_bytes(8, "big")
    elif form16 or len(payload) >= 126:
        head = bytes([first, mbit | 126]) + len(payload).to_bytes(2, "big")
    else:
        head = bytes([first, mbit | len(payload)])
    if not masked:
        return head + payload
    key = b"\x01\x82\x43\xc4"
    return head + key + mask_python(payload, key)


@needs_speedups
@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("container", [bytes, bytearray])
@pytest.mark.parametrize("size", [0, 1, 125, 126, 600, 65535])
@pytest.mark.parametrize("server", [True, False])
def test_read_frame_parses_whole_data_frames_section_5_2(
    container: type[bytes] | type[bytearray], size: int, server: bool
) -> None:
    """7- and 16-bit lengths, masked for a server (§5.1), text decoded, binary as bytes."""
    assert speedups is not None
    text = ("é" * size)[: size // 2] + "a" * (size % 2)
    assert len(text.encode()) == size
    data = os.urandom(size)
    prefix = b"\x00junk"
    stream = container(prefix + _wire(1, text.encode(), masked=server)
                       + _wire(2, data, masked=server))
    found = speedups.read_frame(stream, len(prefix), not server, 1 << 20)
    assert found is not None
    event, stop = found
    assert event == Text(text) and event.final is True
    found = speedups.read_frame(stream, stop, not server, 1 << 20)
    assert found is not None
    assert found[0] == Binary(data) and type(found[0].data) is bytes
    assert found[1] == len(stream)
    assert speedups.read_frame(stream, len(stream), not server, 1 << 20) is None


@needs_speedups
@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("case", [
    "ping", "close", "continuation", "not-final", "rsv1", "rsv3", "reserved-opcode",
    "wrong-mask", "incomplete", "over-limit", "invalid-utf8", "64-bit-length-msb",
    "64-bit-incomplete", "one-byte",
])
def test_read_frame_leaves_everything_else_to_the_general_path_section_5_2(case: str) -> None:
    """None means "the Python parser decides": it raises violations, handles control frames."""
    assert speedups is not None
    frames_by_case = {
        "ping": _wire(9, b"hi", masked=True),
        "close": _wire(8, b"\x03\xe8", masked=True),
        "continuation": _wire(0, b"more", masked=True),
        "not-final": _wire(1, b"part", masked=True, fin=False),
        "rsv1": _wire(1, b"zip", masked=True, rsv=0x40),
        "rsv3": _wire(2, b"x", masked=True, rsv=0x10),
        "reserved-opcode": _wire(3, b"x", masked=True),
        "wrong-mask": _wire(1, b"unmasked from a client", masked=False),
        "incomplete": _wire(2, b"0123456789", masked=True)[:-1],
        "over-limit": _wire(2, b"0123456789", masked=True),
        "invalid-utf8": _wire(1, b"ok \xed\xa0\x80 no", masked=True),
        "64-bit-length-msb": bytes([0x82, 0xFF]) + (1 << 63 | 5).to_bytes(8, "big")
        + b"k" * 4 + b"x" * 5,
        "64-bit-incomplete": bytes([0x82, 0xFF]) + (70_000).to_bytes(8, "big") + b"k" * 4
        + b"x" * 69_999,
        "one-byte": b"\x81",
    }
    limit = 9 if case == "over-limit" else 1 << 20
    assert speedups.read_frame(frames_by_case[case], 0, False, limit) is None


@needs_speedups
@pytest.mark.usefixtures("configured")
def test_read_frame_events_are_ordinary_frozen_dataclasses() -> None:
    assert speedups is not None
    found = speedups.read_frame(_wire(1, b"abc", masked=True), 0, False, 100)
    assert found is not None
    event = found[0]
    assert type(event) is Text and event == Text("abc") and hash(event) == hash(Text("abc"))
    assert dataclasses.asdict(event) == {"data": "abc", "final": True}
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.data = "changed"  # type: ignore[misc]


@needs_speedups
def test_read_frame_calls_other_event_types() -> None:
    """Types of another shape than (data, final=True) are called, not filled in."""
    assert speedups is not None

    class Other:
        def __init__(self, data: object) -> None:
            self.data = data

    try:
        assert speedups.configure(Other, Other) is False
        found = speedups.read_frame(_wire(2, b"abc", masked=False), 0, True, 100)
        assert found is not None
        assert type(found[0]) is Other and found[0].data == b"abc"
    finally:
        assert speedups.configure(Text, Binary) is True


@needs_speedups
@pytest.mark.usefixtures("configured")
def test_read_frame_large_limit_and_bad_arguments() -> None:
    assert speedups is not None
    frame = _wire(2, b"abc", masked=False)
    assert speedups.read_frame(frame, 0, True, 2**63) is not None  # "no limit" in _core
    assert speedups.read_frame(memoryview(frame), 0, True, 100) is None  # bytes/bytearray only
    with pytest.raises(TypeError):
        speedups.read_frame(frame, 0, True)  # type: ignore[call-arg]


@needs_speedups
@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("server", [True, False])
def test_next_frame_reads_the_engine_buffer_and_moves_its_position_section_5_2(
    server: bool,
) -> None:
    """next_frame(conn) is read_frame(conn._buf, conn._pos, ...) with the position kept
    in the engine; what it leaves to the Python parser leaves the position alone."""
    assert speedups is not None
    from rfc6455._core import Connection, State
    from tests.helpers import open_client, open_server

    assert speedups.configure_engine(Connection, State.OPEN) is True  # as _core does
    conn = open_server() if server else open_client()
    stream = (_wire(1, "héllo".encode(), masked=server) + _wire(2, b"\x00" * 300, masked=server)
              + _wire(9, b"ping", masked=server))
    conn._buf, conn._pos = stream, 0
    first = speedups.next_frame(conn)
    assert first == Text("héllo")
    middle = conn._pos
    assert speedups.read_frame(stream, 0, not server, conn._fast_limit) == (first, middle)
    assert speedups.next_frame(conn) == Binary(b"\x00" * 300)
    at_ping = conn._pos
    assert speedups.next_frame(conn) is None and conn._pos == at_ping  # a control frame
    assert conn.next_event() is not None  # the Python parser takes it from there
    with pytest.raises(TypeError):
        speedups.next_frame(object())


@needs_speedups
def test_configure_engine_refuses_a_class_without_the_slots() -> None:
    assert speedups is not None
    from rfc6455._core import Connection, State

    class Other:
        __slots__ = ("_buf",)

    methods: tuple[Any, ...] = (lambda *args: None, lambda *args: None, ("", ""), [], lambda: b"")
    try:
        assert speedups.configure_engine(Other) is False
        with pytest.raises(TypeError):
            speedups.next_frame(Other())
        assert speedups.engine_methods(*methods) is None
        # Without the open state, next_frame works and the engine methods are refused.
        assert speedups.configure_engine(Connection) is True
        assert speedups.engine_methods(*methods) is None
        with pytest.raises(TypeError):
            speedups.engine_methods(print, print)  # type: ignore[call-arg]
    finally:
        assert speedups.configure_engine(Connection, State.OPEN) is True


def test_engine_methods_are_installed_when_accelerated() -> None:
    """With the accelerator, send and deliver_messages are the C methods, documented
    like the Python ones they fall back to; without it, the Python ones."""
    from rfc6455 import ServerConnection, _core

    kinds = {type(ServerConnection.send).__name__,
             type(ServerConnection.deliver_messages).__name__}
    if not _mask.ACCELERATED:
        assert kinds == {"function"}
        return
    assert kinds == {"method_descriptor"}
    python_deliver, python_send = _core._python_methods
    assert ServerConnection.send.__doc__ == python_send.__doc__
    assert ServerConnection.deliver_messages.__doc__ == python_deliver.__doc__


@needs_speedups
def test_c_deliver_messages_calls_back_per_message_and_stops_at_a_close_section_5_2(
) -> None:
    """Payloads, the position moved past each frame before its call; the loop ends when
    the callback closes (state no longer open) or at anything else."""
    stream = b"".join(_wire(op, data, masked=True) for op, data in
                      [(1, "é".encode()), (2, b"\x01" * 200), (1, b"three"), (2, b"four")])
    conn = open_server()
    seen: list[tuple[object, int]] = []

    def callback(arg: object, payload: str | bytes) -> None:
        assert arg is seen
        seen.append((payload, conn._pos))
        if payload == "three":
            conn.close(1000)

    assert conn.deliver_messages(stream, callback, seen) == 3
    assert [payload for payload, _ in seen] == ["é", b"\x01" * 200, "three"]
    assert seen[0][1] < seen[1][1] < seen[2][1]  # moved past each frame first
    assert conn.next_event() == Binary(b"four")  # left to the parser once closing
    # Control frames, invalid UTF-8 and partial frames stop it, nothing consumed.
    for wire in (_wire(9, b"ping", masked=True), _wire(1, b"\xff", masked=True), b"\x81"):
        conn = open_server()
        assert conn.deliver_messages(wire, callback, seen) == 0
        assert conn._pos == 0 or conn._events  # the ping or the close is queued
    with pytest.raises(TypeError):
        conn.deliver_messages(b"")  # type: ignore[call-arg]


def test_client_send_takes_keys_from_the_shared_pool_section_10_3() -> None:
    """A client's frames (C send or Python) are masked with the next key of
    frames' pool, from its end, each key once; an empty pool is refilled."""
    from rfc6455 import frames
    from tests.helpers import drain, open_client

    conn = open_client()
    pool = frames._keys
    saved = pool[:]
    try:
        pool[:] = [b"\x01\x02\x03\x04", b"\xaa\xbb\xcc\xdd"]
        conn.send("hi")
        conn.send(b"yo")
        assert pool == []
        wire, _ = drain(conn)
        assert wire[2:6] == b"\xaa\xbb\xcc\xdd"  # the last key first
        assert wire[10:14] == b"\x01\x02\x03\x04"  # after 2 + 4 + 2 bytes
        assert [f.payload for f in parse_frames(wire)] == [b"hi", b"yo"]
        conn.send("again")  # the pool is empty: refilled from the OS CSPRNG
        assert len(pool) == frames._KEY_BLOCK // 4 - 1
    finally:
        pool[:] = saved


_sent = st.one_of(
    st.text(max_size=200), st.binary(max_size=200),
    st.sampled_from([125, 126, 65535, 65536]).map(lambda n: b"s" * n),
    st.sampled_from([125, 126, 65535, 65536]).map(lambda n: "\u00e9" * (n // 2)),
    st.binary(max_size=50).map(bytearray), st.binary(max_size=50).map(lambda b: memoryview(b)),
    st.just("\ud800"))


@needs_speedups
@settings(deadline=None)  # 64 KiB messages cut into 7-byte frames take a while
@given(messages=st.lists(st.tuples(_sent, st.sampled_from([
    {}, {"final": True}, {"final": False}, {"compress": True}, {"final": True, "compress": None},
    {"close": True},
])), max_size=6), client=st.booleans(), fragment=st.sampled_from([None, None, 7]))
def test_c_send_matches_python_send_section_5_2(
    messages: list[tuple[str | bytes, dict[str, Any]]], client: bool, fragment: int | None
) -> None:
    """The C send() queues the same bytes as the Python one, raises the same errors and
    leaves the engine in the same state, whatever is sent and however."""
    from rfc6455 import _core
    from tests.helpers import drain, open_client

    python_send = _core._python_methods[1]
    conns = [open_client(fragment_size=fragment) if client else
             open_server(fragment_size=fragment) for _ in range(2)]
    for data, kwargs in [*messages, ("end", {})]:
        outcomes: list[type[Exception] | None] = []
        close = kwargs.pop("close", False)
        for conn, send in zip(conns, (type(conns[0]).send, python_send), strict=True):
            if close:
                conn.close(1000)  # then sending is local misuse, both ways
            try:
                send(conn, data, **kwargs)
                outcomes.append(None)
            except Exception as exc:  # compared below
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]
    written = [drain(conn)[0] for conn in conns]
    if client:  # fresh masking keys: compare the frames unmasked
        assert parse_frames(written[0]) == parse_frames(written[1])
    else:
        assert written[0] == written[1]
    assert conns[0].state is conns[1].state


@needs_speedups
@pytest.mark.usefixtures("configured")
@given(st.binary(max_size=200), st.integers(-3, 210), st.booleans(),
       st.integers(0, 2**64))
def test_read_frame_on_arbitrary_bytes_section_5_2(
    data: bytes, pos: int, client: bool, limit: int
) -> None:
    """Garbage never crashes it; what it accepts is a whole frame inside the buffer."""
    assert speedups is not None
    for buffer in (data, bytearray(data)):
        found = speedups.read_frame(buffer, pos, client, limit)
        if found is None:
            continue
        event, stop = found
        assert 0 <= pos < stop <= len(data)
        assert type(event) in (Text, Binary)
        assert data[pos] in (0x81, 0x82)
        assert bool(data[pos + 1] & 0x80) is not client  # §5.1
        assert len(event.data) <= limit


@needs_speedups
@given(st.lists(st.binary(max_size=40), max_size=6), keys, st.integers(0, 3))
def test_c_mask_join_agrees_with_python_section_5_3(
    parts: list[bytes], key: bytes, skip: int
) -> None:
    # Parts as the engine passes them: bytes, and memoryviews over bytes (a frame's
    # first and last pieces are views into the chunks they were read in).
    assert speedups is not None
    mixed: list[bytes | memoryview] = [
        memoryview(b"\x00" * skip + p)[skip:] if i % 2 else p for i, p in enumerate(parts)]
    result = speedups.mask_join(mixed, key)
    assert type(result) is bytes
    assert result == mask_python(b"".join(parts), key) == _mask.mask_join_python(mixed, key)


@needs_speedups
@given(st.integers(0, 255), st.one_of(st.binary(max_size=300),
                                     st.integers(65530, 65541).map(os.urandom)),
       keys, st.sampled_from([bytes, bytearray, memoryview]))
def test_c_masked_frame_agrees_with_python_section_5_2_and_5_3(
    first: int, payload: bytes, key: bytes, container: Callable[[bytes], Any]
) -> None:
    """One allocation in C, the same bytes as the Python header + key + mask."""
    assert speedups is not None
    result = speedups.masked_frame(first, container(payload), key)
    assert type(result) is bytes
    assert result == frames.masked_frame_python(first, payload, key)
    # §5.2 read back independently: mask bit, minimal length form, key, payload.
    (frame,) = parse_frames(result)
    assert frame.payload == payload and frame.masked


@needs_speedups
def test_c_masked_frame_rejects_bad_arguments() -> None:
    assert speedups is not None
    with pytest.raises(ValueError):
        speedups.masked_frame(256, b"x", b"abcd")
    with pytest.raises(ValueError):
        speedups.masked_frame(0x81, b"x", b"abc")  # §5.3: a 4-byte key
    with pytest.raises(TypeError):
        speedups.masked_frame(0x81, "text", b"abcd")  # type: ignore[arg-type]


@needs_speedups
def test_c_mask_join_rejects_bad_arguments() -> None:
    assert speedups is not None
    with pytest.raises(TypeError):
        speedups.mask_join((b"ab",), b"abcd")  # a list only
    with pytest.raises(ValueError):
        speedups.mask_join([b"ab"], b"abc")
    with pytest.raises(TypeError):
        speedups.mask_join([b"ab", 3], b"abcd")


@needs_speedups
@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("masked", [True, False])
def test_read_frame_takes_64_bit_lengths_section_5_2(masked: bool) -> None:
    payload = os.urandom(70_000)
    wire = b"junk" + _wire(2, payload, masked=masked) + b"next"
    assert speedups is not None
    found = speedups.read_frame(wire, 4, not masked, 1 << 20)
    assert found is not None
    assert found[0] == Binary(payload)
    assert found[1] == len(wire) - 4
    assert speedups.read_frame(wire, 4, not masked, 69_999) is None  # over the limit


# ------------------------------------------------------------- text_event (§8.1)

utf8_or_not = st.one_of(st.text(max_size=300).map(lambda s: s.encode()),
                        st.binary(max_size=300),
                        st.sampled_from([b"\xed\xa0\x80", b"\xc0\xaf", b"ok\xf4\x90\x80\x80",
                                         b"\xe2\x82", "é€😀".encode()]))


@needs_speedups
@pytest.mark.usefixtures("configured")
@given(utf8_or_not)
def test_text_event_matches_python_section_8_1(data: bytes) -> None:
    """Same event as the pure-Python helper; None for invalid UTF-8 (surrogates, overlong, cut)."""
    from rfc6455._core import _text_event_python

    assert speedups is not None
    expected = _text_event_python(data)
    got = speedups.text_event(data)
    assert got == expected
    if expected is None:
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
    else:
        assert type(got) is Text and got.final is True and got.data == data.decode("utf-8")


@needs_speedups
@pytest.mark.usefixtures("configured")
def test_text_event_takes_bytes_only() -> None:
    assert speedups is not None
    with pytest.raises(TypeError):
        speedups.text_event(bytearray(b"abc"))  # type: ignore[arg-type]


def test_engine_accessors_are_installed_when_accelerated() -> None:
    """With the accelerator, receive_data and data_to_send_parts are C methods and
    the four per-message properties have C getters, documented like the Python
    code they fall back to; without it, the Python code."""
    from rfc6455 import ServerConnection, _core

    python_receive, python_parts, python_next, *python_getters = _core._python_accessors
    getters = [getattr(ServerConnection, name).fget for name in _core._ACCESSED]
    methods = [ServerConnection.receive_data, ServerConnection.data_to_send_parts,
               ServerConnection.next_event]
    if not _mask.ACCELERATED:
        assert methods == [python_receive, python_parts, python_next]
        assert getters[1:] == python_getters
        return
    assert {type(method).__name__ for method in methods} == {"method_descriptor"}
    assert {type(getter).__name__ for getter in getters} == {"builtin_function_or_method"}
    for method, python in zip(methods, (python_receive, python_parts, python_next),
                              strict=True):
        assert method.__doc__ == python.__doc__
    for name, python in zip(_core._ACCESSED[1:], python_getters, strict=True):
        assert getattr(ServerConnection, name).__doc__ == python.__doc__


# What the engines below are put through: bytes in (frames of every kind, cut
# anywhere), events out, sends, closes, the end of input, output taken.
_frame_stream = st.lists(st.sampled_from([
    _wire(1, b"text", masked=True), _wire(2, b"\x00" * 130, masked=True),
    _wire(2, b"\x01" * 3, masked=True, fin=False), _wire(0, b"more", masked=True),
    _wire(9, b"ping", masked=True), _wire(10, b"", masked=True),
    _wire(8, b"\x03\xe8", masked=True), _wire(1, b"\xff", masked=True),
    _wire(2, b"unmasked", masked=False)]), max_size=6).map(b"".join)
_step = st.one_of(
    st.tuples(st.just("data"), st.integers(1, 40)), st.just(("event", 0)),
    st.just(("send", 0)), st.just(("close", 0)), st.just(("eof", 0)),
    st.just(("parts", 0)))


@needs_speedups
@settings(deadline=None)
@given(stream=_frame_stream, steps=st.lists(_step, max_size=30), handshake=st.booleans(),
       streaming=st.booleans())
def test_c_accessors_match_python(stream: bytes, steps: list[tuple[str, int]],
                                  handshake: bool, streaming: bool) -> None:
    """receive_data, next_event and data_to_send_parts in C leave the engine as
    the Python ones do (same events, same output, same errors), and after every
    step the C getters of state, input_pending, buffered_bytes and
    has_data_to_send read what the Python ones read: whatever was received, in
    whatever pieces, in any state."""
    from rfc6455 import LocalProtocolError, ServerConnection, _core
    from tests.helpers import client_request

    python_receive, python_parts, python_next, *python_getters = _core._python_accessors
    if handshake:  # from CONNECTING: the request, then the frames right behind it
        conns = [ServerConnection() for _ in range(2)]
        stream = client_request() + stream
    else:
        conns = [open_server() for _ in range(2)]
    for conn in conns:
        conn.streaming = streaming
    cls = type(conns[0])
    methods = [(cls.receive_data, cls.data_to_send_parts, cls.next_event),
               (python_receive, python_parts, python_next)]

    for what, size in steps:
        outcomes = []
        for conn, (receive, parts, next_event) in zip(conns, methods, strict=True):
            try:
                if what == "data":
                    receive(conn, stream[:size])
                    outcome: object = None
                elif what == "event":
                    outcome = next_event(conn)
                    if type(outcome).__name__ == "Request":
                        conn.accept()
                elif what == "send":
                    outcome = conn.send(b"reply")  # type: ignore[func-returns-value]
                elif what == "close":
                    outcome = conn.close(1000)  # type: ignore[func-returns-value]
                elif what == "eof":
                    outcome = conn.receive_eof()  # type: ignore[func-returns-value]
                else:
                    outcome = parts(conn)
            except LocalProtocolError as exc:
                outcome = type(exc)
            outcomes.append(outcome)
            for name, python in zip(_core._ACCESSED[1:], python_getters, strict=True):
                assert getattr(conn, name) == python(conn), name
            assert conn.state is conn._state
        if what == "data":
            stream = stream[size:]
        assert outcomes[0] == outcomes[1], what
        assert conns[0].state is conns[1].state
