"""The connection lifecycle in the logs (docs/guides/logging.rst), over real sockets.

``rfc6455.server``: opened and closed at INFO, refused upgrades at INFO, plain
HTTP answers at DEBUG. ``rfc6455.client``: opened and closed at DEBUG, refusals
at INFO. ``rfc6455.trace``: one DEBUG record per frame, opt-in, never a payload.
Peer misbehaviour is never logged at ERROR (the suite's guard fails on one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rfc6455 import ServerConnection
from tests.helpers import TEXT, client_request, frame
from tests.servers_in_thread import ADAPTERS, SERVERS, running_server

SECRET = "payload-that-must-not-be-logged"


def records(caplog: pytest.LogCaptureFixture, logger: str, start: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.getMessage().startswith(start)]


def wait_for(caplog: pytest.LogCaptureFixture, logger: str, start: str,
             count: int = 1) -> list[logging.LogRecord]:
    """The records, once ``count`` came (the server logs from its own thread)."""
    for _ in range(500):  # at most 5 s
        found = records(caplog, logger, start)
        if len(found) >= count:
            return found
        time.sleep(0.01)
    raise AssertionError(f"no {start!r} record on {logger}: {caplog.records}")


def client_session(adapter: str, port: int, **options: Any) -> tuple[Any, str]:
    """Open, echo one message, close with 1000 'bye'; (the client's local address, uri)."""
    uri = f"ws://127.0.0.1:{port}/chat?room=1"
    if adapter == "sync":
        from rfc6455.sync import connect

        with connect(uri, subprotocols=["chat"], **options) as ws:
            local = ws.sock.getsockname()
            ws.send(SECRET)
            assert ws.recv(timeout=5) == SECRET
            ws.close(1000, "bye")
        return local, uri

    from rfc6455.asyncio import connect as aconnect

    async def main() -> Any:
        ws = await aconnect(uri, subprotocols=["chat"], **options)
        local = ws.local_address
        await ws.send(SECRET)
        assert await asyncio.wait_for(ws.recv(), 5) == SECRET
        await ws.close(1000, "bye")
        return local

    return asyncio.run(main()), uri


@pytest.fixture
def debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)  # the root, hence every rfc6455 logger but the trace
    yield caplog


@pytest.mark.parametrize("adapter", SERVERS)
def test_opened_and_closed(adapter: str, debug: pytest.LogCaptureFixture) -> None:
    with running_server(adapter, subprotocols=["chat"]) as port:
        local, uri = client_session("sync" if adapter == "sync" else "asyncio", port)
        closed = wait_for(debug, "rfc6455.server", "connection closed:")
    [opened] = records(debug, "rfc6455.server", "connection opened:")
    assert opened.levelno == logging.INFO
    assert tuple(opened.remote_address[:2]) == tuple(local[:2])  # type: ignore[attr-defined]
    assert opened.path == "/chat?room=1"  # type: ignore[attr-defined]
    assert opened.subprotocol == "chat"  # type: ignore[attr-defined]
    assert opened.extension == "permessage-deflate"  # type: ignore[attr-defined]
    assert f"127.0.0.1:{local[1]} /chat?room=1" in opened.getMessage()
    [server_closed] = closed
    assert server_closed.levelno == logging.INFO
    assert (server_closed.code, server_closed.reason,  # type: ignore[attr-defined]
            server_closed.closed_by) == (1000, "bye", "remote")  # type: ignore[attr-defined]
    assert 0 <= server_closed.duration < 10  # type: ignore[attr-defined]
    assert "code 1000 'bye', closed by the peer, after" in server_closed.getMessage()
    # The client's side of the same connection, at DEBUG.
    [client_opened] = records(debug, "rfc6455.client", "connection opened:")
    assert client_opened.levelno == logging.DEBUG
    assert client_opened.path == uri  # type: ignore[attr-defined]
    assert client_opened.subprotocol == "chat"  # type: ignore[attr-defined]
    assert client_opened.remote_address[1] == port  # type: ignore[attr-defined]
    [client_closed] = records(debug, "rfc6455.client", "connection closed:")
    assert client_closed.levelno == logging.DEBUG
    assert client_closed.closed_by == "local"  # type: ignore[attr-defined]
    assert client_closed.code == 1000  # type: ignore[attr-defined]
    # No trace without asking for it, and no payload anywhere.
    assert not [r for r in debug.records if r.name == "rfc6455.trace"]
    assert SECRET not in debug.text


