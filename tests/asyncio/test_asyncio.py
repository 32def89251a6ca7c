"""The asyncio adapter over real loopback sockets: echo, fragments, keepalive, closing,
flow control, handshake policies, TLS, unix sockets, uvloop, and websockets interop."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest

from rfc6455.asyncio import (
    Connection,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    connect,
    serve,
)
from tests.conftest import Transport
from tests.helpers import CLOSE, PING, TEXT, client_request, frame
from tests.sync.raw import RawClient, frames_after_handshake

SIZES = [0, 125, 126, 65535, 65536, 1024 * 1024]


def run(coro: Coroutine[Any, Any, Any], *, loop_factory: Any = None) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 30)

    # asyncio.Runner, like asyncio.run, cancels what is left and shuts the executor down
    # (and the guard in tests/conftest.py reports what was left).
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(bounded())
    assert loop_factory is None, "a loop factory needs asyncio.Runner (Python 3.11)"
    return asyncio.run(bounded())


async def echo(ws: Connection) -> None:
    async for message in ws:
        await ws.send(message)


def url(server: Any, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def serving(transport: Transport, handler: Any, **options: Any) -> serve:
    """``serve()`` listening on the transport under test (TCP, TLS or a unix socket)."""
    return serve(handler, **transport.serve_kwargs, **options)


def connecting(transport: Transport, server: Any, path: str = "/", **options: Any) -> connect:
    """``connect()`` to ``server`` over the transport under test."""
    return connect(transport.url(server, path), **transport.connect_kwargs, **options)


async def open_raw(target: Any, *, read_head: bool = True, transport: Transport | None = None
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw peer that sent an opening request (§4.1) and, by default, read the 101: over
    TCP to port ``target``, or over ``transport`` to the server ``target``."""
    if transport is None or transport.name == "tcp":
        port = target if transport is None else target.port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    elif transport.name == "tls":
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", target.port, ssl=transport.connect_kwargs["ssl"])
    else:
        reader, writer = await asyncio.open_unix_connection(transport.connect_kwargs["path"])
    writer.write(client_request())
    if read_head:
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


