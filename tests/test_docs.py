"""The documentation's examples run, so the docs cannot rot.

* Every ``.. code-block:: python`` in ``docs/**/*.rst`` is executed in a fresh
  interpreter (examples that serve bind port 0 and stop themselves; they check
  their own results with ``assert``).
* Every ``$ python -m rfc6455 ...`` command shown in a ``console`` block is
  parsed by the real command-line parser, so no option in the docs is made up.
* A scripted client session shown with its output is replayed against a live
  ``python -m rfc6455 echo``; the browser snippet runs in headless Chromium.
* The tables of limits and adapter options in ``docs/security.rst`` match the
  defaults in the code (``rfc6455.Limits`` and the adapters' options).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. code-block:: *(?P<lang>\S+) *$")


def code_blocks(path: Path) -> list[tuple[int, str, str]]:
    """(line, language, code) of every ``code-block`` directive in an .rst file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if not match:
            i += 1
            continue
        start = i + 1
        outer = len(match.group("indent"))
        i += 1
        # Options (":caption: ...") then a blank line, then the indented body.
        while i < len(lines) and lines[i].strip().startswith(":"):
            i += 1
        body: list[str] = []
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > outer):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        indents = [len(line) - len(line.lstrip()) for line in body if line.strip()]
        cut = min(indents) if indents else 0
        blocks.append((start, match.group("lang"), "\n".join(line[cut:] for line in body)))
    return blocks


def _all_blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted(DOCS.rglob("*.rst")):
        if "_build" in path.parts:
            continue
        for line, lang, code in code_blocks(path):
            if lang == language:
                found.append((f"{path.relative_to(DOCS)}:{line}", code))
    return found


PYTHON_BLOCKS = _all_blocks("python")
CONSOLE_BLOCKS = _all_blocks("console")


def test_extractor_finds_the_examples() -> None:
    """The extractor itself works: the embedding guide has its two complete servers."""
    names = [name for name, _ in PYTHON_BLOCKS]
    assert sum(name.startswith("guides/embedding.rst") for name in names) >= 2
    assert all(code.strip() for _, code in PYTHON_BLOCKS)
    assert len(CLI_COMMANDS) >= 5 and CLI_SESSIONS


@pytest.mark.parametrize(("where", "code"), PYTHON_BLOCKS, ids=[n for n, _ in PYTHON_BLOCKS])
def test_python_example_runs(where: str, code: str, tmp_path: Path) -> None:
    """Each Python example runs to completion, its own asserts included."""
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"


def _cli_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for where, code in CONSOLE_BLOCKS:
        for line in code.splitlines():
            if not line.startswith("$ "):
                continue
            argv = shlex.split(line[2:])
            if argv[:3] == ["python", "-m", "rfc6455"]:
                commands.append((where, argv[3:]))
            elif argv[:1] == ["rfc6455"]:
                commands.append((where, argv[1:]))
    return commands


CLI_COMMANDS = _cli_commands()


@pytest.mark.parametrize(("where", "argv"), CLI_COMMANDS,
                         ids=[f"{w}:{' '.join(a)[:40]}" for w, a in CLI_COMMANDS])
def test_cli_command_in_docs_parses(where: str, argv: list[str]) -> None:
    """Each ``python -m rfc6455 ...`` shown in the docs is accepted by the real parser."""
    from rfc6455 import __main__ as main

    try:
        main.build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of rejecting (or of --help)
        assert exc.code == 0, f"{where}: {argv} rejected by the CLI parser"


_ROW = re.compile(r"^ *\* - ``(?P<name>\w+)``\n +- ``(?P<default>[^`]+)``$", re.MULTILINE)


def _documented_defaults(table: str) -> dict[str, str]:
    """``name -> default`` from the list-table with ``:name: table`` in security.rst."""
    text = (DOCS / "security.rst").read_text(encoding="utf-8")
    start = text.index(f":name: {table}")
    end = text.find("\n\n", text.find("* - ", start))
    while end != -1 and text[end + 2:end + 3] == " ":  # blank lines inside the table
        end = text.find("\n\n", end + 2)
    rows = _ROW.findall(text[start:end if end != -1 else len(text)])
    return dict(rows)


def test_engine_limits_table_matches_rfc6455_limits() -> None:
    """The documented defaults are Limits' defaults, and every field is documented (§10.4)."""
    from rfc6455 import Limits

    documented = _documented_defaults("engine-limits")
    actual = {f.name: repr(f.default) for f in dataclasses.fields(Limits)}
    assert documented == actual


