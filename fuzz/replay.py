"""Replay an atheris corpus without atheris, for coverage measurement and triage.

``python -m fuzz.replay HARNESS DIR...`` runs ``TestOneInput`` of
``fuzz.harness_HARNESS`` on every file and prints how many raised.
"""

from __future__ import annotations

import importlib
import sys
import traceback
import types
from pathlib import Path

__all__ = ["replay"]


def _load(harness: str) -> types.ModuleType:
    # The harnesses import atheris for instrumentation only: replaying needs none,
    # and plain bytecode keeps coverage's line numbers exact.
    stub = types.ModuleType("atheris")
    stub.instrument_imports = lambda **_: _Null()  # type: ignore[attr-defined]
    sys.modules["atheris"] = stub
    return importlib.import_module(f"fuzz.harness_{harness}")


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def replay(harness: str, paths: list[Path]) -> tuple[int, int]:
    """(inputs run, inputs that raised) for every file under ``paths``."""
    module = _load(harness)
    ran = failed = 0
    for root in paths:
        files = sorted(root.iterdir()) if root.is_dir() else [root]
        for path in files:
            ran += 1
            try:
                module.TestOneInput(path.read_bytes())
            except Exception:
                failed += 1
                print(f"--- {path}", file=sys.stderr)
                traceback.print_exc()
    return ran, failed


if __name__ == "__main__":
    ran, failed = replay(sys.argv[1], [Path(p) for p in sys.argv[2:]])
    print(f"{sys.argv[1]}: replayed {ran} inputs, {failed} raised")
    sys.exit(1 if failed else 0)
