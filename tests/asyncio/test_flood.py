"""Peers that send without reading, against a server in its own process: its memory
stays bounded (RSS read from /proc), it drops them on keepalive, and it serves
another client meanwhile; plain TCP and TLS, ``serve`` and ``serve_listener``.

RFC 6455 §5.5.3 lets a pong answer only the latest ping: while the server's
output is over ``write_limit`` it stops reading and leaves pongs in the engine,
which coalesces them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rfc6455
from rfc6455.asyncio import connect
from tests.helpers import BINARY, PING, cframe, client_request

trustme = pytest.importorskip("trustme")

MIB = 1024 * 1024
SLACK = 16 * MIB

SERVER = r"""
import asyncio, json, ssl, sys
from rfc6455.asyncio import Listener, serve, serve_listener

config = json.loads(sys.argv[1])

async def echo(ws):
    async for message in ws:
        await ws.send(message)

class Echo(Listener):
    def on_message(self, ws, message):
        ws.send_nowait(message)

async def main():
    context = None
    if config["tls"]:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config["cert"])
    if config["kind"] == "listener":
        server = serve_listener(Echo, "127.0.0.1", 0, ssl=context, **config["options"])
    else:
        server = serve(echo, "127.0.0.1", 0, ssl=context, **config["options"])
    async with server as running:
        print(running.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


class ServerProcess:
    def __init__(self, proc: subprocess.Popen[str], port: int, tls: bool,
                 client_ctx: ssl.SSLContext | None) -> None:
        self.proc = proc
        self.port = port
        self.tls = tls
        self.client_ctx = client_ctx

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def raw(self) -> socket.socket:
        """A peer past the opening handshake that will never read again."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each send on its own
        if self.client_ctx is not None:
            sock = self.client_ctx.wrap_socket(sock, server_hostname="localhost")
        sock.sendall(client_request())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # nothing past the head: no frame is read
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 "), head
        return sock

    def served(self) -> bool:
        """Another client gets an echo now."""
        scheme = "wss" if self.tls else "ws"

        async def echo_once() -> bool:
            async with connect(f"{scheme}://localhost:{self.port}/", ssl=self.client_ctx,
                               open_timeout=10) as ws:
                await ws.send("still here")
                return await asyncio.wait_for(ws.recv(), 10) == "still here"

        return bool(asyncio.run(echo_once()))


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    path = tmp_path_factory.mktemp("tls") / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(path))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return str(path), client_ctx


@contextlib.contextmanager
def start_server(kind: str, tls: bool, certificates: tuple[str, ssl.SSLContext],
                 **options: Any) -> Iterator[ServerProcess]:
    config = {"kind": kind, "tls": tls, "cert": certificates[0], "options": options}
    env = dict(os.environ)
    root = str(Path(rfc6455.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, json.dumps(config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield ServerProcess(proc, port, tls, certificates[1] if tls else None)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            proc.kill()
            proc.wait()
            raise
        finally:
            assert proc.stdout is not None
            proc.stdout.close()


def flood(sock: socket.socket, data: bytes, total: int, stall: float) -> tuple[int, str]:
    """Send ``data`` repeatedly up to ``total`` bytes, never reading; stop once a send
    stalls for ``stall`` seconds (the server stopped reading) or fails."""
    sock.settimeout(stall)
    sent = 0
    view = memoryview(data)
    try:
        while sent < total:
            offset = 0
            while offset < len(view):
                offset += sock.send(view[offset:])
            sent += len(data)
    except (TimeoutError, ssl.SSLWantWriteError):
        return sent, "stalled"
    except OSError as exc:
        return sent, type(exc).__name__
    return sent, "done"


PING_125 = cframe(PING, b"p" * 125)
PINGS = PING_125 * (MIB // len(PING_125))  # ~1 MiB of 125-byte pings


def ping_flood(sock: socket.socket, total: int, stall: float) -> tuple[int, str]:
    """Pings sent 16 at a time and paced, as a flooder can: each read of the server
    then holds few pings, so that the engine cannot coalesce pongs within one read."""
    sock.settimeout(stall)
    burst = PING_125 * 16
    sent = 0
    try:
        while sent < total:
            sock.sendall(burst)
            sent += len(burst)
            time.sleep(0.0001)
    except (TimeoutError, ssl.SSLWantWriteError):
        return sent, "stalled"
    except OSError as exc:
        return sent, type(exc).__name__
    return sent, "done"


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("kind", ["serve", "listener"])
def test_ping_flood_that_never_reads_keeps_the_server_small_rfc6455_5_5_3(
        kind: str, tls: bool, certificates: tuple[str, ssl.SSLContext]) -> None:
    """64 MiB of 125-byte pings, never reading the pongs: the server stops reading once
    its output is over write_limit and lets pongs coalesce (§5.5.3); RSS grows < 16 MiB."""
    with start_server(kind, tls, certificates, ping_interval=None, compression=None) as server:
        assert server.served()
        before = server.rss()
        sock = server.raw()
        try:
            sent, outcome = ping_flood(sock, 64 * MIB, stall=3.0)
            grown = server.rss() - before
            assert outcome in ("stalled", "done"), outcome
            assert grown < SLACK, (grown, sent)
            assert server.served()
        finally:
            sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_echo_to_a_peer_that_never_reads_is_bounded(
        tls: bool, certificates: tuple[str, ssl.SSLContext]) -> None:
    """8 x 1 MiB messages to the echo server, then pings, never reading: the server holds
    at most about max_queue * max_size + write_limit (it stops reading, pings too)."""
    max_queue, max_size, write_limit = 4, MIB, 64 * 1024
    with start_server("serve", tls, certificates, ping_interval=None,
                               compression=None, max_queue=max_queue, max_size=max_size,
                               write_limit=write_limit) as server:
        assert server.served()
        before = server.rss()
        sock = server.raw()
        try:
            message = cframe(BINARY, os.urandom(MIB))
            sent, outcome = flood(sock, message, 8 * len(message), stall=3.0)
            if outcome == "done":
                sent, outcome = ping_flood(sock, 32 * MIB, stall=3.0)
            assert sent > 0
            grown = server.rss() - before
            assert outcome == "stalled", outcome
            assert grown < max_queue * max_size + write_limit + SLACK, grown
            assert server.served()
        finally:
            sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("kind", ["serve", "listener"])
def test_flooder_that_never_reads_is_dropped_by_keepalive(
        kind: str, tls: bool, certificates: tuple[str, ssl.SSLContext]) -> None:
    """With ping_interval=1, ping_timeout=1, close_timeout=1 a flooder that never reads
    (so never answers our ping) is dropped within ~10 s; others are served meanwhile."""
    with start_server(kind, tls, certificates, ping_interval=1, ping_timeout=1,
                               close_timeout=1, compression=None) as server:
        sock = server.raw()
        outcome: list[tuple[int, str]] = []
        start = time.monotonic()
        thread = threading.Thread(target=lambda: outcome.append(
            ping_flood(sock, 1 << 40, stall=20.0)))
        thread.start()
        try:
            while thread.is_alive() and time.monotonic() - start < 3:
                assert server.served()
                time.sleep(0.2)
            thread.join(20)
            assert not thread.is_alive()
            _sent, how = outcome[0]
            assert how in ("ConnectionResetError", "BrokenPipeError", "SSLEOFError",
                           "SSLZeroReturnError", "SSLError"), how
            assert time.monotonic() - start < 12
            assert server.served()
        finally:
            sock.close()


# In process, step by step: each burst of pings reaches the server in a read of its
# own (the flooder yields to the loop between bursts), so that the engine cannot
# coalesce pongs within one read: only the adapter leaving them in the engine while
# the transport is over write_limit bounds them.


async def _paced_ping_flood(port: int, bursts: int, client_ctx: ssl.SSLContext | None,
                            server: Any) -> tuple[Any, int]:
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # it never reads anyway
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each burst on its own
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    if client_ctx is not None:
        reader, writer = await asyncio.open_connection(
            sock=sock, ssl=client_ctx, server_hostname="localhost")
    else:
        reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(client_request())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101 ")
    writer.transport.pause_reading()  # type: ignore[attr-defined]
    while not server.connections:
        await asyncio.sleep(0.01)
    (conn,) = server.connections
    burst = PING_125 * 8
    most = 0
    try:
        for _ in range(bursts):
            writer.write(burst)
            try:
                await asyncio.wait_for(writer.drain(), 1.0)
            except TimeoutError:
                break  # the server stopped reading: TCP holds the flooder back
            for _ in range(3):
                await asyncio.sleep(0)  # the server reads this burst on its own
            most = max(most, conn.pending_bytes)
    finally:
        writer.transport.abort()
    return conn, most


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("kind", ["serve", "listener"])
def test_pongs_wait_in_the_engine_while_the_transport_is_full_rfc6455_5_5_3(
        kind: str, tls: bool, certificates: tuple[str, ssl.SSLContext]) -> None:
    """Bursts of 8 pings, each read on its own, from a peer that never reads: once the
    transport is over write_limit the server writes no more pongs into it (they wait,
    coalesced, in the engine, §5.5.3) and stops reading; another client is served."""
    from rfc6455.asyncio import Listener, serve, serve_listener

    write_limit = 64 * 1024
    server_ctx = None
    client_ctx = certificates[1] if tls else None
    if tls:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(certificates[0])

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    class Echo(Listener):
        def on_message(self, ws: Any, message: str | bytes) -> None:
            ws.send_nowait(message)

    async def main() -> None:
        options: dict[str, Any] = {"ssl": server_ctx, "ping_interval": None,
                                   "compression": None, "write_limit": write_limit}
        starting = serve_listener(Echo, "127.0.0.1", 0, **options) if kind == "listener" \
            else serve(echo, "127.0.0.1", 0, **options)
        async with starting as server:
            conn, most = await _paced_ping_flood(server.port, 20000, client_ctx, server)
            # What is over write_limit: at most one read's worth of pongs.
            assert most < write_limit + 64 * 1024, most
            scheme = "wss" if tls else "ws"
            async with connect(f"{scheme}://localhost:{server.port}/", ssl=client_ctx) as ws:
                await ws.send("still here")
                assert await asyncio.wait_for(ws.recv(), 10) == "still here"
            del conn

    asyncio.run(asyncio.wait_for(main(), 120))
