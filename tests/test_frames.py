"""Framing (RFC 6455 §5): frame serialization, close payloads, and the reader's rules.

Each reader rule is checked on a connection past the handshake, fed hand-built
bytes; the close frame the engine writes back is parsed to check the code.
"""

from __future__ import annotations

import os
import struct

import pytest

from rfc6455 import (
    Binary,
    ConnectionClosed,
    Limits,
    Ping,
    Pong,
    RemoteProtocolError,
    State,
    Text,
)
from rfc6455._mask import mask, mask_python
from rfc6455.frames import (
    Opcode,
    build_close_payload,
    is_valid_close_code,
    parse_close_payload,
    serialize_frame,
)

from .helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    Scrambler,
    cframe,
    closed_event,
    feed,
    open_client,
    open_server,
    open_server_with,
    parse_frames,
    sent_close_code,
    sframe,
    written_frames,
    xor,
)

# ---------------------------------------------------------------- serialization


@pytest.mark.parametrize(("size", "header"), [(0, 2), (125, 2), (126, 4), (65535, 4),
                                              (65536, 10), (70000, 10)])
def test_5_2_serialize_uses_minimal_length_encoding(size: int, header: int) -> None:
    data = serialize_frame(Opcode.BINARY, b"x" * size)
    assert len(data) == header + size
    assert data[0] == 0x82
    if header == 2:
        assert data[1] == size
    elif header == 4:
        assert data[1] == 126 and struct.unpack_from("!H", data, 2)[0] == size
    else:
        assert data[1] == 127 and struct.unpack_from("!Q", data, 2)[0] == size


def test_5_2_serialize_fin_rsv_opcode_bits() -> None:
    data = serialize_frame(Opcode.TEXT, b"abc", fin=False, rsv=0x40)
    assert data[:2] == b"\x41\x03"
    assert serialize_frame(Opcode.PONG, b"")[:2] == b"\x8a\x00"


def test_5_3_serialize_masked_frame_round_trips() -> None:
    payload = os.urandom(300)
    (parsed,) = parse_frames(serialize_frame(Opcode.BINARY, payload, masked=True))
    assert parsed.masked and parsed.payload == payload and parsed.opcode == BINARY


def test_5_3_masking_keys_are_fresh_per_frame() -> None:
    """§5.3/§10.3: a new unpredictable key for every frame."""
    keys = {serialize_frame(Opcode.TEXT, b"same", masked=True)[2:6] for _ in range(64)}
    assert len(keys) > 60


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 64, 1000, 4099])
def test_5_3_mask_matches_reference(size: int) -> None:
    data = os.urandom(size)
    key = os.urandom(4)
    assert mask(data, key) == xor(data, key)
    assert mask_python(data, key) == xor(data, key)
    assert mask(bytearray(data), key) == xor(data, key)
    assert mask(memoryview(data), key) == xor(data, key)


def test_5_3_mask_of_unaligned_memoryview() -> None:
    data = os.urandom(1031)
    key = b"\x01\x02\x03\x04"
    view = memoryview(data)[3:1030]
    assert mask(view, key) == xor(data[3:1030], key)


# ---------------------------------------------------------------- close payloads


def test_5_5_1_build_close_payload() -> None:
    assert build_close_payload(None) == b""
    assert build_close_payload(1000) == b"\x03\xe8"
    assert build_close_payload(4000, "bye ü") == b"\x0f\xa0" + "bye ü".encode()
    with pytest.raises(ValueError):
        build_close_payload(None, "reason without code")
    with pytest.raises(ValueError):
        build_close_payload(1000, "x" * 124)
    build_close_payload(1000, "x" * 123)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000,
                                  65535])
def test_7_4_1_invalid_codes_are_not_sendable(code: int) -> None:
    assert not is_valid_close_code(code)
    with pytest.raises(ValueError):
        build_close_payload(code)


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                  1013, 1014, 3000, 3999, 4000, 4999])
def test_7_4_2_valid_codes(code: int) -> None:
    assert is_valid_close_code(code)
    assert parse_close_payload(build_close_payload(code, "r")) == (code, "r")


