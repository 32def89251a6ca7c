"""The Autobahn TestSuite (RFC 6455 §5-§7, §9 limits; RFC 7692), both roles, strict.

Each peer runs the whole suite through kosoku; a case whose ``behavior`` or
``behaviorClose`` is anything but ``OK`` fails the test (the few the suite marks
``INFORMATIONAL`` excepted). ``python -m tests.conformance.runner --write-doc
docs/conformance.md`` runs the same thing and regenerates the summary.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance import runner

pytestmark = [pytest.mark.slow, pytest.mark.interop, pytest.mark.timeout(1800)]


@pytest.mark.parametrize("target", runner.TARGETS, ids=lambda t: t.label.replace(" ", "-"))
def test_autobahn_strict(target: runner.Target, tmp_path: Path) -> None:
    """Every Autobahn case is OK (RFC 6455 §5-§7 framing, UTF-8, closing; RFC 7692)."""
    run = runner.run_target(target, tmp_path)
    assert not run.problems, run.problems
    assert run.cases, "kosoku reported no case"
    failures = [f"{c.id}: {c.behavior}/{c.behavior_close} {c.detail}" for c in run.failures()]
    assert not failures, "\n".join(failures)
