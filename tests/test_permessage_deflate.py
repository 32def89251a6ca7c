"""permessage-deflate (RFC 7692): negotiation, wire format, context, windows, bounds."""

from __future__ import annotations

import copy
import os
import random
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfc6455 import (
    Binary,
    ClientConnection,
    CloseCode,
    ConnectionClosed,
    Event,
    Limits,
    RemoteProtocolError,
    ServerConnection,
    State,
    Text,
)
from rfc6455.extensions import (
    ClientPerMessageDeflate,
    DeflateOffer,
    ExtensionParams,
    NegotiationError,
    PerMessageDeflate,
    ServerPerMessageDeflate,
)
from rfc6455.extensions.permessage_deflate import DEFAULT_THRESHOLD

from .helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    TEXT,
    Frame,
    Pair,
    cframe,
    client_key,
    client_request,
    closed_event,
    drain,
    feed,
    parse_frames,
    sent_close_code,
    server_response,
    sframe,
    written_frames,
)

TAIL = b"\x00\x00\xff\xff"
RSV1 = 0x40


def P(text: str) -> ExtensionParams:
    """Parameters written as in the header: ``"a; b=1"``."""
    out: list[tuple[str, str | None]] = []
    for item in filter(None, (p.strip() for p in text.split(";"))):
        key, _, value = item.partition("=")
        out.append((key.strip(), value.strip() if value else None))
    return tuple(out)


def deflate_ref(data: bytes, wbits: int = 15, level: int = 6, mem: int = 8,
                strategy: int = zlib.Z_DEFAULT_STRATEGY) -> bytes:
    """A message compressed by plain zlib as §7.2.1 describes (sync flush, tail removed)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits, mem, strategy)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate_ref(data: bytes, wbits: int = 15) -> bytes:
    return zlib.decompressobj(-wbits).decompress(data + TAIL)


def pair(server: ServerPerMessageDeflate | None = None,
         client: ClientPerMessageDeflate | None = None, *,
         chunk: int | None = None, **kwargs: object) -> Pair:
    return Pair(
        server=ServerConnection(extensions=[server or ServerPerMessageDeflate()],
                                **kwargs),  # type: ignore[arg-type]
        client=ClientConnection("ws://example.com/",
                                extensions=[client or ClientPerMessageDeflate()],
                                **kwargs),  # type: ignore[arg-type]
        chunk=chunk)


def server_sends(p: Pair) -> tuple[list[Frame], list[Event]]:
    """The frames the server wrote, after delivering them to the client; the client's events."""
    data, _ = drain(p.server)
    return parse_frames(data), feed(p.client, data)


# The factory without its default 12-bit limits: the negotiation matrix checks the RFC's
# rules one parameter at a time.
NEUTRAL = {"server_max_window_bits": None, "client_max_window_bits": None}


def negotiate(offer: str, **server: object) -> ExtensionParams | None:
    factory = ServerPerMessageDeflate(**{**NEUTRAL, **server})  # type: ignore[arg-type]
    chosen = factory.negotiate([P(o) for o in offer.split(",")])
    return None if chosen is None else chosen[0]


def server_ext(offer: str, **server: object) -> PerMessageDeflate:
    chosen = ServerPerMessageDeflate(**{**NEUTRAL, **server}).negotiate(  # type: ignore[arg-type]
        [P(offer)])
    assert chosen is not None
    ext = chosen[1]
    assert isinstance(ext, PerMessageDeflate)
    return ext


# ============================================================ server negotiation (§7, §7.1)

@pytest.mark.parametrize(("offer", "server", "response"), [
    ("", {}, ""),
    ("server_no_context_takeover", {}, "server_no_context_takeover"),
    ("client_no_context_takeover", {}, "client_no_context_takeover"),
    ("server_max_window_bits=10", {}, "server_max_window_bits=10"),
    ("server_max_window_bits=8", {}, "server_max_window_bits=8"),
    ("server_max_window_bits=15", {}, "server_max_window_bits=15"),
    ("client_max_window_bits", {}, ""),
    ("client_max_window_bits=9", {}, "client_max_window_bits=9"),
    ("client_max_window_bits", {"client_max_window_bits": 11}, "client_max_window_bits=11"),
    ("client_max_window_bits=9", {"client_max_window_bits": 11}, "client_max_window_bits=9"),
    ("client_max_window_bits=13", {"client_max_window_bits": 11}, "client_max_window_bits=11"),
    ("", {"server_max_window_bits": 12}, "server_max_window_bits=12"),
    ("server_max_window_bits=10", {"server_max_window_bits": 12}, "server_max_window_bits=10"),
    ("server_max_window_bits=14", {"server_max_window_bits": 12}, "server_max_window_bits=12"),
    ("", {"server_no_context_takeover": True}, "server_no_context_takeover"),
    ("", {"client_no_context_takeover": True}, "client_no_context_takeover"),
    ("server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; "
     "client_max_window_bits=8", {},
     "server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; "
     "client_max_window_bits=8"),
])
def test_server_answers_with_the_parameters_it_applies_rfc7692_7_1(
        offer: str, server: dict[str, object], response: str) -> None:
    """§7.1.1.1, §7.1.1.2, §7.1.2.1, §7.1.2.2: each parameter's answer."""
    assert negotiate(offer, **server) == P(response)


