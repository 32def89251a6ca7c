"""atheris harness: the frame parser after a valid handshake, both roles (§5, §7).

Input layout: byte 0 selects the configuration (role, permessage-deflate,
streaming, small limits, EOF at the end); byte 1 the number of cut points,
each a 16-bit offset; the rest is the byte stream. Every input is parsed
twice, with and without the C fast path, and both must agree exactly.
"""

from __future__ import annotations

import struct
import sys

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports(include=["rfc6455", "fuzz"]):
    from rfc6455 import ConnectionClosed, Limits, _core

    from .common import Outcome, drive, open_client, open_server, parse_wire

SMALL = Limits(max_message_size=300, max_frame_size=200, max_fragments=5)
_C_NEXT_FRAME = _core._next_frame


def decode(data: bytes) -> tuple[int, list[bytes]]:
    """The configuration byte and the stream cut into pieces."""
    if len(data) < 2:
        return 0, [data]
    config, count = data[0], data[1] % 8
    cuts_end = 2 + 2 * count
    cuts = [struct.unpack_from("!H", data, 2 + 2 * i)[0] for i in range(count)
            if 2 + 2 * i + 2 <= len(data)]
    stream = data[cuts_end:]
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces, last = [], 0
    for point in [*points, len(stream)]:
        if point > last:
            pieces.append(stream[last:point])
            last = point
    return config, pieces


def run(config: int, pieces: list[bytes], deliver: bool = False) -> Outcome:
    limits = SMALL if config & 8 else Limits()
    streaming = bool(config & 4)
    opener = open_client if config & 1 else open_server
    conn = opener(deflate=bool(config & 2), limits=limits, streaming=streaming)
    return drive(conn, pieces, eof=bool(config & 16), limits=limits, streaming=streaming,
                 deliver=deliver)


def summary(outcome: Outcome) -> list[object]:
    out: list[object] = []
    for event in outcome.events:
        if isinstance(event, ConnectionClosed):
            out.append((event.code, event.reason, type(event.error).__name__))
        else:
            out.append(event)
    # What went out, minus the random masking keys: control frames and their payloads.
    sent = [(f.opcode, f.payload) for f in parse_wire(outcome.wire) if f.opcode >= 8]
    return [*out, sent, outcome.eof]


def TestOneInput(data: bytes) -> None:
    config, pieces = decode(data)
    if _C_NEXT_FRAME is None:
        run(config, pieces)
        return
    try:
        accelerated = summary(run(config, pieces))
        delivered = summary(run(config, pieces, deliver=True))
        _core._next_frame = None
        pure = summary(run(config, pieces))
    finally:
        _core._next_frame = _C_NEXT_FRAME
    # The C fast path has "no behaviour of its own" (_core.next_event), and
    # deliver_messages hands over the same messages.
    assert accelerated == pure, (accelerated, pure)
    assert delivered == pure, (delivered, pure)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
