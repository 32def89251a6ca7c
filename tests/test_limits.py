"""Size limits (RFC 6455 §10.4: implementations should bound frame and message sizes).

Exceeding a limit fails the connection with 1009 (§7.4.1 "message too big").
"""

from __future__ import annotations

import pytest

from rfc6455 import Binary, Limits, Text

from .helpers import (
    BINARY,
    CONT,
    PING,
    TEXT,
    Pair,
    cframe,
    closed_event,
    feed,
    open_client,
    open_server,
    sent_close_code,
    sframe,
)

CHUNKS = [None, 1, 1000]


# ---------------------------------------------------------------- max_message_size


@pytest.mark.parametrize("chunk", CHUNKS)
def test_10_4_message_at_the_limit_passes(chunk: int | None) -> None:
    server = open_server(limits=Limits(max_message_size=100))
    data = cframe(BINARY, b"x" * 100) + cframe(TEXT, b"a" * 50, fin=False) + cframe(CONT, b"b" * 50)
    assert feed(server, data, chunk) == [Binary(b"x" * 100), Text("a" * 50 + "b" * 50)]


@pytest.mark.parametrize("chunk", CHUNKS)
def test_10_4_single_frame_message_over_limit_fails_1009(chunk: int | None) -> None:
    server = open_server(limits=Limits(max_message_size=100))
    closed = closed_event(feed(server, cframe(BINARY, b"x" * 101), chunk))
    assert closed.code == 1009
    assert sent_close_code(server) == 1009


def test_10_4_oversized_message_fails_from_its_header() -> None:
    """The announced length is enough: the payload is never awaited nor buffered."""
    client = open_client(limits=Limits(max_message_size=1000))
    closed = closed_event(feed(client, sframe(BINARY, b"", length=10**9)))
    assert closed.code == 1009
    assert sent_close_code(client) == 1009


@pytest.mark.parametrize("chunk", CHUNKS)
def test_10_4_fragmented_message_over_limit_fails_1009(chunk: int | None) -> None:
    server = open_server(limits=Limits(max_message_size=100))
    data = (cframe(TEXT, b"a" * 60, fin=False) + cframe(PING, b"")
            + cframe(CONT, b"b" * 41))
    closed = closed_event(feed(server, data, chunk))
    assert closed.code == 1009
    assert sent_close_code(server) == 1009


def test_10_4_limit_applies_per_message() -> None:
    server = open_server(limits=Limits(max_message_size=100))
    data = b"".join(cframe(BINARY, b"x" * 100) for _ in range(5))
    assert feed(server, data, 7) == [Binary(b"x" * 100)] * 5


@pytest.mark.parametrize("chunk", CHUNKS)
def test_10_4_streaming_mode_enforces_message_limit(chunk: int | None) -> None:
    server = open_server(streaming=True, limits=Limits(max_message_size=100))
    data = cframe(BINARY, b"a" * 60, fin=False) + cframe(CONT, b"b" * 41)
    evs = feed(server, data, chunk)
    assert closed_event(evs).code == 1009
    delivered = b"".join(e.data for e in evs if isinstance(e, Binary))
    assert delivered == b"a" * 60  # the second frame is refused from its header


def test_10_4_streaming_without_message_limit() -> None:
    server = open_server(streaming=True, limits=Limits(max_message_size=None))
    data = cframe(BINARY, b"a" * 3000, fin=False) + cframe(CONT, b"b" * 3000)
    evs = feed(server, data, 500)
    assert b"".join(e.data for e in evs if isinstance(e, Binary)) == b"a" * 3000 + b"b" * 3000


def test_10_4_default_message_limit_is_one_mebibyte() -> None:
    pair = Pair()
    pair.client.send(b"x" * (1 << 20))
    assert pair.to_server() == [Binary(b"x" * (1 << 20))]
    pair.client.send(b"x" * ((1 << 20) + 1))
    assert closed_event(pair.to_server()).code == 1009  # type: ignore[arg-type]


# ---------------------------------------------------------------- max_frame_size


@pytest.mark.parametrize("chunk", CHUNKS)
def test_10_4_frame_over_max_frame_size_fails_1009(chunk: int | None) -> None:
    server = open_server(limits=Limits(max_frame_size=10))
    data = cframe(TEXT, b"a" * 10, fin=False) + cframe(CONT, b"b" * 11)
    evs = feed(server, data, chunk)
    assert closed_event(evs).code == 1009
    assert sent_close_code(server) == 1009


@pytest.mark.parametrize("chunk", CHUNKS)
def test_10_4_frames_within_max_frame_size_pass(chunk: int | None) -> None:
    server = open_server(limits=Limits(max_frame_size=10))
    data = b"".join(cframe(CONT if i else TEXT, b"ab" * 5, fin=i == 9) for i in range(10))
    assert feed(server, data, chunk) == [Text("ab" * 50)]


def test_10_4_single_frame_over_max_frame_size_fails_1009() -> None:
    client = open_client(limits=Limits(max_frame_size=10, max_message_size=None))
    assert closed_event(feed(client, sframe(BINARY, b"x" * 11))).code == 1009


def test_10_4_max_frame_size_in_streaming_mode() -> None:
    server = open_server(streaming=True, limits=Limits(max_frame_size=10))
    assert closed_event(feed(server, cframe(BINARY, b"x" * 11), 3)).code == 1009


# ---------------------------------------------------------------- max_fragments


@pytest.mark.parametrize("chunk", CHUNKS)
def test_10_4_too_many_fragments_fail_1009(chunk: int | None) -> None:
    server = open_server(limits=Limits(max_fragments=4))
    data = b"".join(cframe(CONT if i else BINARY, b"x", fin=False) for i in range(5))
    evs = feed(server, data, chunk)
    assert closed_event(evs).code == 1009
    assert sent_close_code(server) == 1009


def test_10_4_fragments_at_the_limit_pass_and_count_resets() -> None:
    server = open_server(limits=Limits(max_fragments=4))
    message = b"".join(cframe(CONT if i else BINARY, b"x", fin=i == 3) for i in range(4))
    assert feed(server, message * 3) == [Binary(b"xxxx")] * 3


def test_10_4_empty_fragments_count_too() -> None:
    """Empty continuation frames cost nothing to send: they must still be bounded."""
    client = open_client(limits=Limits(max_fragments=100))
    data = sframe(TEXT, b"", fin=False) + sframe(CONT, b"", fin=False) * 200
    assert closed_event(feed(client, data)).code == 1009


def test_10_4_limits_can_be_lifted() -> None:
    server = open_server(limits=Limits(max_message_size=None, max_fragments=None))
    data = b"".join(cframe(CONT if i else BINARY, b"y", fin=i == 4999) for i in range(5000))
    assert feed(server, data) == [Binary(b"y" * 5000)]


def test_10_4_failure_reason_does_not_depend_on_how_bytes_arrive() -> None:
    """Regression: a whole frame and the same frame in pieces failed with different reasons."""
    limits = Limits(max_message_size=300, max_frame_size=150)
    for size in (200, 400):
        data = cframe(BINARY, b"x" * size)
        whole = closed_event(feed(open_server(limits=limits), data))
        split = closed_event(feed(open_server(limits=limits), data, 5))
        assert whole == split
        assert whole.code == 1009 and whole.reason == f"frame of {size} bytes exceeds 150"
