"""The blocking adapter over real loopback sockets: echo, fragments, keepalive, closing,
flow control, handshake policies, TLS, unix sockets and websockets interop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from rfc6455.sync import (
    Connection,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
    Server,
    connect,
    serve,
)
from tests.conftest import Transport
from tests.helpers import CLOSE, PING, TEXT, frame
from tests.sync.raw import RawClient

SIZES = [0, 125, 126, 65535, 65536, 1024 * 1024]


def echo(ws: Connection) -> None:
    for message in ws:
        ws.send(message)


@contextmanager
def running(handler: Callable[[Connection], None], host: str = "127.0.0.1", *,
            transport: Transport | None = None, **options: Any) -> Iterator[Server]:
    """A server accepting in a thread, on ``host`` over TCP or over ``transport``."""
    if transport is None:
        server = serve(handler, host, 0, **options)
    else:
        server = serve(handler, **transport.serve_kwargs, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(5)


def url(server: Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def connecting(transport: Transport, server: Server, path: str = "/",
               **options: Any) -> Connection:
    """``connect()`` to ``server`` over the transport under test."""
    return connect(transport.url(server, path), **transport.connect_kwargs, **options)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_echo_every_size_class(compression: str | None, transport: Transport) -> None:
    """§5.2: 7-bit, 16-bit and 64-bit payload lengths, text and binary, both directions."""
    with running(echo, transport=transport, max_size=2**21, compression=compression) as srv, \
            connecting(transport, srv, max_size=2**21, compression=compression) as ws:
        assert (ws.engine.extension is not None) == (compression is not None)
        for size in SIZES:
            text = "é" * (size // 2)
            ws.send(text)
            assert ws.recv(timeout=10) == text
            binary = os.urandom(size)
            ws.send(binary)
            assert ws.recv(timeout=10) == binary


def test_fragments_both_directions(transport: Transport) -> None:
    """§5.4: a message sent in parts arrives whole, and can be received piece by piece."""
    received: list[Any] = []

    def handler(ws: Connection) -> None:
        received.append(ws.recv())
        ws.send([b"ab", b"cd", b"ef"])
        ws.recv()

    with running(handler, transport=transport) as srv, connecting(transport, srv) as ws:
        ws.send(iter(["hel", "lo"]))
        pieces = list(ws.recv_streaming(timeout=5))
        assert b"".join(pieces) == b"abcdef"  # type: ignore[arg-type]
        ws.send("done")
    assert received == ["hello"]


def test_concurrent_senders_do_not_interleave_frames(transport: Transport) -> None:
    """send() is thread-safe: frames of concurrent messages never mix (§5.4)."""
    with running(echo, transport=transport) as srv, connecting(transport, srv) as ws:
        def sender(tag: str) -> None:
            for _ in range(50):
                ws.send(tag * 1000)

        threads = [threading.Thread(target=sender, args=(t,)) for t in "abcd"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        got = [ws.recv(timeout=5) for _ in range(200)]
        assert all(isinstance(m, str) and m == m[0] * 1000 for m in got)
        assert sorted(m[0] for m in got) == sorted("abcd" * 50)  # type: ignore[index]


def test_ping_returns_latency_and_recv_times_out(transport: Transport) -> None:
    """§5.5.2: the peer answers our ping with a pong; recv(timeout) gives up."""
    with running(echo, transport=transport) as srv, connecting(transport, srv) as ws:
        assert ws.ping(timeout=5) > 0
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.05)


def test_echo_before_failing_on_following_bad_frame() -> None:
    """§7.1.7 with lazy parsing: the good message is echoed before the 1002 close."""
    with running(echo) as srv:
        raw = RawClient(srv.port)
        raw.send(frame(TEXT, b"good") + frame(0x3, b""))
        frames = raw.frames_until_eof()
        raw.close()
    assert (frames[0].opcode, frames[0].payload) == (TEXT, b"good")
    assert frames[1].opcode == CLOSE and frames[1].close_code == 1002


def test_close_codes_both_ways(transport: Transport) -> None:
    """§7.4: each side's close code reaches the other."""
    seen: list[Any] = []

    def handler(ws: Connection) -> None:
        try:
            ws.recv()
        except ConnectionClosedError as exc:
            seen.append(exc.code)

    with running(handler, transport=transport) as srv:
        ws = connecting(transport, srv)
        ws.close(4000, "app")
        assert ws.close_code == 4000
        time.sleep(0.05)
    assert seen == [4000]

    def closer(ws: Connection) -> None:
        ws.close(1001, "bye")

    with running(closer, transport=transport) as srv:
        ws = connecting(transport, srv)
        with pytest.raises(ConnectionClosedOK) as info:
            ws.recv(timeout=5)
        assert (info.value.code, info.value.reason) == (1001, "bye")
        with pytest.raises(ConnectionClosedOK):
            ws.send("late")


