"""The conformance runner's judgement of kosoku reports (no network, no kosoku run).

The strict bar of the Autobahn TestSuite (RFC 6455, RFC 7692 conformance):
anything but OK fails, INFORMATIONAL is allowed, a case without a verdict fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conformance import runner

TARGET = runner.Target("demo", "server", ("true",), "a fake peer")


def _write_reports(outdir: Path, verdicts: dict[str, tuple[str, str]]) -> None:
    """An index.json and per-case reports laid out as kosoku writes them."""
    outdir.mkdir()
    index: dict[str, dict[str, object]] = {}
    for case_id, (behavior, close) in verdicts.items():
        report = f"demo_case_{case_id.replace('.', '_')}.json"
        index[case_id] = {"behavior": behavior, "behaviorClose": close, "duration": 7,
                          "remoteCloseCode": 1000, "reportfile": report}
        (outdir / report).write_text(json.dumps(
            {"result": f"result of {case_id}", "resultClose": "closed"}))
    (outdir / "index.json").write_text(json.dumps({"demo": index}))


def test_strict_bar_rfc6455_conformance(tmp_path: Path) -> None:
    """Only OK passes; INFORMATIONAL is allowed; NON-STRICT and bad closes fail."""
    _write_reports(tmp_path / "r", {
        "1.1.1": ("OK", "OK"),
        "7.1.6": ("INFORMATIONAL", "INFORMATIONAL"),
        "6.4.1": ("NON-STRICT", "OK"),
        "7.9.1": ("OK", "WRONG CODE"),
        "12.1.1": ("UNIMPLEMENTED", "OK"),
        "9.1.1": ("OK", "OK"),
    })
    run = runner.Run(TARGET, runner.read_reports(tmp_path / "r"))
    assert [c.id for c in run.failures()] == ["6.4.1", "7.9.1", "12.1.1"]
    assert [c.id for c in run.informational()] == ["7.1.6"]
    assert run.cases["7.9.1"].category == "FAILED"
    assert run.cases["6.4.1"].detail == "result of 6.4.1 -- closed"
    assert run.cases["1.1.1"].detail == ""
    assert not run.passed
    counts = run.counts_by_group()
    assert list(counts) == ["1", "6", "7", "9", "12"]  # numeric order, not text order
    assert counts["7"] == {"INFORMATIONAL": 1, "FAILED": 1}
    assert run.performance_ms() == 7


def test_missing_verdict_fails_rfc6455_conformance(tmp_path: Path) -> None:
    """A selected case that got no verdict (a crashed peer) fails the run."""
    _write_reports(tmp_path / "r", {"1.1.1": ("OK", "OK")})
    run = runner.Run(TARGET, runner.read_reports(tmp_path / "r"))
    assert run.passed
    runner.check_complete(run, ["1.1.1", "1.1.2"])
    assert not run.passed
    assert "1.1.2" in run.problems[0]


def test_summary_lists_every_non_ok_case_rfc6455_conformance(tmp_path: Path) -> None:
    """docs/conformance.md: counts per group, every non-OK case, the 9.* durations."""
    _write_reports(tmp_path / "r", {"2.1": ("OK", "OK"), "9.1.1": ("FAILED", "FAILED")})
    run = runner.Run(TARGET, runner.read_reports(tmp_path / "r"))
    text = runner.render([run], "python -m tests.conformance.runner")
    assert "| 2 Pings/Pongs | 1 | 0 | 0 | 0 | 0 |" in text
    assert "demo server, 9.1.1: FAILED / FAILED" in text
    assert "| 9.1.1 | 7 (FAILED) |" in text
    assert "| demo | server | a fake peer | 2 |" in text and "FAIL |" in text


def test_performance_group_runs_alone() -> None:
    """9.* runs in a batch of its own, one case at a time, whatever the selection."""
    assert runner._batches((), (), 4) == [("main", [], ["9.*"], 4),
                                          ("performance", ["9.*"], [], 1)]
    assert runner._batches(["9.1.1"], (), 4) == [("performance", ["9.1.1"], [], 1)]
    assert runner._batches(["1.*"], (), 4) == [("main", ["1.*"], ["9.*"], 4)]
    assert runner._batches(["*"], ["2.*"], 4) == [("main", ["*"], ["2.*", "9.*"], 4),
                                                  ("performance", ["9.*"], ["2.*"], 1)]