# ------------------------------------------------------------------ messages


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_echo_every_size_class(compression: str | None, transport: Transport) -> None:
    """§5.2: 7-bit, 16-bit and 64-bit payload lengths, text and binary, both directions."""

    async def main() -> None:
        async with serving(transport, echo, max_size=2**21, compression=compression) as srv, \
                connecting(transport, srv, max_size=2**21, compression=compression) as ws:
            assert (ws.engine.extension is not None) == (compression is not None)
            for size in SIZES:
                text = "é" * (size // 2)
                await ws.send(text)
                assert await ws.recv() == text
                binary = os.urandom(size)
                await ws.send(binary)
                assert await ws.recv() == binary

    run(main())


def test_fragments_both_directions(transport: Transport) -> None:
    """§5.4: a message sent in parts arrives whole, and can be received piece by piece."""
    received: list[Any] = []

    async def handler(ws: Connection) -> None:
        received.append(await ws.recv())
        await ws.send([b"ab", b"cd", b"ef"])

        async def parts() -> AsyncIterator[str]:
            for part in ("x", "y", "z"):
                yield part

        await ws.send(parts())
        await ws.recv()

    async def main() -> None:
        async with serving(transport, handler) as srv, connecting(transport, srv) as ws:
            await ws.send(iter(["hel", "lo"]))
            pieces = [piece async for piece in ws.recv_streaming()]
            assert all(isinstance(p, bytes) for p in pieces)
            assert b"".join(pieces) == b"abcdef"  # type: ignore[arg-type]
            assert await ws.recv() == "xyz"
            await ws.send("done")
        assert received == ["hello"]

    run(main())


def test_json_helpers(transport: Transport) -> None:
    async def handler(ws: Connection) -> None:
        await ws.send_json({"got": await ws.recv_json()})

    async def main() -> None:
        async with serving(transport, handler) as srv, connecting(transport, srv) as ws:
            await ws.send_json([1, "a"])
            assert await ws.recv_json() == {"got": [1, "a"]}

    run(main())


def test_ping_returns_latency(transport: Transport) -> None:
    """§5.5.2: the peer answers our ping with a pong; the round trip is measured."""

    async def main() -> None:
        async with serving(transport, echo) as srv, connecting(transport, srv) as ws:
            latency = await ws.ping()
            assert latency > 0 and ws.latency == latency
            await ws.ping(b"custom")

    run(main())


def test_echo_before_failing_on_following_bad_frame() -> None:
    """§7.1.7 with lazy parsing: a good message is echoed before the close that the
    bad frame after it causes (Autobahn's strict behaviour)."""

    async def main() -> list[Any]:
        async with serve(echo, "127.0.0.1", 0) as srv:
            def peer() -> list[Any]:
                with RawClient(srv.port) as raw:
                    # A good text, then a reserved opcode (§5.2: fail with 1002), in one write.
                    raw.send(frame(TEXT, b"good") + frame(0x3, b""))
                    return raw.frames_until_eof()

            return await asyncio.to_thread(peer)

    frames = run(main())
    assert [(f.opcode, f.payload) for f in frames[:1]] == [(TEXT, b"good")]
    assert frames[1].opcode == CLOSE and frames[1].close_code == 1002


# ------------------------------------------------------------------ closing


def test_close_codes_both_ways(transport: Transport) -> None:
    """§7.4: each side's close code reaches the other."""
    seen: list[Any] = []

    async def handler(ws: Connection) -> None:
        try:
            await ws.recv()
        except ConnectionClosedError as exc:
            seen.append((exc.code, exc.reason))

    async def closer(ws: Connection) -> None:
        await ws.close(1001, "bye")

    async def main() -> None:
        async with serving(transport, handler) as srv:
            ws = await connecting(transport, srv)
            await ws.close(4000, "app")
            assert ws.close_code == 4000  # the reply echoes the code only (§5.5.1)
            await asyncio.sleep(0.05)
        async with serving(transport, closer) as srv:
            ws = await connecting(transport, srv)
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv()
            assert (info.value.code, info.value.reason) == (1001, "bye")
            with pytest.raises(ConnectionClosedOK):
                await ws.send("late")
        assert seen == [(4000, "app")]

    run(main())


@pytest.mark.expect_error_log("rfc6455.server", "connection handler failed")
def test_handler_error_closes_1011_and_server_keeps_serving(
        transport: Transport, caplog: pytest.LogCaptureFixture) -> None:
    """§7.4.1: 1011 when the server cannot go on; other connections are unaffected."""

    async def handler(ws: Connection) -> None:
        if await ws.recv() == "boom":
            raise RuntimeError("boom")
        await ws.send("fine")

    async def main() -> None:
        async with serving(transport, handler) as srv:
            async with connecting(transport, srv) as ws:
                await ws.send("boom")
                with pytest.raises(ConnectionClosedError) as info:
                    await ws.recv()
                assert info.value.code == 1011
            async with connecting(transport, srv) as ws:
                await ws.send("ok")
                assert await ws.recv() == "fine"

    with caplog.at_level(logging.ERROR, logger="rfc6455.server"):
        run(main())
    assert any("handler failed" in r.message and r.exc_info for r in caplog.records)


def test_server_close_sends_1001_to_every_client(transport: Transport) -> None:
    """§7.4.1: 1001 "going away" when the server shuts down."""

    async def main() -> None:
        srv = await serving(transport, echo)
        clients = [await connecting(transport, srv) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert len(srv.connections) == 3
        await srv.aclose()
        for ws in clients:
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.recv()
            assert info.value.code == 1001
        assert not srv.connections

    run(main())


def test_keepalive_times_out_a_silent_peer() -> None:
    """§5.5.2: a peer that stops answering pings is closed with 1011 after ping_timeout."""

    async def main() -> list[Any]:
        async with serve(echo, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.2,
                         close_timeout=0.2) as srv:
            return await asyncio.to_thread(frames_after_handshake, srv.port)

    frames = run(main())
    assert frames[0].opcode == PING
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1011


def test_client_keepalive_keeps_a_live_connection(transport: Transport) -> None:
    async def main() -> None:
        async with serving(transport, echo) as srv, \
                connecting(transport, srv, ping_interval=0.02, ping_timeout=0.5) as ws:
            await asyncio.sleep(0.15)
            assert ws.latency > 0
            await ws.send("still here")
            assert await ws.recv() == "still here"

    run(main())


# ------------------------------------------------------------------ flow control


def test_backpressure_bounds_memory_on_both_sides(transport: Transport) -> None:
    """A client that never reads: the server's sends wait, its buffers stay bounded; a
    server that never reads: its queue and engine buffer stay bounded, reading pauses."""
    state: dict[str, Any] = {}

    async def flooder(ws: Connection) -> None:
        chunk = b"x" * 65536
        state["conn"] = ws
        for _ in range(400):  # 25 MiB if nothing pushed back
            await ws.send(chunk)
            assert ws.transport is not None
            state["max_buffer"] = max(state.get("max_buffer", 0),
                                      ws.transport.get_write_buffer_size())

    async def main() -> None:
        async with serving(transport, flooder, write_limit=65536, compression=None) as srv:
            ws = await connecting(transport, srv, max_queue=4)
            await asyncio.sleep(0.3)
            conn = state["conn"]
            # The handler is stuck in send(): far fewer than 400 chunks went out.
            assert conn._writing_paused
            assert state["max_buffer"] <= 65536 + 65536 + 16
            # The client stopped reading: its queue holds at most max_queue messages.
            assert ws._driver.complete <= 4
            assert ws.engine.buffered_bytes <= 256 * 1024 + 262144
            ws.abort()

    run(main())


def test_ping_behind_a_message_is_answered_while_the_reader_is_busy_rfc6455_s5_5_2(
        transport: Transport) -> None:
    """§5.5.2: a ping that arrives in the same read as two messages is answered while
    the handler, having taken the first, is busy; the second waits for its next recv()."""
    busy = asyncio.Event()
    release = asyncio.Event()

    async def handler(ws: Connection) -> None:
        first = await ws.recv()
        busy.set()
        await release.wait()
        second = await ws.recv()
        await ws.send(f"{first!s} then {second!s}")

    async def main() -> None:
        async with serving(transport, handler, compression=None) as srv:
            reader, writer = await open_raw(srv, transport=transport)
            await asyncio.sleep(0.1)  # the handler waits in recv()
            writer.write(frame(TEXT, b"a") + frame(TEXT, b"b") + frame(PING, b"p"))
            await asyncio.wait_for(busy.wait(), 5)
            pong = await asyncio.wait_for(reader.readexactly(3), 5)
            assert pong == b"\x8a\x01p"  # unmasked server pong, same payload
            release.set()
            reply = await asyncio.wait_for(reader.readexactly(10), 5)
            assert reply == b"\x81\x08a then b"
            writer.close()

    run(main())


def test_slow_reader_server_pauses_reading(transport: Transport) -> None:
    async def sleeper(ws: Connection) -> None:
        await asyncio.sleep(10)

    async def main() -> None:
        conns: list[Connection] = []

        async def keep(ws: Connection) -> None:
            conns.append(ws)
            await sleeper(ws)

        async with serving(transport, keep, max_queue=2, close_timeout=0.1,
                         compression=None) as srv:
            ws = await connecting(transport, srv)

            async def flood() -> None:
                for _ in range(200):
                    await ws.send(b"y" * 16384)

            # Over TCP the kernel buffers take all 3 MiB; a unix socket's take far less,
            # and the client's sends wait: either way the server must stop reading.
            sender = asyncio.create_task(flood())
            await asyncio.sleep(0.2)
            server_side = conns[0]
            assert server_side._reading_paused
            assert server_side._driver.complete <= 2
            assert server_side.engine.buffered_bytes <= 256 * 1024 + 262144
            ws.abort()
            await asyncio.gather(sender, return_exceptions=True)  # closed under its send

    run(main())


# ------------------------------------------------------------------ handshake policies


def test_slowloris_handshake_times_out() -> None:
    """A request head that never completes is dropped after open_timeout."""

    async def main() -> bytes:
        async with serve(echo, "127.0.0.1", 0, open_timeout=0.2) as srv:
            def peer() -> bytes:
                with RawClient(srv.port, handshake=False) as raw:
                    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
                    return raw.read_until_eof(5)

            return await asyncio.to_thread(peer)

    assert run(main()) == b""


def test_origin_policy(transport: Transport) -> None:
    """§10.2: an Origin outside the allow-list is refused with 403."""

    async def main() -> None:
        async with serving(transport, echo, origins=["https://good.example"]) as srv:
            async with connecting(transport, srv, origin="https://good.example") as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
            with pytest.raises(InvalidStatus) as info:
                await connecting(transport, srv, origin="https://evil.example")
            assert info.value.status == 403

    run(main())


def test_connection_caps_answer_503(transport: Transport) -> None:
    async def main() -> None:
        async with serving(transport, echo, max_connections=1) as srv:
            first = await connecting(transport, srv)
            with pytest.raises(InvalidStatus) as info:
                await connecting(transport, srv)
            assert info.value.status == 503
            await first.close()
            await asyncio.sleep(0.05)
            second = await connecting(transport, srv)
            await second.close()
        async with serving(transport, echo, max_connections_per_ip=2) as srv:
            keep = [await connecting(transport, srv) for _ in range(2)]
            with pytest.raises(InvalidStatus) as info:
                await connecting(transport, srv)
            assert info.value.status == 503
            for ws in keep:
                await ws.close()

    run(main())


def test_plain_http_requests_and_redirects() -> None:
    """§4.2.1: a plain request gets 426 by default; the hook may answer it, or
    redirect a WebSocket request, which the client follows."""

    def hook(ws: Connection, request: Any) -> Any:
        if request.path == "/health":
            return 200, [("Content-Type", "text/plain")], b"ok\n"
        if request.path == "/old":
            return 302, [("Location", "/new")], b""
        return None

    async def handler(ws: Connection) -> None:
        assert ws.request_headers is not None
        await ws.send(ws._engine.request.path)  # type: ignore[attr-defined]

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, process_request=hook) as srv:
            async with connect(url(srv, "/old")) as ws:
                assert await ws.recv() == "/new"

            def get(path: str) -> bytes:
                with RawClient(srv.port, handshake=False) as raw:
                    raw.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    return raw.read_until_eof()

            assert (await asyncio.to_thread(get, "/health")).startswith(b"HTTP/1.1 200")
            assert (await asyncio.to_thread(get, "/other")).startswith(b"HTTP/1.1 426")

    run(main())


def test_subprotocol_and_headers(transport: Transport) -> None:
    """§4.2.2: the server picks a subprotocol the client offered."""

    async def handler(ws: Connection) -> None:
        assert ws.request_headers is not None
        await ws.send(f"{ws.subprotocol} {ws.request_headers.get('x-test')}")

    async def main() -> None:
        async with serving(transport, handler, subprotocols=["chat"],
                         extra_headers=[("X-Server", "ours")]) as srv, \
                connecting(transport, srv, subprotocols=["other", "chat"],
                        extra_headers=[("X-Test", "1")]) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response_headers is not None
            assert ws.response_headers.get("x-server") == "ours"
            assert await ws.recv() == "chat 1"

    run(main())


# ------------------------------------------------------------------ transports


def test_tls_with_trustme() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, ssl=server_ctx) as srv, \
                connect(f"wss://localhost:{srv.port}/", ssl=client_ctx) as ws:
            await ws.send(b"z" * 100000)
            assert await ws.recv() == b"z" * 100000

    run(main())


