"""Malicious servers against our clients, ``rfc6455.asyncio.connect`` and ``rfc6455.sync.connect``.

The hostile servers run in threads of this process on 127.0.0.1, and the
client's memory is this process's RSS (the servers' own buffers are made
before the baseline). What a server may not do to a client:

* make it buffer an endless response head (RFC 7230 §3.2: the client limits
  it, ``max_header_bytes``), or hang it with one trickled byte at a time
  (``open_timeout``);
* inflate a small compressed message past ``max_size`` (RFC 7692 §8.2 leaves
  the limit to the endpoint; we fail with 1009, §7.4.1);
* collect credentials meant for another origin through a redirect (RFC 7231
  §6.4; the Fetch standard strips ``Authorization`` and cookies cross-origin),
  or downgrade ``wss://`` to ``ws://`` through one (RFC 6455 §4.1: the client
  would then send in clear what it meant to encrypt);
* make it queue without bound while the application does not read
  (``max_queue`` messages of ``max_size``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import rfc6455.asyncio
import rfc6455.sync
from rfc6455.errors import WebSocketError

from .harness import (
    BINARY,
    CLOSE,
    GUID,
    FrameReader,
    MiB,
    TLSFiles,
    close_code,
    read_head,
    report,
    rss_of_self,
    server_frame,
)

# Added by another change: without it the redirect test fails (collection does not).
AsyncInvalidRedirect: type[BaseException] | None = getattr(rfc6455.asyncio, "InvalidRedirect",
                                                           None)
SyncInvalidRedirect: type[BaseException] | None = getattr(rfc6455.sync, "InvalidRedirect", None)

pytestmark = pytest.mark.adversarial

CLIENTS = ("asyncio", "sync")

Behaviour = Callable[[socket.socket, "HostileServer"], None]


class HostileServer:
    """A listening socket whose every connection runs ``behaviour`` in a thread."""

    def __init__(self, behaviour: Behaviour, context: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        self.context = context
        self.stop = threading.Event()
        self.requests: list[bytes] = []
        self.events: list[Any] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5.0)
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            self.behaviour(conn, self)
        except (OSError, ValueError, TimeoutError):
            pass  # the client hung up: what it should do against these servers
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def read_request(self, conn: socket.socket) -> bytes:
        head, _ = read_head(conn, time.monotonic() + 5.0)
        self.requests.append(head)
        return head

    def close(self) -> None:
        self.stop.set()
        self.accepter.join(5)
        for thread in self.threads:
            thread.join(10)
        self.listener.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def headers_of(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines if line)}


def accept_response(request: bytes, extra: str = "") -> bytes:
    key = headers_of(request)["sec-websocket-key"]
    token = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {token}\r\n{extra}\r\n").encode()


def answer_close(conn: socket.socket, server: HostileServer, seconds: float = 5.0) -> None:
    """Read the client's frames until its close; record the code and answer it."""
    reader = FrameReader()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not server.stop.is_set():
        conn.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
        try:
            data = conn.recv(65536)
        except TimeoutError:
            continue
        if not data:
            return
        reader.feed(data)
        while (frame := reader.next()) is not None:
            if frame[0] == CLOSE:
                server.events.append(("close", close_code(frame[2])))
                with contextlib.suppress(OSError):
                    conn.sendall(server_frame(CLOSE, frame[2][:2]))
                return


def client_error(kind: str, uri: str, seconds: float, **options: Any
                 ) -> tuple[BaseException | None, float]:
    """Open a connection that should fail: (the exception or None, seconds taken)."""
    start = time.monotonic()
    try:
        if kind == "asyncio":
            async def attempt() -> None:
                async with rfc6455.asyncio.connect(uri, **options):
                    pass

            asyncio.run(asyncio.wait_for(attempt(), seconds))
        else:
            with rfc6455.sync.connect(uri, **options):
                pass
    except BaseException as exc:  # what the test asserts on
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


# ---------------------------------------------------------------- the response head


