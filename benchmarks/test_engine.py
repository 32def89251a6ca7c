"""Engine benchmarks: parse and serialize, small and large, both roles, plain and compressed.

Run ``pytest benchmarks --benchmark-enable`` to time them; without the flag each
runs once and checks its result. ``benchmarks/compare.py`` runs the same
workloads against websockets, wsproto, aiohttp and picows.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_workloads import (
    LARGE_SIZE,
    parse_workload,
    rfc6455_parser,
    rfc6455_serializer,
    serialize_workload,
    unmask_inputs,
)

from rfc6455._mask import mask, mask_inplace, mask_python

ROLES = ["server", "client"]


def _info(benchmark: Any, messages: int, payload_bytes: int) -> None:
    benchmark.extra_info["messages"] = messages
    benchmark.extra_info["payload_bytes"] = payload_bytes


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ["small", "large", "large64k"])
def test_parse(benchmark: Any, name: str, role: str) -> None:
    """§5.2 framing: masked frames parsed by the server, unmasked ones by the client."""
    workload = parse_workload(name, role)
    _info(benchmark, workload.messages, workload.payload_bytes)
    assert benchmark(rfc6455_parser(workload)) == workload.messages


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ["small", "large"])
def test_serialize(benchmark: Any, name: str, role: str) -> None:
    """§5.2 framing: the client masks (§5.3), the server does not."""
    workload = serialize_workload(name, role)
    _info(benchmark, workload.messages, workload.payload_bytes)
    header = 2 if name == "small" else 10
    per_frame = header + (4 if role == "client" else 0)
    expected = workload.payload_bytes + per_frame * workload.messages
    assert benchmark(rfc6455_serializer(workload)) == expected


@pytest.mark.parametrize("role", ROLES)
def test_parse_deflate(benchmark: Any, role: str) -> None:
    """RFC 7692: 10,000 compressed 1 KiB text messages."""
    workload = parse_workload("deflate", role)
    _info(benchmark, workload.messages, workload.payload_bytes)
    assert benchmark(rfc6455_parser(workload)) == workload.messages


@pytest.mark.parametrize("role", ROLES)
def test_serialize_deflate(benchmark: Any, role: str) -> None:
    """RFC 7692 §7.2.1: 10,000 text messages of 1 KiB compressed (zlib level 1)."""
    workload = serialize_workload("deflate", role)
    _info(benchmark, workload.messages, workload.payload_bytes)
    produced = benchmark(rfc6455_serializer(workload))
    # Compressible text: well under the plain size (about 2 bytes of header each).
    assert 0 < produced < workload.payload_bytes // 2


@pytest.mark.parametrize("impl", ["selected", "python"])
def test_unmask_1mib(benchmark: Any, impl: str) -> None:
    """§5.3 masking of 1 MiB: the implementation in use, and the pure-Python one."""
    data, key = unmask_inputs()
    function = mask if impl == "selected" else mask_python
    _info(benchmark, 1, LARGE_SIZE)
    result = benchmark(function, data, key)
    assert len(result) == LARGE_SIZE
    assert function(result, key) == data


def test_unmask_1mib_in_place(benchmark: Any) -> None:
    """§5.3 masking of 1 MiB in place (a writable receive buffer)."""
    data, key = unmask_inputs()
    buffer = bytearray(data)
    _info(benchmark, 1, LARGE_SIZE)
    benchmark(mask_inplace, buffer, key)
    # Applied an odd or even number of times: either way it is data or its mask.
    assert bytes(buffer) in (data, mask_python(data, key))
