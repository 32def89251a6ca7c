"""The suite-wide guard against silent failures, and the ``transport`` fixture.

Every test fails (at teardown) when, during it:

* an ERROR (or worse) record reaches the ``asyncio`` logger or an ``rfc6455*`` logger,
  unless the test declares it with ``@pytest.mark.expect_error_log(logger, text)``
  (which then also fails the test if no such record came);
* asyncio reports "Future exception was never retrieved" or "Task was destroyed but it
  is pending!" (logged at ERROR when the object is collected: the guard collects
  garbage at teardown, so the report lands on the test that leaked);
* a thread dies of an exception, a socket or transport is left unclosed
  (``ResourceWarning``), or a finalizer raises: pytest reports these as warnings,
  which ``filterwarnings`` in pyproject.toml turns into errors;
* a task is still pending when an ``asyncio.run()`` main coroutine returns (asyncio
  would cancel it without a word);
* an ``rfc6455`` server created by the test still holds a connection, or a thread the
  test started (non-daemon, or named ``rfc6455-*``) is still alive after a short join.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

GUARDED_LOGGERS = ("asyncio", "rfc6455")
#: How long threads and sync servers get to wind down after the test before it fails.
WIND_DOWN_SECONDS = 2.0
#: How long tasks left at the end of an asyncio.run() main coroutine get to finish.
TASK_GRACE_SECONDS = 0.5


# ------------------------------------------------------------------ what a test did


class _ErrorRecords(logging.Handler):
    """Keeps every ERROR+ record of the guarded loggers, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class _Activity:
    """Counts what makes a test worth a full garbage collection at teardown."""

    events: int = 0
    leftover_tasks: list[str] = field(default_factory=list)
    gc_seconds: float = 0.0
    gc_runs: int = 0
    tests: int = 0


_records = _ErrorRecords()
_activity = _Activity()
_undo: list[Callable[[], None]] = []


def _count_calls(owner: Any, name: str) -> None:
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        _activity.events += 1
        return original(*args, **kwargs)

    setattr(owner, name, counted)
    _undo.append(lambda: setattr(owner, name, original))