def test_7_1_5_empty_close_payload_means_1005() -> None:
    assert parse_close_payload(b"") == (1005, "")


def test_5_5_1_parse_close_payload_errors() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_close_payload(b"\x03")
    assert info.value.code == 1002
    with pytest.raises(RemoteProtocolError) as info:
        parse_close_payload(b"\x03\xec")  # 1004
    assert info.value.code == 1002
    with pytest.raises(RemoteProtocolError) as info:
        parse_close_payload(b"\x03\xe8\xff")
    assert info.value.code == 1007


# ---------------------------------------------------------------- masking rules (§5.1)


def test_5_1_server_rejects_unmasked_frame() -> None:
    server = open_server()
    evs = feed(server, sframe(TEXT, b"hello"))
    closed = closed_event(evs)
    assert closed.code == 1002 and closed.error is not None
    assert sent_close_code(server) == 1002
    assert server.state is State.CLOSED


def test_5_1_client_rejects_masked_frame() -> None:
    client = open_client()
    evs = feed(client, cframe(TEXT, b"hello"))
    assert closed_event(evs).code == 1002
    assert sent_close_code(client) == 1002


def test_5_1_server_rejects_unmasked_control_frame() -> None:
    server = open_server()
    assert closed_event(feed(server, sframe(PING, b"x"))).code == 1002


def test_5_1_client_frames_are_masked_server_frames_are_not() -> None:
    server, client = open_server(), open_client()
    client.send("a")
    client.ping(b"p")
    client.send(b"b" * 200)
    server.send("a")
    server.ping(b"p")
    server.send(b"b" * 200)
    assert all(f.masked for f in written_frames(client))
    assert not any(f.masked for f in written_frames(server))


def test_5_3_server_unmasks_with_any_key() -> None:
    server = open_server()
    payload = os.urandom(1000)
    for key in (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", os.urandom(4)):
        assert feed(server, cframe(BINARY, payload, key=key)) == [Binary(payload)]


# ---------------------------------------------------------------- header fields (§5.2)


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
def test_5_2_rsv_bits_without_extension_fail_1002(rsv: int) -> None:
    server = open_server()
    assert closed_event(feed(server, cframe(TEXT, b"x", rsv=rsv))).code == 1002
    assert sent_close_code(server) == 1002


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_5_2_rsv_bits_on_control_frame_fail_1002(rsv: int) -> None:
    client = open_client()
    assert closed_event(feed(client, sframe(PING, b"x", rsv=rsv))).code == 1002
    assert sent_close_code(client) == 1002


def test_5_2_rsv_bits_on_continuation_fail_1002() -> None:
    server = open_server()
    evs = feed(server, cframe(TEXT, b"a", fin=False) + cframe(CONT, b"b", rsv=0x40))
    assert closed_event(evs).code == 1002


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_5_2_reserved_opcodes_fail_1002(opcode: int) -> None:
    server = open_server()
    assert closed_event(feed(server, cframe(opcode, b""))).code == 1002
    assert sent_close_code(server) == 1002
    client = open_client()
    assert closed_event(feed(client, sframe(opcode, b"ab"))).code == 1002


def test_5_2_reserved_opcode_inside_fragmented_message_fails_1002() -> None:
    server = open_server()
    evs = feed(server, cframe(TEXT, b"a", fin=False) + cframe(5, b"b"))
    assert closed_event(evs).code == 1002


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200000])
def test_5_2_all_length_encodings_received(size: int) -> None:
    server = open_server()
    payload = os.urandom(size)
    assert feed(server, cframe(BINARY, payload)) == [Binary(payload)]
    client = open_client()
    assert feed(client, sframe(BINARY, payload), chunk=7000) == [Binary(payload)]


