"""The guard in tests/conftest.py fails a test on each kind of silent failure, and lets
a test that declares what it expects pass. Inner test files run in a pytest subprocess
(their errors must not reach this process' own guard) with this suite's conftest and
its warning filters from pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

INNER = '''
import asyncio
import gc
import logging
import socket
import threading
import time

import pytest


def test_clean():
    logging.getLogger("rfc6455.server").warning("a warning is not a failure")


def test_error_log_of_rfc6455():
    logging.getLogger("rfc6455.server").error("connection handler failed")


def test_error_log_of_a_child_logger():
    logging.getLogger("rfc6455.apps.echo").critical("gone")


def test_error_log_of_asyncio():
    logging.getLogger("asyncio").error("Exception in callback")


@pytest.mark.expect_error_log("rfc6455.server", "handler failed")
def test_expected_error_log():
    logging.getLogger("rfc6455.server").error("connection handler failed")


@pytest.mark.expect_error_log("rfc6455.server", "handler failed")
def test_expected_error_log_missing():
    pass


@pytest.mark.expect_error_log("rfc6455.server", "handler failed")
def test_expected_error_log_and_another():
    logging.getLogger("rfc6455.server").error("connection handler failed")
    logging.getLogger("rfc6455.client").error("something else")


def test_future_exception_never_retrieved_in_a_cycle():
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    future.set_exception(RuntimeError("lost"))
    box = [future]
    box.append(box)  # only the collector frees it: after the test body
    del future, box
    loop.close()


def test_task_destroyed_while_pending():
    loop = asyncio.new_event_loop()
    task = loop.create_task(asyncio.sleep(3600))
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    del task


def test_task_left_pending_by_asyncio_run():
    async def main():
        asyncio.get_running_loop().create_task(asyncio.sleep(3600))

    asyncio.run(main())


def test_thread_exception():
    thread = threading.Thread(target=lambda: 1 / 0)
    thread.start()
    thread.join()


def test_unclosed_socket():
    sock = socket.socket()
    del sock


def test_unclosed_socket_in_a_cycle():
    sock = socket.socket()
    box = [sock]
    box.append(box)
    del sock, box


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_unclosed_socket_allowed():
    sock = socket.socket()
    del sock


def test_unclosed_transport():
    async def main():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        server.close()
        return writer  # never closed

    box = [asyncio.run(main())]
    box.append(box)
    del box


def test_rfc6455_thread_left_running():
    threading.Thread(target=time.sleep, args=(5,), name="rfc6455-test", daemon=True).start()


@pytest.mark.keeps_threads
def test_rfc6455_thread_left_running_on_purpose():
    threading.Thread(target=time.sleep, args=(5,), name="rfc6455-test", daemon=True).start()


def test_asyncio_server_connection_left_open():
    from rfc6455.asyncio import connect, serve

    async def handler(ws):
        await ws.wait_closed()

    async def main():
        server = await serve(handler, "127.0.0.1", 0)
        client = await connect(f"ws://127.0.0.1:{server.port}/")
        await asyncio.sleep(0.05)
        # The test "forgets" both; the loop ends under them.
        return server, client

    asyncio.run(main())
    gc.collect()


def test_sync_server_connection_left_open():
    from rfc6455 import sync

    release = threading.Event()

    def handler(ws):
        release.wait(5)

    server = sync.serve(handler, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = sync.connect(f"ws://127.0.0.1:{server.port}/")
    time.sleep(0.05)
    assert server.connections

    def later():  # after the guard gave up waiting
        time.sleep(3)
        release.set()
        client.abort()
        server.shutdown()

    threading.Thread(target=later, daemon=True).start()
'''

#: test name -> expected outcome, and what the guard's report must mention.
EXPECTED = {
    "test_clean": ("PASSED", ""),
    "test_error_log_of_rfc6455": ("ERROR", "unexpected ERROR from 'rfc6455.server'"),
    "test_error_log_of_a_child_logger": ("ERROR", "unexpected CRITICAL from 'rfc6455.apps.echo'"),
    "test_error_log_of_asyncio": ("ERROR", "unexpected ERROR from 'asyncio'"),
    "test_expected_error_log": ("PASSED", ""),
    "test_expected_error_log_missing": ("ERROR", "none was logged"),
    "test_expected_error_log_and_another": ("ERROR", "unexpected ERROR from 'rfc6455.client'"),
    "test_future_exception_never_retrieved_in_a_cycle": (
        "ERROR", "Future exception was never retrieved"),
    "test_task_destroyed_while_pending": ("ERROR", "Task was destroyed but it is pending"),
    "test_task_left_pending_by_asyncio_run": (
        "ERROR", "task still pending when asyncio.run() returned"),
    "test_thread_exception": ("FAILED", "PytestUnhandledThreadExceptionWarning"),
    "test_unclosed_socket": ("FAILED", "PytestUnraisableExceptionWarning"),
    "test_unclosed_socket_in_a_cycle": ("ERROR", "PytestUnraisableExceptionWarning"),
    "test_unclosed_socket_allowed": ("PASSED", ""),
    "test_unclosed_transport": ("ERROR", "PytestUnraisableExceptionWarning"),
    "test_rfc6455_thread_left_running": ("ERROR", "thread still running"),
    "test_rfc6455_thread_left_running_on_purpose": ("PASSED", ""),
    "test_asyncio_server_connection_left_open": ("ERROR", "open connection"),
    "test_sync_server_connection_left_open": ("ERROR", "open connection"),
}


def _filterwarnings() -> list[str]:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    filters: list[str] = config["tool"]["pytest"]["ini_options"]["filterwarnings"]
    return filters


def _section(report: str, name: str) -> str:
    """What pytest printed about ``name`` (its failure and error sections)."""
    parts = re.split(r"\n_{3,} (?:ERROR at \w+ of )?(test_\w+) _{3,}\n", report)
    return "\n".join(parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i] == name)


def test_the_guard_fails_each_silent_failure(pytester: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every inner test ends as EXPECTED says, and the report names the cause."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeconftest('pytest_plugins = ["tests.conftest"]')
    pytester.makeini("[pytest]\nfilterwarnings =\n" +
                     "".join(f"    {line}\n" for line in _filterwarnings()))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-rA", "-p", "no:randomly", "-p", "no:cacheprovider",
                                           timeout=120)
    report = result.stdout.str() + result.stderr.str()
    wrong = []
    for name, (outcome, mention) in EXPECTED.items():
        summary = re.findall(rf"^(PASSED|FAILED|ERROR) test_inner\.py::{name}\b", report, re.M)
        # A test whose call passed and whose teardown failed is listed PASSED and ERROR.
        if outcome not in summary or (outcome == "PASSED" and summary != ["PASSED"]):
            wrong.append(f"{name}: {summary}, expected {outcome}\n{_section(report, name)}")
        elif mention and mention not in _section(report, name):
            wrong.append(f"{name}: the report does not say {mention!r}\n"
                         f"{_section(report, name)}")
    assert not wrong, "\n".join(wrong) + "\n" + report[-2000:]
