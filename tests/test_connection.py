"""The engine's API end to end: messages, ping/pong, streaming, sending in parts (§5, §6)."""

from __future__ import annotations

import os
import tracemalloc

import pytest

from rfc6455 import (
    EOF,
    Binary,
    ClientConnection,
    Limits,
    LocalProtocolError,
    Ping,
    Pong,
    ServerConnection,
    State,
    Text,
)
from rfc6455.frames import Opcode, serialize_frame

from .helpers import (
    BINARY,
    CONT,
    PING,
    PONG,
    TEXT,
    Pair,
    cframe,
    drain,
    feed,
    open_client,
    open_server,
    parse_frames,
    sframe,
    written_frames,
)

SIZES = [0, 1, 125, 126, 65535, 65536, 300_000]


# ---------------------------------------------------------------- messages (§6)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("chunk", [None, 1000])
def test_6_1_messages_both_directions(size: int, chunk: int | None) -> None:
    pair = Pair(chunk=chunk)
    payload = os.urandom(size)
    text = "é" * (size // 2)
    pair.client.send(payload)
    pair.client.send(text)
    assert pair.to_server() == [Binary(payload), Text(text)]
    pair.server.send(payload)
    pair.server.send(text)
    assert pair.to_client() == [Binary(payload), Text(text)]


def test_6_1_bytes_like_payloads() -> None:
    pair = Pair()
    pair.client.send(bytearray(b"ab"))
    pair.client.send(memoryview(b"xcdx")[1:3])
    assert pair.to_server() == [Binary(b"ab"), Binary(b"cd")]


def test_6_2_messages_byte_by_byte() -> None:
    pair = Pair(chunk=1)
    pair.client.send("hello")
    pair.client.ping(b"1")
    pair.client.send(b"\x00" * 300)
    assert pair.to_server() == [Text("hello"), Ping(b"1"), Binary(b"\x00" * 300)]
    assert pair.to_client() == [Pong(b"1")]


def test_6_2_events_iterator_and_next_event_none() -> None:
    server = open_server()
    assert server.next_event() is None
    server.receive_data(cframe(TEXT, b"a") + cframe(TEXT, b"b"))
    assert list(server.events()) == [Text("a"), Text("b")]
    assert server.next_event() is None


def test_6_2_buffered_bytes_counts_unparsed_input() -> None:
    server = open_server()
    data = cframe(BINARY, b"x" * 1000)
    server.receive_data(data[:500])
    assert server.buffered_bytes == 500
    server.receive_data(data[500:])
    assert server.buffered_bytes == len(data)
    assert server.next_event() == Binary(b"x" * 1000)
    assert server.buffered_bytes == 0


# ---------------------------------------------------------------- ping / pong (§5.5.2, §5.5.3)


@pytest.mark.parametrize("payload", [b"", b"p", b"\x00\xff" * 62 + b"!"])
def test_5_5_2_ping_is_answered_with_same_payload(payload: bytes) -> None:
    server = open_server()
    assert feed(server, cframe(PING, payload)) == [Ping(payload)]
    (pong,) = written_frames(server)
    assert (pong.opcode, pong.payload, pong.masked, pong.fin) == (PONG, payload, False, True)
    client = open_client()
    assert feed(client, sframe(PING, payload)) == [Ping(payload)]
    (pong,) = written_frames(client)
    assert (pong.opcode, pong.payload, pong.masked) == (PONG, payload, True)


def test_5_5_2_each_ping_is_answered() -> None:
    server = open_server()
    feed(server, cframe(PING, b"1"))
    assert [f.payload for f in written_frames(server)] == [b"1"]
    feed(server, cframe(PING, b"2"))
    assert [f.payload for f in written_frames(server)] == [b"2"]


@pytest.mark.parametrize("role", ["server", "client"])
def test_5_5_3_backed_up_output_keeps_one_pong_for_the_latest_pings(role: str) -> None:
    """Pings that come together are all answered; once 16 frames wait unsent, each
    new pong takes the place of the latest unsent one (§5.5.3), in its place
    among the other output, whatever the number of pings."""
    conn = open_server() if role == "server" else open_client()
    ping = cframe if role == "server" else sframe
    feed(conn, b"".join(ping(PING, b"%d" % i) for i in range(10)))
    assert [f.payload for f in written_frames(conn)] == [b"%d" % i for i in range(10)]
    data: list[bytes] = []
    for i in range(1000):
        data.append(ping(PING, b"%d" % i))
        if i == 500:
            data.append(ping(TEXT, b"between"))
    events = feed(conn, b"".join(data))
    assert len([e for e in events if isinstance(e, Ping)]) == 1000
    conn.send("reply")  # queued behind the pongs
    frames = written_frames(conn)
    assert [(f.opcode, f.payload) for f in frames] == [
        *((PONG, b"%d" % i) for i in range(15)), (PONG, b"999"), (TEXT, b"reply")]
    # Output taken: the next ping gets a pong of its own.
    feed(conn, ping(PING, b"again"))
    assert [(f.opcode, f.payload) for f in written_frames(conn)] == [(PONG, b"again")]


def test_5_5_2_auto_pong_can_be_disabled() -> None:
    server = open_server(auto_pong=False)
    assert feed(server, cframe(PING, b"x")) == [Ping(b"x")]
    assert written_frames(server) == []
    server.pong(b"x")
    (pong,) = written_frames(server)
    assert pong.opcode == PONG and pong.payload == b"x"


def test_5_5_3_unsolicited_pong_is_reported_and_not_answered() -> None:
    client = open_client()
    assert feed(client, sframe(PONG, b"beat")) == [Pong(b"beat")]
    assert written_frames(client) == []


def test_5_5_2_ping_round_trip() -> None:
    pair = Pair()
    pair.client.ping(b"rtt-1")
    assert pair.to_server() == [Ping(b"rtt-1")]
    assert pair.to_client() == [Pong(b"rtt-1")]


def test_5_5_control_payload_over_125_bytes_is_a_local_error() -> None:
    server = open_server()
    with pytest.raises(LocalProtocolError):
        server.ping(b"x" * 126)
    with pytest.raises(LocalProtocolError):
        server.pong(b"x" * 126)
    server.ping(b"x" * 125)


# ---------------------------------------------------------------- sending in parts (§5.4)


def test_5_4_send_message_in_parts() -> None:
    client = open_client()
    client.send("he", final=False)
    client.send("ll", final=False)
    client.ping(b"between")  # §5.4: control frames may be sent between the parts
    client.send("o")
    frames = written_frames(client)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (TEXT, False, b"he"), (CONT, False, b"ll"), (PING, True, b"between"), (CONT, True, b"o")]
    server = open_server()
    client.send(b"a", final=False)
    client.send(b"b")
    assert feed(server, drain(client)[0]) == [Binary(b"ab")]