def test_unix_socket() -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ws.sock")
            async with serve(echo, path=path), connect("ws://localhost/", path=path) as ws:
                await ws.send("unix")
                assert await ws.recv() == "unix"

    run(main())


def test_ipv6_loopback() -> None:
    async def main() -> None:
        try:
            srv = await serve(echo, "::1", 0)
        except OSError:
            pytest.skip("no IPv6 loopback here")
        async with srv, connect(f"ws://[::1]:{srv.port}/") as ws:
            await ws.send("six")
            assert await ws.recv() == "six"

    run(main())


def test_uvloop(transport: Transport) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with serving(transport, echo) as srv, connecting(transport, srv) as ws:
            for size in SIZES:
                data = os.urandom(size)
                await ws.send(data)
                assert await ws.recv() == data
            assert await ws.ping() > 0

    run(main(), loop_factory=uvloop.new_event_loop)


def test_http_connect_proxy() -> None:
    """The client tunnels through an HTTP CONNECT proxy (RFC 9110 §9.3.6)."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n")[0])
        host, port = head.split()[1].decode().rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        proxy_server = await asyncio.start_server(proxy, "127.0.0.1", 0)
        proxy_port = proxy_server.sockets[0].getsockname()[1]
        async with serve(echo, "127.0.0.1", 0) as srv, \
                connect(url(srv), proxy=f"http://127.0.0.1:{proxy_port}") as ws:
            await ws.send("tunnel")
            assert await ws.recv() == "tunnel"
        proxy_server.close()

    run(main())
    assert seen and seen[0].startswith(b"CONNECT 127.0.0.1:")


# ------------------------------------------------------------------ interop


@pytest.mark.interop
@pytest.mark.parametrize("compression", [None, "deflate"])
def test_websockets_client_against_our_server(compression: str | None) -> None:
    from websockets.asyncio.client import connect as ws_connect

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, compression=compression) as srv, \
                ws_connect(url(srv), compression=compression, max_size=2**21) as ws:
            assert ws.response is not None
            assert (ws.response.headers.get("Sec-WebSocket-Extensions") is not None) == \
                (compression is not None)
            for size in SIZES[:-1]:
                await ws.send("t" * size)
                assert await ws.recv() == "t" * size
            await ws.send([b"a", b"b"])
            assert await ws.recv() == b"ab"
            await ws.ping()

    run(main())


@pytest.mark.interop
@pytest.mark.parametrize("compression", [None, "deflate"])
def test_our_client_against_websockets_server(compression: str | None) -> None:
    from websockets.asyncio.server import serve as ws_serve

    async def ws_echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with ws_serve(ws_echo, "127.0.0.1", 0, compression=compression,
                            max_size=2**21) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", compression=compression,
                               max_size=2**21) as ws:
                assert (ws.engine.extension is not None) == (compression is not None)
                for size in SIZES:
                    data = os.urandom(size)
                    await ws.send(data)
                    assert await ws.recv() == data
                await ws.send(["x", "y"])
                assert await ws.recv() == "xy"
                assert await ws.ping() > 0
            assert ws.close_code == 1000

    run(main())


# ------------------------------------------------------------------ timeouts and misuse


def test_idle_timeout_closes_a_silent_connection() -> None:
    """idle_timeout: nothing received for that long closes with 1001 "going away"."""

    async def main() -> list[Any]:
        async with serve(echo, "127.0.0.1", 0, idle_timeout=0.2, ping_interval=None,
                         close_timeout=0.2) as srv:
            return await asyncio.to_thread(frames_after_handshake, srv.port)

    frames = run(main())
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1001


def test_close_timeout_aborts_a_peer_that_never_replies() -> None:
    """§7.1.1: the server closes the TCP connection itself when the close reply never
    comes (the raw peer reads but does not answer the close frame)."""

    async def quitter(ws: Connection) -> None:
        await ws.close(1000)

    async def main() -> list[Any]:
        async with serve(quitter, "127.0.0.1", 0, close_timeout=0.2) as srv:
            return await asyncio.to_thread(frames_after_handshake, srv.port)

    frames = run(main())
    assert [f.opcode for f in frames] == [CLOSE] and frames[0].close_code == 1000


def test_async_process_request_and_redirect_bound(transport: Transport) -> None:
    async def hook(ws: Connection, request: Any) -> Any:
        await asyncio.sleep(0)
        return 302, [("Location", request.path + "x")], b""

    async def main() -> None:
        async with serving(transport, echo, process_request=hook) as srv:
            with pytest.raises(InvalidStatus) as info:
                await connecting(transport, srv, "/a", max_redirects=2)
            assert info.value.status == 302
            assert info.value.headers.get("location") == "/axxx"

    run(main())


def test_concurrent_recv_is_refused(transport: Transport) -> None:
    from rfc6455.asyncio import ConcurrencyError

    async def main() -> None:
        async with serving(transport, echo) as srv, connecting(transport, srv) as ws:
            first = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0.01)
            with pytest.raises(ConcurrencyError):
                await ws.recv()
            await ws.send("x")
            assert await first == "x"

    run(main())


def test_cancelled_recv_loses_no_message(transport: Transport) -> None:
    """A reader cancelled while waiting leaves the next message for the next reader,
    whether it waited in recv() or in ``async for``; recv() stays a coroutine function
    (so ``create_task(ws.recv())`` works)."""

    async def main() -> None:
        async with serving(transport, echo) as srv, connecting(transport, srv) as ws:
            assert asyncio.iscoroutinefunction(ws.recv)  # create_task(ws.recv()) works
            for waiting in (lambda: asyncio.create_task(ws.recv()),
                            lambda: asyncio.ensure_future(ws.__anext__())):
                reader = waiting()
                await asyncio.sleep(0.01)
                reader.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await reader
                await ws.send("kept")
                await asyncio.sleep(0.01)  # the echo arrives with no reader waiting
                assert await asyncio.wait_for(ws.recv(), 5) == "kept"
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.01)
            await ws.send("after a timeout")
            assert await ws.recv() == "after a timeout"

    run(main())


@pytest.mark.parametrize("how", ["recv", "async for", "wait_for"])
def test_reader_cancelled_as_its_message_arrives_loses_nothing(
        how: str, transport: Transport) -> None:
    """The message handed to a waiting reader whose task is cancelled before it runs
    (a timeout firing in the same loop iteration) goes to the next reader."""

    async def read_one(ws: Connection) -> Any:
        if how == "recv":
            return await ws.recv()
        if how == "wait_for":
            return await asyncio.wait_for(ws.__anext__(), 10)
        async for message in ws:
            return message
        return None

    async def main() -> None:
        async with serving(transport, echo) as srv, connecting(transport, srv) as ws:
            reader = asyncio.create_task(read_one(ws))
            await asyncio.sleep(0.01)  # it waits
            assert ws._recv_waiter is not None and not ws._recv_waiter.done()
            # What the transport does when the server's echo arrives, then a cancel
            # before the reader's task had a chance to run.
            ws.data_received(b"\x81\x04kept")
            assert ws._recv_waiter is None  # the message was handed over
            reader.cancel()
            try:
                got = [await reader]  # wait_for on 3.11 returns a result that came
            except asyncio.CancelledError:
                got = []
            if how != "wait_for":
                assert got == []
            if not got:
                got.append(await asyncio.wait_for(ws.recv(), 5))
            # Exactly once: then the next message, no duplicate.
            await ws.send("and on")
            got.append(await asyncio.wait_for(ws.recv(), 5))
            assert got == ["kept", "and on"]

    run(main())


def test_async_for_ends_at_normal_close_and_raises_at_abnormal_rfc6455_s7_4_1(
        transport: Transport) -> None:
    """§7.4.1: 1000 ends ``async for`` after every message was taken; 1011 raises
    ConnectionClosedError, both when the close is already there and when it comes
    while the reader waits."""

    async def talker(ws: Connection) -> None:
        await ws.send("one")
        await ws.send("two")
        path = ws.engine.request.path  # type: ignore[union-attr]
        code = 1000 if path.startswith("/normal") else 1011
        await asyncio.sleep(0.05 if path.endswith("late") else 0)
        await ws.close(code)

    async def main() -> None:
        async with serving(transport, talker) as srv:
            for path in ("/normal", "/normal-late"):
                async with connecting(transport, srv, path) as ws:
                    if not path.endswith("late"):
                        await asyncio.sleep(0.05)  # the close is queued behind the messages
                    assert [m async for m in ws] == ["one", "two"]
                    assert ws.close_code == 1000
            for path in ("/error", "/error-late"):
                async with connecting(transport, srv, path) as ws:
                    got = []
                    with pytest.raises(ConnectionClosedError) as info:
                        async for message in ws:
                            got.append(message)
                    assert got == ["one", "two"] and info.value.code == 1011

    run(main())


def test_abnormal_closure_is_1006(transport: Transport) -> None:
    """§7.1.5: the TCP connection ends without a closing handshake: 1006."""

    async def dropper(ws: Connection) -> None:
        ws.abort()

    async def main() -> None:
        async with serving(transport, dropper) as srv:
            ws = await connecting(transport, srv)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.code == 1006

    run(main())


def test_client_echoes_before_failing_on_bad_frame_sent_with_the_response() -> None:
    """Client role, §7.1.7 with lazy parsing: frames that arrive in the same packet as
    the 101 response are not parsed past the first message before the app reads it."""
    from tests.helpers import parse_frames, server_response

    got: list[bytes] = []

    async def raw_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        # A good text, then a reserved opcode (§5.2), unmasked as a server's must be.
        writer.write(server_response(key) + frame(TEXT, b"hi", masked=False)
                     + frame(0x3, b"", masked=False))
        got.append(await reader.read())  # until the client closes
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(raw_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ws = await connect(f"ws://127.0.0.1:{port}/", compression=None)
        message = await ws.recv()
        await ws.send(message)
        with pytest.raises(ConnectionClosedError) as info:
            await ws.recv()
        assert info.value.code == 1002
        await ws.wait_closed()
        server.close()

    run(main())
    frames = parse_frames(got[0])
    assert (frames[0].opcode, frames[0].payload) == (TEXT, b"hi")
    assert frames[1].opcode == CLOSE and frames[1].close_code == 1002


def test_compression_options_reach_the_negotiation(transport: Transport) -> None:
    """RFC 7692 §7.1.1: no_context_takeover parameters requested by the client."""

    async def main() -> None:
        async with serving(transport, echo) as srv, \
                connecting(transport, srv, compression_options={"client_no_context_takeover": True,
                                                       "server_no_context_takeover": True}) as ws:
            extension = ws.engine.extension
            assert extension is not None
            assert extension.send_reset and extension.recv_reset  # type: ignore[attr-defined]
            await ws.send("abc" * 1000)
            assert await ws.recv() == "abc" * 1000

    run(main())


def test_fan_out_api_queue_frame_and_send_nowait(transport: Transport) -> None:
    """A frame serialized once goes to several connections without waiting (§5.2)."""
    from rfc6455.frames import serialize_frame

    members: list[Connection] = []

    async def member(ws: Connection) -> None:
        members.append(ws)
        await ws.wait_closed()

    async def main() -> None:
        async with serving(transport, member, compression=None) as srv:
            clients = [await connecting(transport, srv) for _ in range(3)]
            while len(members) < 3:
                await asyncio.sleep(0.01)
            frame_bytes = serialize_frame(0x1, b"to all")
            assert all(m.queue_frame(frame_bytes) for m in members)
            assert all(m.send_nowait(b"bin") for m in members)
            assert all(m.pending_bytes >= 0 for m in members)
            for ws in clients:
                assert await ws.recv() == "to all"
                assert await ws.recv() == b"bin"
            members[0].start_close(1001, "")
            with pytest.raises(ConnectionClosedOK):
                await clients[0].recv()
            assert not members[0].queue_frame(frame_bytes)
            for ws in clients[1:]:
                await ws.close()

    run(main())


def test_send_during_closing_reports_our_close_code(transport: Transport) -> None:
    """§7.1.2: after starting the close, sending fails with the code we sent."""

    async def silent(ws: Connection) -> None:
        await asyncio.sleep(0.3)

    async def main() -> None:
        async with serving(transport, silent) as srv, connecting(transport, srv) as ws:
            ws.start_close(1001, "")
            with pytest.raises(ConnectionClosedOK) as info:
                await ws.send("late")
            assert info.value.code == 1001

    run(main())


@pytest.mark.parametrize("uvloop_loop", [False, True])
def test_pipelined_messages_echo_in_order_through_write_coalescing(
        uvloop_loop: bool, transport: Transport) -> None:
    """Sends made while more input waits are written together at the end of the loop
    iteration (and at once past 64 KiB): order and content must not change, and a
    lone reply still goes out without waiting for more input."""
    sizes = [1, 40, 200, 70_000, 3, 65536, 10, 150_000] * 25

    async def main() -> None:
        async with serving(transport, echo, max_size=2**21, compression=None) as srv:
            reader, writer = await open_raw(srv, transport=transport)
            payloads = [os.urandom(n) for n in sizes]
            # Every message in one write: the server sees them pipelined.
            writer.write(b"".join(frame(0x2, p) for p in payloads))
            expected = b"".join(frame(0x2, p, masked=False) for p in payloads)
            got = await reader.readexactly(len(expected))
            assert got == expected
            # A lone message after the burst is answered on its own.
            writer.write(frame(TEXT, b"alone"))
            assert await reader.readexactly(7) == frame(TEXT, b"alone", masked=False)
            writer.close()

    if uvloop_loop:
        import uvloop

        run(main(), loop_factory=uvloop.new_event_loop)
    else:
        run(main())