@pytest.mark.parametrize("form", [16, 64])
def test_5_2_non_minimal_length_encoding_is_tolerated(form: int) -> None:
    """Decision (documented in the checklist): a non-minimal length is accepted."""
    server = open_server()
    assert feed(server, cframe(TEXT, b"hi", form=form)) == [Text("hi")]


def test_5_2_64_bit_length_with_msb_set_fails_1002() -> None:
    server = open_server()
    data = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", (1 << 63) | 5) + b"\0" * 4 + b"x" * 5
    assert closed_event(feed(server, data)).code == 1002
    assert sent_close_code(server) == 1002


def test_5_2_64_bit_length_msb_fails_even_before_the_mask_arrives() -> None:
    client = open_client()
    data = bytes([0x82, 127]) + struct.pack("!Q", 1 << 63)
    assert closed_event(feed(client, data)).code == 1002


# ---------------------------------------------------------------- control frames (§5.5)


def test_5_5_control_frame_over_125_bytes_fails_1002() -> None:
    server = open_server()
    assert closed_event(feed(server, cframe(PING, b"x" * 126))).code == 1002
    assert sent_close_code(server) == 1002


def test_5_5_control_frame_of_125_bytes_is_fine() -> None:
    server = open_server()
    assert feed(server, cframe(PING, b"x" * 125)) == [Ping(b"x" * 125)]


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_5_5_fragmented_control_frame_fails_1002(opcode: int) -> None:
    client = open_client()
    assert closed_event(feed(client, sframe(opcode, b"", fin=False))).code == 1002
    assert sent_close_code(client) == 1002


def test_5_5_control_frame_with_long_length_encoding_fails_1002() -> None:
    """A 126-byte ping is rejected from its header, before its payload arrives."""
    server = open_server()
    head = bytes([0x89, 0x80 | 126]) + struct.pack("!H", 126) + b"\x01\x02\x03\x04"
    assert closed_event(feed(server, head)).code == 1002


def test_5_4_control_frames_interleaved_in_fragmented_message() -> None:
    server = open_server()
    data = (cframe(TEXT, b"he", fin=False) + cframe(PING, b"1") + cframe(CONT, b"ll", fin=False)
            + cframe(PONG, b"2") + cframe(CONT, b"o"))
    evs = feed(server, data)
    assert evs == [Ping(b"1"), Pong(b"2"), Text("hello")]
    (pong,) = written_frames(server)
    assert pong.opcode == PONG and pong.payload == b"1"


def test_5_4_close_interleaved_in_fragmented_message_ends_it() -> None:
    server = open_server()
    evs = feed(server, cframe(BINARY, b"he", fin=False) + cframe(CLOSE, b"\x03\xe8"))
    assert evs == [ConnectionClosed(1000, "")]


# ---------------------------------------------------------------- fragmentation (§5.4)


def test_5_4_fragmented_text_message_is_assembled() -> None:
    client = open_client()
    data = sframe(TEXT, b"a", fin=False) + sframe(CONT, b"", fin=False) + sframe(CONT, b"bc")
    assert feed(client, data) == [Text("abc")]


def test_5_4_fragmented_binary_message_is_assembled_byte_by_byte() -> None:
    server = open_server()
    data = b"".join(cframe(CONT if i else BINARY, bytes([i]) * 10, fin=i == 9) for i in range(10))
    assert feed(server, data, chunk=1) == [Binary(b"".join(bytes([i]) * 10 for i in range(10)))]


def test_5_4_empty_messages() -> None:
    server = open_server()
    assert feed(server, cframe(TEXT) + cframe(BINARY)) == [Text(""), Binary(b"")]
    assert feed(server, cframe(TEXT, fin=False) + cframe(CONT)) == [Text("")]


def test_5_4_continuation_without_message_fails_1002() -> None:
    server = open_server()
    assert closed_event(feed(server, cframe(CONT, b"x"))).code == 1002
    assert sent_close_code(server) == 1002


