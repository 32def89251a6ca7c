"""Masking of frame payloads (RFC 6455 §5.3).

``mask(data, key)`` XORs ``data`` with the 4-byte ``key`` repeated, and is its
own inverse. This module holds the pure-Python implementation; an optional
compiled accelerator replaces it when available (see ``_speedups``).
"""

from __future__ import annotations

import os

__all__ = ["mask", "mask_python"]


def mask_python(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with ``key`` repeated; one big-integer XOR, the fastest pure-Python way.

    Converting both operands to integers lets CPython XOR machine words in C
    instead of looping over bytes in Python.
    """
    size = len(data)
    if size == 0:
        return b""
    repeated = key * (size >> 2) + key[: size & 3]
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(size, "little")


mask = mask_python

if not os.environ.get("RFC6455_NO_EXTENSIONS"):
    try:
        from ._speedups import mask as _c_mask  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover - depends on the build
        pass
    else:  # pragma: no cover - depends on the build
        mask = _c_mask
