"""Request smuggling through the upgrade: a body on the GET must never reach the application.

RFC 6455 §4.1 makes the opening handshake a GET; a GET with a body has no
meaning (RFC 7231 §4.3.1) and a body framed by ``Content-Length`` or
``Transfer-Encoding`` (RFC 7230 §3.3) would be read by an intermediary as HTTP
and by us as WebSocket frames: a smuggling vector. The server refuses it with
400 and must not treat the body as frames; an explicit ``Content-Length: 0``
is no body at all and is accepted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from .harness import (
    TEXT,
    FrameReader,
    ServerProcess,
    client_frame,
    open_socket,
    read_all_until_eof,
    read_head,
    report,
    status_of,
    upgrade_request,
)

pytestmark = pytest.mark.adversarial

Launch = Callable[..., ServerProcess]

SMUGGLED = b"smuggled"
# A masked text frame of 8 bytes: 2 + 4 (key) + 8 = 14 bytes, the body below.
FRAME = client_frame(TEXT, SMUGGLED)
assert len(FRAME) == 14


def attempt(server: ServerProcess, headers: list[tuple[str, str]], body: bytes
            ) -> tuple[bytes, bytes]:
    """Send the upgrade with ``body`` behind it; (response head, what followed until EOF)."""
    deadline = time.monotonic() + 5.0
    sock = open_socket(server)
    try:
        sock.sendall(upgrade_request(server.port, "/", headers) + body)
        head, rest = read_head(sock, deadline)
        rest = read_all_until_eof(sock, min(deadline, time.monotonic() + 2.0), rest)
    finally:
        sock.close()
    return head, rest


def echoed_frames(data: bytes) -> list[bytes]:
    reader = FrameReader()
    reader.feed(data)
    payloads = []
    while (frame := reader.next()) is not None:
        payloads.append(frame[2])
    return payloads


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upgrade_with_a_body_is_refused(launch: Launch, backend: str, transport: str,
                                        framing: str) -> None:
    server = launch(backend, tls=transport == "tls")
    if framing == "content-length":
        headers, body = [("Content-Length", str(len(FRAME)))], FRAME
    else:
        headers = [("Transfer-Encoding", "chunked")]
        body = f"{len(FRAME):x}\r\n".encode() + FRAME + b"\r\n0\r\n\r\n"
    head, rest = attempt(server, headers, body)
    leaked = SMUGGLED in rest or SMUGGLED in b"".join(echoed_frames(rest))
    report(f"{server.label} upgrade with {framing} body", status_line=head.split(b"\r\n")[0],
           body_echoed_as_a_frame=leaked)
    assert head.startswith(b"HTTP/1.1 400"), head[:200]
    assert not leaked, rest[:200]
    server.finish()


def test_upgrade_with_content_length_zero_is_accepted(launch: Launch, backend: str,
                                                      transport: str) -> None:
    server = launch(backend, tls=transport == "tls")
    deadline = time.monotonic() + 5.0
    sock = open_socket(server)
    try:
        sock.sendall(upgrade_request(server.port, "/", [("Content-Length", "0")]) + FRAME)
        head, rest = read_head(sock, deadline)
        assert status_of(head) == 101, head[:200]
        reader = FrameReader()
        reader.feed(rest)
        while (frame := reader.next()) is None:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            assert chunk, "EOF instead of the echo"
            reader.feed(chunk)
        assert frame[0] == TEXT and frame[2] == SMUGGLED
    finally:
        sock.close()
    server.finish()