@pytest.mark.parametrize(("offer", "response"), [
    ("", "server_max_window_bits=12"),
    ("client_max_window_bits", "server_max_window_bits=12; client_max_window_bits=12"),
    ("client_max_window_bits=10", "server_max_window_bits=12; client_max_window_bits=10"),
    ("server_max_window_bits=9", "server_max_window_bits=9"),
    ("server_max_window_bits=15; client_max_window_bits=15",
     "server_max_window_bits=12; client_max_window_bits=12"),
])
def test_default_server_asks_for_12_bit_windows_rfc7692_7_1_2(offer: str, response: str) -> None:
    """The default factory announces 12-bit windows (§7.1.2.1, §7.1.2.2), lower if asked."""
    chosen = ServerPerMessageDeflate().negotiate([P(offer)])
    assert chosen is not None and chosen[0] == P(response)


def test_server_without_client_offer_cannot_limit_client_window_rfc7692_7_1_2_2() -> None:
    """§7.1.2.2: no client_max_window_bits in the offer → none in the response; inflate at 15."""
    assert negotiate("", client_max_window_bits=9) == ()
    assert server_ext("", client_max_window_bits=9).recv_bits == 15


@pytest.mark.parametrize(("offer", "send_bits", "recv_bits", "send_reset", "recv_reset"), [
    ("", 15, 15, False, False),
    ("server_no_context_takeover", 15, 15, True, False),
    ("client_no_context_takeover", 15, 15, False, True),
    ("server_max_window_bits=8", 8, 15, False, False),
    ("client_max_window_bits=12", 15, 12, False, False),
])
def test_server_extension_applies_the_answer_rfc7692_7_1(
        offer: str, send_bits: int, recv_bits: int, send_reset: bool, recv_reset: bool) -> None:
    ext = server_ext(offer)
    assert (ext.send_bits, ext.recv_bits, ext.send_reset, ext.recv_reset) == (
        send_bits, recv_bits, send_reset, recv_reset)


@pytest.mark.parametrize("offer", [
    "foo",  # unknown parameter (§7)
    "server_no_context_takeover; server_no_context_takeover",  # duplicate (§7)
    "client_max_window_bits; client_max_window_bits=10",
    "server_max_window_bits=10; server_max_window_bits=10",
    "server_no_context_takeover=1",  # §7.1.1.1: no value
    "client_no_context_takeover=yes",  # §7.1.1.2: no value
    "server_max_window_bits",  # §7.1.2.1: value required
    "server_max_window_bits=7", "server_max_window_bits=16", "server_max_window_bits=08",
    "server_max_window_bits=x", "server_max_window_bits=-9", "server_max_window_bits=+9",
    "client_max_window_bits=7", "client_max_window_bits=16", "client_max_window_bits=010",
])
def test_server_declines_invalid_offer_rfc7692_7(offer: str) -> None:
    """§7, §7.1.1.x, §7.1.2.x: unknown, duplicate or out-of-range parameters → decline."""
    assert negotiate(offer) is None


def test_server_picks_first_acceptable_offer_rfc7692_5() -> None:
    """§5, §7: offers are in preference order; invalid ones are skipped."""
    assert negotiate("foo, server_max_window_bits=99, server_max_window_bits=10, "
                     "server_no_context_takeover") == P("server_max_window_bits=10")
    assert negotiate("client_no_context_takeover, server_max_window_bits=10") == P(
        "client_no_context_takeover")
    assert negotiate("foo, bar=1") is None


def test_server_handshake_header_rfc7692_5() -> None:
    """§5: the 101 carries exactly one permessage-deflate with the chosen parameters."""
    server = ServerConnection(extensions=[ServerPerMessageDeflate()])
    server.receive_data(client_request(extra=[(
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits=20, "
        'permessage-deflate; server_max_window_bits="10"; client_max_window_bits')]))
    list(server.events())
    server.accept()
    out = server.data_to_send()
    assert isinstance(out, bytes)
    assert (b"sec-websocket-extensions: permessage-deflate; server_max_window_bits=10; "
            b"client_max_window_bits=12\r\n") in out
    assert isinstance(server.extension, PerMessageDeflate)
    assert server.extension.send_bits == 10


def test_server_without_acceptable_offer_runs_uncompressed_rfc7692_5() -> None:
    server = ServerConnection(extensions=[ServerPerMessageDeflate()])
    server.receive_data(client_request(extra=[(
        "Sec-WebSocket-Extensions", "permessage-deflate; foo")]))
    list(server.events())
    server.accept()
    out = server.data_to_send()
    assert isinstance(out, bytes) and b"sec-websocket-extensions" not in out
    assert server.extension is None


# ============================================================ client offers and validation (§7.1)

def test_client_default_offer_rfc7692_7_1_2_2() -> None:
    """The default offer lets the server limit our window (value-less client_max_window_bits)."""
    assert ClientPerMessageDeflate().offers() == [P("client_max_window_bits")]


def test_client_offers_every_parameter_and_fallbacks_rfc7692_5() -> None:
    factory = ClientPerMessageDeflate(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=10, client_max_window_bits=12,
        fallback_offers=[DeflateOffer(client_max_window_bits=None), DeflateOffer()])
    assert factory.offers() == [
        P("server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; "
          "client_max_window_bits=12"),
        (),
        P("client_max_window_bits"),
    ]


def test_client_offer_header_on_the_wire_rfc7692_5() -> None:
    client = ClientConnection("ws://example.com/", extensions=[ClientPerMessageDeflate(
        server_max_window_bits=9, fallback_offers=[DeflateOffer()])])
    out = client.data_to_send()
    assert isinstance(out, bytes)
    assert (b"sec-websocket-extensions: permessage-deflate; server_max_window_bits=9; "
            b"client_max_window_bits, permessage-deflate; client_max_window_bits\r\n") in out


def client_accept(response: str, **offer: object) -> PerMessageDeflate:
    ext = ClientPerMessageDeflate(**offer).accept(P(response))  # type: ignore[arg-type]
    assert isinstance(ext, PerMessageDeflate)
    return ext


