"""Frame layout (RFC 6455 §5.2): constants, serialization and close payloads.

Parsing lives in the engine (``_core.py``), where it can work on
the receive buffer in place.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import IntEnum

from ._mask import ACCELERATED, mask, new_key
from .errors import CloseCode, RemoteProtocolError

__all__ = [
    "Opcode",
    "build_close_payload",
    "is_valid_close_code",
    "parse_close_payload",
    "serialize_frame",
]


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


FIN = 0x80
RSV1 = 0x40
RSV2 = 0x20
RSV3 = 0x10
MASK_BIT = 0x80
MAX_CONTROL_PAYLOAD = 125  # §5.5

_pack_short = struct.Struct("!BB").pack
_pack_medium = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack

def serialize_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = False,
) -> bytes:
    """One frame as bytes, with the minimal length encoding (§5.2).

    ``masked`` frames (client role, §5.3) get a fresh key from the operating
    system's CSPRNG, as §10.3 requires keys the peer cannot predict.
    """
    if masked:
        return masked_frame((FIN if fin else 0) | rsv | opcode, payload, new_key())
    header = _header(opcode, len(payload), fin, rsv, masked)
    return header + payload if type(payload) is bytes else b"".join((header, payload))


def serialize_frame_parts(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = False,
) -> tuple[bytes, bytes]:
    """One frame as (header, payload on the wire): :func:`serialize_frame` unjoined.

    For large payloads written with ``writelines``/``sendmsg``: an unmasked
    payload goes out as the very object given, never copied into a frame.
    """
    header = _header(opcode, len(payload), fin, rsv, masked)
    if masked:
        key = new_key()
        return header + key, mask(payload, key)
    return header, payload


def _header(opcode: int, size: int, fin: bool, rsv: int, masked: bool) -> bytes:
    """The frame header before any masking key, minimal length encoding (§5.2)."""
    return _header_bytes((FIN if fin else 0) | rsv | opcode, size, MASK_BIT if masked else 0)


def _header_bytes(first: int, size: int, mask_bit: int) -> bytes:
    if size < 126:
        return _pack_short(first, mask_bit | size)
    if size < 65536:
        return _pack_medium(first, mask_bit | 126, size)
    return _pack_long(first, mask_bit | 127, size)


def masked_frame_python(first: int, payload: bytes | bytearray | memoryview,
                        key: bytes) -> bytes:
    """A whole client frame (§5.2, §5.3): first byte ``first`` (FIN, RSV, opcode),
    mask bit and minimal length, ``key``, then the payload masked with it."""
    return b"".join((_header_bytes(first, len(payload), MASK_BIT), key, mask(payload, key)))


# The C accelerator builds the same bytes in one allocation (one copy of the payload).
masked_frame: Callable[[int, bytes | bytearray | memoryview, bytes], bytes] = \
    masked_frame_python
if ACCELERATED:  # pragma: no cover - depends on the build
    from . import _speedups

    masked_frame = _speedups.masked_frame


# §7.4.1 and the IANA registry: codes an endpoint may put on the wire.
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                             1014})


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (§7.4.1, §7.4.2).

    1004, 1005, 1006 and 1015 are reserved for reporting; other codes below 3000
    are unassigned; 3000-4999 belong to libraries, frameworks and applications.
    """
    return code in _SENDABLE_CODES or 3000 <= code <= 4999


def build_close_payload(code: int | None, reason: str = "") -> bytes:
    """The payload of a close frame: empty, or a 2-byte code and a UTF-8 reason (§5.5.1)."""
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent")
    encoded = reason.encode("utf-8")
    if len(encoded) > MAX_CONTROL_PAYLOAD - 2:
        raise ValueError("close reason longer than 123 bytes")
    return struct.pack("!H", code) + encoded


def parse_close_payload(payload: bytes) -> tuple[int, str]:
    """Decode a received close payload; an empty one means 1005 (§7.1.5).

    Raises :class:`RemoteProtocolError` with 1002 for a 1-byte payload or an
    invalid code, 1007 for a reason that is not UTF-8 (§5.5.1, §8.1).
    """
    if not payload:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise RemoteProtocolError("close frame with a 1-byte payload")
    (code,) = struct.unpack_from("!H", payload)
    if not is_valid_close_code(code):
        raise RemoteProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(
            "close reason is not valid UTF-8", CloseCode.INVALID_FRAME_PAYLOAD_DATA
        ) from exc
    return code, reason
