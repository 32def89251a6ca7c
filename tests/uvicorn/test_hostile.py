"""Hostile peers of a uvicorn server running our protocol: what they can make it hold
is bounded, and another client is still served meanwhile (over TCP and TLS).

* a client that never reads while the application sends as fast as it may;
* a client that floods messages at an application that never receives;
* a client that floods pings and never reads the pongs.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rfc6455.asyncio import connect
from rfc6455.uvicorn import QUEUE_BYTES

from ..helpers import cframe
from .servers import Running, TLSFiles, running

MiB = 1024 * 1024
#: Generous: the machine is shared and RSS is noisy; an unbounded server grows by
#: hundreds of MiB in the time these tests flood it.
RSS_GROWTH_BOUND = 16 * MiB
FLOOD_SECONDS = 1.5
CHUNK = 16 * 1024


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSFiles]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    folder = Path(tmp_path_factory.mktemp("uvicorn-tls"))
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    keyfile.write_bytes(cert.private_key_pem.bytes())
    client = ssl.create_default_context()
    ca.configure_trust(client)
    yield TLSFiles(certfile, keyfile, client)


class Apps:
    """A raw ASGI application: /out sends without end, /mute never receives, /echo echoes."""

    def __init__(self) -> None:
        self.sent = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        path = scope["path"]
        if path == "/out":
            payload = b"x" * 65536
            try:
                while not self.release.is_set():
                    await send({"type": "websocket.send", "bytes": payload})
                    self.sent += len(payload)
            except OSError:  # uvicorn's ClientDisconnected: the peer went away
                return
        elif path == "/mute":
            await self.release.wait()
        else:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                await send({"type": "websocket.send", "text": message.get("text") or ""})


async def raw_client(server: Running, path: str, tls: TLSFiles | None
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection past the opening handshake that does whatever the test says next."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=None if tls is None else tls.client,
        server_hostname=None if tls is None else "127.0.0.1")
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


async def still_served(server: Running, tls: TLSFiles | None) -> None:
    async with connect(server.url("/echo"), ssl=None if tls is None else tls.client) as ws:
        for i in range(5):
            await ws.send(f"hello {i}")
            assert await asyncio.wait_for(ws.recv(), 5) == f"hello {i}"


async def flood(writer: asyncio.StreamWriter, frame: bytes, budget: int) -> int:
    """Write ``frame`` until the server stops reading (a drain that takes 0.5 s) or
    ``budget`` bytes went out; the bytes written."""
    written = 0
    while written < budget:
        writer.write(frame)
        written += len(frame)
        try:
            await asyncio.wait_for(writer.drain(), 0.5)
        except TimeoutError:
            break
    return written


def end(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


@pytest.mark.parametrize("use_tls", [False, True], ids=["tcp", "tls"])
def test_client_that_never_reads(use_tls: bool, tls_files: TLSFiles) -> None:
    tls = tls_files if use_tls else None
    apps = Apps()

    async def main() -> None:
        async with running(apps, http="httptools", tls=tls) as server:
            await still_served(server, tls)  # warm up: first-use allocations
            before = rss()
            _, writer = await raw_client(server, "/out", tls)
            try:
                await asyncio.sleep(FLOOD_SECONDS)
                growth = rss() - before
                # Only the transport's write buffer and the kernel's socket buffers
                # hold what the application sent: its send() waits for the buffer.
                assert apps.sent < 48 * MiB, apps.sent
                assert growth < RSS_GROWTH_BOUND, growth
                protocol = next(p for p in server.protocols if p.scope["path"] == "/out")
                assert protocol.transport.get_write_buffer_size() <= MiB  # TLS: records too
                await still_served(server, tls)
            finally:
                end(writer)
                apps.release.set()

    asyncio.run(main())


@pytest.mark.parametrize("use_tls", [False, True], ids=["tcp", "tls"])
def test_application_that_never_receives(use_tls: bool, tls_files: TLSFiles) -> None:
    tls = tls_files if use_tls else None
    apps = Apps()
    frame = cframe(0x2, b"\x00" * CHUNK, key=b"\x00\x00\x00\x00")

    async def main() -> None:
        async with running(apps, http="h11", tls=tls) as server:
            await still_served(server, tls)
            before = rss()
            _, writer = await raw_client(server, "/mute", tls)
            try:
                written = await flood(writer, frame, 512 * MiB)
                # Reading stopped: what went out sits in the kernel's buffers.
                assert written < 64 * MiB, written
                assert rss() - before < RSS_GROWTH_BOUND
                protocol = next(p for p in server.protocols if p.scope["path"] == "/mute")
                assert protocol._queued_bytes <= QUEUE_BYTES + CHUNK
                assert protocol.engine.buffered_bytes <= 2 * MiB
                await still_served(server, tls)
            finally:
                end(writer)
                apps.release.set()

    asyncio.run(main())


@pytest.mark.parametrize("use_tls", [False, True], ids=["tcp", "tls"])
def test_ping_flood_without_reading(use_tls: bool, tls_files: TLSFiles) -> None:
    """Pongs are owed, but the peer reads none: once our output is over the transport's
    limit we read nothing more, so the pongs we hold are bounded (§5.5.3)."""
    tls = tls_files if use_tls else None
    apps = Apps()
    pings = b"".join(cframe(0x9, os.urandom(125)) for _ in range(64))

    async def main() -> None:
        async with running(apps, http="httptools", tls=tls) as server:
            await still_served(server, tls)
            before = rss()
            _, writer = await raw_client(server, "/mute", tls)
            try:
                written = await flood(writer, pings, 512 * MiB)
                assert written < 64 * MiB, written
                assert rss() - before < RSS_GROWTH_BOUND
                protocol = next(p for p in server.protocols if p.scope["path"] == "/mute")
                assert protocol.transport.get_write_buffer_size() <= MiB  # TLS: records too
                await still_served(server, tls)
            finally:
                end(writer)
                apps.release.set()

    asyncio.run(main())