@pytest.mark.parametrize("kind", CLIENTS)
def test_endless_response_head(kind: str) -> None:
    line = b"X-Padding: " + b"a" * 1000 + b"\r\n"
    chunk = line * 64

    def endless(conn: socket.socket, server: HostileServer) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
        deadline = time.monotonic() + 10.0
        sent = 0
        while time.monotonic() < deadline and sent < 256 * MiB and not server.stop.is_set():
            conn.sendall(chunk)
            sent += len(chunk)

    baseline = rss_of_self()
    with HostileServer(endless) as server:
        exc, seconds = client_error(kind, f"ws://127.0.0.1:{server.port}/", 15.0,
                                    open_timeout=10)
    growth = rss_of_self() - baseline
    report(f"{kind} client vs endless head", error=repr(exc)[:100], seconds=seconds,
           rss_growth_mib=growth / MiB)
    assert exc is not None, "the client accepted an endless head"
    assert isinstance(exc, WebSocketError), f"not a clear error: {exc!r}"
    assert seconds < 5.0, "the head limit took the open timeout to notice"
    assert growth < 16 * MiB, f"client RSS grew {growth / MiB:.1f} MiB"


@pytest.mark.parametrize("kind", CLIENTS)
def test_trickled_response_head(kind: str) -> None:
    def trickle(conn: socket.socket, server: HostileServer) -> None:
        server.read_request(conn)
        for byte in b"HTTP/1.1 101 Switching Protocols\r\nX-Slow: " + b"a" * 10_000:
            if server.stop.wait(0.05):
                return
            conn.sendall(bytes([byte]))

    with HostileServer(trickle) as server:
        exc, seconds = client_error(kind, f"ws://127.0.0.1:{server.port}/", 10.0,
                                    open_timeout=1)
    report(f"{kind} client vs trickled head", error=repr(exc)[:100], seconds=seconds)
    assert isinstance(exc, (TimeoutError, asyncio.TimeoutError)), repr(exc)
    assert seconds < 4.0, f"open_timeout=1 took {seconds:.1f} s"


# ---------------------------------------------------------------- messages