@pytest.mark.parametrize(("offer", "response", "expected"), [
    # (send_bits, recv_bits, send_reset, recv_reset)
    ({}, "", (15, 15, False, False)),
    ({}, "server_no_context_takeover", (15, 15, False, True)),  # §7.1.1.1: allowed unasked
    ({}, "client_no_context_takeover", (15, 15, True, False)),  # §7.1.1.2: allowed unasked
    ({}, "server_max_window_bits=9", (15, 9, False, False)),  # §7.1.2.1: allowed unasked
    ({}, "client_max_window_bits=8", (8, 15, False, False)),  # §7.1.2.2: we offered it
    ({"client_no_context_takeover": True}, "", (15, 15, True, False)),  # our promise holds
    ({"server_no_context_takeover": True}, "server_no_context_takeover", (15, 15, False, True)),
    ({"server_max_window_bits": 12}, "server_max_window_bits=12", (15, 12, False, False)),
    ({"server_max_window_bits": 12}, "server_max_window_bits=10", (15, 10, False, False)),
    ({"client_max_window_bits": 11}, "", (11, 15, False, False)),  # our hint limits us
    ({"client_max_window_bits": 11}, "client_max_window_bits=10", (10, 15, False, False)),
])
def test_client_accepts_valid_responses_rfc7692_7_1(
        offer: dict[str, object], response: str,
        expected: tuple[int, int, bool, bool]) -> None:
    ext = client_accept(response, **offer)
    assert (ext.send_bits, ext.recv_bits, ext.send_reset, ext.recv_reset) == expected


@pytest.mark.parametrize(("offer", "response"), [
    ({}, "foo"),  # §7: unknown parameter
    ({}, "server_no_context_takeover; server_no_context_takeover"),  # duplicate
    ({}, "server_no_context_takeover=1"),
    ({}, "server_max_window_bits"),  # §7.1.2.1: needs a value
    ({}, "server_max_window_bits=7"),
    ({}, "server_max_window_bits=16"),
    ({}, "client_max_window_bits"),  # §7.1.2.2: a response must give a value
    ({}, "client_max_window_bits=16"),
    ({"client_max_window_bits": None}, "client_max_window_bits=10"),  # §7.1.2.2: not offered
    ({"server_no_context_takeover": True}, ""),  # §7.1.1.1: offered, not accepted
    ({"server_max_window_bits": 10}, ""),  # §7.1.2.1: offered, not accepted
    ({"server_max_window_bits": 10}, "server_max_window_bits=11"),  # larger than offered
])
def test_client_rejects_invalid_responses_rfc7692_7_1(
        offer: dict[str, object], response: str) -> None:
    with pytest.raises(NegotiationError):
        client_accept(response, **offer)


def test_client_matches_response_against_each_offer_rfc7692_5() -> None:
    """A response valid for a fallback offer is accepted with that offer's semantics."""
    factory = ClientPerMessageDeflate(
        server_max_window_bits=10, client_no_context_takeover=True,
        fallback_offers=[DeflateOffer()])
    ext = factory.accept(())  # answers only the fallback (the first needs server_max_window_bits)
    assert isinstance(ext, PerMessageDeflate)
    assert (ext.recv_bits, ext.send_reset) == (15, False)
    ext = factory.accept(P("server_max_window_bits=9"))  # answers the first
    assert isinstance(ext, PerMessageDeflate)
    assert (ext.recv_bits, ext.send_reset) == (9, True)


@pytest.mark.parametrize("header", [
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; foo",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate, permessage-deflate",
])
def test_client_fails_with_1010_on_invalid_response_rfc7692_7_1(header: str) -> None:
    """§7.1 + RFC 6455 §4.1: an unacceptable extension response fails the connection (1010)."""
    client = ClientConnection("ws://example.com/", extensions=[ClientPerMessageDeflate()])
    client.data_to_send()
    client.receive_data(server_response(client_key(client), extra=[
        ("Sec-WebSocket-Extensions", header)]))
    closed = closed_event(list(client.events()))
    assert closed.code == CloseCode.MANDATORY_EXTENSION
    assert client.state is State.CLOSED