@pytest.mark.expect_error_log("rfc6455.server", "connection handler failed")
def test_handler_error_closes_1011(caplog: pytest.LogCaptureFixture, transport: Transport) -> None:
    """§7.4.1: 1011 when the server cannot go on; it keeps serving others."""

    def handler(ws: Connection) -> None:
        if ws.recv() == "boom":
            raise RuntimeError("boom")
        ws.send("fine")

    with caplog.at_level(logging.ERROR, logger="rfc6455.server"), \
            running(handler, transport=transport) as srv:
        with connecting(transport, srv) as ws:
            ws.send("boom")
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=5)
            assert info.value.code == 1011
        with connecting(transport, srv) as ws:
            ws.send("ok")
            assert ws.recv(timeout=5) == "fine"
    assert any("handler failed" in r.message and r.exc_info for r in caplog.records)


def test_shutdown_closes_every_connection_with_1001(transport: Transport) -> None:
    with running(echo, transport=transport) as srv:
        clients = [connecting(transport, srv) for _ in range(3)]
        time.sleep(0.05)
        assert len(srv.connections) == 3
        srv.shutdown()
        for ws in clients:
            with pytest.raises(ConnectionClosedOK) as info:
                ws.recv(timeout=5)
            assert info.value.code == 1001


def test_keepalive_times_out_a_silent_peer() -> None:
    """§5.5.2: a peer that stops answering pings is closed with 1011."""
    with running(echo, ping_interval=0.05, ping_timeout=0.2, close_timeout=0.2) as srv:
        raw = RawClient(srv.port)
        frames = raw.frames_until_eof()
        raw.close()
    assert frames[0].opcode == PING
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1011


def test_backpressure_bounds_memory(transport: Transport) -> None:
    """A client that never reads: the sender blocks, the outbox stays under the limit;
    the client's queue is bounded by max_queue."""
    state: dict[str, Any] = {"sent": 0}
    chunk = os.urandom(65536)

    def flooder(ws: Connection) -> None:
        state["conn"] = ws
        for _ in range(400):
            ws.send(chunk)
            state["sent"] += 1
            state["max_outbox"] = max(state.get("max_outbox", 0), ws._outbox_bytes)

    with running(flooder, transport=transport, write_limit=65536, compression=None,
                 close_timeout=0.2) as srv:
        ws = connecting(transport, srv, max_queue=4)
        time.sleep(0.4)
        assert state["sent"] < 400  # the handler is blocked in send()
        assert state["max_outbox"] <= 65536 + 16
        assert ws._driver.complete <= 4
        assert ws.engine.buffered_bytes <= 256 * 1024 + 65536
        ws.abort()


def test_slowloris_handshake_times_out() -> None:
    with running(echo, open_timeout=0.2) as srv, RawClient(srv.port, handshake=False) as raw:
        raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert raw.read_until_eof(5) == b""


def test_origin_policy_and_caps(transport: Transport) -> None:
    """§10.2: a foreign Origin gets 403; past max_connections, 503."""
    with running(echo, transport=transport, origins=["https://good.example"],
                 max_connections=1) as srv:
        with pytest.raises(InvalidStatus) as info:
            connecting(transport, srv, origin="https://evil.example")
        assert info.value.status == 403
        with connecting(transport, srv, origin="https://good.example"):
            with pytest.raises(InvalidStatus) as info:
                connecting(transport, srv, origin="https://good.example")
            assert info.value.status == 503


