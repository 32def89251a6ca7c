"""Smoke run of ``benchmarks/asgi.py``: every ``--ws`` protocol under uvicorn, both apps.

Each server (``python -m uvicorn`` on uvloop and httptools) runs the whole
measurement once with tiny counts: the echo workloads must get every reply back
byte for byte (``servers.echo_run`` raises otherwise), the idle connections must
stay open, and the figures must be real measurements (positive CPU time).
"""

from __future__ import annotations

import pytest
from asgi import APPS, COLUMNS, OURS, PROTOCOLS, measure, report
from servers import Sizes

TINY = Sizes(pingpong=50, small=300, medium=100, large=4, idle=20, clients=0, rounds=0)


@pytest.mark.parametrize("app", list(APPS))
@pytest.mark.parametrize("ws", list(PROTOCOLS))
def test_echo_under_uvicorn(app: str, ws: str) -> None:
    """RFC 6455 §5.2 echo through uvicorn: every message back as one unmasked frame."""
    values = measure(app, ws, TINY)
    assert set(values) >= set(COLUMNS)
    for column in COLUMNS:
        if column != "idle KiB/conn":  # RSS may not grow for 20 connections (pages reused)
            assert values[column] > 0, column


def test_report_has_a_row_per_workload_and_ratios_to_each_peer() -> None:
    rows = {ws: dict.fromkeys(COLUMNS, 10.0) for ws in PROTOCOLS}
    rows[OURS] = dict.fromkeys(COLUMNS, 5.0)
    lines = report(rows, list(PROTOCOLS))
    assert len(lines) == 2 + len(COLUMNS)
    assert lines[0].count(f"{OURS} / ") == len(PROTOCOLS) - 1
    for line in lines[2:]:
        assert line.rstrip(" |").endswith("0.50 | 0.50")
