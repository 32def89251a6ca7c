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

__all__ = ["KEY_POOL", "SHORT_LOW", "SHORT_REPEAT", "mask", "mask_inplace", "mask_join",
           "mask_python", "new_key"]

_from_bytes = int.from_bytes
# Short payloads (control frames, 7-bit lengths): the key as an integer times
# SHORT_REPEAT[n] is the key repeated over n bytes rounded up to a multiple of 4;
# SHORT_LOW[n] trims it to n bytes. Two table lookups replace building key * k.
# (The engine's inline unmasking of small frames uses them too.)
_SHORT = 126
SHORT_REPEAT = [sum(1 << (32 * i) for i in range((n + 3) >> 2)) for n in range(_SHORT)]
SHORT_LOW = [(1 << (8 * n)) - 1 for n in range(_SHORT)]
# Payloads at least this long take the translate path (the measured crossover).
_TRANSLATE_MIN = 1536
# XOR tables, one per key byte value, built when first needed (256 bytes each).
_tables: list[bytes | None] = [None] * 256


def _table(value: int) -> bytes:
    table = _tables[value]
    if table is None:
        table = _tables[value] = bytes(byte ^ value for byte in range(256))
    return table


def mask_python(data: bytes | bytearray | memoryview, key: bytes | bytearray) -> bytes:
    """XOR ``data`` with ``key`` repeated; returns new ``bytes``."""
    size = len(data)
    if size < _SHORT:
        pattern = _from_bytes(key, "little") * SHORT_REPEAT[size] & SHORT_LOW[size]
        return (_from_bytes(data, "little") ^ pattern).to_bytes(size, "little")
    if size < _TRANSLATE_MIN:
        # Both operands as integers: CPython XORs machine words in C.
        repeated = (key * ((size + 3) >> 2))[:size]
        value = _from_bytes(data, "little") ^ _from_bytes(repeated, "little")
        return value.to_bytes(size, "little")
    out = bytearray(data)
    _translate_lanes(out, key)
    return bytes(out)


def _translate_lanes(out: bytearray, key: bytes | bytearray) -> None:
    # Byte i is XORed with key[i % 4]: each strided lane is one table lookup pass.
    for lane in range(4):
        out[lane::4] = out[lane::4].translate(_table(key[lane]))


def mask_inplace_python(buffer: bytearray, key: bytes | bytearray) -> None:
    """XOR ``buffer`` with ``key`` repeated, in place."""
    if len(buffer) < _TRANSLATE_MIN:
        buffer[:] = mask_python(buffer, key)
    else:
        _translate_lanes(buffer, key)


def mask_join_python(parts: list[bytes | memoryview], key: bytes | bytearray) -> bytes:
    """``mask(b"".join(parts), key)``: a frame's payload received in several reads.

    Each part is masked on its own (the key rotated to where it starts), then
    joined: the lane tables stay in cache for read-sized parts, which is twice as
    fast as masking the joined megabyte.
    """
    out = []
    offset = 0
    for part in parts:
        phase = offset & 3
        out.append(mask_python(part, key[phase:] + key[:phase] if phase else key))
        offset += len(part)
    return b"".join(out)


mask: Callable[[bytes | bytearray | memoryview, bytes | bytearray], bytes] = mask_python
mask_inplace: Callable[[bytearray, bytes | bytearray], None] = mask_inplace_python
mask_join: Callable[[list[bytes | memoryview], bytes | bytearray], bytes] = mask_join_python

if not os.environ.get("RFC6455_NO_EXTENSIONS"):
    try:
        from ._speedups import mask as _c_mask  # type: ignore[import-not-found, unused-ignore]
        from ._speedups import (  # type: ignore[import-not-found, unused-ignore]
            mask_inplace as _c_mask_inplace,
        )
        from ._speedups import (  # type: ignore[import-not-found, unused-ignore]
            mask_join as _c_mask_join,
        )
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:  # pragma: no cover - depends on the build
        mask = _c_mask
        mask_inplace = _c_mask_inplace
        mask_join = _c_mask_join

# §10.3: masking keys must be unpredictable. They come from the OS CSPRNG 256 at a
# time, each used once: a system call per 256 frames instead of one per frame.
# list.pop() is atomic, so two threads never get the same key; a forked child
# drops the keys it inherited, which its parent may use too.
_KEY_BLOCK = 1024
#: The unused masking keys; new_key() takes them from the end.
KEY_POOL: list[bytes] = []
os.register_at_fork(after_in_child=KEY_POOL.clear)


def new_key() -> bytes:
    """A fresh 4-byte masking key (§5.3), never handed out twice."""
    try:
        return KEY_POOL.pop()
    except IndexError:
        block = os.urandom(_KEY_BLOCK)
        KEY_POOL[:] = [block[i:i + 4] for i in range(0, _KEY_BLOCK, 4)]
        return KEY_POOL.pop()


#: Whether the compiled accelerator is in use.
ACCELERATED = mask is not mask_python
