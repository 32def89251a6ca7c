"""What our engine adds under uvicorn: strict UTF-8 (1007), ``ws_max_size`` (1009),
inflation bounded by it (a deflate bomb gets 1009, not the memory), and the origin
policy (403 to a cross-site browser page; :meth:`WebSocketProtocol.configure`)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import zlib
from typing import Any

import pytest

from rfc6455.asyncio import InvalidStatus, connect
from rfc6455.uvicorn import WebSocketProtocol

from ..helpers import cframe
from .servers import Running, running

MiB = 1024 * 1024


class Recorder:
    """A raw ASGI app: accepts, receives until the disconnect, and keeps it."""

    def __init__(self) -> None:
        self.disconnects: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.disconnects.append(message)
                return


async def upgrade(server: Running, extensions: str | None = None
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    offer = "" if extensions is None else f"Sec-WebSocket-Extensions: {extensions}\r\n"
    writer.write((f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{offer}\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer, head


async def close_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The code and reason of the server's close frame (frames before it skipped)."""
    for _ in range(1000):
        first, second = await asyncio.wait_for(reader.readexactly(2), 5)
        assert not second & 0x80, "a server's frames are not masked (§5.1)"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await reader.readexactly(8))
        payload = await reader.readexactly(length)
        if first & 0x0F == 0x8:
            return struct.unpack("!H", payload[:2])[0], payload[2:]
    raise AssertionError("no close frame")


async def ended(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
    # §7.1.1: after its close, the server closes TCP first.
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()


def test_invalid_utf8_is_1007() -> None:
    app = Recorder()

    async def main() -> None:
        async with running(app) as server:
            reader, writer, _ = await upgrade(server)
            # A valid first part, then a byte that can start no UTF-8 sequence (§8.1).
            writer.write(cframe(0x1, "é".encode() + b"\xff", fin=True))
            code, _ = await close_frame(reader)
            assert code == 1007
            await ended(writer, reader)
        assert app.disconnects[0]["code"] == 1007

    asyncio.run(main())


def test_message_over_ws_max_size_is_1009() -> None:
    app = Recorder()

    async def main() -> None:
        async with running(app, ws_max_size=1024) as server:
            reader, writer, _ = await upgrade(server)
            writer.write(cframe(0x2, b"a" * 1024))  # at the limit: fine
            writer.write(cframe(0x2, b"a" * 600, fin=False) + cframe(0x0, b"a" * 600))
            code, _ = await close_frame(reader)
            assert code == 1009
            await ended(writer, reader)
        assert [d["code"] for d in app.disconnects] == [1009]

    asyncio.run(main())


def test_deflate_bomb_is_1009_without_inflating_it() -> None:
    """64 MiB of zeros compress to about 64 KiB: inflation stops at ``ws_max_size``."""
    app = Recorder()

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def main() -> None:
        async with running(app, ws_max_size=MiB) as server:
            reader, writer, head = await upgrade(
                server, "permessage-deflate; client_max_window_bits")
            assert b"permessage-deflate" in head
            bits = 12 if b"client_max_window_bits=12" in head else 15
            compressor = zlib.compressobj(9, zlib.DEFLATED, -bits)
            payload = compressor.compress(bytes(64 * MiB)) + compressor.flush(zlib.Z_SYNC_FLUSH)
            assert payload.endswith(b"\x00\x00\xff\xff")
            before = rss()
            # RSV1: a compressed message (RFC 7692 §6); the tail is left out (§7.2.1).
            writer.write(cframe(0x2, payload[:-4], rsv=0x40))
            code, _ = await close_frame(reader)
            assert code == 1009
            assert rss() - before < 16 * MiB
            await ended(writer, reader)
        assert [d["code"] for d in app.disconnects] == [1009]

    asyncio.run(main())


def test_origin_policy() -> None:
    """Same-host origins by default (and clients without Origin); a list through
    ``WebSocketProtocol.configure``."""
    app = Recorder()

    async def refused(server: Running, origin: str) -> int:
        with pytest.raises(InvalidStatus) as info:
            await connect(server.url("/"), origin=origin)
        return info.value.status

    async def main() -> None:
        async with running(app) as server:
            async with connect(server.url("/")):
                pass  # no Origin: not a browser
            async with connect(server.url("/"), origin=f"http://127.0.0.1:{server.port}"):
                pass  # the page came from this server
            assert await refused(server, "https://evil.example") == 403
        allowed = WebSocketProtocol.configure(origins=["https://app.example"])
        async with running(app, ws=allowed) as server:
            async with connect(server.url("/"), origin="https://app.example"):
                pass
            assert await refused(server, "https://evil.example") == 403
            assert await refused(server, f"http://127.0.0.1:{server.port}") == 403

    asyncio.run(main())


def test_configure_checks_its_options_at_once() -> None:
    with pytest.raises(TypeError):
        WebSocketProtocol.configure(origins="https://app.example")
    with pytest.raises(ValueError):
        WebSocketProtocol.configure(origins=["not an origin"])
    checked = WebSocketProtocol.configure(check_origin=lambda request: True)
    assert issubclass(checked, WebSocketProtocol) and checked is not WebSocketProtocol


def test_a_message_of_ws_max_size_may_come_in_64_byte_fragments() -> None:
    """uvicorn has no fragment-count option: the count follows ``ws_max_size``."""
    received: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        received.append(len(message["bytes"]))
        await send({"type": "websocket.close"})

    async def main() -> None:
        async with running(app, ws_max_size=MiB) as server:
            reader, writer, _ = await upgrade(server)
            piece = b"\x00" * 64
            count = MiB // 64  # 16384: past the engine's default of 4096 fragments
            frames = [cframe(0x2, piece, fin=False, key=b"\x00" * 4)]
            frames += [cframe(0x0, piece, fin=False, key=b"\x00" * 4)] * (count - 2)
            frames.append(cframe(0x0, piece, key=b"\x00" * 4))
            writer.write(b"".join(frames))
            code, _ = await close_frame(reader)
            assert code == 1000
            writer.write(cframe(0x8, struct.pack("!H", 1000)))
            await ended(writer, reader)
        assert received == [MiB]

    asyncio.run(main())


def test_echo_goes_out_before_the_close_a_bad_frame_behind_it_causes() -> None:
    """Autobahn's strict behaviour (3.2, 5.15...): the message before a bad frame is
    answered first, since the frame behind it is parsed only once the application
    had the message."""

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"]})

    async def main() -> None:
        async with running(echo) as server:
            reader, writer, _ = await upgrade(server)
            # One write: a text message, then a frame with a reserved bit set (§5.2).
            writer.write(cframe(0x1, b"first") + cframe(0x1, b"bad", rsv=0x20))
            first, length = await asyncio.wait_for(reader.readexactly(2), 5)
            assert (first, length) == (0x81, 5)
            assert await reader.readexactly(5) == b"first"
            code, _ = await close_frame(reader)
            assert code == 1002
            await ended(writer, reader)

    asyncio.run(main())
