"""Fine points of the HTTP/1.1 handshake that an attacker pokes at.

* ``Host`` must be a valid ``uri-host [":" port]`` (RFC 7230 §5.4, RFC 3986
  §3.2.2): a space or a slash in it is a malformed request, 400.
* A request target longer than the server is willing to parse is 414 URI Too
  Long (RFC 7231 §6.5.12), not a generic error, and not read into memory whole.
* Every status line carries a reason phrase (RFC 7230 §3.1.2 allows an empty
  one, but proxies and people read it): ``HTTP/1.1 400 Bad Request``.
* ``origins`` is a collection of origins: a bare string (which would be checked
  character by character) is a programming error, TypeError at ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest

import rfc6455.asyncio
import rfc6455.sync

from .harness import (
    ServerProcess,
    open_socket,
    read_all_until_eof,
    read_head,
    report,
    upgrade_request,
)

pytestmark = pytest.mark.adversarial

Launch = Callable[..., ServerProcess]


def answer(server: ServerProcess, request: bytes) -> bytes:
    """The server's response head to ``request`` (sent whole, as far as the server reads)."""
    deadline = time.monotonic() + 5.0
    sock = open_socket(server)
    try:
        # The server may answer and close before it read everything.
        with contextlib.suppress(OSError):
            sock.sendall(request)
        head, _rest = read_head(sock, deadline)
        read_all_until_eof(sock, min(deadline, time.monotonic() + 1.0))
    finally:
        sock.close()
    return head


@pytest.mark.parametrize("host", ["a b", "a/b"])
def test_malformed_host_is_400(launch: Launch, backend: str, host: str) -> None:
    server = launch(backend)
    head = answer(server, upgrade_request(server.port, "/", host=host))
    report(f"{server.label} Host: {host}", status_line=head.split(b"\r\n")[0])
    assert head.startswith(b"HTTP/1.1 400 "), head[:200]
    server.finish()


def test_long_request_target_is_414(launch: Launch, backend: str, transport: str) -> None:
    server = launch(backend, tls=transport == "tls")
    baseline = server.rss()
    head = answer(server, upgrade_request(server.port, "/" + "a" * 100_000))
    growth = server.rss() - baseline
    report(f"{server.label} 100 KB target", status_line=head.split(b"\r\n")[0],
           rss_growth_kib=growth // 1024)
    assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n"), head[:200]
    server.finish()


def test_status_lines_carry_a_reason_phrase(launch: Launch, backend: str) -> None:
    server = launch(backend)
    # No Sec-WebSocket-Key (§4.2.1 item 5): a bad handshake request.
    request = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    head = answer(server, request)
    accepted = answer(server, upgrade_request(server.port))
    report(f"{server.label} status lines", bad=head.split(b"\r\n")[0],
           accepted=accepted.split(b"\r\n")[0])
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), head[:200]
    assert accepted.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), accepted[:200]
    server.finish()


async def _echo(ws: rfc6455.asyncio.Connection) -> None:
    async for message in ws:
        await ws.send(message)


def test_origins_as_a_bare_string_is_a_type_error_asyncio() -> None:
    async def start(make: Callable[..., object]) -> None:
        async with make() as server:  # type: ignore[attr-defined]
            server.close()

    with pytest.raises(TypeError):
        asyncio.run(start(lambda: rfc6455.asyncio.serve(
            _echo, "127.0.0.1", 0, origins="https://example.com")))
    with pytest.raises(TypeError):
        asyncio.run(start(lambda: rfc6455.asyncio.serve_listener(
            rfc6455.asyncio.Listener, "127.0.0.1", 0, origins="https://example.com")))


def test_origins_as_a_bare_string_is_a_type_error_sync() -> None:
    def echo(ws: rfc6455.sync.Connection) -> None:
        for message in ws:
            ws.send(message)

    server = None
    try:
        with pytest.raises(TypeError):
            server = rfc6455.sync.serve(echo, "127.0.0.1", 0, origins="https://example.com")
    finally:
        if server is not None:
            server.shutdown()