@pytest.mark.parametrize("kwargs", [
    {"server_max_window_bits": 7}, {"server_max_window_bits": 16},
    {"client_max_window_bits": 16}, {"compress_level": 10}, {"mem_level": 0},
    {"threshold": -1},
])
def test_bad_settings_raise_value_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ClientPerMessageDeflate(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ServerPerMessageDeflate(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PerMessageDeflate(**{k.replace("server_max_window", "send").replace(
            "client_max_window", "recv"): v for k, v in kwargs.items()})  # type: ignore[arg-type]


# ============================================================ wire format (§6, §7.2)

def test_compressed_message_wire_format_rfc7692_7_2_1() -> None:
    """§6, §7.2.1: RSV1 set, raw DEFLATE, trailing 00 00 ff ff removed."""
    p = pair()
    data = b"compress me please " * 20
    p.server.send(data)
    (f,) = written_frames(p.server)
    assert f.rsv == RSV1 and f.opcode == BINARY and f.fin
    assert not f.payload.endswith(TAIL)
    assert inflate_ref(f.payload) == data
    assert len(f.payload) < len(data)


def test_client_frames_are_masked_and_compressed_rfc7692_6() -> None:
    p = pair()
    text = "é" * 500
    p.client.send(text)
    (f,) = written_frames(p.client)
    assert f.masked and f.rsv == RSV1 and f.opcode == TEXT
    assert inflate_ref(f.payload).decode("utf-8") == text


def test_rsv1_on_first_frame_only_rfc7692_6_1() -> None:
    """§6.1: a fragmented compressed message has RSV1 on its first frame only."""
    p = pair(fragment_size=10)
    p.server.send(os.urandom(100) * 3)
    frames = written_frames(p.server)
    assert len(frames) > 2
    assert frames[0].rsv == RSV1 and frames[0].opcode == BINARY
    assert all(f.rsv == 0 and f.opcode == CONT for f in frames[1:])
    assert [f.fin for f in frames] == [False] * (len(frames) - 1) + [True]


def test_streamed_message_rsv1_first_part_only_rfc7692_7_2_1() -> None:
    """Parts sent with final=False are sync-flushed and keep the tail; the last drops it."""
    p = pair()
    p.server.send(b"a" * 300, final=False)
    p.server.send(b"b" * 300, final=False)
    p.server.send(b"c" * 300)
    f1, f2, f3 = written_frames(p.server)
    assert (f1.rsv, f2.rsv, f3.rsv) == (RSV1, 0, 0)
    assert f1.payload.endswith(TAIL) and f2.payload.endswith(TAIL)
    assert not f3.payload.endswith(TAIL)
    assert inflate_ref(f1.payload + f2.payload + f3.payload) == b"a" * 300 + b"b" * 300 + b"c" * 300


def test_control_frames_never_compressed_rfc7692_6() -> None:
    p = pair()
    p.server.send(b"x" * 200, final=False)
    p.server.ping(b"p" * 100)
    p.server.send(b"y" * 200)
    p.server.close(CloseCode.NORMAL_CLOSURE, "bye" * 30)
    frames = written_frames(p.server)
    ping = next(f for f in frames if f.opcode == PING)
    close = next(f for f in frames if f.opcode == CLOSE)
    assert ping.rsv == 0 and ping.payload == b"p" * 100
    assert close.rsv == 0 and close.payload[2:] == b"bye" * 30


def test_threshold_sends_small_messages_uncompressed_rfc7692_6() -> None:
    """§6: a message may be sent uncompressed (RSV1 clear); small ones are by default."""
    p = pair()
    p.server.send(b"s" * (DEFAULT_THRESHOLD - 1))
    p.server.send(b"s" * DEFAULT_THRESHOLD)
    (small, big), got = server_sends(p)
    assert small.rsv == 0 and small.payload == b"s" * (DEFAULT_THRESHOLD - 1)
    assert big.rsv == RSV1
    assert [e.data for e in got if isinstance(e, Binary)] == [
        b"s" * (DEFAULT_THRESHOLD - 1), b"s" * DEFAULT_THRESHOLD]


def test_custom_threshold_and_explicit_compress_flag_rfc7692_6() -> None:
    p = pair(ServerPerMessageDeflate(threshold=1000))
    p.server.send(b"a" * 999)
    p.server.send(b"a" * 1000)
    p.server.send(b"a" * 10, compress=True)
    p.server.send(b"a" * 5000, compress=False)
    rsvs = [f.rsv for f in written_frames(p.server)]
    assert rsvs == [0, RSV1, RSV1, 0]


def test_empty_compressed_message_is_one_zero_byte_rfc7692_7_2_3_6() -> None:
    """§7.2.3.6: an empty message compresses to the single byte 0x00 after stripping."""
    p = pair()
    p.server.send(b"", compress=True)
    (f,) = written_frames(p.server)
    assert f.rsv == RSV1 and f.payload == b"\x00"
    p.server.send("", compress=True)
    assert p.to_client() == [Text("")]


def test_empty_final_part_of_streamed_message_rfc7692_7_2_1() -> None:
    p = pair()
    p.client.send(b"z" * 500, final=False)
    p.client.send(b"")
    assert p.to_server() == [Binary(b"z" * 500)]


def test_received_uncompressed_message_rfc7692_6() -> None:
    """§6: RSV1 clear → the payload is taken as is, even with the extension negotiated."""
    p = pair()
    p.client.receive_data(sframe(TEXT, b"plain"))
    assert list(p.client.events()) == [Text("plain")]


def test_rsv1_on_continuation_frame_fails_1002_rfc7692_6_1() -> None:
    p = pair()
    payload = deflate_ref(b"hello world " * 10)
    p.client.receive_data(sframe(BINARY, payload[:5], fin=False, rsv=RSV1)
                          + sframe(CONT, payload[5:], rsv=RSV1))
    assert closed_event(list(p.client.events())).code == CloseCode.PROTOCOL_ERROR


def test_rsv1_on_control_frame_fails_1002_rfc7692_6() -> None:
    p = pair()
    p.server.receive_data(cframe(PING, b"x", rsv=RSV1))
    assert closed_event(list(p.server.events())).code == CloseCode.PROTOCOL_ERROR


@pytest.mark.parametrize("rsv", [0x20, 0x10, 0x60])
def test_other_rsv_bits_fail_1002_rfc6455_5_2(rsv: int) -> None:
    p = pair()
    p.server.receive_data(cframe(BINARY, deflate_ref(b"abc"), rsv=rsv))
    assert closed_event(list(p.server.events())).code == CloseCode.PROTOCOL_ERROR


# ============================================================ context takeover (§7.1.1)

def sizes_of_repeated(p: Pair, data: bytes, n: int = 3) -> list[int]:
    """Payload sizes of ``data`` sent ``n`` times; checks the client receives it intact."""
    for _ in range(n):
        p.server.send(data)
    frames, got = server_sends(p)
    assert all(f.rsv == RSV1 for f in frames)
    assert got == [Binary(data)] * n
    return [len(f.payload) for f in frames]


def test_context_takeover_reuses_the_window_rfc7692_7_1_1() -> None:
    """Without no_context_takeover, a repeated message refers back to the previous one."""
    data = os.urandom(2000)
    p = pair()
    first, second, third = sizes_of_repeated(p, data)
    assert second < first / 10 and third < first / 10


def test_server_no_context_takeover_resets_each_message_rfc7692_7_1_1_1() -> None:
    data = os.urandom(2000)
    p = pair(client=ClientPerMessageDeflate(server_no_context_takeover=True))
    first, second, third = sizes_of_repeated(p, data)
    assert first == second == third


def test_no_context_takeover_messages_inflate_independently_rfc7692_7_1_1_1() -> None:
    data = os.urandom(1000)
    p = pair(ServerPerMessageDeflate(server_no_context_takeover=True))
    p.server.send(data)
    p.server.send(data)
    for f in written_frames(p.server):
        assert inflate_ref(f.payload) == data  # a fresh inflater per message suffices


def test_client_no_context_takeover_resets_client_rfc7692_7_1_1_2() -> None:
    data = os.urandom(1000)
    p = pair(client=ClientPerMessageDeflate(client_no_context_takeover=True))
    p.client.send(data)
    p.client.send(data)
    frames = written_frames(p.client)
    assert len(frames[0].payload) == len(frames[1].payload)
    for f in frames:
        assert inflate_ref(f.payload) == data


def test_server_inflater_dropped_after_message_with_client_no_context_takeover_rfc7692_7_1_1_2(
) -> None:
    """The server's inflater is freed between messages when the client resets its context."""
    p = pair(client=ClientPerMessageDeflate(client_no_context_takeover=True))
    ext = p.server.extension
    assert isinstance(ext, PerMessageDeflate) and ext.recv_reset
    p.client.send(b"q" * 1000)
    assert p.to_server() == [Binary(b"q" * 1000)]
    assert ext._decompressor is None


def test_peer_relying_on_reset_context_rfc7692_7_1_1_2() -> None:
    """With client_no_context_takeover, our inflater starts fresh for every message.

    A message compressed by a fresh zlib stream decodes correctly each time.
    """
    ext = server_ext("client_no_context_takeover")
    for _ in range(3):
        assert ext.decode(deflate_ref(b"abc" * 100), True, None) == b"abc" * 100


def test_takeover_needed_by_peer_fails_after_reset_rfc7692_7_1_1() -> None:
    """A message referring to a previous one needs the kept context; reset → 1007."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = os.urandom(500)
    m1 = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    m2 = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    kept = server_ext("")
    assert kept.decode(m1[:-4], True, None) == data
    assert kept.decode(m2[:-4], True, None) == data
    reset = server_ext("client_no_context_takeover")
    assert reset.decode(m1[:-4], True, None) == data
    with pytest.raises(RemoteProtocolError) as info:
        reset.decode(m2[:-4], True, None)
    assert info.value.code == CloseCode.INVALID_FRAME_PAYLOAD_DATA


def test_zlib_objects_allocated_lazily() -> None:
    """No compressor or inflater until the first compressed message of each direction."""
    p = pair()
    ext = p.server.extension
    assert isinstance(ext, PerMessageDeflate)
    assert ext._compressor is None and ext._decompressor is None
    p.server.send(b"tiny")  # under the threshold: still nothing allocated
    p.client.send(b"tiny")
    p.to_server()
    assert ext._compressor is None and ext._decompressor is None
    p.server.send(b"x" * 1000)
    assert ext._compressor is not None and ext._decompressor is None


def test_compressor_dropped_with_no_context_takeover_rfc7692_7_1_1_1() -> None:
    p = pair(ServerPerMessageDeflate(server_no_context_takeover=True))
    ext = p.server.extension
    assert isinstance(ext, PerMessageDeflate)
    p.server.send(b"x" * 1000, final=False)
    assert ext._compressor is not None  # kept within a message
    p.server.send(b"x" * 1000)
    assert ext._compressor is None


def test_large_compressor_kept_and_fully_flushed_with_no_context_takeover_rfc7692_7_1_1_1(
) -> None:
    """A 15-bit/memLevel 8 compressor is reset with Z_FULL_FLUSH instead of re-created.

    Each message must still inflate on its own with a fresh inflater (§7.1.1.1, §7.2.2).
    """
    ext = PerMessageDeflate(send_bits=15, send_reset=True, mem_level=8)
    data = os.urandom(1500)
    first = ext.encode(data, True)
    kept = ext._compressor
    assert kept is not None
    second = ext.encode(data, True)
    assert ext._compressor is kept
    assert len(first) == len(second)  # no reference to the previous message
    assert inflate_ref(first) == inflate_ref(second) == data
    # A streamed message with an empty last part still ends with a valid block.
    parts = [ext.encode(data, False), ext.encode(b"", True)]
    assert parts[1] == b"\x00" and inflate_ref(b"".join(parts)) == data


def test_copy_has_same_parameters_and_no_shared_zlib_state() -> None:
    """copy.copy gives an encoder that never shares the original's zlib stream."""
    ext = PerMessageDeflate(send_bits=15, send_reset=True, mem_level=8, recv_bits=11)
    data = os.urandom(800)
    ext.encode(data, True)
    assert ext._compressor is not None  # kept (full-flush reset)
    dup = copy.copy(ext)
    assert (dup.send_bits, dup.recv_bits, dup.send_reset, dup.recv_reset) == (15, 11, True, False)
    assert dup._compressor is None and dup._decompressor is None
    assert inflate_ref(dup.encode(data, True)) == data


# ============================================================ window bits (§7.1.2)

@pytest.mark.parametrize("bits", range(8, 16))
def test_negotiated_server_window_round_trip_rfc7692_7_1_2_1(bits: int) -> None:
    """Each server_max_window_bits: our output inflates with a window of exactly that size."""
    p = pair(ServerPerMessageDeflate(server_max_window_bits=None),
             ClientPerMessageDeflate(server_max_window_bits=bits))
    ext = p.server.extension
    assert isinstance(ext, PerMessageDeflate) and ext.send_bits == bits
    rng = random.Random(bits)
    data = b"".join(rng.choice([os.urandom(50), b"abcdefgh" * 40]) for _ in range(200))
    p.server.send(data)
    p.server.send(data)
    frames = written_frames(p.server)
    inflater = zlib.decompressobj(-bits)  # zlib's own inflater with the negotiated window
    assert [inflater.decompress(f.payload + TAIL) for f in frames] == [data, data]


@pytest.mark.parametrize("bits", range(8, 16))
def test_negotiated_client_window_round_trip_rfc7692_7_1_2_2(bits: int) -> None:
    p = pair(ServerPerMessageDeflate(client_max_window_bits=bits))
    s_ext, c_ext = p.server.extension, p.client.extension
    assert isinstance(s_ext, PerMessageDeflate) and isinstance(c_ext, PerMessageDeflate)
    assert s_ext.recv_bits == bits and c_ext.send_bits == bits
    data = os.urandom(300) * 20
    for _ in range(2):
        p.client.send(data)
    assert [e for e in p.to_server() if isinstance(e, Binary)] == [Binary(data)] * 2


def test_window_8_inflater_accepts_window_9_deflate_rfc7692_7_1_2() -> None:
    """zlib deflates raw streams with at least a 9-bit window; 8-bit inflaters must cope."""
    ext = PerMessageDeflate(recv_bits=8)
    data = bytes(range(256)) * 64 + os.urandom(300) * 10
    for level in (1, 6, 9):
        c = zlib.compressobj(level, zlib.DEFLATED, -9)
        payload = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
        assert ext.decode(payload[:-4], True, None) == data


def test_peer_exceeding_negotiated_window_fails_1007_rfc7692_7_1_2_2() -> None:
    """A peer compressing with a larger window than negotiated sends undecodable distances.

    Our inflater keeps only the negotiated window between messages, so a message
    referring further back into the previous one than 2**9 bytes fails (1007).
    """
    ext = server_ext("client_max_window_bits=9")
    assert ext.recv_bits == 9
    block = os.urandom(2000)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    m1 = c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH)
    m2 = c.compress(block) + c.flush(zlib.Z_SYNC_FLUSH)
    assert ext.decode(m1[:-4], True, None) == block
    with pytest.raises(RemoteProtocolError) as info:
        ext.decode(m2[:-4], True, None)
    assert info.value.code == CloseCode.INVALID_FRAME_PAYLOAD_DATA


# ============================================================ inflating other encoders (§7.2.2)

@pytest.mark.parametrize("level", [0, 1, 6, 9])
@pytest.mark.parametrize("wbits", [9, 12, 15])
@pytest.mark.parametrize("strategy", [zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED,
                                      zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE, zlib.Z_FIXED])
def test_inflates_zlib_output_of_any_setting_rfc7692_7_2_2(
        level: int, wbits: int, strategy: int) -> None:
    data = (b"The quick brown fox " * 50) + os.urandom(500) + b"\x00" * 1000
    ext = PerMessageDeflate()
    payload = deflate_ref(data, wbits=wbits, level=level, mem=1 + level % 9, strategy=strategy)
    assert ext.decode(payload, True, None) == data


def test_inflates_message_ending_with_bfinal_block_rfc7692_7_2_3_3() -> None:
    """§7.2.3.3: a sender may end with a final block; the tail we append is then ignored."""
    ext = PerMessageDeflate()
    data = b"final block " * 30
    payload = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = payload.compress(data) + payload.flush(zlib.Z_FINISH)
    assert ext.decode(body, True, None) == data
    # The context ended with the final block: the next message starts a fresh one.
    assert ext.decode(deflate_ref(data), True, None) == data


def test_data_after_final_block_fails_1007_rfc7692_7_2_2() -> None:
    ext = PerMessageDeflate()
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(b"abc") + c.flush(zlib.Z_FINISH)
    with pytest.raises(RemoteProtocolError) as info:
        ext.decode(body + b"garbage", True, None)
    assert info.value.code == CloseCode.INVALID_FRAME_PAYLOAD_DATA


# (03 00 00 is no longer here: an empty final block then the octet that starts an
# empty stored block is an empty message, RFC 7692 §7.2.3.4; see test_deflate_rfc_example.)
@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x07garbage", b"\x03\x00\x07"])
def test_corrupt_compressed_data_fails_1007_rfc7692_7_2_2(payload: bytes) -> None:
    """Undecodable deflate data is invalid frame payload data (RFC 6455 §7.4.1, 1007)."""
    p = pair()
    p.client.receive_data(sframe(BINARY, payload, rsv=RSV1))
    closed = closed_event(list(p.client.events()))
    assert closed.code == CloseCode.INVALID_FRAME_PAYLOAD_DATA
    assert sent_close_code(p.client) == CloseCode.INVALID_FRAME_PAYLOAD_DATA


def test_compressed_invalid_utf8_fails_1007_rfc6455_8_1() -> None:
    p = pair()
    p.client.receive_data(sframe(TEXT, deflate_ref(b"ok \xff\xfe bad" * 20), rsv=RSV1))
    assert closed_event(list(p.client.events())).code == CloseCode.INVALID_FRAME_PAYLOAD_DATA


def test_inflates_fragmented_compressed_frames_from_peer_rfc7692_6_1() -> None:
    """A compressed message split anywhere into frames and TCP pieces inflates the same."""
    data = (b"fragment me " * 400) + os.urandom(1000)
    payload = deflate_ref(data)
    for cut in (1, 7, len(payload) // 2, len(payload) - 1):
        p = pair()
        wire = (cframe(BINARY, payload[:cut], fin=False, rsv=RSV1)
                + cframe(PING, b"mid")
                + cframe(CONT, payload[cut:]))
        got = feed(p.server, wire, chunk=13)
        assert [e for e in got if isinstance(e, Binary)] == [Binary(data)]


# ============================================================ bounds (§7.2.2, RFC 6455 §10.4)

def test_decode_never_returns_more_than_max_length() -> None:
    data = b"\x00" * 100_000
    payload = deflate_ref(data)
    ext = PerMessageDeflate()
    assert ext.decode(payload, True, 100_000) == data  # exactly at the limit: fine
    ext = PerMessageDeflate()
    with pytest.raises(RemoteProtocolError) as info:
        ext.decode(payload, True, 99_999)
    assert info.value.code == CloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize("size", [300, 20_000])
def test_tail_joined_or_fed_apart_same_result_and_bound_rfc7692_7_2_2(size: int) -> None:
    """§7.2.2: the tail is appended to a short last piece and fed apart after a long one.

    Either way (``size`` of random bytes compresses to about ``size`` bytes, below or
    above the join threshold) the message inflates the same, the bound is exact
    (1009 from one byte over), corrupt data fails with 1007, and a final block
    followed by our tail, or by the octet starting an empty stored block (RFC 7692
    §7.2.3.4), is accepted; another octet after it fails with 1007.
    """
    data = random.Random(size).randbytes(size)
    payload = deflate_ref(data)
    assert (len(payload) < 4096) == (size < 4096)
    assert PerMessageDeflate().decode(payload, True, size) == data
    assert PerMessageDeflate().decode(payload, True, None) == data
    with pytest.raises(RemoteProtocolError) as info:
        PerMessageDeflate().decode(payload, True, size - 1)
    assert info.value.code == CloseCode.MESSAGE_TOO_BIG
    with pytest.raises(RemoteProtocolError) as info:
        PerMessageDeflate().decode(payload[:-40] + b"\xff" * 40, True, None)
    assert info.value.code == CloseCode.INVALID_FRAME_PAYLOAD_DATA
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    ended = c.compress(data) + c.flush(zlib.Z_FINISH)
    assert PerMessageDeflate().decode(ended, True, size) == data
    assert PerMessageDeflate().decode(ended + b"\x00", True, size) == data
    with pytest.raises(RemoteProtocolError) as info:
        PerMessageDeflate().decode(ended + b"\xff", True, size)
    assert info.value.code == CloseCode.INVALID_FRAME_PAYLOAD_DATA


def test_message_limit_applies_to_inflated_size_1009_rfc7692_7_2_2() -> None:
    limits = Limits(max_message_size=10_000)
    p = pair(limits=limits)
    p.client.receive_data(sframe(BINARY, deflate_ref(b"a" * 10_000), rsv=RSV1))
    assert list(p.client.events()) == [Binary(b"a" * 10_000)]
    p.client.receive_data(sframe(BINARY, deflate_ref(b"a" * 10_001), rsv=RSV1))
    closed = closed_event(list(p.client.events()))
    assert closed.code == CloseCode.MESSAGE_TOO_BIG
    assert sent_close_code(p.client) == CloseCode.MESSAGE_TOO_BIG


def test_streamed_inflation_bounded_across_frames_1009_rfc7692_7_2_2() -> None:
    """The limit counts inflated bytes of the whole message, across fragments."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    parts = [c.compress(b"b" * 6000) + c.flush(zlib.Z_SYNC_FLUSH) for _ in range(2)]
    p = pair(limits=Limits(max_message_size=10_000), streaming=True)
    got = feed(p.client, sframe(BINARY, parts[0], fin=False, rsv=RSV1))
    assert got == [Binary(b"b" * 6000, False)]
    got = feed(p.client, sframe(CONT, parts[1][:-4]))
    assert closed_event(got).code == CloseCode.MESSAGE_TOO_BIG


@pytest.mark.parametrize("chunk", [None, 65536])
def test_decompression_bomb_closes_1009_with_bounded_memory_rfc7692_7_2_2(
        chunk: int | None) -> None:
    """A 1 MiB compressed message inflating to 1 GiB: close 1009, memory near the limit.

    RFC 6455 §10.4 and RFC 7692 §8: the inflated size is bounded while inflating.
    Fed whole or in 64 KiB reads (what an adapter does).
    """
    limit = 1024 * 1024
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = b"\x00" * (1 << 20)
    # Each sync-flushed MiB of zeros after the first compresses to the same bytes
    # (same state, same input), so 1 GiB is the first MiB plus 1023 copies.
    first = c.compress(mib) + c.flush(zlib.Z_SYNC_FLUSH)
    steady = c.compress(mib) + c.flush(zlib.Z_SYNC_FLUSH)
    assert steady == c.compress(mib) + c.flush(zlib.Z_SYNC_FLUSH)
    bomb = (first + steady * 1023)[:-4]
    assert len(bomb) < 1.1 * 1024 * 1024  # ~1 MiB on the wire for 1 GiB inflated
    assert zlib.decompressobj(-15).decompress(first + steady * 3) == mib * 4
    p = pair(limits=Limits(max_message_size=limit))
    wire = sframe(BINARY, bomb, rsv=RSV1)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        got = feed(p.client, wire, chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    closed = closed_event(got)
    assert closed.code == CloseCode.MESSAGE_TOO_BIG
    assert sent_close_code(p.client) == CloseCode.MESSAGE_TOO_BIG
    if chunk is None:
        # The input (~1 MiB, copied by the engine) plus at most limit + 1 inflated bytes
        # (zlib's output buffer is joined once: up to twice that, transiently).
        assert peak < 3 * limit + 2 * len(wire), peak  # measured: 4.0 MiB
    else:
        assert peak < 2.5 * limit, peak  # measured: 2.2 MiB


def test_bomb_in_streaming_mode_also_bounded_1009_rfc7692_7_2_2() -> None:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(b"\x00" * (64 << 20)) + c.flush(zlib.Z_SYNC_FLUSH)
    p = pair(limits=Limits(max_message_size=1 << 20), streaming=True)
    got = feed(p.client, sframe(BINARY, bomb[:-4], rsv=RSV1))
    assert closed_event(got).code == CloseCode.MESSAGE_TOO_BIG
    assert sum(len(e.data) for e in got if isinstance(e, Binary)) <= 1 << 20


def test_unlimited_message_size_inflates_everything() -> None:
    data = b"\x00" * (3 << 20)
    p = pair(limits=Limits(max_message_size=None))
    p.client.receive_data(sframe(BINARY, deflate_ref(data), rsv=RSV1))
    assert list(p.client.events()) == [Binary(data)]


# ============================================================ round trips through the engines

@pytest.mark.parametrize("chunk", [None, 1, 5, 1000])
def test_round_trip_both_directions_split_rfc7692_7_2(chunk: int | None) -> None:
    p = pair(chunk=chunk)
    msgs: list[str | bytes] = ["hello " * 50, b"\x01\x02" * 500, "", b"", "x" * 129,
                               os.urandom(3000), "naïve ☃ " * 100]
    for m in msgs:
        p.client.send(m)
        p.server.send(m)
    expect = [Text(m) if isinstance(m, str) else Binary(m) for m in msgs]
    assert p.to_server() == expect
    assert p.to_client() == expect


def test_round_trip_fragmented_streaming_both_ways_rfc7692_6_1() -> None:
    p = pair(fragment_size=64, streaming=True)
    text = "streamed ☃ text " * 300
    p.client.send(text[:1000], final=False)
    p.client.send(text[1000:2000], final=False)
    p.client.send(text[2000:])
    got = p.to_server()
    assert all(isinstance(e, Text) for e in got) and len(got) > 1
    assert "".join(e.data for e in got if isinstance(e, Text)) == text
    assert got[-1].final  # type: ignore[union-attr]
    p.server.send(text.encode())
    got = p.to_client()
    assert b"".join(e.data for e in got if isinstance(e, Binary)) == text.encode()


def test_closing_handshake_with_deflate_rfc6455_7() -> None:
    p = pair()
    p.client.send("x" * 500)
    p.client.close()
    got = p.to_server()
    assert got[0] == Text("x" * 500) and isinstance(got[1], ConnectionClosed)
    assert isinstance(p.to_client()[-1], ConnectionClosed)


def test_deflate_frames_parse_with_independent_parser() -> None:
    """The helpers' parser (independent of the engine) sees well-formed frames."""
    p = pair()
    p.client.send(b"k" * 700)
    data = p.client.data_to_send()
    assert isinstance(data, bytes)
    (f,) = parse_frames(data)
    assert f.masked and f.rsv == RSV1 and inflate_ref(f.payload) == b"k" * 700


offers = st.builds(
    DeflateOffer,
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    server_max_window_bits=st.none() | st.integers(8, 15),
    client_max_window_bits=st.none() | st.booleans() | st.integers(8, 15),
)
server_factories = st.builds(
    ServerPerMessageDeflate,
    server_no_context_takeover=st.booleans(),
    client_no_context_takeover=st.booleans(),
    server_max_window_bits=st.none() | st.integers(8, 15),
    client_max_window_bits=st.none() | st.integers(8, 15),
    compress_level=st.integers(0, 9),
    mem_level=st.integers(1, 9),
    threshold=st.integers(0, 300),
)
messages = st.lists(
    st.tuples(st.one_of(st.binary(max_size=2000), st.text(max_size=500),
                        st.binary(max_size=50).map(lambda b: b * 40)),
              st.lists(st.integers(1, 2000), max_size=3),  # part boundaries
              st.none() | st.booleans()),  # compress
    min_size=1, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(offer=offers, server=server_factories, msgs=messages,
       fragment=st.none() | st.integers(1, 300), chunk=st.none() | st.integers(1, 700))
def test_hypothesis_round_trip_any_parameters_rfc7692(
        offer: DeflateOffer, server: ServerPerMessageDeflate,
        msgs: list[tuple[bytes | str, list[int], bool | None]],
        fragment: int | None, chunk: int | None) -> None:
    """Any offer, server setting, message, split into parts, fragment size and TCP split."""
    client = ClientPerMessageDeflate(
        server_no_context_takeover=offer.server_no_context_takeover,
        client_no_context_takeover=offer.client_no_context_takeover,
        server_max_window_bits=offer.server_max_window_bits,
        client_max_window_bits=offer.client_max_window_bits)
    p = pair(server, client, chunk=chunk, fragment_size=fragment,
             limits=Limits(max_message_size=None))
    assert isinstance(p.server.extension, PerMessageDeflate)
    assert isinstance(p.client.extension, PerMessageDeflate)
    expect = []
    for data, cuts, compress in msgs:
        for conn in (p.client, p.server):
            bounds = sorted({c % (len(data) + 1) for c in cuts})
            pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
            for piece in pieces[:-1]:
                conn.send(piece, final=False, compress=compress)
            conn.send(pieces[-1], compress=compress)
        expect.append(Text(data) if isinstance(data, str) else Binary(data))
    assert p.to_server() == expect
    assert p.to_client() == expect
