"""The fuzz suite in miniature (fuzz/): a few examples of each property per test run.

``python -m fuzz --minutes N`` runs the same properties with many more examples,
plus the coverage-guided atheris harnesses.
"""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from fuzz import hostile
from fuzz.common import build_frame, drive, open_server
from fuzz.stateful import EnginePair
from rfc6455 import Limits


def test_engine_pair_state_machine_rfc6455_5_to_7() -> None:
    """§5.4, §5.5.2, §7.1: messages in order, pings answered, closes matched, any split."""
    run_state_machine_as_test(EnginePair, settings=settings(
        max_examples=40, stateful_step_count=30, deadline=None, database=None,
        suppress_health_check=list(HealthCheck)))


@pytest.mark.parametrize("name", sorted(hostile.PROPERTIES))
def test_hostile_input_property(name: str) -> None:
    """§4, §5, §7.4.1, RFC 7692 §7.2: hostile bytes give events, a documented error,
    or a close with a sendable code, within the limits (docstrings in fuzz/hostile.py)."""
    hostile.build(name, 60)()


# ------------------------------------------------------------------ memory under length lies

def _peak_while(feed: Callable[[], None]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        feed()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _masked(opcode: int, payload: bytes, *, length: int | None = None, fin: bool = True,
            rsv: int = 0) -> bytes:
    return build_frame(opcode, payload, key=b"\x00\x00\x00\x00", length=length, fin=fin,
                       rsv=rsv)


def test_64bit_length_lie_fails_at_the_header_rfc6455_5_2_and_10_4() -> None:
    """§10.4: a frame announcing 2**62 bytes is refused (1009) before any payload is held."""
    server = open_server()
    header = _masked(2, b"", length=2**62)
    chunk = b"\x00" * 65536

    def feed() -> None:
        outcome = drive(server, [header] + [chunk] * 32, eof=False, limits=Limits(),
                        streaming=False)
        assert outcome.closed is not None and outcome.closed.code == 1009

    assert _peak_while(feed) < 512 * 1024


def test_streamed_huge_frame_stays_bounded_rfc6455_5_4() -> None:
    """§5.4 / §10.4: with no message limit, streaming passes 4 MiB through in pieces."""
    limits = Limits(max_message_size=None)
    server = open_server(limits=limits, streaming=True)
    header = _masked(2, b"", length=2**40)  # the key is zero: payload goes through as is
    chunk = b"\x01" * 65536

    def feed() -> None:
        outcome = drive(server, [header] + [chunk] * 64, eof=False, limits=limits,
                        streaming=True, keep_data=False)
        assert outcome.closed is None
        assert outcome.data_bytes == 64 * 65536

    # Each piece is delivered as it arrives: the peak is a few chunks, not 4 MiB.
    assert _peak_while(feed) < 1024 * 1024


def test_fragment_flood_stops_at_the_message_limit_rfc6455_5_4() -> None:
    """§5.4: 16-bit fragments keep coming; the message is refused (1009) past 256 KiB."""
    limits = Limits(max_message_size=256 * 1024, max_fragments=None)
    server = open_server(limits=limits)
    first = _masked(2, b"\x02" * 65535, fin=False)
    more = _masked(0, b"\x02" * 65535, fin=False)

    def feed() -> None:
        outcome = drive(server, [first] + [more] * 20, eof=False, limits=limits,
                        streaming=False)
        assert outcome.closed is not None and outcome.closed.code == 1009

    assert _peak_while(feed) < 4 * 256 * 1024


def test_deflate_bomb_stops_at_the_message_limit_rfc7692_8() -> None:
    """RFC 7692 §8.1 (security): 64 MiB of zeros in ~64 KiB of deflate never inflates past
    the 1 MiB message limit (1009)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * (64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    frame = _masked(2, bomb[:-4], rsv=0x40)
    limits = Limits(max_message_size=1 << 20)
    server = open_server(deflate=True, limits=limits)

    def feed() -> None:
        outcome = drive(server, [frame[i:i + 4096] for i in range(0, len(frame), 4096)],
                        eof=False, limits=limits, streaming=False)
        assert outcome.closed is not None and outcome.closed.code == 1009

    assert _peak_while(feed) < 4 * (1 << 20) + len(frame)
