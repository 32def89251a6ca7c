"""serve_listener(): callbacks instead of a coroutine per connection, over real
loopback sockets, against websockets' client and raw frames."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect

from rfc6455.asyncio import Connection, Listener, serve_listener
from tests.conftest import Transport
from tests.helpers import BINARY, CLOSE, CONT, PING, PONG, TEXT, frame

from .test_asyncio import connecting, open_raw, run, url


class Echo(Listener):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def on_open(self, ws: Connection) -> None:
        self.events.append(("open", ws.request_headers is not None))

    def on_message(self, ws: Connection, message: str | bytes) -> None:
        self.events.append(("message", message))
        ws.send_nowait(message)

    def on_close(self, ws: Connection, code: int | None, reason: str) -> None:
        self.events.append(("close", code, reason))


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_listener_echo_with_websockets_client_section_5_6(compression: str | None) -> None:
    made: list[Echo] = []

    def factory() -> Echo:
        made.append(Echo())
        return made[-1]

    async def main() -> None:
        async with serve_listener(factory, "127.0.0.1", 0, max_size=2**21,
                                  compression=compression) as srv:
            async with ws_connect(url(srv), max_size=2**21,
                                  compression="deflate" if compression else None) as ws:
                for size in (0, 125, 126, 65536, 1 << 20):
                    text, binary = "é" * (size // 2), os.urandom(size)
                    await ws.send(text)
                    assert await ws.recv() == text
                    await ws.send(binary)
                    assert await ws.recv() == binary
            for _ in range(100):
                if made and made[0].events[-1][0] == "close":
                    break
                await asyncio.sleep(0.01)

    run(main())
    assert len(made) == 1
    events = made[0].events
    assert events[0] == ("open", True)
    assert [e[0] for e in events[1:-1]] == ["message"] * 10
    assert events[-1] == ("close", 1000, "")


def test_listener_pipelined_messages_in_order_section_5_4(transport: Transport) -> None:
    async def main() -> None:
        async with serve_listener(Echo, **transport.serve_kwargs, compression=None) as srv:
            reader, writer = await open_raw(srv, transport=transport)
            payloads = [os.urandom(n % 300) for n in range(2000)]
            writer.write(b"".join(frame(BINARY, p) for p in payloads))
            expected = b"".join(frame(BINARY, p, masked=False) for p in payloads)
            assert await reader.readexactly(len(expected)) == expected
            writer.close()

    run(main())


def test_listener_fragments_and_control_frames_between_whole_messages_section_5_4(
        transport: Transport) -> None:
    # Whole single-frame messages skip the driver's queue; a fragmented message
    # with a ping between its fragments (§5.5: control frames may be injected)
    # goes the general way; the order on the wire is the engine's.
    async def main() -> None:
        async with serve_listener(Echo, **transport.serve_kwargs, compression=None) as srv:
            reader, writer = await open_raw(srv, transport=transport)
            writer.write(frame(BINARY, b"one") + frame(TEXT, b"a", fin=False)
                         + frame(PING, b"p") + frame(CONT, b"b", fin=False)
                         + frame(CONT, b"c") + frame(BINARY, b"two")
                         + frame(CLOSE, (1000).to_bytes(2, "big")))
            expected = b"".join((
                frame(BINARY, b"one", masked=False), frame(PONG, b"p", masked=False),
                frame(TEXT, b"abc", masked=False), frame(BINARY, b"two", masked=False),
                frame(CLOSE, (1000).to_bytes(2, "big"), masked=False)))
            assert await asyncio.wait_for(reader.read(), 5) == expected
            writer.close()

    run(main())


def test_listener_reply_goes_out_before_the_close_a_bad_frame_causes_section_8_1(
        transport: Transport) -> None:
    # The pull policy: one message at a time, so the echo precedes the 1007.
    async def main() -> None:
        async with serve_listener(Echo, **transport.serve_kwargs, compression=None) as srv:
            reader, writer = await open_raw(srv, transport=transport)
            writer.write(frame(TEXT, b"good") + frame(TEXT, b"\xff"))
            data = await asyncio.wait_for(reader.read(), 5)
            assert data.startswith(frame(TEXT, b"good", masked=False))
            rest = data[len(frame(TEXT, b"good", masked=False)):]
            assert rest[0] == 0x80 | CLOSE and rest[2:4] == (1007).to_bytes(2, "big")
            writer.close()

    run(main())


@pytest.mark.expect_error_log("rfc6455.server", "listener failed in on_message")
def test_listener_exception_closes_1011_and_server_keeps_serving(
        transport: Transport, caplog: pytest.LogCaptureFixture) -> None:
    class Fails(Echo):
        def on_message(self, ws: Connection, message: str | bytes) -> None:
            if message == "boom":
                raise RuntimeError("boom")
            super().on_message(ws, message)

    async def main() -> None:
        async with serve_listener(Fails, **transport.serve_kwargs) as srv:
            async with connecting(transport, srv) as ws:
                await ws.send("boom")
                with pytest.raises(Exception) as info:
                    await ws.recv()
                assert ws.close_code == 1011, info.value
            async with connecting(transport, srv) as other:  # the server still serves others
                await other.send("fine")
                assert await other.recv() == "fine"

    with caplog.at_level(logging.ERROR, logger="rfc6455.server"):
        run(main())
    assert any("on_message" in r.message and r.exc_info for r in caplog.records)


@pytest.mark.parametrize("action", [
    pytest.param("raise", marks=pytest.mark.expect_error_log("rfc6455.server",
                                                             "listener failed in on_message")),
    "close",
])
def test_listener_callback_ends_the_connection_mid_read_section_7_1_2(
        transport: Transport, action: str, caplog: pytest.LogCaptureFixture) -> None:
    # Messages arriving in one read go to on_message one by one (the C loop with the
    # accelerator): once a callback fails (1011) or closes (1000), the replies sent
    # before go out, then the close, and no later message of that read is delivered.
    made: list[Echo] = []

    class Ends(Echo):
        def on_message(self, ws: Connection, message: str | bytes) -> None:
            if message == "end":
                self.events.append(("message", message))
                if action == "raise":
                    raise RuntimeError("end")
                ws.start_close(1000, "bye")
                return
            super().on_message(ws, message)

    def factory() -> Ends:
        ends = Ends()
        made.append(ends)
        return ends

    async def main() -> None:
        async with serve_listener(factory, **transport.serve_kwargs, compression=None) as srv:
            reader, writer = await open_raw(srv, transport=transport)
            writer.write(frame(TEXT, b"one") + frame(BINARY, b"two") + frame(TEXT, b"end")
                         + frame(TEXT, b"late"))
            code = 1011 if action == "raise" else 1000
            reason = b"" if action == "raise" else b"bye"
            expected = (frame(TEXT, b"one", masked=False) + frame(BINARY, b"two", masked=False)
                        + frame(CLOSE, code.to_bytes(2, "big") + reason, masked=False))
            assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
            writer.write(frame(CLOSE, code.to_bytes(2, "big")))
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    with caplog.at_level(logging.ERROR, logger="rfc6455.server"):
        run(main())
    assert [e[1] for e in made[0].events if e[0] == "message"] == ["one", b"two", "end"]
    assert made[0].events[-1][0] == "close"


def test_listener_stops_reading_while_the_peer_does_not_read() -> None:
    """A peer that sends but never reads: the server's write buffer stays bounded
    (reading pauses at write_limit), and the connection still works afterwards."""
    sizes: list[int] = []
    conns: list[Connection] = []

    class Track(Echo):
        def on_open(self, ws: Connection) -> None:
            conns.append(ws)

        def on_message(self, ws: Connection, message: str | bytes) -> None:
            ws.send_nowait(message)
            sizes.append(ws.pending_bytes)

    async def main() -> None:
        async with serve_listener(Track, "127.0.0.1", 0, compression=None,
                                  write_limit=65536, max_size=2**21) as srv:
            _, writer = await open_raw(srv.port, read_head=False)
            transport = writer.transport
            assert isinstance(transport, asyncio.Transport)
            transport.pause_reading()  # a peer that does not read
            message = frame(BINARY, b"x" * 100_000)
            for _ in range(200):  # 20 MB offered; the kernel buffers take only part of it
                writer.write(message)
                await asyncio.sleep(0)
            await asyncio.sleep(0.5)
            assert conns, "no connection"
            # Reading paused once the buffer passed the limit, so it never grew by
            # more than the messages already read: far below the 20 MB offered.
            assert max(sizes) < 4 * 2**20
            # close() would first flush the megabytes still queued, which the server, not
            # reading, never takes: the peer vanishes instead.
            transport.abort()

    run(main())