def test_5_4_continuation_after_finished_message_fails_1002() -> None:
    server = open_server()
    evs = feed(server, cframe(TEXT, b"a", fin=False) + cframe(CONT, b"b") + cframe(CONT, b"c"))
    assert evs[0] == Text("ab")
    assert closed_event(evs).code == 1002


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_5_4_new_message_while_fragmented_message_open_fails_1002(opcode: int) -> None:
    client = open_client()
    evs = feed(client, sframe(BINARY, b"a", fin=False) + sframe(opcode, b"b"))
    assert closed_event(evs).code == 1002
    assert sent_close_code(client) == 1002


def test_5_4_messages_in_sequence_reset_fragment_state() -> None:
    server = open_server()
    data = (cframe(TEXT, b"a", fin=False) + cframe(CONT, b"b") + cframe(BINARY, b"c", fin=False)
            + cframe(CONT, b"d") + cframe(TEXT, b"e"))
    assert feed(server, data, chunk=3) == [Text("ab"), Binary(b"cd"), Text("e")]


# ---------------------------------------------------------------- UTF-8 (§5.6, §8.1)


def test_8_1_invalid_utf8_text_fails_1007() -> None:
    server = open_server()
    assert closed_event(feed(server, cframe(TEXT, b"\xff"))).code == 1007
    assert sent_close_code(server) == 1007


def test_8_1_character_split_across_fragments_is_valid() -> None:
    data = "€uro".encode()
    client = open_client()
    evs = feed(client, sframe(TEXT, data[:1], fin=False) + sframe(CONT, data[1:2], fin=False)
               + sframe(CONT, data[2:]))
    assert evs == [Text("€uro")]


def test_8_1_truncated_character_at_message_end_fails_1007() -> None:
    client = open_client()
    evs = feed(client, sframe(TEXT, b"ok", fin=False) + sframe(CONT, "€".encode()[:2]))
    assert closed_event(evs).code == 1007


def test_8_1_invalid_first_fragment_fails_before_later_fragments() -> None:
    """Fail fast: the first fragment alone proves the message invalid."""
    server = open_server()
    evs = feed(server, cframe(TEXT, b"ok\xc0\xaf", fin=False))
    assert closed_event(evs).code == 1007
    assert sent_close_code(server) == 1007


def test_8_1_invalid_piece_of_a_frame_fails_before_the_rest_arrives() -> None:
    """A frame whose payload arrives in pieces fails at the first invalid piece."""
    server = open_server()
    whole = cframe(TEXT, b"valid " + b"\xed\xa0\x80" + b"x" * 1000)  # a UTF-16 surrogate
    evs = feed(server, whole[:8 + 9])  # header (4 + 4 mask) and the first 9 payload bytes
    assert closed_event(evs).code == 1007
    assert sent_close_code(server) == 1007


def test_8_1_invalid_utf8_in_streaming_mode_fails_1007() -> None:
    server = open_server(streaming=True)
    evs = feed(server, cframe(TEXT, b"ok", fin=False) + cframe(CONT, b"\xf8"))
    assert evs[0] == Text("ok", final=False)
    assert closed_event(evs).code == 1007


def test_8_1_binary_messages_are_not_checked() -> None:
    server = open_server()
    assert feed(server, cframe(BINARY, b"\xff\xfe")) == [Binary(b"\xff\xfe")]


def test_5_6_valid_utf8_of_every_width() -> None:
    text = "aé€𝄞" * 50
    server = open_server()
    assert feed(server, cframe(TEXT, text.encode()), chunk=5) == [Text(text)]


@pytest.mark.parametrize("prefix", [b"\xed\xa0", b"\xed\xbf", b"\xf4\x90", b"\xe0\x80", b"\xc0"])
def test_8_1_fail_fast_on_two_byte_proof_of_invalidity(prefix: bytes) -> None:
    """Regression: a surrogate's first two bytes (ED A0) waited for a third byte."""
    server = open_server()
    evs = feed(server, cframe(TEXT, b"ok" + prefix, fin=False))
    assert closed_event(evs).code == 1007
    client = open_client(streaming=True)
    data = sframe(TEXT, b"ok" + prefix + b"\x80" * 100)
    assert closed_event(feed(client, data[:2 + 2 + len(prefix)])).code == 1007


