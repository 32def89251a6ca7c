"""Run the Autobahn TestSuite (through ``kosoku``) against our peers, both roles.

Server role: start an echo server, point ``kosoku -m fuzzingclient`` at it.
Client role: start ``kosoku -m fuzzingserver`` and drive it with an echo client.
Then read each ``index.json``, count every case group's verdicts, and fail on any
case that is not strictly ``OK`` -- ``NON-STRICT``, ``UNIMPLEMENTED``, ``FAILED``
and a closing verdict other than ``OK`` all count as failures; the few cases
the suite itself marks ``INFORMATIONAL`` are allowed and listed.

The 9.* cases (large messages, many fragments, many round trips) double as a
speed test: they run one at a time, and the same 9.* run against the
``websockets`` library's server gives the reference figure.

    python -m tests.conformance.runner                      # both adapters, exit 1 on a failure
    python -m tests.conformance.runner --write-doc docs/conformance.md
    python -m tests.conformance.runner --target standin -i '5.*'
    python -m tests.conformance.runner --jobs 4             # four peers at a time (.ci/run)

Peers run one after the other by default, so that the 9.* durations written to
docs/conformance.md are comparable. Most of a run is waiting on kosoku (a 12.* case
takes seconds of wall time for a fraction of one of CPU), so ``--jobs N`` runs N peers
at once: every server and kosoku listens on a port the system picks, and each peer's
reports go to a directory of its own, so nothing is shared between them.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
KOSOKU = [PYTHON, "-c", "from kosoku._cli import main; main()"]

#: Verdict columns, best first; a case's category is the worse of its two verdicts.
CATEGORIES = ("OK", "INFORMATIONAL", "NON-STRICT", "UNIMPLEMENTED", "FAILED", "ERROR")
ALLOWED = frozenset({"OK", "INFORMATIONAL"})
# behaviorClose has its own failure labels (WRONG CODE, UNCLEAN, FAILED BY CLIENT...).
_CLOSE_CATEGORY = {"OK": "OK", "INFORMATIONAL": "INFORMATIONAL"}

SERVER_START_TIMEOUT = 20.0
KOSOKU_TIMEOUT = 1200.0
PERFORMANCE_GROUP = "9"


# ------------------------------------------------------------------ targets

@dataclass(frozen=True)
class Target:
    """A peer under test: how to start it, and whether our strict bar applies.

    A server's command prints ``PORT <n>`` once it listens; a client's command
    gets the fuzzing server's URL and an agent name as its last two arguments.
    """

    name: str
    role: str  # "server" (kosoku drives it) or "client" (it drives kosoku)
    command: tuple[str, ...]
    description: str
    reference: bool = False  # a third-party peer: measured and shown, not judged
    default: bool = True  # run when no --target is given
    #: Where the server announces its port: (stdout or stderr, regex with the port as group 1).
    announce: tuple[str, str] = ("stdout", r"PORT (\d+)")
    #: Cases this peer cannot take part in, with the reason (shown in the summary).
    exclude: tuple[str, ...] = ()
    exclude_reason: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} {self.role}"


def _module(name: str, *args: str) -> tuple[str, ...]:
    return (PYTHON, "-m", name, *args)


# The peers' message size limit (Autobahn 9.* sends 16 MiB messages).
_MAX_SIZE = 16 * 1024 * 1024 + 1024


TARGETS: tuple[Target, ...] = (
    Target("asyncio", "server", _module("tests.conformance.peers", "asyncio-server"),
           "`rfc6455.asyncio.serve` echo handler"),
    Target("listener", "server", _module("tests.conformance.peers", "listener-server"),
           "`rfc6455.asyncio.serve_listener` echo callback"),
    Target("sync", "server", _module("tests.conformance.peers", "sync-server"),
           "`rfc6455.sync.serve` echo handler"),
    *(Target(f"cli-{backend}", "server",
             _module("rfc6455", "echo", "--backend", backend, "--port", "0",
                     "--max-size", str(_MAX_SIZE), "--max-fragments", "none",
                     "--ping-interval", "none"),
             f"`python -m rfc6455 echo --backend {backend}` (the reference server)",
             announce=("stderr", r"listening on wss?://[^ ]*:(\d+)/"),
             exclude=("12.*", "13.*"),
             exclude_reason="the CLI sends messages under 128 bytes uncompressed (its "
             "default --compression-threshold) and kosoku 0.1.0 ERRORs on those although "
             "RFC 7692 §6 allows them; 12.* and 13.* run against the same adapters above")
      for backend in ("asyncio", "sync")),
    Target("standin", "server", _module("tests.conformance.standin", "server"),
           "engine driven directly, a thread per connection (tests/conformance/standin.py)",
           default=False),
    Target("asyncio", "client", _module("tests.conformance.peers", "asyncio-client"),
           "`rfc6455.asyncio.connect` echo loop"),
    Target("sync", "client", _module("tests.conformance.peers", "sync-client"),
           "`rfc6455.sync.connect` echo loop"),
    Target("standin", "client", _module("tests.conformance.standin", "client"),
           "engine driven directly over a blocking socket (tests/conformance/standin.py)",
           default=False),
)
REFERENCE = Target("websockets", "server", _module("tests.conformance.peers", "websockets-server"),
                   "websockets library, asyncio server", reference=True)


# ------------------------------------------------------------------ results

@dataclass(frozen=True)
class Case:
    """One case's verdicts as kosoku reported them."""

    id: str
    behavior: str
    behavior_close: str
    duration_ms: int
    detail: str = ""
    remote_close_code: int | None = None

    @property
    def key(self) -> tuple[int, ...]:
        return case_key(self.id)

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def category(self) -> str:
        """The worse of the two verdicts; any closing verdict but OK/INFORMATIONAL fails."""
        close = _CLOSE_CATEGORY.get(self.behavior_close, "FAILED")
        behavior = self.behavior if self.behavior in CATEGORIES else "ERROR"
        return max(behavior, close, key=CATEGORIES.index)


