"""Masking of frame payloads (RFC 6455 §5.3).

``mask(data, key)`` XORs ``data`` with the 4-byte ``key`` repeated, and is its
own inverse. This module holds the pure-Python implementation; the compiled
accelerator (``_speedups.c``) replaces it when it was built, unless the
environment variable ``RFC6455_NO_EXTENSIONS`` is set to a non-empty value.

Pure-Python alternatives measured (CPython 3.11, see docs/performance.md):
one big-integer XOR is fastest up to about 1.5 KiB; above that, translating
the four strided byte lanes (every 4th byte shares a key byte) through a
256-byte XOR table runs about 3x faster (1.2 GB/s vs 0.4 GB/s at 1 MiB).
A generator or ``map(operator.xor, ...)`` is 10-20x slower than either.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["mask", "mask_inplace", "mask_python"]

_from_bytes = int.from_bytes
# Payloads at least this long take the translate path (the measured crossover).
_TRANSLATE_MIN = 1536
# XOR tables, one per key byte value, built when first needed (256 bytes each).
_tables: list[bytes | None] = [None] * 256


def _table(value: int) -> bytes:
    table = _tables[value]
    if table is None:
        table = _tables[value] = bytes(byte ^ value for byte in range(256))
    return table


def mask_python(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` repeated; returns new ``bytes``."""
    size = len(data)
    if size < _TRANSLATE_MIN:
        if not size:
            return b""
        # Both operands as integers: CPython XORs machine words in C.
        repeated = (key * ((size + 3) >> 2))[:size] if size > 4 else key[:size]
        value = _from_bytes(data, "little") ^ _from_bytes(repeated, "little")
        return value.to_bytes(size, "little")
    out = bytearray(data)
    _translate_lanes(out, key)
    return bytes(out)


def _translate_lanes(out: bytearray, key: bytes) -> None:
    # Byte i is XORed with key[i % 4]: each strided lane is one table lookup pass.
    for lane in range(4):
        out[lane::4] = out[lane::4].translate(_table(key[lane]))


def mask_inplace_python(buffer: bytearray, key: bytes) -> None:
    """XOR ``buffer`` with ``key`` repeated, in place."""
    if len(buffer) < _TRANSLATE_MIN:
        buffer[:] = mask_python(buffer, key)
    else:
        _translate_lanes(buffer, key)


mask: Callable[[bytes | bytearray | memoryview, bytes], bytes] = mask_python
mask_inplace: Callable[[bytearray, bytes], None] = mask_inplace_python

if not os.environ.get("RFC6455_NO_EXTENSIONS"):
    try:
        from ._speedups import mask as _c_mask  # type: ignore[import-not-found, unused-ignore]
        from ._speedups import (  # type: ignore[import-not-found, unused-ignore]
            mask_inplace as _c_mask_inplace,
        )
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:  # pragma: no cover - depends on the build
        mask = _c_mask
        mask_inplace = _c_mask_inplace

#: Whether the compiled accelerator is in use.
ACCELERATED = mask is not mask_python