@pytest.mark.parametrize("prefix", [b"\xed\x9f", b"\xe0\xa0", b"\xf0\x90\x80", b"\xf4\x8f"])
def test_8_1_valid_prefixes_wait_for_more(prefix: bytes) -> None:
    server = open_server()
    assert feed(server, cframe(TEXT, b"ok" + prefix, fin=False)) == []
    assert server.state.name == "OPEN"


# ---------------------------------------------------------------- RSV with an extension (§9)


def _scrambled(data: bytes) -> bytes:
    return bytes(b ^ 0x55 for b in data)


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_5_2_rsv_bit_of_negotiated_extension_is_decoded(chunk: int | None) -> None:
    server = open_server_with(Scrambler())
    data = (cframe(TEXT, _scrambled(b"hello"), rsv=0x20) + cframe(BINARY, b"plain")
            + cframe(BINARY, _scrambled(b"ab"), rsv=0x20, fin=False)
            + cframe(CONT, _scrambled(b"cd")))
    assert feed(server, data, chunk) == [Text("hello"), Binary(b"plain"), Binary(b"abcd")]


@pytest.mark.parametrize("rsv", [0x40, 0x10, 0x60])
def test_5_2_rsv_bit_not_owned_by_the_extension_fails_1002(rsv: int) -> None:
    server = open_server_with(Scrambler())
    assert closed_event(feed(server, cframe(TEXT, b"x", rsv=rsv))).code == 1002
    assert sent_close_code(server) == 1002


def test_5_2_extension_rsv_on_continuation_or_control_fails_1002() -> None:
    server = open_server_with(Scrambler())
    data = cframe(BINARY, b"a", rsv=0x20, fin=False) + cframe(CONT, b"b", rsv=0x20)
    assert closed_event(feed(server, data)).code == 1002
    server = open_server_with(Scrambler())
    assert closed_event(feed(server, cframe(PING, b"", rsv=0x20))).code == 1002


def test_5_2_extension_refusing_a_message_fails_1002() -> None:
    server = open_server_with(Scrambler(accept_rsv=False))
    assert closed_event(feed(server, cframe(TEXT, b"x", rsv=0x20))).code == 1002


@pytest.mark.parametrize("code", [1007, 1009])
def test_7_1_7_extension_decode_error_fails_with_its_code(code: int) -> None:
    server = open_server_with(Scrambler(fail_with=code))
    assert closed_event(feed(server, cframe(BINARY, b"x", rsv=0x20))).code == code
    assert sent_close_code(server) == code


def test_10_4_extension_decodes_within_the_remaining_message_room() -> None:
    extension = Scrambler()
    server = open_server_with(extension, limits=Limits(max_message_size=100))
    data = cframe(BINARY, b"a" * 30, rsv=0x20, fin=False) + cframe(CONT, b"b" * 20)
    assert feed(server, data) == [Binary(_scrambled(b"a" * 30 + b"b" * 20))]
    assert extension.max_lengths == [100, 70]


def test_8_1_decoded_text_is_utf8_checked() -> None:
    server = open_server_with(Scrambler())
    assert closed_event(feed(server, cframe(TEXT, _scrambled(b"\xff"), rsv=0x20))).code == 1007


def test_5_2_extension_sets_rsv_on_the_first_frame_only() -> None:
    server = open_server_with(Scrambler(), fragment_size=2)
    server.send(b"abcde")
    server.send(b"xy", compress=False)
    frames = written_frames(server)
    assert [(f.opcode, f.rsv, f.fin) for f in frames] == [
        (BINARY, 0x20, False), (CONT, 0, False), (CONT, 0, True), (BINARY, 0, True)]
    assert b"".join(f.payload for f in frames[:3]) == _scrambled(b"abcde")
    assert frames[3].payload == b"xy"
