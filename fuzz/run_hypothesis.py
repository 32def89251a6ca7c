"""Run every hypothesis property and the state machine round-robin for a time budget.

``python -m fuzz.run_hypothesis SECONDS`` prints one JSON line: examples per
property, state-machine runs and steps, and the failures (with hypothesis'
own report of the minimal falsifying example above it on stderr).
"""

from __future__ import annotations

import json
import sys
import time
import traceback

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from . import hostile, stateful

__all__ = ["run"]


def run(seconds: float, batch: int = 100) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    failures: dict[str, str] = {}
    names = ["state_machine", *hostile.PROPERTIES]
    while time.monotonic() < deadline and len(failures) < len(names):
        for name in names:
            if name in failures or time.monotonic() >= deadline:
                continue
            try:
                if name == "state_machine":
                    run_state_machine_as_test(stateful.EnginePair, settings=settings(
                        max_examples=batch // 4, stateful_step_count=50, deadline=None,
                        database=None, suppress_health_check=list(HealthCheck)))
                else:
                    hostile.build(name, batch)()
            except Exception as exc:  # a finding: keep going with the others
                traceback.print_exc()
                failures[name] = f"{type(exc).__name__}: {exc}"[:2000]
    return {"examples": dict(hostile.COUNTS), "state_machine": dict(stateful.COUNTS),
            "failures": failures}


if __name__ == "__main__":
    result = run(float(sys.argv[1]))
    print(json.dumps(result))
    sys.exit(1 if result["failures"] else 0)
