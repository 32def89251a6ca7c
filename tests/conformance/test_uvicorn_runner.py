"""The uvicorn Autobahn runner's command lines and its section of docs/conformance.md.

No network here: the run itself is a step of ``.ci/run`` (``python -m
tests.conformance.uvicorn_runner --ws ours``), held to ``runner``'s strict bar.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conformance import runner, uvicorn_runner


def _run(ws: str, verdicts: dict[str, tuple[str, str]]) -> runner.Run:
    cases = {i: runner.Case(i, b, c, 5) for i, (b, c) in verdicts.items()}
    return runner.Run(uvicorn_runner.target(ws), cases)


def test_targets_judge_ours_and_report_the_others() -> None:
    """Ours is held to the strict bar; websockets-sansio and wsproto are only reported."""
    ours = uvicorn_runner.target("ours")
    assert not ours.reference
    at = ours.command.index("--ws")
    assert ours.command[at + 1] == "asgi_echo:CompressAll"
    assert "-P" in ours.command  # no working directory on sys.path: PYTHONPATH decides
    assert uvicorn_runner.target("wsproto").reference
    assert uvicorn_runner.target("websockets-sansio").reference
    # 9.* sends 16 MiB messages: the limit is above them.
    size = int(ours.command[ours.command.index("--ws-max-size") + 1])
    assert size > 16 * 1024 * 1024


def test_section_counts_and_lists_our_cases_not_ok() -> None:
    ours = _run("ours", {"1.1.1": ("OK", "OK"), "7.1.6": ("INFORMATIONAL", "INFORMATIONAL")})
    peer = _run("wsproto", {"1.1.1": ("OK", "OK"), "6.4.1": ("NON-STRICT", "OK")})
    section = uvicorn_runner.render_section([ours, peer], "cmd")
    assert section.startswith(uvicorn_runner.BEGIN) and section.rstrip().endswith(
        uvicorn_runner.END)
    assert "| uvicorn-rfc6455 | 2 | 1 | 1 | 0 | 0 | 0 | 0 | - | PASS |" in section
    assert "| uvicorn-wsproto | 2 | 1 | 0 | 1 | 0 | 0 | 0 | - | reported |" in section
    assert "- uvicorn-wsproto: 6.*: 1 NON-STRICT." in section
    assert "  - 7.1.6: INFORMATIONAL / INFORMATIONAL" in section
    failing = _run("ours", {"1.1.1": ("OK", "OK"), "6.4.1": ("NON-STRICT", "OK")})
    assert "| FAIL |" in uvicorn_runner.render_section([failing], "cmd")


def test_section_survives_both_runners_rewriting_the_file(tmp_path: Path) -> None:
    """uvicorn_runner replaces its own section only; runner keeps it when it rewrites."""
    doc = tmp_path / "conformance.md"
    doc.write_text("# Autobahn TestSuite conformance\n\nrunner's part\n")
    first = uvicorn_runner.render_section([_run("ours", {"1.1.1": ("OK", "OK")})], "first")
    uvicorn_runner.write_section(doc, first)
    second = uvicorn_runner.render_section([_run("ours", {"2.1": ("OK", "OK")})], "second")
    uvicorn_runner.write_section(doc, second)
    text = doc.read_text()
    assert text.startswith("# Autobahn TestSuite conformance\n\nrunner's part\n\n")
    assert text.count(uvicorn_runner.BEGIN) == 1 and "`second`" in text and "`first`" not in text
    # What runner.main writes: its freshly rendered part, then the kept sections.
    rewritten = "# regenerated\n" + runner.kept_sections(doc)
    assert rewritten.endswith(second) and "runner's part" not in rewritten
    assert runner.kept_sections(tmp_path / "absent.md") == ""


def test_kept_reports_are_judged_as_a_fresh_run(tmp_path: Path) -> None:
    """--from-reports: the verdicts of a kept run, and a missing case is a failure."""
    name = uvicorn_runner.target("ours").name
    outdir = tmp_path / "ours" / f"{name}-server-main"
    outdir.mkdir(parents=True)
    index = {"1.1.1": {"behavior": "OK", "behaviorClose": "OK", "duration": 3,
                       "remoteCloseCode": 1000, "reportfile": "r.json"}}
    (outdir / "index.json").write_text(json.dumps({"uvicorn": index}))
    run = uvicorn_runner.load_run("ours", [tmp_path / "absent", tmp_path], include=["1.1.1"])
    assert run is not None and run.passed and list(run.cases) == ["1.1.1"]
    short = uvicorn_runner.load_run("ours", [tmp_path], include=["1.1.1", "1.1.2"])
    assert short is not None and not short.passed
    assert short.problems == ["no verdict for 1 case(s): 1.1.2"]
    assert uvicorn_runner.load_run("wsproto", [tmp_path]) is None


def test_a_kosoku_that_never_finishes_is_a_problem_of_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch over KOSOKU_TIMEOUT fails that run (no traceback ending the runner)."""
    import sys

    monkeypatch.setattr(runner, "KOSOKU", [sys.executable, "-c", "import time; time.sleep(30)"])
    monkeypatch.setattr(runner, "KOSOKU_TIMEOUT", 0.5)
    server = runner.Target("sleeper", "server", (sys.executable, "-c",
                           "import time; print('PORT 1', flush=True); time.sleep(30)"),
                           "a server that announces a port")
    run = runner.run_server(server, tmp_path, include=["1.1.1"])
    assert run.problems == ["kosoku did not finish the main batch in 0 s"]
    assert not run.passed
