"""uvicorn's own WebSocket tests, run against ``rfc6455.uvicorn:WebSocketProtocol``.

``python -m tests.uvicorn_suite.run`` downloads the uvicorn sdist of the pinned
version, adds our protocol to the ``ws_protocol_cls`` fixture of its
``tests/conftest.py`` (next to wsproto and websockets-sansio) and to the two
``isinstance`` checks of ``tests/protocols/test_websocket.py`` that name
uvicorn's classes, changes nothing else, and runs that file. It prints the
pass/fail counts of each protocol and exits non-zero if a test that passes for
websockets-sansio does not pass for ours.

The test dependencies that the project's environment lacks (uvicorn's tests use
httpx2) are installed into a directory of the work folder, never into the
environment itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

UVICORN_VERSION = "0.55.0"
#: What tests/protocols/test_websocket.py imports that the project's test extra lacks.
EXTRA_TEST_DEPS = ("httpx2==2.16.2", "httpcore2==2.16.2", "truststore")
OURS = "rfc6455.uvicorn:WebSocketProtocol"
PROTOCOL_IDS = ("websockets-sansio", "wsproto", "rfc6455")  # the longest id first
REPO = Path(__file__).resolve().parents[2]

_SANSIO_PARAM = (
    '        pytest.param(\n'
    '            "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol",'
    ' id="websockets-sansio"\n'
    '        ),\n')
_OUR_PARAM = f'        pytest.param("{OURS}", id="rfc6455"),\n'
_ISINSTANCE = "isinstance(protocol, (_WSProtocol, WebSocketsSansIOProtocol))"
_OUR_ISINSTANCE = ("isinstance(protocol, (_WSProtocol, WebSocketsSansIOProtocol, "
                   '__import__("rfc6455.uvicorn", fromlist=["_"]).WebSocketProtocol))')


def _run(*command: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=cwd, env=env, check=True)


def fetch(work: Path) -> Path:
    """The unpacked sdist, its test files patched (only the fixture list and isinstance)."""
    _run(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
         ":all:", f"uvicorn=={UVICORN_VERSION}", "-d", str(work))
    archive = work / f"uvicorn-{UVICORN_VERSION}.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    source = work / f"uvicorn-{UVICORN_VERSION}"
    conftest = source / "tests" / "conftest.py"
    text = conftest.read_text()
    if text.count(_SANSIO_PARAM) != 1:
        raise SystemExit(f"{conftest}: the websockets-sansio fixture param was not found")
    conftest.write_text(text.replace(_SANSIO_PARAM, _SANSIO_PARAM + _OUR_PARAM))
    tests = source / "tests" / "protocols" / "test_websocket.py"
    text = tests.read_text()
    if text.count(_ISINSTANCE) != 2:
        raise SystemExit(f"{tests}: expected the two isinstance checks naming uvicorn's classes")
    tests.write_text(text.replace(_ISINSTANCE, _OUR_ISINSTANCE))
    return source


def install_deps(work: Path) -> Path:
    target = work / "deps"
    _run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade", "--target",
         str(target), *EXTRA_TEST_DEPS)
    return target


def protocol_of(name: str) -> tuple[str, str]:
    """(protocol id, the test's name without it) of a junit test case name."""
    base, _, params = name.partition("[")
    for ident in PROTOCOL_IDS:
        if ident in params:
            rest = params.replace(ident, "", 1).replace("--", "-").strip("-")
            return ident, f"{base}[{rest}"
    return "", name


def outcomes(junit: Path) -> dict[str, dict[str, str]]:
    """protocol id -> test (without the protocol id) -> passed/failed/skipped."""
    result: dict[str, dict[str, str]] = {ident: {} for ident in PROTOCOL_IDS}
    for case in ET.parse(junit).getroot().iter("testcase"):
        ident, key = protocol_of(case.get("name", ""))
        if not ident:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        elif case.find("skipped") is not None:
            outcome = "skipped"
        else:
            outcome = "passed"
        result[ident][key] = outcome
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="work folder (default: a new temporary one)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (e.g. -k ...)")
    args = parser.parse_args()
    if args.work is None:
        with tempfile.TemporaryDirectory(prefix="uvicorn-suite-") as folder:
            return run(Path(folder), args.pytest_args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    return run(work, args.pytest_args)


def run(work: Path, pytest_args: list[str]) -> int:
    source = fetch(work)
    deps = install_deps(work)
    # Our package alone on the path (the repository's own tests/ package would
    # shadow uvicorn's): a folder holding a link to it.
    ours = work / "rfc6455-path"
    ours.mkdir(exist_ok=True)
    link = ours / "rfc6455"
    if not link.exists():
        link.symlink_to(REPO / "rfc6455", target_is_directory=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ours), str(deps)])
    junit = work / "junit.xml"
    junit.unlink(missing_ok=True)
    # uvicorn's own options, less "-n 8" (pytest-xdist): one process, on a machine
    # shared with other work.
    command = [sys.executable, "-m", "pytest", "tests/protocols/test_websocket.py",
               "-o", "addopts=-rxXs --strict-config --strict-markers", "-p", "no:cacheprovider",
               "-q", f"--junitxml={junit}", *pytest_args]
    print("+", " ".join(command), flush=True)
    status = subprocess.run(command, cwd=source, env=env, check=False).returncode
    if status not in (0, 1) or not junit.exists():
        # 0: all passed, 1: some failed (compared below); anything else is no verdict.
        print(f"FAILED: pytest ended with status {status}", file=sys.stderr)
        return 2
    results = outcomes(junit)
    print(f"\nuvicorn {UVICORN_VERSION} tests/protocols/test_websocket.py:")
    for ident in PROTOCOL_IDS:
        counts = Counter(results[ident].values())
        print(f"  {ident:18} passed {counts['passed']:3}  failed {counts['failed']:3}  "
              f"skipped {counts['skipped']:3}")
    regressions = sorted(key for key, outcome in results["websockets-sansio"].items()
                         if outcome == "passed" and results["rfc6455"].get(key) != "passed")
    ours_only_failures = sorted(key for key, outcome in results["rfc6455"].items()
                                if outcome == "failed" and key not in regressions)
    for key in ours_only_failures:
        print(f"  rfc6455 fails (not passing for websockets-sansio either): {key}")
    if regressions:
        print("\nFAILED: passes for websockets-sansio, not for rfc6455:")
        for key in regressions:
            print(f"  {key}: {results['rfc6455'].get(key, 'missing')}")
        return 1
    if not results["rfc6455"]:
        print("FAILED: no test ran for rfc6455")
        return 1
    print("OK: every test that passes for websockets-sansio passes for rfc6455")
    return 0


if __name__ == "__main__":
    sys.exit(main())
