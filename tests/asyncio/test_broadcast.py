"""rfc6455.asyncio.broadcast over real sockets: shared frames, slow members, closing members."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rfc6455._fanout as fanout
from rfc6455 import ClientConnection, ServerConnection, State
from rfc6455.asyncio import BroadcastResult, Connection, broadcast, connect, serve
from rfc6455.asyncio import ConnectionClosed as Closed
from rfc6455.extensions.permessage_deflate import (
    ClientPerMessageDeflate,
    ServerPerMessageDeflate,
)
from rfc6455.frames import serialize_frame
from tests.asyncio.test_asyncio import run
from tests.broadcast_peers import stuck_peer
from tests.conftest import Transport
from tests.helpers import Pair

#: Client options per member: plain, deflate keeping its context (RFC 7692's
#: default), two asking for server_no_context_takeover (§7.1.1.1: they share a
#: frame), one more with another window (a frame of its own).
MIXED: list[dict[str, Any]] = [
    {"compression": None},
    {},
    {"compression_options": {"server_no_context_takeover": True}},
    {"compression_options": {"server_no_context_takeover": True}},
    {"compression_options": {"server_no_context_takeover": True, "server_max_window_bits": 10}},
]


class Members:
    """The server side of every connection, in the order the clients connected."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.changed = asyncio.Event()

    async def handler(self, ws: Connection) -> None:
        self.connections.append(ws)
        self.changed.set()
        async for _ in ws:
            pass

    async def wait_for(self, count: int) -> list[Connection]:
        async def joined() -> None:
            while len(self.connections) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(joined(), 10)
        return list(self.connections)


@contextlib.asynccontextmanager
async def serving(transport: Transport, **options: Any) -> AsyncIterator[tuple[Any, Members]]:
    members = Members()
    async with serve(members.handler, **transport.serve_kwargs, **options) as server:
        yield server, members


async def receive(ws: Any, count: int) -> list[str | bytes]:
    async def all_of_them() -> list[str | bytes]:
        return [await ws.recv() for _ in range(count)]

    return await asyncio.wait_for(all_of_them(), 20)


def test_mixed_members_get_every_message_and_frames_are_shared(
        transport: Transport, monkeypatch: pytest.MonkeyPatch) -> None:
    """§5.1 and RFC 7692 §7.1.1.1: one plain frame for every member without deflate,
    one compressed frame per setting for those without server context takeover; a
    member keeping its context compresses for itself. Every member gets every message."""
    serialized: list[int] = []
    real = serialize_frame

    def counting(opcode: int, payload: Any, **kwargs: Any) -> bytes:
        serialized.append(opcode)
        return real(opcode, payload, **kwargs)

    monkeypatch.setattr("rfc6455._fanout.serialize_frame", counting)
    messages: list[str | bytes] = ["compressible text " * 50, b"\x00\x01" * 600, "tiny", b""]

    async def main() -> None:
        async with serving(transport) as (server, members), \
                contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(connect(
                transport.url(server), **transport.connect_kwargs, **options))
                for options in MIXED]
            server_side = await members.wait_for(len(MIXED))
            extensions = [ws.engine.extension for ws in server_side]
            assert extensions[0] is None and extensions[1] is not None
            results = [broadcast(server_side, message) for message in messages]
            assert results == [BroadcastResult(len(MIXED))] * len(messages)
            for client in clients:
                assert await receive(client, len(messages)) == messages
        # Big messages: the plain frame and two compressed ones (15- and 10-bit
        # windows); small ones (below the threshold): the plain frame only.
        assert len(serialized) == 3 + 3 + 1 + 1

    run(main())


def test_frames_are_one_object_per_setting() -> None:
    """The cache itself: equal settings give the very same bytes object."""
    def pair(no_context: bool) -> ServerConnection:
        return Pair(server=ServerConnection(extensions=[ServerPerMessageDeflate(
            server_no_context_takeover=no_context)]),
            client=ClientConnection("ws://example.com/",
                                    extensions=[ClientPerMessageDeflate()])).server

    frames = fanout.Frames("compressible " * 100)
    a, b, keeping = pair(True), pair(True), pair(False)
    shared = frames.frame_for(a)
    assert shared is not None and shared[0] & 0x40  # RSV1: compressed (RFC 7692 §6)
    assert frames.frame_for(b) is shared
    assert frames.frame_for(keeping) is None  # compresses with its own context
    assert frames.frame_for(Pair().server) is frames.plain()
    assert frames.frame_for(Pair().client) is None  # §5.3: masked per frame