def test_plain_http_and_redirect() -> None:
    def hook(ws: Connection, request: Any) -> Any:
        if request.path == "/old":
            return 301, [("Location", "/new")], b""
        return None

    def handler(ws: Connection) -> None:
        assert ws.request_headers is not None
        ws.send("here")

    with running(handler, process_request=hook) as srv:
        with connect(url(srv, "/old")) as ws:
            assert ws.recv(timeout=5) == "here"
        raw = RawClient(srv.port, handshake=False)
        raw.send(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.read_until_eof().startswith(b"HTTP/1.1 426")
        raw.close()


def test_tls_with_trustme() -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with running(echo, ssl=server_ctx) as srv, \
            connect(f"wss://localhost:{srv.port}/", ssl=client_ctx) as ws:
        ws.send(b"z" * 100000)
        assert ws.recv(timeout=5) == b"z" * 100000
    assert ws.close_code == 1000


def test_unix_socket() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ws.sock")
        server = serve(echo, path=path)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with connect("ws://localhost/", path=path) as ws:
                ws.send("unix")
                assert ws.recv(timeout=5) == "unix"
        finally:
            server.shutdown()


@pytest.mark.interop
@pytest.mark.parametrize("compression", [None, "deflate"])
def test_websockets_client_against_our_server(compression: str | None) -> None:
    from websockets.sync.client import connect as ws_connect

    with running(echo, compression=compression) as srv, \
            ws_connect(url(srv), compression=compression, max_size=2**21) as ws:
        for size in SIZES[:-1]:
            ws.send(b"b" * size)
            assert ws.recv(timeout=5) == b"b" * size
        ws.send(["a", "b"])
        assert ws.recv(timeout=5) == "ab"


@pytest.mark.interop
@pytest.mark.parametrize("compression", [None, "deflate"])
def test_our_client_against_websockets_server(compression: str | None) -> None:
    from websockets.asyncio.server import serve as ws_serve

    async def ws_echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    ready = threading.Event()
    stop: list[Any] = []
    port: list[int] = []

    async def server_main() -> None:
        async with ws_serve(ws_echo, "127.0.0.1", 0, compression=compression,
                            max_size=2**21) as srv:
            port.append(srv.sockets[0].getsockname()[1])
            stop.append((asyncio.get_running_loop(), asyncio.Event()))
            ready.set()
            await stop[0][1].wait()

    thread = threading.Thread(target=asyncio.run, args=(server_main(),), daemon=True)
    thread.start()
    assert ready.wait(5)
    try:
        with connect(f"ws://127.0.0.1:{port[0]}/", compression=compression,
                     max_size=2**21) as ws:
            assert (ws.engine.extension is not None) == (compression is not None)
            for size in SIZES:
                data = os.urandom(size)
                ws.send(data)
                assert ws.recv(timeout=10) == data
            assert ws.ping(timeout=5) > 0
        assert ws.close_code == 1000
    finally:
        loop, event = stop[0]
        loop.call_soon_threadsafe(event.set)
        thread.join(5)


def test_close_timeout_aborts_a_peer_that_never_replies() -> None:
    """§7.1.1: when the close reply never comes, the server drops TCP after close_timeout."""

    def quitter(ws: Connection) -> None:
        ws.close(1000)

    with running(quitter, close_timeout=0.2) as srv:
        raw = RawClient(srv.port)
        frames = raw.frames_until_eof(5)
        raw.close()
    assert [f.opcode for f in frames] == [CLOSE] and frames[0].close_code == 1000


def test_abnormal_closure_is_1006(transport: Transport) -> None:
    """§7.1.5: the TCP connection ends without a closing handshake: 1006."""

    def dropper(ws: Connection) -> None:
        ws.abort()

    with running(dropper, transport=transport) as srv:
        ws = connecting(transport, srv)
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=5)
        assert info.value.code == 1006


def test_client_keepalive_measures_latency(transport: Transport) -> None:
    with running(echo, transport=transport) as srv, \
            connecting(transport, srv, ping_interval=0.02, ping_timeout=1) as ws:
        time.sleep(0.15)
        assert ws.latency > 0
        ws.send("alive")
        assert ws.recv(timeout=5) == "alive"


def test_fan_out_api_queue_frame_send_nowait_flush(transport: Transport) -> None:
    """Non-blocking sends are written without waiting, as in the asyncio adapter (what the
    socket takes now, at once); flush() then has nothing left (§5.2 frames intact)."""
    from rfc6455.frames import serialize_frame

    members: list[Connection] = []
    done = threading.Event()

    def member(ws: Connection) -> None:
        members.append(ws)
        done.wait(5)

    with running(member, transport=transport, compression=None) as srv:
        clients = [connecting(transport, srv) for _ in range(2)]
        deadline = time.monotonic() + 5
        while len(members) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        frame_bytes = serialize_frame(0x1, b"to all")
        for m in members:
            assert m.queue_frame(frame_bytes) and m.send_nowait(b"bin")
            m.flush()
            assert m.pending_bytes == 0
        for ws in clients:
            assert ws.recv(timeout=5) == "to all"
            assert ws.recv(timeout=5) == b"bin"
        members[0].start_close(1001)
        with pytest.raises(ConnectionClosedOK):
            clients[0].recv(timeout=5)
        done.set()
        for ws in clients:
            ws.close()


def test_http_connect_proxy_and_ipv6() -> None:
    """The client tunnels through an HTTP CONNECT proxy (RFC 9110 §9.3.6); the server
    listens on the IPv6 loopback when there is one."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def proxy() -> None:
        client, _ = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(1)
        seen.append(head.split(b"\r\n")[0])
        authority = head.split()[1].decode()
        host, port = authority.rsplit(":", 1)
        upstream = socket.create_connection((host.strip("[]"), int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threads = [threading.Thread(target=pipe, args=(client, upstream)),
                   threading.Thread(target=pipe, args=(upstream, client))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        client.close()
        upstream.close()

    proxy_thread = threading.Thread(target=proxy, daemon=True)
    proxy_thread.start()
    host = "::1" if socket.has_ipv6 else "127.0.0.1"
    try:
        server_cm = running(echo, host=host)
        srv = server_cm.__enter__()
    except OSError:
        host = "127.0.0.1"
        server_cm = running(echo, host=host)
        srv = server_cm.__enter__()
    try:
        bracketed = f"[{host}]" if ":" in host else host
        proxy_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with connect(f"ws://{bracketed}:{srv.port}/", proxy=proxy_url) as ws:
            ws.send("tunnel")
            assert ws.recv(timeout=5) == "tunnel"
    finally:
        server_cm.__exit__(None, None, None)
        proxy_thread.join(5)
        listener.close()
    assert seen and seen[0].startswith(b"CONNECT ")