async def _without_leftover_tasks(main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main``; then record the tasks still pending, which asyncio.run() would
    cancel silently (a handler or a reader that outlived its test)."""
    try:
        return await main
    finally:
        loop = asyncio.get_running_loop()
        this = asyncio.current_task()
        deadline = loop.time() + TASK_GRACE_SECONDS
        left = [t for t in asyncio.all_tasks() if t is not this and not t.done()]
        while left and loop.time() < deadline:
            await asyncio.sleep(0.01)
            left = [t for t in left if not t.done()]
        _activity.leftover_tasks.extend(repr(t) for t in left)


def _watch_runner() -> None:
    if sys.version_info < (3, 11):  # asyncio.run only
        original_run = asyncio.run

        def run(main: Any, **kwargs: Any) -> Any:
            _activity.events += 1
            return original_run(_without_leftover_tasks(main), **kwargs)

        asyncio.run = run  # type: ignore[assignment]
        _undo.append(lambda: setattr(asyncio, "run", original_run))
        return
    runner_run = asyncio.Runner.run

    def run_checked(self: Any, coro: Any, *, context: Any = None) -> Any:
        _activity.events += 1
        if asyncio.iscoroutine(coro):
            coro = _without_leftover_tasks(coro)
        return runner_run(self, coro, context=context)

    asyncio.Runner.run = run_checked  # type: ignore[method-assign]
    _undo.append(lambda: setattr(asyncio.Runner, "run", runner_run))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "expect_error_log(logger, text): the test expects an ERROR record of "
        "that logger (or a child) whose message contains text; the guard fails it when none "
        "is logged, and still fails it on any other ERROR record")
    config.addinivalue_line(
        "markers", "keeps_threads: the test leaves threads running on purpose (the guard "
        "does not wait for them)")
    for name in GUARDED_LOGGERS:
        logging.getLogger(name).addHandler(_records)
    _undo.extend(lambda n=name: logging.getLogger(n).removeHandler(_records)  # type: ignore[misc]
                 for name in GUARDED_LOGGERS)
    # Sockets, threads, event loops and asyncio.run(): the tests that may leave garbage
    # behind whose finalizer reports a failure.
    _count_calls(socket.socket, "__init__")
    _count_calls(threading.Thread, "start")
    _count_calls(asyncio.BaseEventLoop, "__init__")
    _watch_runner()


def pytest_unconfigure(config: pytest.Config) -> None:
    while _undo:
        _undo.pop()()


def pytest_collection_finish(session: pytest.Session) -> None:
    # What exists now (modules, test items, hypothesis' tables) lives for the whole run:
    # leave it out of the collections at teardown, which then cost what the tests made.
    gc.collect()
    gc.freeze()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _activity.tests:
        terminalreporter.write_line(
            f"guard: {_activity.gc_runs} of {_activity.tests} tests collected garbage at "
            f"teardown, {_activity.gc_seconds:.2f} s in total")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_call_failed] = report.failed
    return report


_call_failed = pytest.StashKey[bool]()


# ------------------------------------------------------------------ servers made by a test


def _track_servers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    from rfc6455.asyncio import server as async_server
    from rfc6455.sync import server as sync_server

    made: list[Any] = []
    for module in (async_server, sync_server):
        cls = module.Server
        original = cls.__init__

        def init(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            __original(self, *args, **kwargs)
            made.append(self)

        monkeypatch.setattr(cls, "__init__", init)
    return made


def _open_connections(servers: list[Any], deadline: float) -> list[str]:
    from rfc6455.asyncio import server as async_server

    problems = []
    for server in servers:
        if isinstance(server, async_server.Server):
            # The loop is gone by now: whatever is left will never close.
            if server.connections or server._connections:
                problems.append(
                    f"{server!r} left {len(server.connections)} open connection(s) and "
                    f"{len(server._connections)} protocol(s) in server._connections")
            continue
        # Sync connections end in their own threads: give them a moment.
        while server.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.connections:
            problems.append(f"{server!r} left {len(server.connections)} open connection(s)")
    return problems


def _running_threads(before: set[threading.Thread], deadline: float) -> list[str]:
    watched = [t for t in threading.enumerate()
               if t not in before and (not t.daemon or t.name.startswith("rfc6455"))]
    for thread in watched:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [repr(t) for t in watched if t.is_alive()]


def _unexpected_records(item: pytest.Item, records: list[logging.LogRecord]) -> list[str]:
    expected = [mark.args for mark in item.iter_markers("expect_error_log")]

    def matches(record: logging.LogRecord, logger: str, text: str) -> bool:
        return (record.name == logger or record.name.startswith(logger + ".")) \
            and text in record.getMessage()

    problems = []
    for record in records:
        if not any(matches(record, *args) for args in expected):
            detail = ""
            if record.exc_info and record.exc_info[1] is not None:
                detail = f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            problems.append(f"unexpected {record.levelname} from {record.name!r}: "
                            f"{record.getMessage()[:2000]}{detail}")
    if not item.stash.get(_call_failed, False):
        for args in expected:
            if not any(matches(record, *args) for record in records):
                problems.append(f"expected an ERROR record from {args[0]!r} containing "
                                f"{args[1]!r}; none was logged")
    return problems


@pytest.fixture(autouse=True)
def _no_silent_failures(request: pytest.FixtureRequest,
                        monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The guard (see the module docstring); torn down after every other function fixture."""
    threads_before = set(threading.enumerate())
    events_before = _activity.events
    _records.records.clear()
    _activity.leftover_tasks.clear()
    servers = _track_servers(monkeypatch)
    yield
    item = request.node
    problems: list[str] = []
    deadline = time.monotonic() + WIND_DOWN_SECONDS
    if not item.get_closest_marker("keeps_threads"):
        problems += [f"thread still running: {t}"
                     for t in _running_threads(threads_before, deadline)]
    problems += _open_connections(servers, deadline)
    problems += [f"task still pending when asyncio.run() returned: {t}"
                 for t in _activity.leftover_tasks]
    _activity.tests += 1
    if _activity.events != events_before:
        # Finalizers of futures, tasks, transports and sockets report now, on this test.
        start = time.perf_counter()
        gc.collect()
        _activity.gc_seconds += time.perf_counter() - start
        _activity.gc_runs += 1
    problems += _unexpected_records(item, _records.records)
    _records.records.clear()
    if problems:
        pytest.fail("silent failure guard:\n  " + "\n  ".join(problems), pytrace=False)


# ------------------------------------------------------------------ transports


@dataclass(frozen=True)
class Transport:
    """How a test's server listens and its client reaches it: TCP, TLS or a unix socket."""

    name: str
    serve_kwargs: dict[str, Any]
    connect_kwargs: dict[str, Any]

    @property
    def scheme(self) -> str:
        return "wss" if self.name == "tls" else "ws"

    def url(self, server: Any, path: str = "/") -> str:
        if self.name == "unix":
            return f"ws://localhost{path}"
        return f"{self.scheme}://127.0.0.1:{server.port}{path}"


@dataclass(frozen=True)
class TLSContexts:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="session")
def tls() -> TLSContexts:
    """A CA and a certificate for 127.0.0.1 and localhost, made once per session."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return TLSContexts(server, client)


@pytest.fixture(params=["tcp", "tls", "unix"])
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """``serve(handler, **transport.serve_kwargs, ...)`` and
    ``connect(transport.url(server), **transport.connect_kwargs, ...)``."""
    name = request.param
    if name == "tcp":
        yield Transport(name, {"host": "127.0.0.1", "port": 0}, {})
    elif name == "tls":
        contexts: TLSContexts = request.getfixturevalue("tls")
        yield Transport(name, {"host": "127.0.0.1", "port": 0, "ssl": contexts.server},
                        {"ssl": contexts.client})
    else:
        if not hasattr(socket, "AF_UNIX"):
            pytest.skip("no unix sockets here")
        # tmp_path can exceed the 107 bytes a socket path may have: a short one.
        directory = tempfile.mkdtemp(prefix="ws")
        path = os.path.join(directory, "s")
        try:
            yield Transport(name, {"path": path}, {"path": path})
        finally:
            shutil.rmtree(directory, ignore_errors=True)
