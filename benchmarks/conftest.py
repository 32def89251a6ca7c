"""pytest configuration for the benchmarks (collected only when asked: ``pytest benchmarks``).

``pyproject.toml`` runs pytest with ``--benchmark-disable``, so a plain run
executes each benchmark once as a correctness test; add ``--benchmark-enable``
to time them. This directory is not a package: its modules import each other
by name, the directory being on ``sys.path`` (pytest's default rootdir import).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