@dataclass
class Run:
    """All cases of one target in one role, and what it took."""

    target: Target
    cases: dict[str, Case] = field(default_factory=dict)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)  # runner-level trouble (crash, timeout)

    def sorted_cases(self) -> list[Case]:
        return sorted(self.cases.values(), key=lambda c: c.key)

    def failures(self) -> list[Case]:
        return [c for c in self.sorted_cases() if c.category not in ALLOWED]

    def informational(self) -> list[Case]:
        return [c for c in self.sorted_cases() if c.category == "INFORMATIONAL"]

    def counts_by_group(self) -> dict[str, Counter[str]]:
        groups: dict[str, Counter[str]] = {}
        for case in self.sorted_cases():
            groups.setdefault(case.group, Counter())[case.category] += 1
        return groups

    def performance_ms(self) -> int:
        return sum(c.duration_ms for c in self.cases.values() if c.group == PERFORMANCE_GROUP)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and not self.problems and not self.failures()


def case_key(case_id: str) -> tuple[int, ...]:
    """Numeric order: 1.2.10 after 1.2.9."""
    return tuple(int(part) for part in case_id.split("."))


def read_reports(outdir: Path) -> dict[str, Case]:
    """Parse kosoku's ``index.json`` (``{agent: {case: {behavior, behaviorClose, ...}}}``).

    For a case that is not OK, kosoku's explanation comes from its own report file.
    """
    with open(outdir / "index.json", encoding="utf-8") as f:
        index = json.load(f)
    cases: dict[str, Case] = {}
    for per_agent in index.values():
        for case_id, entry in per_agent.items():
            detail = ""
            if entry["behavior"] != "OK" or entry["behaviorClose"] != "OK":
                with contextlib.suppress(OSError, ValueError), \
                        open(outdir / entry["reportfile"], encoding="utf-8") as f:
                    report = json.load(f)
                    detail = f"{report.get('result')} -- {report.get('resultClose')}"
            cases[case_id] = Case(case_id, entry["behavior"], entry["behaviorClose"],
                                  int(entry.get("duration") or 0), detail,
                                  entry.get("remoteCloseCode"))
    return cases


# ------------------------------------------------------------------ processes

