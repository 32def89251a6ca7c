"""The Autobahn TestSuite (RFC 6455 §5-§7, §9 limits; RFC 7692), both roles, strict.

A case whose ``behavior`` or ``behaviorClose`` is anything but ``OK`` fails the
test (the few the suite marks ``INFORMATIONAL`` excepted).

The whole suite takes minutes per peer (12.* and 13.* echo 1000 compressed
messages per case), too long for every ``python -m pytest``: by default these
tests run a quick selection -- every case of groups 1-7 and 10, one case of
each 9.* subgroup and the first case of each 12.* and 13.* subgroup -- against
the asyncio and sync adapters. ``RFC6455_AUTOBAHN=full`` runs the whole suite
against every peer; ``.ci/run`` does that through ``python -m tests.conformance.runner``,
which also writes docs/conformance.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conformance import runner

pytestmark = [pytest.mark.slow, pytest.mark.interop, pytest.mark.timeout(3600)]

FULL = os.environ.get("RFC6455_AUTOBAHN", "") == "full"

QUICK = [
    *(f"{group}.*" for group in (1, 2, 3, 4, 5, 6, 7, 10)),
    # One per 9.* subgroup: big single frames, 4 MiB in 64-byte fragments
    # (9.3.1, 9.4.1), chopped writes, and the 1000-round-trip cases.
    *(f"9.{sub}.1" for sub in range(1, 9)),
    # 16-byte compressed messages: each payload type (12.*) and each
    # negotiated parameter set (13.*: no context takeover, window bits).
    *(f"12.{sub}.1" for sub in range(1, 6)),
    *(f"13.{sub}.1" for sub in range(1, 8)),
]

TARGETS = [t for t in runner.TARGETS if FULL or t.name in ("asyncio", "listener", "sync")]


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.label.replace(" ", "-"))
def test_autobahn_strict(target: runner.Target, tmp_path: Path) -> None:
    """Every selected Autobahn case is OK (RFC 6455 §5-§7 framing, UTF-8, closing; RFC 7692)."""
    run = runner.run_target(target, tmp_path, include=() if FULL else QUICK)
    assert not run.problems, run.problems
    assert run.cases, "kosoku reported no case"
    failures = [f"{c.id}: {c.behavior}/{c.behavior_close} {c.detail}" for c in run.failures()]
    assert not failures, "\n".join(failures)