def test_5_4_parts_of_one_message_must_share_a_type() -> None:
    server = open_server()
    server.send("text", final=False)
    with pytest.raises(LocalProtocolError):
        server.send(b"bytes")
    server.send("more")
    assert [f.opcode for f in written_frames(server)] == [TEXT, CONT]


def test_5_4_fragment_size_splits_outgoing_messages() -> None:
    server = open_server(fragment_size=100)
    server.send(b"x" * 250)
    server.send("y" * 100)
    frames = written_frames(server)
    assert [(f.opcode, f.fin, len(f.payload)) for f in frames] == [
        (BINARY, False, 100), (CONT, False, 100), (CONT, True, 50), (TEXT, True, 100)]
    pair = Pair(server=ServerConnection(fragment_size=7),
                client=ClientConnection("ws://h/", fragment_size=3), handshake=False)
    pair.handshake()
    pair.client.send("héllo wörld")
    pair.server.send(os.urandom(1) * 100)
    assert pair.to_server() == [Text("héllo wörld")]
    assert len(pair.to_client()) == 1


def test_5_4_fragment_size_with_parts() -> None:
    client = open_client(fragment_size=2)
    client.send(b"abcde", final=False)
    client.send(b"fg")
    frames = written_frames(client)
    assert [(f.opcode, f.fin, f.payload) for f in frames] == [
        (BINARY, False, b"ab"), (CONT, False, b"cd"), (CONT, False, b"e"), (CONT, True, b"fg")]