@contextlib.contextmanager
def _process(command: Sequence[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """A child in its own process group, ended (by its group id) on exit."""
    proc = subprocess.Popen(command, cwd=ROOT, text=True, start_new_session=True, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()  # ours to close: an unclosed pipe is a ResourceWarning


def _wait_for_line(stream: IO[str], pattern: str, what: str) -> re.Match[str]:
    """Read the child's output until a line matches ``pattern`` (its port, typically)."""
    seen: list[str] = []
    for line in stream:
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    raise RuntimeError(f"{what} ended without announcing its port: {''.join(seen)[-2000:]!r}")


def _filters(include: Sequence[str], exclude: Sequence[str]) -> list[str]:
    args: list[str] = []
    for glob in include:
        args += ["-i", glob]
    for glob in exclude:
        args += ["-x", glob]
    return args


def _performance_selection(include: Sequence[str]) -> list[str]:
    """The part of the caller's selection that falls in group 9 (all of it by default)."""
    if not include:
        return [f"{PERFORMANCE_GROUP}.*"]
    return [f"{PERFORMANCE_GROUP}.*" if g == "*" else g
            for g in include if g.split(".")[0] == PERFORMANCE_GROUP or g == "*"]


def _batches(include: Sequence[str], exclude: Sequence[str],
             parallelism: int) -> list[tuple[str, list[str], list[str], int]]:
    """(name, include, exclude, parallelism): everything but 9.* at once, then 9.* alone."""
    performance = _performance_selection(include)
    batches = []
    if not include or set(include) - set(performance):
        batches.append(("main", list(include), [*exclude, f"{PERFORMANCE_GROUP}.*"],
                        parallelism))
    if performance:
        batches.append(("performance", performance, list(exclude), 1))
    return batches


def run_server(target: Target, workdir: Path, include: Sequence[str] = (),
               exclude: Sequence[str] = (), parallelism: int = 2) -> Run:
    """kosoku's fuzzing client against ``target``: 9.* one at a time, the rest in parallel.

    One case at a time keeps the 9.* durations comparable from run to run.
    """
    run = Run(target)
    started = time.monotonic()
    stream, pattern = target.announce
    pipes = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, stream: subprocess.PIPE}
    with _process(target.command, **pipes) as server:
        output = server.stdout if stream == "stdout" else server.stderr
        assert output is not None
        port = int(_wait_for_line(output, pattern, target.label).group(1))
        # Keep reading what the server prints, so that a full pipe never blocks it.
        threading.Thread(target=output.read, daemon=True).start()
        for name, inc, exc, par in _batches(include, exclude, parallelism):
            outdir = workdir / f"{target.name}-server-{name}"
            command = [*KOSOKU, "-m", "fuzzingclient", f"127.0.0.1:{port}", "-p", str(par),
                       "-o", str(outdir), *_filters(inc, exc)]
            # Exit status 1 only means "a case failed"; the reports are judged here.
            try:
                done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                      timeout=KOSOKU_TIMEOUT, check=False)
            except subprocess.TimeoutExpired:
                # A run's problem, not the runner's end: the other batches and peers
                # still run, and the missing verdicts fail this one (check_complete).
                run.problems.append(f"kosoku did not finish the {name} batch in "
                                    f"{KOSOKU_TIMEOUT:.0f} s")
                continue
            if (outdir / "index.json").exists():
                run.cases.update(read_reports(outdir))
            elif "0 cases" not in done.stdout + done.stderr:
                run.problems.append(f"kosoku wrote no report (exit {done.returncode}): "
                                    f"{done.stderr[-2000:]}")
        if server.poll() is not None:
            run.problems.append(f"the server exited during the run (status {server.returncode})")
    run.seconds = time.monotonic() - started
    return run


def _run_fuzzingserver(target: Target, outdir: Path, filters: list[str], parallelism: int,
                       problems: list[str]) -> None:
    """Start kosoku's fuzzing server and let ``target`` drive it through the selection."""
    command = [*KOSOKU, "-m", "fuzzingserver", "127.0.0.1:0", "-o", str(outdir), *filters]
    with _process(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as fuzzer:
        assert fuzzer.stderr is not None
        port = _wait_for_line(fuzzer.stderr, r"ws://[\d.]+:(\d+)", "kosoku").group(1)
        client_command = [*target.command, f"ws://127.0.0.1:{port}", target.name,
                          "--parallel", str(parallelism)]
        with _process(client_command, stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT) as client:
            try:
                output, _ = client.communicate(timeout=KOSOKU_TIMEOUT)
            except subprocess.TimeoutExpired:
                output = ""
                problems.append(f"the client did not finish in {KOSOKU_TIMEOUT:.0f} s")
            if client.returncode:
                problems.append(f"the client exited with status {client.returncode}: "
                                f"{(output or '')[-2000:]}")
        try:
            # kosoku writes its reports and exits once the client asked for them.
            fuzzer.wait(30)
        except subprocess.TimeoutExpired:
            problems.append("kosoku did not finish: the client never asked for /updateReports")


def run_client(target: Target, workdir: Path, include: Sequence[str] = (),
               exclude: Sequence[str] = (), parallelism: int = 2) -> Run:
    """``target`` drives kosoku's fuzzing server: 9.* one at a time, the rest in parallel."""
    run = Run(target)
    started = time.monotonic()
    for name, inc, exc, par in _batches(include, exclude, parallelism):
        outdir = workdir / f"{target.name}-client-{name}"
        _run_fuzzingserver(target, outdir, _filters(inc, exc), par, run.problems)
        if (outdir / "index.json").exists():
            run.cases.update(read_reports(outdir))
    run.seconds = time.monotonic() - started
    return run


def run_target(target: Target, workdir: Path, include: Sequence[str] = (),
               exclude: Sequence[str] = (), parallelism: int = 2) -> Run:
    """Run the selected cases against ``target`` and check that each got a verdict."""
    exclude = [*exclude, *target.exclude]
    if target.role == "server":
        run = run_server(target, workdir, include, exclude, parallelism)
    else:
        run = run_client(target, workdir, include, exclude, parallelism)
    check_complete(run, suite_cases(include, exclude))
    return run


def suite_cases(include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
    """The ids of the cases kosoku holds, as selected by the include/exclude globs.

    Asked in a child process: importing ``kosoku.cases`` puts the suite's Python 2
    shims (``autobahn``, ``pkg_resources``) at the front of ``sys.path``.
    """
    ids = json.loads(subprocess.run(
        [PYTHON, "-c", "import json, kosoku.cases as c; print(json.dumps(list(c.CASES)))"],
        capture_output=True, text=True, check=True, timeout=60).stdout)
    return [i for i in ids
            if (not include or any(fnmatch.fnmatchcase(i, g) for g in include))
            and not any(fnmatch.fnmatchcase(i, g) for g in exclude)]


def check_complete(run: Run, expected: Sequence[str]) -> None:
    """A case with no verdict (a crashed client, a lost report) is a failure too."""
    missing = [i for i in expected if i not in run.cases]
    if missing:
        shown = ", ".join(missing[:20]) + (", ..." if len(missing) > 20 else "")
        run.problems.append(f"no verdict for {len(missing)} case(s): {shown}")


# ------------------------------------------------------------------ report

def _group_names() -> dict[str, str]:
    try:
        from kosoku._report_assets import CaseCategories
    except ImportError:
        return {}
    return dict(CaseCategories)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.2f}"


def render(runs: Sequence[Run], command: str) -> str:
    """docs/conformance.md: what ran, counts per group, every non-OK case, 9.* durations."""
    names = _group_names()
    lines = [
        "# Autobahn TestSuite conformance",
        "",
        f"Generated by `{command}` -- do not edit by hand.",
        f"Run on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: kosoku "
        f"{_version('kosoku')}, Python {platform.python_version()}, "
        f"websockets {_version('websockets')} (reference), "
        f"{os.cpu_count()} CPU(s).",
        "",
        "Bar: every case `OK` in both `behavior` and `behaviorClose`. `NON-STRICT`, "
        "`UNIMPLEMENTED`, `FAILED` and any closing verdict other than `OK` fail the run; "
        "only the cases the suite itself marks `INFORMATIONAL` are allowed. A case counts "
        "once, under the worse of its two verdicts. The reference peer is measured, "
        "not judged.",
        "",
        "| peer | role | what it is | cases | wall time (s) | result |",
        "|---|---|---|---:|---:|---|",
    ]
    for run in runs:
        result = "reference" if run.target.reference else ("PASS" if run.passed else "FAIL")
        lines.append(f"| {run.target.name} | {run.target.role} | {run.target.description} "
                     f"| {len(run.cases)} | {run.seconds:.1f} | {result} |")
    for run in runs:
        if run.target.exclude:
            lines += ["", f"{run.target.label} does not run {', '.join(run.target.exclude)}: "
                      f"{run.target.exclude_reason}."]
    lines += ["", "## Counts per case group", ""]
    columns = [c for c in ("OK", "NON-STRICT", "FAILED", "UNIMPLEMENTED", "INFORMATIONAL",
                           "ERROR")
               if c != "ERROR" or any(r.counts_by_group() and any(
                   g["ERROR"] for g in r.counts_by_group().values()) for r in runs)]
    for run in runs:
        lines += [f"### {run.target.name} {run.target.role}"
                  + (" (reference)" if run.target.reference else ""), ""]
        lines.append("| group | " + " | ".join(columns) + " |")
        lines.append("|---|" + "---:|" * len(columns))
        total: Counter[str] = Counter()
        for group, counts in run.counts_by_group().items():
            total += counts
            title = f"{group} {names.get(group, '')}".strip()
            lines.append(f"| {title} | " + " | ".join(str(counts[c]) for c in columns) + " |")
        lines.append("| **total** | " + " | ".join(f"**{total[c]}**" for c in columns) + " |")
        lines.append("")
    lines += ["## Cases not OK", ""]
    any_listed = False
    for run in runs:
        for case in [*run.informational(), *run.failures()]:
            any_listed = True
            lines.append(f"- {run.target.label}, {case.id}: {case.behavior} / "
                         f"{case.behavior_close} ({case.category}"
                         f"{', allowed' if case.category in ALLOWED else ''}) -- {case.detail}")
        lines += [f"- {run.target.label}: {problem}" for problem in run.problems]
        any_listed = any_listed or bool(run.problems)
    if not any_listed:
        lines.append("None.")
    lines += [
        "",
        "## 9.* limits and performance: per-case durations (ms)",
        "",
        "As kosoku measures them (from the case's first frame to the close), "
        "one case at a time in the server role.",
        "",
    ]
    timed = [r for r in runs if any(c.group == PERFORMANCE_GROUP for c in r.cases.values())]
    ids = sorted({c.id for r in timed for c in r.cases.values() if c.group == PERFORMANCE_GROUP},
                 key=case_key)
    if ids:
        lines.append("| case | " + " | ".join(r.target.label for r in timed) + " |")
        lines.append("|---|" + "---:|" * len(timed))
        for case_id in ids:
            cells = []
            for run in timed:
                found = run.cases.get(case_id)
                if found is None:
                    cells.append("")
                else:
                    mark = "" if found.category in ALLOWED else f" ({found.category})"
                    cells.append(f"{found.duration_ms}{mark}")
            lines.append(f"| {case_id} | " + " | ".join(cells) + " |")
        lines.append("| **total (s)** | " + " | ".join(
            f"**{_seconds(r.performance_ms())}**" for r in timed) + " |")
        lines.append("")
        ours = [r for r in timed if not r.target.reference and r.target.role == "server"]
        reference = [r for r in timed if r.target.reference]
        if ours and reference:
            ref = reference[0]
            ref_failed = [c for c in ref.failures() if c.group == PERFORMANCE_GROUP]
            codes = sorted({str(c.remote_close_code) for c in ref_failed})
            lines.append(
                "Total 9.* time, server role, same run: "
                + ", ".join(f"{r.target.name} {_seconds(r.performance_ms())} s" for r in ours)
                + f"; {ref.target.name} {_seconds(ref.performance_ms())} s"
                + (f" -- but {ref.target.name} fails {len(ref_failed)} of them "
                   f"({', '.join(c.id for c in ref_failed)}; it closed with "
                   f"{'/'.join(codes)}), so its total covers less work"
                   if ref_failed else "")
                + ".")
    else:
        lines.append("No 9.* cases in this run.")
    return "\n".join(lines) + "\n"


#: Where the sections that other runners write into the same file start (tests.conformance.
#: uvicorn_runner's "Autobahn under uvicorn"): kept as they are when this runner rewrites it.
KEPT_MARKER = "<!-- uvicorn_runner: begin -->"


def kept_sections(path: Path) -> str:
    """The other runners' sections of ``path``, from ``KEPT_MARKER`` on ("" if none)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start = text.find(KEPT_MARKER)
    return "" if start < 0 else "\n" + text[start:]


# ------------------------------------------------------------------ main

def select(names: Sequence[str], roles: Sequence[str]) -> list[Target]:
    chosen = [t for t in TARGETS
              if (t.name in names if names else t.default) and t.role in roles]
    unknown = set(names) - {t.name for t in TARGETS}
    if unknown:
        raise SystemExit(f"unknown target(s): {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted({t.name for t in TARGETS}))}")
    return chosen


def run_all(targets: Sequence[Target], workdir: Path, include: Sequence[str] = (),
            exclude: Sequence[str] = (), parallelism: int = 2, reference: bool = True,
            log: IO[str] | None = sys.stderr, jobs: int = 1) -> list[Run]:
    """Each target in turn, or ``jobs`` of them at a time; the runs come back in order."""
    plan = list(targets)
    if reference:
        plan.append(REFERENCE)

    def one(target: Target) -> Run | None:
        inc: Sequence[str] = include
        if target.reference:
            # The reference only matters for the 9.* speed comparison.
            inc = _performance_selection(include)
            if not inc:
                return None
        if log:
            print(f"== {target.label}", file=log, flush=True)
        run = run_target(target, workdir, inc, exclude, parallelism)
        if log:
            _log_run(run, log, prefix=target.label if jobs > 1 else "")
        return run

    if jobs <= 1:
        done = [one(target) for target in plan]
    else:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="autobahn") as pool:
            done = list(pool.map(one, plan))
    return [run for run in done if run is not None]


def _log_run(run: Run, log: IO[str], prefix: str) -> None:
    """A run's summary, each line under its peer's label when peers run at once."""
    counts = Counter(c.category for c in run.cases.values())
    lines = [f"{len(run.cases)} cases in {run.seconds:.1f} s: {dict(counts)}; "
             f"9.* {_seconds(run.performance_ms())} s",
             *(f"{case.id}: {case.behavior}/{case.behavior_close} {case.detail}"
               for case in run.failures()),
             *(f"problem: {problem}" for problem in run.problems)]
    lead = f"   {prefix}: " if prefix else "   "
    print("\n".join(lead + line for line in lines), file=log, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.runner",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", action="append", default=[],
                        help="peer(s) to test: asyncio, sync, standin (repeatable; "
                        "default: asyncio and sync)")
    parser.add_argument("--role", choices=("server", "client"), action="append",
                        help="role(s) to test (default: both)")
    parser.add_argument("-i", "--include", action="append", default=[], metavar="CASE",
                        help="case id or glob to run (repeatable; default: all)")
    parser.add_argument("-x", "--exclude", action="append", default=[], metavar="CASE",
                        help="case id or glob to skip (repeatable)")
    parser.add_argument("-p", "--parallelism", type=int, default=2,
                        help="cases run at once in the server role, 9.* excepted "
                        "(default: %(default)s)")
    parser.add_argument("-j", "--jobs", type=int, default=1,
                        help="peers tested at once (default: %(default)s, which keeps the "
                        "9.* durations comparable)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the websockets reference server")
    parser.add_argument("--write-doc", metavar="PATH", help="write the Markdown summary here")
    parser.add_argument("--reports", metavar="DIR",
                        help="keep kosoku's reports in DIR (default: a temporary directory)")
    args = parser.parse_args(argv)
    targets = select(args.target, args.role or ("server", "client"))
    workdir = Path(args.reports) if args.reports else Path(tempfile.mkdtemp(prefix="autobahn-"))
    if args.reports:
        shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        runs = run_all(targets, workdir, args.include, args.exclude, args.parallelism,
                       reference=not args.no_reference, jobs=args.jobs)
    finally:
        if not args.reports:
            shutil.rmtree(workdir, ignore_errors=True)
    shown = ["python -m tests.conformance.runner", *(argv if argv is not None else sys.argv[1:])]
    if args.write_doc:
        path = Path(args.write_doc)
        path.write_text(render(runs, " ".join(shown)) + kept_sections(path), encoding="utf-8")
    failed = [r for r in runs if not r.target.reference and not r.passed]
    for run in failed:
        print(f"FAILED: {run.target.label}: {len(run.failures())} case(s) not OK"
              + (f", {'; '.join(run.problems)}" if run.problems else ""), file=sys.stderr)
    return 1 if failed or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
