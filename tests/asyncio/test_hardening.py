"""The asyncio adapter against connection leaks, unclean endings and bad handlers,
over real loopback sockets (plain TCP and TLS)."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from rfc6455 import sync as rfc6455_sync
from rfc6455.asyncio import (
    Connection,
    ConnectionClosedError,
    InvalidStatus,
    Listener,
    connect,
    serve,
    serve_listener,
)
from tests.helpers import (
    BINARY,
    CLOSE,
    PING,
    Frame,
    cframe,
    client_request,
    parse_frames,
    server_response,
    sframe,
)

trustme = pytest.importorskip("trustme")


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(bounded())


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR
            and r.name.split(".")[0] in ("asyncio", "rfc6455")]


async def echo(ws: Connection) -> None:
    async for message in ws:
        await ws.send(message)


class Echo(Listener):
    def on_message(self, ws: Connection, message: str | bytes) -> None:
        ws.send_nowait(message)


# ------------------------------------------ item: TLS connections are forgotten


@pytest.mark.parametrize("kind", ["serve", "listener"])
def test_tls_connections_are_forgotten_when_they_close(
        kind: str, tls: tuple[ssl.SSLContext, ssl.SSLContext],
        caplog: pytest.LogCaptureFixture) -> None:
    """Closed wss:// connections leave ``server.connections``: with max_connections=2,
    five clients one after the other are all served (none gets 503), nothing is
    logged as an error, and the server holds no connection afterwards."""
    server_ctx, client_ctx = tls
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        starting: serve | serve_listener
        if kind == "listener":
            starting = serve_listener(Echo, "127.0.0.1", 0, ssl=server_ctx, max_connections=2,
                                      max_connections_per_ip=2)
        else:
            starting = serve(echo, "127.0.0.1", 0, ssl=server_ctx, max_connections=2,
                             max_connections_per_ip=2)
        async with starting as server:
            uri = f"wss://localhost:{server.port}/"
            for i in range(5):
                async with connect(uri, ssl=client_ctx) as ws:
                    await ws.send(f"client {i}")
                    assert await ws.recv() == f"client {i}"
                # The server forgets it once its transport is lost.
                for _ in range(200):
                    if not server.connections and not server._connections:
                        break
                    await asyncio.sleep(0.025)
                assert not server.connections, i
                assert not server._connections, i
                assert not server._admission.per_ip, i

    run(main())
    assert errors_logged(caplog) == []


def test_tls_client_refused_with_503_ends_cleanly(
        tls: tuple[ssl.SSLContext, ssl.SSLContext], caplog: pytest.LogCaptureFixture) -> None:
    """Past max_connections over TLS: 503, no error logged, and once the holder leaves
    the next client is served."""
    server_ctx, client_ctx = tls
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, ssl=server_ctx, max_connections=1) as server:
            uri = f"wss://localhost:{server.port}/"
            async with connect(uri, ssl=client_ctx) as holder:
                with pytest.raises(InvalidStatus) as refused:
                    await connect(uri, ssl=client_ctx)
                assert refused.value.status == 503
                await holder.send("x")
                assert await holder.recv() == "x"
            for _ in range(200):
                if not server.connections:
                    break
                await asyncio.sleep(0.025)
            async with connect(uri, ssl=client_ctx) as ws:
                await ws.send("y")
                assert await ws.recv() == "y"

    run(main())
    assert errors_logged(caplog) == []


# ------------------------------------- item: failing ends with a clean EOF, no RST


def _frames(data: bytes) -> list[Frame]:
    try:
        return parse_frames(data)
    except (AssertionError, IndexError):  # a frame still arriving
        return []


def _peer_until_eof(sock: socket.socket, buffer: bytes, extra: bytes) -> str:
    """Send ``extra`` until our close frame comes, read until EOF: what ended it."""
    sock.settimeout(0.01)
    deadline = time.monotonic() + 10
    closing = False
    try:
        while time.monotonic() < deadline:
            if not closing:
                sock.sendall(extra)  # the peer keeps sending: we read it all
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            if not chunk:
                frames = _frames(buffer)
                last = frames[-1] if frames else None
                if last is not None and last.opcode == CLOSE and last.close_code == 1009:
                    return "clean"
                return f"EOF without our close: {[f.opcode for f in frames]}"
            buffer += chunk
            closing = closing or any(f.opcode == CLOSE for f in _frames(buffer))
        return "timeout"
    except ConnectionResetError:
        return "reset"
    finally:
        sock.close()


@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
def test_server_failing_a_peer_that_keeps_sending_ends_with_close_and_eof(
        secure: bool, tls: tuple[ssl.SSLContext, ssl.SSLContext],
        caplog: pytest.LogCaptureFixture) -> None:
    """A too-big message (1009, §7.4.1) from a peer that keeps sending: the peer gets
    our close frame and then a clean EOF, never a reset, 50 times out of 50."""
    server_ctx, client_ctx = tls
    caplog.set_level(logging.WARNING)

    def peer(port: int) -> str:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if secure:
            sock = client_ctx.wrap_socket(sock, server_hostname="localhost")
        sock.sendall(client_request())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        buffer = buffer.partition(b"\r\n\r\n")[2]
        sock.sendall(cframe(BINARY, b"x" * 4096))
        return _peer_until_eof(sock, buffer, cframe(PING, b"p" * 100) * 20)

    async def main() -> collections.Counter[str]:
        outcomes: collections.Counter[str] = collections.Counter()
        async with serve(echo, "127.0.0.1", 0, ssl=server_ctx if secure else None,
                         max_size=1024, close_timeout=5) as server:
            for _ in range(50):
                outcomes[await asyncio.to_thread(peer, server.port)] += 1
        return outcomes

    assert run(main()) == {"clean": 50}
    assert errors_logged(caplog) == []


@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
def test_client_failing_a_peer_that_keeps_sending_ends_with_close_and_eof(
        secure: bool, tls: tuple[ssl.SSLContext, ssl.SSLContext],
        caplog: pytest.LogCaptureFixture) -> None:
    """The client fails a too-big message (1009) from a server that keeps sending: the
    server gets the close frame, then a clean EOF (close_notify over TLS), no reset."""
    server_ctx, client_ctx = tls
    caplog.set_level(logging.WARNING)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def peer(out: list[str]) -> None:
        raw, _ = listener.accept()
        raw.settimeout(10)
        sock = server_ctx.wrap_socket(raw, server_side=True) if secure else raw
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        sock.sendall(server_response(key) + sframe(BINARY, b"x" * 4096))
        out.append(_peer_until_eof(sock, buffer, sframe(PING, b"p" * 100) * 20))

    async def main() -> collections.Counter[str]:
        outcomes: collections.Counter[str] = collections.Counter()
        scheme = "wss" if secure else "ws"
        for _ in range(50):
            out: list[str] = []
            thread = threading.Thread(target=peer, args=(out,))
            thread.start()
            try:
                async with connect(f"{scheme}://localhost:{port}/",
                                   ssl=client_ctx if secure else None,
                                   max_size=1024, close_timeout=5) as ws:
                    with pytest.raises(ConnectionClosedError) as closed:
                        await ws.recv()
                    assert closed.value.code == 1009
            finally:
                await asyncio.to_thread(thread.join, 20)
            outcomes[out[0] if out else "peer failed"] += 1
        return outcomes

    try:
        assert run(main()) == {"clean": 50}
    finally:
        listener.close()
    assert errors_logged(caplog) == []


# ----------------------------------------------- item: handlers that cannot start


async def _bad_signature() -> None:
    pass


async def _two_arguments(ws: Connection, other: object) -> None:
    pass


def _plain(ws: Connection) -> None:
    pass


def _plain_with_state(state: list[str], ws: Connection) -> None:
    pass


async def _with_state(state: list[str], ws: Connection) -> None:
    state.append("ran")
    await ws.send("ok")


@pytest.mark.parametrize("handler", [
    _plain, lambda ws: None, functools.partial(_plain_with_state, []),
    _bad_signature, _two_arguments, "not callable", None,
], ids=["plain-function", "lambda", "partial-of-plain", "no-argument", "two-arguments",
        "string", "none"])
def test_asyncio_serve_refuses_a_handler_that_cannot_run(handler: Any) -> None:
    with pytest.raises(TypeError, match="connection handler"):
        serve(handler, "127.0.0.1", 0)


def test_asyncio_serve_accepts_coroutine_handlers() -> None:
    state: list[str] = []

    class Callable:
        async def __call__(self, ws: Connection) -> None:
            await ws.send("object")

    async def main() -> None:
        handler: Any  # a coroutine function, a partial of one, an object with async __call__
        for handler, expected in [(echo, None), (functools.partial(_with_state, state), "ok"),
                                  (Callable(), "object")]:
            async with serve(handler, "127.0.0.1", 0) as server, \
                    connect(f"ws://127.0.0.1:{server.port}/") as ws:
                if expected is None:
                    await ws.send("echo")
                    expected = "echo"
                assert await ws.recv() == expected
        assert state == ["ran"]

    run(main())


class _ReturnsNothing:
    def __call__(self, ws: Connection) -> None:
        return None


class _RaisesAtOnce:
    def __call__(self, ws: Connection) -> None:
        raise RuntimeError("broken handler")


@pytest.mark.expect_error_log("rfc6455.server", "could not start")
@pytest.mark.parametrize("handler", [_ReturnsNothing(), _RaisesAtOnce()],
                         ids=["no-awaitable", "raises"])
def test_handler_that_cannot_start_logs_one_line_and_closes_1011(
        handler: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A callable serve() could not refuse: at run time one error line (no traceback,
    no 'Fatal error' from asyncio), and the client gets 1011 (§7.4.1), not 1006."""
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            for _ in range(2):  # and the server goes on serving
                async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                    with pytest.raises(ConnectionClosedError) as closed:
                        await ws.recv()
                    assert closed.value.code == 1011

    run(main())
    errors = errors_logged(caplog)
    assert [r.name for r in errors] == ["rfc6455.server"] * 2
    for record in errors:
        assert record.exc_info is None
        assert "could not start" in record.getMessage()
        assert "\n" not in record.getMessage()


def test_sync_serve_refuses_a_handler_that_cannot_run() -> None:
    async def coroutine_handler(ws: Any) -> None:
        pass

    def no_argument() -> None:
        pass

    for handler in (coroutine_handler, no_argument, 42):
        with pytest.raises(TypeError, match="connection handler"):
            rfc6455_sync.serve(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    server = rfc6455_sync.serve(lambda ws: ws.send("sync"), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with rfc6455_sync.connect(f"ws://127.0.0.1:{server.socket.getsockname()[1]}/") as ws:
            assert ws.recv(timeout=10) == "sync"
    finally:
        server.shutdown()
        thread.join(10)


def test_serve_listener_refuses_a_factory_that_cannot_run() -> None:
    class NeedsArgument(Listener):
        def __init__(self, required: object) -> None:
            pass

    async def coroutine_factory() -> Listener:
        return Listener()

    for factory in (NeedsArgument, coroutine_factory, "Echo"):
        with pytest.raises(TypeError, match="listener factory"):
            serve_listener(factory, "127.0.0.1", 0)  # type: ignore[arg-type]

    async def main() -> None:
        async with serve_listener(Echo, "127.0.0.1", 0) as server, \
                connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("fine")
            assert await ws.recv() == "fine"

    run(main())