def test_5_4_fragment_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ServerConnection(fragment_size=0)


def test_send_frame_bytes_fans_out_one_serialization() -> None:
    frame = serialize_frame(Opcode.TEXT, b"broadcast")
    servers = [open_server() for _ in range(3)]
    for server in servers:
        server.send_frame_bytes(frame)
        assert drain(server)[0] == frame
    pair = Pair()
    pair.server.send_frame_bytes(frame)
    assert pair.to_client() == [Text("broadcast")]


def test_5_3_send_frame_bytes_is_refused_to_clients() -> None:
    client = open_client()
    with pytest.raises(LocalProtocolError):
        client.send_frame_bytes(serialize_frame(Opcode.TEXT, b"x"))


def test_5_4_send_frame_bytes_refused_inside_a_message_in_parts() -> None:
    server = open_server()
    server.send(b"a", final=False)
    with pytest.raises(LocalProtocolError):
        server.send_frame_bytes(serialize_frame(Opcode.TEXT, b"x"))


def test_frame_bytes_direct_only_when_nothing_would_go_out_before_the_frame() -> None:
    # The fan-out shortcut: writing the frame itself must give the same bytes on
    # the wire as send_frame_bytes() + data_to_send(), so it is refused whenever
    # something is queued, a message in parts is open, or the connection is not open.
    server = open_server()
    assert server.frame_bytes_direct
    server.ping(b"p")
    assert not server.frame_bytes_direct  # the ping must go first
    drain(server)
    assert server.frame_bytes_direct
    server.send(b"a", final=False)
    drain(server)
    assert not server.frame_bytes_direct  # §5.4: no other data frame inside a message
    server.send(b"b")
    drain(server)
    assert server.frame_bytes_direct
    server.close()
    drain(server)
    assert not server.frame_bytes_direct  # §5.5.1: nothing after our close
    assert not open_client().frame_bytes_direct  # §5.3: a client masks every frame
    assert not ServerConnection().frame_bytes_direct  # still in the opening handshake


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_input_pending_is_false_only_when_next_event_has_nothing(chunk: int | None) -> None:
    # The adapters skip pulling when it is False, so it must never be False while
    # next_event() would still return something (a message, a close, the 1006).
    server = ServerConnection()
    assert server.input_pending  # the handshake holds its own buffer
    server = open_server()
    assert not server.input_pending and server.next_event() is None
    stream = cframe(TEXT, b"hello") + cframe(BINARY, b"x" * 300) + cframe(PING, b"p")
    seen: list[object] = []
    for start in range(0, len(stream), chunk or len(stream)):
        server.receive_data(stream[start:start + (chunk or len(stream))])
        while server.input_pending:
            event = server.next_event()
            if event is None:
                break  # a frame not complete yet: "may", not "will"
            seen.append(event)
        assert server.next_event() is None  # False never hides an event
    assert [type(e).__name__ for e in seen] == ["Text", "Binary", "Ping"]
    assert not server.input_pending
    server.receive_eof()
    assert server.input_pending  # §7.1.5: the abnormal closure is still to come
    closed = server.next_event()
    assert closed is not None and closed.code == 1006  # type: ignore[union-attr]
    assert not server.input_pending and server.next_event() is None


# ---------------------------------------------------------------- streaming mode


def test_streaming_delivers_partial_frames_in_bounded_memory() -> None:
    """A 1 MiB frame fed in 4 KiB pieces comes out as it arrives, never buffered whole."""
    server = open_server(streaming=True, limits=Limits(max_message_size=None))
    payload = os.urandom(1 << 20)
    data = cframe(BINARY, payload)
    pieces: list[bytes] = []
    finals = []
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for i in range(0, len(data), 4096):
            server.receive_data(data[i:i + 4096])
            assert server.buffered_bytes <= 4096
            for event in server.events():
                assert isinstance(event, Binary)
                pieces.append(event.data)
                finals.append(event.final)
                pieces[-1] = b""  # drop it, as an application writing to disk would
            _, peak = tracemalloc.get_traced_memory()
        assert peak < 256 * 1024, peak
    finally:
        tracemalloc.stop()
    assert finals.count(True) == 1 and finals[-1] is True
    assert len(finals) > 200