def test_adapter_options_table_matches_the_adapters() -> None:
    """Each documented option default is the adapters' default; every limit is documented."""
    from rfc6455._driver import ClientOptions, ServerOptions

    documented = _documented_defaults("adapter-limits")
    fields = {f.name: f for cls in (ServerOptions, ClientOptions)
              for f in dataclasses.fields(cls)}
    for name, default in documented.items():
        assert name in fields, f"{name} is documented but is not an adapter option"
        assert repr(fields[name].default) == default, name
    common = {f.name for f in dataclasses.fields(ServerOptions)
              if f.name.startswith(("max_", "read_", "write_")) or f.name.endswith("_timeout")
              or f.name in ("ping_interval", "compression", "limits")}
    assert common <= set(documented), common - set(documented)


# The docs show sessions against ``python -m rfc6455 echo`` on its default port.
_DOC_URL = "ws://127.0.0.1:8080/ws"


def _cli_sessions() -> list[tuple[str, list[str], list[str]]]:
    """(where, argv, expected output) of each scripted client session shown with output."""
    sessions = []
    for where, code in CONSOLE_BLOCKS:
        lines = code.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ python -m rfc6455 client ") and "--send" in line:
                output = []
                for following in lines[i + 1:]:
                    if following.startswith("$ "):
                        break
                    output.append(following)
                if output:
                    sessions.append((where, shlex.split(line[2:])[3:], output))
    return sessions


CLI_SESSIONS = _cli_sessions()


@pytest.fixture(scope="module")
def echo_server_url() -> Iterator[str]:
    """``python -m rfc6455 echo --port 0`` as the Getting started page runs it."""
    server = subprocess.Popen([sys.executable, "-m", "rfc6455", "echo", "--port", "0"],
                              stderr=subprocess.PIPE, text=True)
    drain: threading.Thread | None = None
    try:
        assert server.stderr is not None
        for line in server.stderr:  # the start-up log line gives the port
            if "listening on " in line:
                break
        else:
            pytest.fail("the echo server did not start")
        # The server logs a line per connection at INFO: keep reading, so a long module
        # never fills the pipe and blocks the server's writes.
        drain = threading.Thread(target=server.stderr.read, daemon=True)
        drain.start()
        yield line.rsplit("listening on ", 1)[1].strip()
    finally:
        server.terminate()
        server.wait(timeout=30)
        if drain is not None:
            drain.join(timeout=30)
        assert server.stderr is not None
        server.stderr.close()  # the pipe is ours to close (ResourceWarning otherwise)


@pytest.mark.parametrize(("where", "argv", "output"), CLI_SESSIONS,
                         ids=[w for w, _, _ in CLI_SESSIONS])
def test_cli_session_in_docs_replays(where: str, argv: list[str], output: list[str],
                                     echo_server_url: str) -> None:
    """A client session shown in the docs gives the same output against the echo server
    and exits 0 (closed with 1000, RFC 6455 §7.4.1)."""
    argv = [echo_server_url if arg == _DOC_URL else arg for arg in argv]
    result = subprocess.run([sys.executable, "-m", "rfc6455", *argv], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, f"{where}: {result.stderr}"
    assert result.stdout.splitlines() == output, where


JAVASCRIPT_BLOCKS = _all_blocks("javascript")


@pytest.mark.parametrize(("where", "code"), JAVASCRIPT_BLOCKS,
                         ids=[n for n, _ in JAVASCRIPT_BLOCKS])
def test_javascript_example_runs_in_a_browser(where: str, code: str,
                                              echo_server_url: str) -> None:
    """The browser snippet, run in headless Chromium on the echo server's own page
    (same origin, §10.2), gets its message echoed back."""
    from tests.apps.browser import Browser, require_chromium

    require_chromium()
    page = echo_server_url.replace("ws://", "http://").removesuffix("/ws") + "/"
    script = code.replace(_DOC_URL, echo_server_url)
    with Browser() as browser:
        session = browser.open(page)
        # Capture console.log, then run the snippet as the docs show it.
        browser.evaluate(session, "window.__logs = []; console.log = "
                                  "(...args) => window.__logs.push(args.join(' ')); true")
        browser.evaluate(session, "{\n" + script + "\n}; true")
        logs = browser.wait_for(session, "window.__logs.length && window.__logs")
    assert logs == ["echo: hello"], where
