"""``python -m tests.conformance.runner --jobs N``: peers tested at once (no kosoku run)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.conformance import runner

PEERS = [runner.Target(name, "server", ("true",), f"fake peer {name}") for name in "abc"]


def _fake_run_target(barrier: threading.Barrier | None, started: list[str]
                     ) -> Callable[..., runner.Run]:
    """A run_target that records the peer and, given a barrier, waits for the others."""
    def run_target(target: runner.Target, workdir: Path, include: Sequence[str] = (),
                   exclude: Sequence[str] = (), parallelism: int = 2) -> runner.Run:
        started.append(target.name)
        if barrier is not None:
            barrier.wait()  # every peer must be running at once to get past this
        return runner.Run(target, {"1.1.1": runner.Case("1.1.1", "OK", "OK", 1)})
    return run_target


def test_jobs_run_peers_at_once_in_order(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """With --jobs 3, three peers run together; the runs still come back in plan order."""
    barrier = threading.Barrier(len(PEERS), timeout=10)
    started: list[str] = []
    monkeypatch.setattr(runner, "run_target", _fake_run_target(barrier, started))
    log = io.StringIO()
    runs = runner.run_all(PEERS, tmp_path, reference=False, log=log, jobs=len(PEERS))
    assert [run.target.name for run in runs] == ["a", "b", "c"]
    assert sorted(started) == ["a", "b", "c"]
    assert all(run.passed for run in runs)
    # Lines of peers that ran at once say whose they are.
    assert "   a server: 1 cases in" in log.getvalue()


def test_one_job_runs_peers_in_turn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The default runs one peer at a time, in order (comparable 9.* durations)."""
    started: list[str] = []
    monkeypatch.setattr(runner, "run_target", _fake_run_target(None, started))
    runs = runner.run_all(PEERS, tmp_path, reference=False, log=None)
    assert started == ["a", "b", "c"]
    assert [run.target.name for run in runs] == ["a", "b", "c"]