def test_streaming_payload_is_complete_and_in_order() -> None:
    server = open_server(streaming=True)
    payload = os.urandom(100_000)
    evs = feed(server, cframe(BINARY, payload[:60_000], fin=False)
               + cframe(CONT, payload[60_000:]), chunk=4096)
    assert all(isinstance(e, Binary) for e in evs)
    assert b"".join(e.data for e in evs) == payload  # type: ignore[union-attr, misc]
    assert [e.final for e in evs].count(True) == 1  # type: ignore[union-attr]
    assert evs[-1].final  # type: ignore[union-attr]


def test_streaming_text_never_splits_a_character() -> None:
    text = "€" * 5000
    client = open_client(streaming=True)
    evs = feed(client, sframe(TEXT, text.encode()), chunk=1000)
    assert len(evs) > 5
    assert all(isinstance(e, Text) for e in evs)
    assert "".join(e.data for e in evs) == text  # type: ignore[union-attr, misc]


def test_streaming_whole_small_message_is_one_final_event() -> None:
    server = open_server(streaming=True)
    assert feed(server, cframe(TEXT, b"small")) == [Text("small", final=True)]
    assert feed(server, cframe(BINARY, b"")) == [Binary(b"", final=True)]


def test_streaming_fragmented_message_marks_only_the_end_final() -> None:
    server = open_server(streaming=True)
    evs = feed(server, cframe(TEXT, b"a", fin=False) + cframe(PING, b"") + cframe(CONT, b"b"))
    assert evs == [Text("a", final=False), Ping(b""), Text("b", final=True)]


def test_state_is_open_after_handshake() -> None:
    pair = Pair()
    assert pair.client.state is State.OPEN and pair.server.state is State.OPEN


# ------------------------------------------------------------- data_to_send_parts

@pytest.mark.parametrize("size", [0, 125, 65535, 65536, 300_000])
@pytest.mark.parametrize("role", ["server", "client"])
def test_data_to_send_parts_are_the_same_bytes_section_5_2(size: int, role: str) -> None:
    # The list form carries exactly what data_to_send() would have returned.
    payload = os.urandom(size)
    joined = open_server() if role == "server" else open_client()
    listed = open_server() if role == "server" else open_client()
    for conn in (joined, listed):
        conn.send(payload)
        conn.send("text")
        conn.ping(b"p")
    a = joined.data_to_send()
    parts = listed.data_to_send_parts()
    assert isinstance(a, bytes) and isinstance(parts, list)
    assert [(f.opcode, f.payload) for f in parse_frames(a)] == \
        [(f.opcode, f.payload) for f in parse_frames(b"".join(parts))]
    assert listed.data_to_send_parts() == []


def test_a_large_unmasked_payload_is_handed_on_uncopied() -> None:
    payload = os.urandom(300_000)
    server = open_server()
    server.send(payload)
    parts = server.data_to_send_parts()
    assert isinstance(parts, list) and len(parts) == 2
    assert parts[1] is payload  # no copy into a frame
    assert parse_frames(b"".join(parts))[0].payload == payload


def test_data_to_send_parts_reports_eof_section_7_1_1() -> None:
    server = open_server()
    server.close()
    parts = server.data_to_send_parts()
    assert isinstance(parts, list) and parse_frames(b"".join(parts))[0].opcode == Opcode.CLOSE
    server.receive_data(cframe(0x8, b"\x03\xe8"))
    list(server.events())
    assert server.data_to_send_parts() is EOF
    assert server.data_to_send_parts() == []


def test_has_data_to_send_tracks_output_and_eof_section_7_1_1() -> None:
    server = open_server()
    assert not server.has_data_to_send
    server.send("x")
    assert server.has_data_to_send
    server.data_to_send()
    assert not server.has_data_to_send
    server.receive_data(cframe(0x8, b"\x03\xe8"))  # the client's close
    list(server.events())
    assert server.has_data_to_send  # the reply close
    server.data_to_send_parts()
    assert server.has_data_to_send  # then EOF: the server closes TCP first
    assert server.data_to_send_parts() is EOF
    assert not server.has_data_to_send
