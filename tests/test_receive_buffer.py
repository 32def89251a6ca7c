"""How received bytes are held: queued chunks, frames gathered whole, streaming switches.

RFC 6455 leaves buffering to the implementation; what is tested here is that the
events never depend on how the bytes were cut (§5.2 framing is a byte stream),
that a binary frame spanning reads is delivered in one piece with its §5.3
unmasking right, that invalid UTF-8 still fails as soon as it arrives (§8.1),
and that ``buffered_bytes`` tells an adapter what it needs to pause reading.
"""

from __future__ import annotations

import os

import pytest

from rfc6455 import Binary, Text

from .helpers import (
    BINARY,
    CONT,
    PING,
    TEXT,
    cframe,
    closed_event,
    feed,
    open_client,
    open_server,
    sent_close_code,
    sframe,
)

SIZES = [1, 7, 1000, 65536]


@pytest.mark.parametrize("chunk", SIZES)
def test_binary_frame_spanning_reads_is_one_event_section_5_3(chunk: int) -> None:
    payload = os.urandom(200_000)
    server = open_server()
    events = feed(server, cframe(BINARY, payload) + cframe(TEXT, b"after"), chunk)
    assert events == [Binary(payload), Text("after")]


@pytest.mark.parametrize("chunk", SIZES)
def test_binary_frame_spanning_reads_client_side_section_5_2(chunk: int) -> None:
    payload = os.urandom(100_003)
    client = open_client()
    events = feed(client, sframe(BINARY, payload) * 2, chunk)
    assert events == [Binary(payload), Binary(payload)]


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_fragmented_binary_message_with_interleaved_ping_section_5_4(chunk: int) -> None:
    a, b = os.urandom(5000), os.urandom(7001)
    server = open_server()
    data = cframe(BINARY, a, fin=False) + cframe(PING, b"p") + cframe(CONT, b)
    events = feed(server, data, chunk)
    assert [type(e).__name__ for e in events] == ["Ping", "Binary"]
    assert events[1] == Binary(a + b)


def test_invalid_utf8_fails_before_the_frame_ends_section_8_1() -> None:
    # Text is checked as it arrives, so the failure does not wait for the rest
    # of a long frame (Autobahn 6.4.3).
    server = open_server()
    data = cframe(TEXT, b"x" * 1000 + b"\xff" + b"y" * 100_000)
    events = feed(server, data[:2000])
    assert closed_event(events).code == 1007
    assert sent_close_code(server) == 1007


def test_buffered_bytes_excludes_a_frame_being_gathered() -> None:
    server = open_server()
    frame = cframe(BINARY, b"z" * 300_000)
    server.receive_data(frame[:100])
    assert server.next_event() is None  # header parsed, payload awaited whole
    for i in range(100, len(frame) - 10, 50_000):
        server.receive_data(frame[i:min(i + 50_000, len(frame) - 10)])
    # The frame's own bytes are not "unparsed backlog": an adapter that pauses
    # reading above a threshold must not stall the frame it waits for.
    assert server.buffered_bytes == 0
    server.receive_data(frame[-10:] + cframe(TEXT, b"next"))
    assert server.buffered_bytes == len(cframe(TEXT, b"next"))
    assert server.next_event() == Binary(b"z" * 300_000)
    assert server.next_event() == Text("next")
    assert server.buffered_bytes == 0


def test_buffered_bytes_counts_chunks_queued_unparsed() -> None:
    server = open_server()
    frames = cframe(TEXT, b"a" * 100) * 50
    for i in range(0, len(frames), 64):
        server.receive_data(frames[i:i + 64])
    assert server.buffered_bytes == len(frames)
    assert len(list(server.events())) == 50
    assert server.buffered_bytes == 0


def test_streaming_switched_on_mid_message_delivers_the_rest_in_pieces() -> None:
    payload = os.urandom(30_000)
    server = open_server()
    frame = cframe(BINARY, payload)
    server.receive_data(frame[:10_000])
    assert server.next_event() is None
    server.streaming = True
    piece = server.next_event()
    assert isinstance(piece, Binary) and not piece.final
    server.receive_data(frame[10_000:])
    rest = server.next_event()
    assert isinstance(rest, Binary) and rest.final
    assert piece.data + rest.data == payload


def test_streaming_switched_off_mid_message_ends_with_one_final_piece() -> None:
    a, b, c = os.urandom(100), os.urandom(200), os.urandom(300)
    server = open_server(streaming=True)
    server.receive_data(cframe(BINARY, a, fin=False))
    assert server.next_event() == Binary(a, False)
    server.streaming = False
    server.receive_data(cframe(CONT, b, fin=False) + cframe(CONT, c))
    assert server.next_event() == Binary(b + c, True)


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_streaming_switched_on_after_parts_were_gathered_loses_nothing_section_5_4(
        opcode: int) -> None:
    # Frames of a fragmented message gathered without streaming, then streaming on:
    # the next piece starts with what was gathered.
    server = open_server()
    server.receive_data(cframe(opcode, b"ab", fin=False) + cframe(CONT, b"cd", fin=False))
    assert server.next_event() is None
    server.streaming = True
    server.receive_data(cframe(CONT, b"ef", fin=False) + cframe(CONT, b"gh"))
    pieces = list(server.events())
    data = [p.data for p in pieces]  # type: ignore[union-attr]
    joined = "".join(data) if opcode == TEXT else b"".join(data)  # type: ignore[arg-type]
    assert joined == ("abcdefgh" if opcode == TEXT else b"abcdefgh")
    assert pieces[-1].final and not any(p.final for p in pieces[:-1])  # type: ignore[union-attr]
