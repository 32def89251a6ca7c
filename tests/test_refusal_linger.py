"""A bad opening request gets its HTTP error even when more bytes follow it.

The server answers, sends its FIN, and reads on (discarding) for a moment
before it closes: closing a socket with unread input makes the kernel send a
reset, and a reset arriving first destroys the answer in the client's receive
queue (RFC 9112 §9.6, the lingering close). Both servers, over a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import TEXT, client_request, frame

# A request the engine refuses by itself (400: a body on an upgrade, RFC 9112
# §6.3), then more of the "body" than the server reads with it.
BAD = client_request().replace(b"\r\n\r\n", b"\r\nContent-Length: 14\r\n\r\n", 1)
TRAILER = frame(TEXT, b"x" * 4000) * 64


@contextlib.contextmanager
def sync_server() -> Iterator[int]:
    from rfc6455.sync import Connection, serve

    def echo(ws: Connection) -> None:
        for message in ws:
            ws.send(message)

    server = serve(echo, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.port
    finally:
        server.shutdown()
        thread.join(5)


@contextlib.contextmanager
def asyncio_server() -> Iterator[int]:
    from rfc6455.asyncio import Connection, serve

    ready: list[int] = []
    stop = threading.Event()

    async def echo(ws: Connection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            ready.append(server.port)
            while not stop.is_set():
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not ready and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield ready[0]
    finally:
        stop.set()
        thread.join(15)


def refused_with_trailer(port: int) -> bytes:
    """Send the bad request and its trailer, read only after the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(BAD)
        # The server may close first: what matters is what we read.
        with contextlib.suppress(OSError):
            sock.sendall(TRAILER)
        time.sleep(0.2)  # the answer, and any reset, arrive before we read
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


Start = Callable[[], "contextlib.AbstractContextManager[int]"]


@pytest.mark.parametrize("start", [sync_server, asyncio_server], ids=["sync", "asyncio"])
def test_bad_request_followed_by_more_bytes_still_gets_its_400(start: Start) -> None:
    with start() as port:
        for _ in range(5):
            received = refused_with_trailer(port)
            assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received[:100]


@pytest.mark.parametrize("start", [sync_server, asyncio_server], ids=["sync", "asyncio"])
def test_after_its_answer_the_server_reads_on_before_closing(start: Start) -> None:
    """After the 400 and its FIN, bytes the client still sends are read and dropped
    (for up to a second), not answered with a reset."""
    with start() as port, socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(BAD)
        received = b""
        while chunk := sock.recv(65536):  # the answer, then the server's FIN
            received += chunk
        assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n"), received[:100]
        for _ in range(3):  # a peer closed for good would answer with RST by now
            sock.sendall(b"late bytes " * 100)
            time.sleep(0.05)
