"""Idle-connection memory (GitHub issue #7): what an open connection must no longer hold.

Not timed and not measured in bytes (see benchmarks/idle_memory.py for figures):
each test asserts that state only the opening handshake (RFC 6455 §4) needs is
gone once the connection is OPEN, so that a change keeping it alive fails here.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import weakref
from typing import Any

import h11

from rfc6455 import ClientConnection, ServerConnection
from rfc6455._core import State
from rfc6455.asyncio import Connection, connect, serve


def _referents_of_type(root: object, kind: type, depth: int = 4) -> list[object]:
    """Objects of ``kind`` reachable from ``root`` in at most ``depth`` steps."""
    seen: set[int] = set()
    found: list[object] = []
    layer = [root]
    for _ in range(depth):
        nxt: list[object] = []
        for obj in layer:
            for ref in gc.get_referents(obj):
                if id(ref) in seen or isinstance(ref, type):
                    continue
                seen.add(id(ref))
                if isinstance(ref, kind):
                    found.append(ref)
                nxt.append(ref)
        layer = nxt
    return found


def _handshake_pair() -> tuple[ServerConnection, ClientConnection]:
    client = ClientConnection("ws://example.com/chat", subprotocols=["chat"])
    server = ServerConnection(subprotocols=["chat"])
    out = client.data_to_send()
    assert isinstance(out, bytes)
    server.receive_data(out)
    request = server.next_event()
    assert request is not None
    server.accept()
    reply = server.data_to_send()
    assert isinstance(reply, bytes)
    client.receive_data(reply)
    assert client.next_event() is not None
    return server, client


def test_engine_drops_h11_after_opening_handshake_rfc6455_4_2_2() -> None:
    """§4.2.2 / §4.1: once the 101 is sent / received, no HTTP parser is kept."""
    server, client = _handshake_pair()
    assert server.state is State.OPEN and client.state is State.OPEN
    for conn in (server, client):
        assert conn._handshake is None
        assert _referents_of_type(conn, h11.Connection) == []
    # What the application may still ask for survives the drop.
    assert server.subprotocol == "chat" and client.subprotocol == "chat"
    assert server.request is not None and server.request.path == "/chat"
    assert client.request_headers.get("sec-websocket-protocol") == "chat"


def test_handshake_objects_are_freed_rfc6455_4_2_2() -> None:
    """§4.2.2: the server's handshake object is garbage once the connection is OPEN."""
    client = ClientConnection("ws://example.com/")
    server = ServerConnection()
    handshake = server._handshake
    assert handshake is not None
    ref = weakref.ref(handshake)
    del handshake
    out = client.data_to_send()
    assert isinstance(out, bytes)
    server.receive_data(out)
    assert server.next_event() is not None
    server.accept()
    gc.collect()
    assert ref() is None


def test_idle_asyncio_connection_holds_no_handshake_state_rfc6455_4_2_2() -> None:
    """§4.2.2: an idle server connection (handler in ``async for``) holds no h11
    objects, no queue of received pieces and no async generator."""
    seen: list[Connection] = []
    idle = asyncio.Event()

    async def handler(ws: Connection) -> None:
        seen.append(ws)
        idle.set()
        async for _ in ws:
            pass

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:  # noqa: SIM117
            async with connect(f"ws://127.0.0.1:{server.port}/") as client:
                await asyncio.wait_for(idle.wait(), 10)
                await asyncio.sleep(0.1)  # past the first-recv hold
                conn = seen[0]
                engine: Any = conn.engine
                assert engine.state is State.OPEN
                assert engine._handshake is None
                assert client.engine._handshake is None
                assert _referents_of_type(conn, h11.Connection, depth=6) == []
                # The queue of received pieces is created with the first message only.
                assert conn._driver._pieces is None
                # ``async for`` iterates the connection itself, and while it waits the
                # handler's task awaits a future through a small object, no coroutine
                # frame of ours.
                assert conn.__aiter__() is conn
                assert isinstance(conn._recv_waiter, asyncio.Future)
                tasks = [t for t in asyncio.all_tasks()
                         if getattr(t.get_coro(), "cr_code", None) is handler.__code__]
                assert len(tasks) == 1
                awaited = tasks[0].get_coro().cr_await  # type: ignore[union-attr]
                assert awaited is not None and not inspect.iscoroutine(awaited)
                assert not hasattr(awaited, "__dict__")  # slots only
                await client.send("hi")
                await asyncio.sleep(0.1)
                await client.close()

    asyncio.run(main())
