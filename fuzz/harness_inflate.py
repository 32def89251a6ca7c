"""atheris harness: the permessage-deflate inflater (RFC 7692 §7.2.2).

Byte 0: the receive window (8..15) and context reset; byte 1: the output
bound (``max_length``); then pieces, each a length byte (the top bit marks a
message's final piece) followed by that many bytes. Outcome: inflated bytes
within the bound, or RemoteProtocolError with 1007/1009; never anything else.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports(include=["rfc6455"]):
    from rfc6455.errors import RemoteProtocolError
    from rfc6455.extensions.permessage_deflate import PerMessageDeflate

_BOUNDS = [None, 0, 1, 16, 100, 1000, 65536, 1 << 20]


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    ext = PerMessageDeflate(recv_bits=8 + (data[0] & 7), recv_reset=bool(data[0] & 8))
    max_length = _BOUNDS[data[1] % len(_BOUNDS)]
    pos = 2
    while pos < len(data):
        head = data[pos]
        piece = data[pos + 1:pos + 1 + (head & 0x7F)]
        pos += 1 + (head & 0x7F)
        try:
            out = ext.decode(piece, bool(head & 0x80), max_length)
        except RemoteProtocolError as exc:
            assert exc.code in (1007, 1009), exc.code
            continue
        if max_length is not None:
            assert len(out) <= max_length, (len(out), max_length)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