def raw_upgrade(port: int, request: bytes | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request or client_request(target="/raw"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


@pytest.mark.parametrize("adapter", SERVERS)
def test_closed_by_a_protocol_error_is_info_not_error(
        adapter: str, debug: pytest.LogCaptureFixture) -> None:
    with running_server(adapter) as port:
        sock = raw_upgrade(port)
        with sock:
            sock.sendall(frame(TEXT, b"unmasked", masked=False))  # §5.1: a server fails it
            read_until_closed(sock)
        [closed] = wait_for(debug, "rfc6455.server", "connection closed:")
    assert closed.levelno == logging.INFO
    assert closed.code == 1002  # type: ignore[attr-defined]
    assert closed.closed_by == "error"  # type: ignore[attr-defined]
    assert "unmasked" in closed.reason  # type: ignore[attr-defined]
    assert "failed by us: the peer broke the protocol" in closed.getMessage()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_closed_without_a_closing_handshake(adapter: str,
                                            debug: pytest.LogCaptureFixture) -> None:
    with running_server(adapter) as port:
        sock = raw_upgrade(port)
        wait_for(debug, "rfc6455.server", "connection opened:")
        sock.close()  # a FIN, no close frame
        [closed] = wait_for(debug, "rfc6455.server", "connection closed:")
    assert closed.code == 1006  # type: ignore[attr-defined]
    assert closed.closed_by == "lost"  # type: ignore[attr-defined]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_server_shutdown_is_closed_by_us(adapter: str, debug: pytest.LogCaptureFixture) -> None:
    with running_server(adapter) as port:
        sock = raw_upgrade(port)
        wait_for(debug, "rfc6455.server", "connection opened:")
    # The server closed with 1001 and the raw client never answered: the server
    # started the closing handshake either way.
    with sock:
        pass
    [closed] = wait_for(debug, "rfc6455.server", "connection closed:")
    assert closed.closed_by == "local"  # type: ignore[attr-defined]


def http_status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        head = sock.recv(4096)
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert match, head
    return int(match.group(1))


def forbid_teapots(ws: Any, request: Any) -> Any:
    if request.path == "/teapot":
        return 418, [], b"no"
    return None


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_refusals(adapter: str, debug: pytest.LogCaptureFixture) -> None:
    with running_server(adapter, origins=["https://good.example", None],
                        process_request=forbid_teapots) as port:
        # The engine's own answer to a bad request (§4.2.1): a foreign Origin.
        assert http_status(port, client_request(extra=[("Origin", "https://evil.example")])) \
            == 403
        [engine] = wait_for(debug, "rfc6455.server", "upgrade refused")
        assert http_status(port, client_request(target="/teapot")) == 418
        [_, hook] = wait_for(debug, "rfc6455.server", "upgrade refused", 2)
        # A plain HTTP request: answered, at DEBUG.
        assert http_status(port, b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n") == 426
        [page] = wait_for(debug, "rfc6455.server", "HTTP request answered")
    assert engine.levelno == logging.INFO
    assert engine.status == 403  # type: ignore[attr-defined]
    assert "origin" in engine.why.lower()  # type: ignore[attr-defined]
    assert hook.levelno == logging.INFO
    assert (hook.status, hook.path, hook.why) == (  # type: ignore[attr-defined]
        418, "/teapot", "answered by process_request")
    assert page.levelno == logging.DEBUG
    assert (page.status, page.path) == (426, "/page")  # type: ignore[attr-defined]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_busy_refusal_says_which_cap(adapter: str, debug: pytest.LogCaptureFixture) -> None:
    with running_server(adapter, max_connections=1) as port:
        first = raw_upgrade(port)
        with first:
            wait_for(debug, "rfc6455.server", "connection opened:")
            assert http_status(port, client_request()) == 503
            [busy] = wait_for(debug, "rfc6455.server", "upgrade refused")
    assert busy.status == 503  # type: ignore[attr-defined]
    assert busy.why == "max_connections (1) reached"  # type: ignore[attr-defined]


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_client_logs_the_refusal(adapter: str, debug: pytest.LogCaptureFixture) -> None:
    with running_server(adapter, process_request=forbid_teapots) as port:
        uri = f"ws://127.0.0.1:{port}/teapot"
        if adapter == "sync":
            from rfc6455.sync import InvalidStatus, connect

            with pytest.raises(InvalidStatus):
                connect(uri)
        else:
            from rfc6455.asyncio import InvalidStatus as AsyncInvalidStatus
            from rfc6455.asyncio import connect as aconnect

            async def main() -> None:
                with pytest.raises(AsyncInvalidStatus):
                    await aconnect(uri)

            asyncio.run(main())
    [refused] = records(debug, "rfc6455.client", "upgrade refused by the server")
    assert refused.levelno == logging.INFO
    assert (refused.status, refused.uri) == (418, uri)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ the frame trace


@pytest.mark.parametrize("adapter", SERVERS)
def test_trace_when_enabled_has_headers_not_payloads(
        adapter: str, debug: pytest.LogCaptureFixture) -> None:
    debug.set_level(logging.DEBUG, logger="rfc6455.trace")
    with running_server(adapter) as port:
        local, _ = client_session("sync" if adapter == "sync" else "asyncio", port,
                                  compression=None)
        wait_for(debug, "rfc6455.server", "connection closed:")
    lines = [r.getMessage() for r in debug.records if r.name == "rfc6455.trace"]
    size = len(SECRET)
    server = f"server 127.0.0.1:{local[1]}"
    client = f"client 127.0.0.1:{port}"
    for expected in (f"{client} > TEXT fin len={size}", f"{server} < TEXT fin len={size}",
                     f"{server} > TEXT fin len={size}", f"{client} < TEXT fin len={size}",
                     f"{client} > CLOSE fin len=5", f"{server} < CLOSE fin len=5",
                     f"{server} > CLOSE fin len=2", f"{client} < CLOSE fin len=2"):
        assert expected in lines, (expected, lines)
    assert SECRET not in debug.text
    assert all(r.levelno == logging.DEBUG for r in debug.records if r.name == "rfc6455.trace")


def test_trace_is_decided_once_per_connection(caplog: pytest.LogCaptureFixture) -> None:
    from rfc6455._driver import ServerOptions
    from rfc6455._trace import TracedServerConnection

    caplog.set_level(logging.DEBUG)  # a process-wide DEBUG does not turn the trace on
    assert type(ServerOptions().new_engine()) is ServerConnection
    caplog.set_level(logging.DEBUG, logger="rfc6455.trace")
    assert type(ServerOptions().new_engine()) is TracedServerConnection


def test_trace_reads_headers_split_anywhere() -> None:
    from rfc6455._trace import FrameScanner

    stream = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
              + frame(TEXT, b"a" * 300, masked=False) + frame(0x9, b"", masked=False)
              + frame(0x2, b"b" * 70000, masked=True, fin=False))
    for step in (1, 3, 7, 1000):
        scanner = FrameScanner()
        seen: list[tuple[int, int, int]] = []

        def report(first: int, second: int, length: int,
                   seen: list[tuple[int, int, int]] = seen) -> None:
            seen.append((first, second & 0x80, length))

        for i in range(0, len(stream), step):
            scanner.feed(stream[i:i + step], report)
        assert seen == [(0x81, 0, 300), (0x89, 0, 0), (0x02, 0x80, 70000)], step
    refused = FrameScanner()
    refused.feed(b"HTTP/1.1 403 Forbidden\r\n\r\n\x81\x05hello",
                 lambda a, b, n: pytest.fail("a refusal's body is no frame"))


# ------------------------------------------------------------------ the command line


@pytest.mark.parametrize("backend", ADAPTERS)
def test_cli_log_level_debug_shows_the_lifecycle(backend: str, tmp_path: Path) -> None:
    from rfc6455.sync import connect

    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rfc6455", "echo", "--port", "0", "--backend", backend,
             "--log-level", "debug", "--ping-interval", "none"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parent.parent)
    try:
        port = None
        for _ in range(2000):  # at most 20 s
            match = re.search(r"listening on ws://[^\s/]+:(\d+)/", log_path.read_text())
            if match:
                port = int(match.group(1))
                break
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.01)
        assert port is not None, log_path.read_text()
        with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        for _ in range(500):  # at most 5 s
            text = log_path.read_text()
            if "connection closed" in text:
                break
            time.sleep(0.01)
    finally:
        proc.terminate()
        proc.wait(20)
    text = log_path.read_text()
    assert re.search(r"INFO rfc6455\.server: connection opened: 127\.0\.0\.1:\d+ /ws, "
                     r"subprotocol None, extension permessage-deflate", text), text
    assert re.search(r"INFO rfc6455\.server: connection closed: 127\.0\.0\.1:\d+ code 1000, "
                     r"closed by the peer, after \d+\.\d+ s", text), text
    assert "rfc6455.trace" not in text  # --trace is not given


