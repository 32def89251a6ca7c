"""The fuzz suite in miniature (fuzz/): a few examples of each property per test run.

``python -m fuzz --minutes N`` runs the same properties with many more examples,
plus the coverage-guided atheris harnesses.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from fuzz import hostile
from fuzz.stateful import EnginePair


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