@pytest.mark.parametrize("policy", ["skip", "close"])
def test_member_that_never_reads_stalls_nobody(
        transport: Transport, policy: fanout.SlowPolicy, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A member that never reads: the others get all of 8 MiB at once, what waits for it
    stays within its limit plus one message, and the policy applies (skip: it stays
    open and the drop is logged; close: 1008, RFC 6455 §7.4.1)."""
    size, count, limit = 32 * 1024, 256, 128 * 1024
    monkeypatch.setattr(fanout, "_report", fanout._SkipReport())  # the first skip is logged

    async def main() -> None:
        async with serving(transport, close_timeout=1.0) as (server, members):
            stuck = await asyncio.to_thread(stuck_peer, transport, server)
            try:
                async with connect(transport.url(server), **transport.connect_kwargs,
                                   compression=None, max_size=None) as reader:
                    stuck_side, reader_side = await members.wait_for(2)
                    slow_seen = 0
                    for i in range(count):
                        message = i.to_bytes(4, "big") * (size // 4)
                        result = broadcast([stuck_side, reader_side], message, slow=policy,
                                           limit=limit)
                        assert stuck_side.pending_bytes <= limit + size + 16
                        if result.skipped or result.closed:
                            slow_seen += 1
                            assert (result.skipped if policy == "skip" else result.closed) \
                                == (stuck_side,)
                            # The close frame waits behind what is buffered (§7.1.2).
                            assert stuck_side.state is (
                                State.OPEN if policy == "skip" else State.CLOSING)
                        assert result.sent == 1 + (stuck_side.state is State.OPEN
                                                   and not result.skipped)
                        assert await reader.recv() == message  # never held up
                    assert slow_seen >= 1
                    if policy == "close":
                        assert slow_seen == 1  # then it is no longer open
                        # The close timeout drops it (§7.1.1).
                        await asyncio.wait_for(stuck_side.wait_closed(), 10)
                    else:
                        assert stuck_side.state is State.OPEN
                    # After the attack another client is served.
                    async with connect(transport.url(server), **transport.connect_kwargs) \
                            as late:
                        late_side = (await members.wait_for(3))[2]
                        assert broadcast([late_side], "still here").sent == 1
                        assert await receive(late, 1) == ["still here"]
            finally:
                stuck.close()

    with caplog.at_level(logging.WARNING, "rfc6455.broadcast"):
        run(main())
    text = caplog.text
    assert ("closed 1 slow connection(s) with 1008" in text) if policy == "close" \
        else ("message dropped for 1 connection(s)" in text)


def test_members_closing_during_a_broadcast_are_left_out(transport: Transport) -> None:
    """Members closed by either side, or aborted, between messages: the broadcast goes on
    to the others, counts only those it sent to, and raises nothing."""

    async def main() -> None:
        async with serving(transport) as (server, members), \
                contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(connect(
                transport.url(server), **transport.connect_kwargs)) for _ in range(4)]
            server_side = await members.wait_for(4)
            sent = []
            for i in range(30):
                if i == 5:
                    server_side[0].start_close(1001, "going away")
                if i == 10:
                    await clients[1].close()
                if i == 15:
                    server_side[2].abort()
                sent.append(broadcast(server_side, f"message {i}").sent)
                await asyncio.sleep(0)
            assert sent[:5] == [4] * 5 and sent[-1] == 1
            assert sorted(sent, reverse=True) == sent  # never more after a close
            assert await receive(clients[3], 30) == [f"message {i}" for i in range(30)]
            with pytest.raises(Closed):
                await receive(clients[0], 31)

    run(main())


def test_member_sending_in_parts_is_skipped_rfc6455_s5_4() -> None:
    """§5.4: no data frame may go between the fragments of a message: a member sending
    one in parts is skipped, and its message arrives whole."""

    async def main() -> None:
        gate = asyncio.Event()
        members = Members()

        async def parts() -> AsyncIterator[str]:
            yield "first "
            await gate.wait()
            yield "last"

        async with serve(members.handler, "127.0.0.1", 0) as server, \
                connect(f"ws://127.0.0.1:{server.port}/") as client:
            (ws,) = await members.wait_for(1)
            sending = asyncio.create_task(ws.send(parts()))
            await asyncio.sleep(0.05)
            result = broadcast([ws], "between")
            assert result == BroadcastResult(0, (ws,))
            gate.set()
            await sending
            assert broadcast([ws], "after").sent == 1
            assert await receive(client, 2) == ["first last", "after"]

    run(main())


def test_bad_message_or_options_raise_before_sending() -> None:
    with pytest.raises(TypeError, match="not int"):
        broadcast([], 123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="slow"):
        broadcast([], "x", slow="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="close_code"):
        broadcast([], "x", close_code=1000)
    with pytest.raises(ValueError, match="limit"):
        broadcast([], "x", limit=-1)
    assert broadcast([], "x") == BroadcastResult(0)