def test_cli_trace_option() -> None:
    from rfc6455.__main__ import build_parser

    assert build_parser().parse_args(["echo", "--trace"]).trace is True
    assert build_parser().parse_args(["client", "ws://x/", "--trace"]).trace is True
    assert build_parser().parse_args(["broadcast"]).trace is False


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_client_logs_a_bad_101(adapter: str, debug: pytest.LogCaptureFixture) -> None:
    """A 101 with a wrong Sec-WebSocket-Accept (§4.1): the server's fault, at INFO."""
    import threading

    from tests.helpers import new_key, server_response

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            conn.sendall(server_response(new_key()))  # the accept token of another key
            conn.settimeout(5)
            with contextlib.suppress(OSError):
                while conn.recv(4096):
                    pass

    thread = threading.Thread(target=answer)
    thread.start()
    uri = f"ws://127.0.0.1:{port}/"
    try:
        if adapter == "sync":
            from rfc6455.sync import connect

            with pytest.raises(Exception, match="Accept"):
                connect(uri)
        else:
            from rfc6455.asyncio import connect as aconnect

            async def main() -> None:
                with pytest.raises(Exception, match="Accept"):
                    await aconnect(uri)

            asyncio.run(main())
    finally:
        thread.join(10)
        listener.close()
    [failed] = records(debug, "rfc6455.client", "opening handshake failed")
    assert failed.levelno == logging.INFO
    assert failed.uri == uri  # type: ignore[attr-defined]
    assert "accept" in failed.why.lower()  # type: ignore[attr-defined]
