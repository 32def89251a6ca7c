"""``python -m fuzz --minutes N``: the whole fuzz suite for a time budget.

1. hypothesis: the client/server state machine and the hostile-input
   properties (fuzz/stateful.py, fuzz/hostile.py), round-robin, under coverage;
2. atheris, coverage-guided, one subprocess per harness (frame parser with a
   C-versus-Python differential, handshake parsers, inflater), each starting
   from the seed corpus of fuzz/make_corpus.py;
3. the corpora grown by atheris replayed under coverage.

Prints inputs tried per harness, coverage per engine module, and every
failure; exits 1 when anything failed. Artifacts go to ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .make_corpus import write_corpus

HARNESSES = {"frames": 0.5, "handshake": 0.25, "inflate": 0.25}  # share of atheris time
HYPOTHESIS_SHARE = 0.4
ENGINE_MODULES = ["_core.py", "connection.py", "handshake.py", "frames.py", "headers.py",
                  "events.py", "errors.py", "_mask.py", "uri.py", "extensions/base.py",
                  "extensions/permessage_deflate.py"]
ROOT = Path(__file__).resolve().parent.parent


def _coverage(data_file: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "coverage", "run", f"--data-file={data_file}",
            "--source=rfc6455", "--branch", "-m", *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="total time budget")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="corpora, crashes and coverage data (default: a temp dir)")
    parser.add_argument("--only", choices=["hypothesis", *HARNESSES], action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="rfc6455-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    budget = args.minutes * 60
    parts = args.only or ["hypothesis", *HARNESSES]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    failed: list[str] = []
    summary: list[str] = []
    print(f"fuzzing for {args.minutes:g} min; artifacts in {work}", flush=True)

    # The shares of the parts not run go to the others.
    shares = {"hypothesis": HYPOTHESIS_SHARE,
              **{h: (1 - HYPOTHESIS_SHARE) * s for h, s in HARNESSES.items()}}
    total_share = sum(shares[p] for p in parts)
    seconds = {p: budget * shares[p] / total_share for p in parts}

    if "hypothesis" in parts:
        start = time.monotonic()
        proc = subprocess.run(
            _coverage(work / ".coverage.hypothesis", "fuzz.run_hypothesis",
                      str(seconds["hypothesis"] * 0.9)),  # shrinking a failure takes time too
            cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - start
        sys.stderr.write(proc.stderr[-20000:])
        lines = proc.stdout.strip().splitlines()
        try:
            result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            result = {"examples": {}, "state_machine": {}, "failures": {"run": proc.stdout}}
        machine = result["state_machine"]
        examples = result["examples"]
        summary.append(f"hypothesis  {elapsed:7.0f} s  state machine: {machine.get('runs', 0)} "
                       f"runs, {machine.get('steps', 0)} steps; properties: "
                       + ", ".join(f"{k} {v}" for k, v in examples.items()))
        for name, text in result["failures"].items():
            failed.append(f"hypothesis {name}: {text}")

    if any(h in parts for h in HARNESSES):
        corpora = write_corpus(work / "corpus")
        crashes = work / "crashes"
        crashes.mkdir(exist_ok=True)
    for harness in HARNESSES:
        if harness not in parts:
            continue
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"fuzz.harness_{harness}", str(corpora[harness]),
             f"-max_total_time={max(1, int(seconds[harness]))}", "-timeout=20",
             "-rss_limit_mb=2048", "-print_final_stats=1",
             f"-artifact_prefix={crashes}/{harness}-"],
            cwd=ROOT, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - start
        runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr) or \
            re.findall(r"Done (\d+) runs", proc.stderr)
        cov = re.findall(r"cov: (\d+) ft: (\d+)", proc.stderr)
        summary.append(f"atheris {harness:<10}{elapsed:5.0f} s  {runs[-1] if runs else '?'} "
                       f"inputs, corpus {len(list(corpora[harness].iterdir()))} files, "
                       f"libFuzzer cov {cov[-1][0] if cov else '?'} edges")
        if proc.returncode != 0:
            tail = "\n".join(line for line in proc.stderr.splitlines()
                             if not line.startswith(("INFO", "#", "WARNING", '"')))[-4000:]
            sys.stderr.write(tail + "\n")
            failed.append(f"atheris {harness}: exit {proc.returncode}, artifacts in {crashes}")
        # Coverage of what the fuzzer reached: replay its corpus (plain Python).
        subprocess.run(_coverage(work / f".coverage.{harness}", "fuzz.replay", harness,
                                 str(corpora[harness])),
                       cwd=ROOT, env=env, capture_output=True, text=True)

    data = work / ".coverage"
    subprocess.run([sys.executable, "-m", "coverage", "combine", f"--data-file={data}",
                    *map(str, work.glob(".coverage.*"))],
                   cwd=ROOT, env=env, capture_output=True, text=True)
    include = ",".join(str(ROOT / "rfc6455" / m) for m in ENGINE_MODULES)
    # --fail-under=0: the floor in pyproject.toml is the whole suite's; a fuzz run reports
    # what it reached and fails only on a crash or a broken property.
    report = subprocess.run([sys.executable, "-m", "coverage", "report", "--fail-under=0",
                             f"--data-file={data}", f"--include={include}"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    print("\n".join(summary))
    print("coverage of the engine modules (lines and branches, pure Python):")
    print(report.stdout.replace(str(ROOT) + os.sep, ""))
    if failed:
        print("FAILURES:\n  " + "\n  ".join(failed))
        return 1
    print("no failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