def deflate_bomb(size: int) -> bytes:
    """One compressed message (RFC 7692 §7.2.1) that inflates to ``size`` zero bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(bytes(size)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return server_frame(BINARY, data[:-4], rsv=0x40)


@pytest.mark.parametrize("kind", CLIENTS)
def test_deflate_bomb_is_1009(kind: str) -> None:
    bomb = deflate_bomb(64 * MiB)

    def bombing(conn: socket.socket, server: HostileServer) -> None:
        request = server.read_request(conn)
        assert "permessage-deflate" in headers_of(request).get("sec-websocket-extensions", "")
        conn.sendall(accept_response(request, "Sec-WebSocket-Extensions: permessage-deflate\r\n"))
        conn.sendall(bomb)
        answer_close(conn, server)

    baseline = rss_of_self()
    error: BaseException | None = None
    with HostileServer(bombing) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        try:
            if kind == "asyncio":
                async def receive() -> None:
                    async with rfc6455.asyncio.connect(uri, max_size=MiB, close_timeout=2) as ws:
                        await asyncio.wait_for(ws.recv(), 5.0)

                asyncio.run(receive())
            else:
                with rfc6455.sync.connect(uri, max_size=MiB, close_timeout=2) as ws:
                    ws.recv(timeout=5.0)
        except BaseException as exc:  # asserted below
            error = exc
    growth = rss_of_self() - baseline
    report(f"{kind} client vs deflate bomb", compressed_kib=len(bomb) // 1024,
           error=repr(error)[:100], close_sent=server.events, rss_growth_mib=growth / MiB)
    closed = (rfc6455.asyncio.ConnectionClosedError if kind == "asyncio"
              else rfc6455.sync.ConnectionClosedError)
    assert isinstance(error, closed), repr(error)
    assert error.code == 1009
    assert ("close", 1009) in server.events, server.events
    assert growth < 16 * MiB, f"client RSS grew {growth / MiB:.1f} MiB"


@pytest.mark.parametrize("kind", CLIENTS)
def test_server_that_sends_forever_to_an_app_that_does_not_read(kind: str) -> None:
    max_queue, max_size = 4, MiB
    frames = server_frame(BINARY, bytes(max_size)) * 4

    def firehose(conn: socket.socket, server: HostileServer) -> None:
        request = server.read_request(conn)
        conn.sendall(accept_response(request))
        conn.settimeout(0.2)
        deadline = time.monotonic() + 10.0
        sent = 0
        view = memoryview(frames)
        while time.monotonic() < deadline and not server.stop.is_set():
            try:
                written = conn.send(view[sent % len(frames):])
            except TimeoutError:
                continue
            sent += written
            server.events[:] = [("sent", sent)]

    baseline = rss_of_self()
    peak = baseline
    with HostileServer(firehose) as server:
        uri = f"ws://127.0.0.1:{server.port}/"
        options: dict[str, Any] = {"max_queue": max_queue, "max_size": max_size, "close_timeout": 1,
                   "compression": None}

        sent = 0

        def watch(seconds: float) -> None:
            nonlocal peak, sent
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                peak = max(peak, rss_of_self())
                time.sleep(0.05)
            # What the server could write while the application did not read.
            sent = server.events[-1][1] if server.events else 0

        if kind == "asyncio":
            async def idle() -> None:
                async with rfc6455.asyncio.connect(uri, **options):
                    await asyncio.to_thread(watch, 3.0)

            asyncio.run(asyncio.wait_for(idle(), 15.0))
        else:
            with rfc6455.sync.connect(uri, **options):
                watch(3.0)
        server.stop.set()
    growth = peak - baseline
    bound = max_queue * max_size + 16 * MiB
    report(f"{kind} client, app not reading", server_sent_mib=sent / MiB,
           rss_growth_mib=growth / MiB, bound_mib=bound / MiB)
    assert growth < bound, f"client RSS grew {growth / MiB:.1f} MiB"


# ---------------------------------------------------------------- redirects


CREDENTIALS = [("Authorization", "Bearer secret-token"), ("Cookie", "session=secret"),
               ("Proxy-Authorization", "Basic c2VjcmV0")]


def upgrade_then_close(conn: socket.socket, server: HostileServer) -> None:
    request = server.read_request(conn)
    conn.sendall(accept_response(request))
    answer_close(conn, server)


@pytest.mark.parametrize("kind", CLIENTS)
def test_cross_origin_redirect_drops_credentials(kind: str) -> None:
    with HostileServer(upgrade_then_close) as other:
        def redirect(conn: socket.socket, server: HostileServer) -> None:
            server.read_request(conn)
            conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:{other.port}/elsewhere"
                         f"\r\nContent-Length: 0\r\n\r\n".encode())

        with HostileServer(redirect) as first:
            exc, _ = client_error(kind, f"ws://127.0.0.1:{first.port}/", 10.0,
                                  extra_headers=CREDENTIALS, close_timeout=2)
    sent_first = headers_of(first.requests[0]) if first.requests else {}
    sent_other = [headers_of(head) for head in other.requests]
    leaked = sorted({name for headers in sent_other for name, _ in CREDENTIALS
                     if name.lower() in headers})
    report(f"{kind} client redirected to another origin", followed=bool(sent_other),
           error=repr(exc)[:80], leaked=",".join(leaked) or "none")
    assert "authorization" in sent_first, "the first request lacked the credentials"
    assert not leaked, f"{leaked} sent to another origin after a redirect"


@pytest.mark.parametrize("kind", CLIENTS)
def test_redirect_from_wss_to_ws_is_refused(kind: str, tls_files: TLSFiles) -> None:
    with HostileServer(upgrade_then_close) as plain:
        def downgrade(conn: socket.socket, server: HostileServer) -> None:
            server.read_request(conn)
            conn.sendall(f"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:{plain.port}/"
                         f"\r\nContent-Length: 0\r\n\r\n".encode())

        with HostileServer(downgrade, tls_files.server_context()) as secure:
            exc, _ = client_error(kind, f"wss://127.0.0.1:{secure.port}/", 10.0,
                                  ssl=tls_files.client_context(), close_timeout=2)
    report(f"{kind} client redirected wss -> ws", error=repr(exc)[:100],
           plain_requests=len(plain.requests))
    expected = AsyncInvalidRedirect if kind == "asyncio" else SyncInvalidRedirect
    assert expected is not None, "InvalidRedirect does not exist yet"
    assert isinstance(exc, expected), repr(exc)
    assert not plain.requests, "the client followed the downgrade"

