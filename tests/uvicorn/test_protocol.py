"""The ASGI contract of ``rfc6455.uvicorn.WebSocketProtocol`` with raw ASGI applications:
the scope, accept options, refusals and denials, application errors, keepalive, shutdown."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from rfc6455.asyncio import ConnectionClosed, InvalidStatus, connect

from ..helpers import cframe
from .servers import running
from .test_limits import close_frame, ended, upgrade


def test_scope_and_accept_options() -> None:
    scopes: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept", "subprotocol": "chat",
                    "headers": [(b"x-extra", b"1")]})
        message = await receive()
        await send({"type": "websocket.send", "bytes": message["text"].encode()})
        await send({"type": "websocket.close", "code": 4000, "reason": "done"})
        assert (await receive()) == {"type": "websocket.disconnect", "code": 4000,
                                     "reason": "done"}

    async def main() -> None:
        async with running(app, root_path="/api") as server:
            url = server.url("/a%20b?x=1&y=%C3%A9")
            async with connect(url, subprotocols=["other", "chat"],
                               extra_headers=[("X-Custom", "v")]) as ws:
                assert ws.subprotocol == "chat"
                assert ws.response_headers is not None
                assert ws.response_headers.get("x-extra") == "1"
                await ws.send("hi")
                assert await ws.recv() == b"hi"
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert (ws.close_code, ws.close_reason) == (4000, "done")
            scope = scopes[0]
            assert scope["type"] == "websocket" and scope["scheme"] == "ws"
            assert scope["root_path"] == "/api"
            assert scope["path"] == "/api/a b" and scope["raw_path"] == b"/api/a%20b"
            assert scope["query_string"] == b"x=1&y=%C3%A9"
            assert scope["subprotocols"] == ["other", "chat"]
            assert (b"x-custom", b"v") in scope["headers"]
            assert scope["client"][0] == "127.0.0.1"
            assert scope["server"] == ("127.0.0.1", server.port)
            assert "websocket.http.response" in scope["extensions"]

    asyncio.run(main())


def test_close_before_accept_is_403_and_a_denial_may_come_in_parts() -> None:
    disconnects: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/refuse":
            await send({"type": "websocket.close"})
        else:
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"www-authenticate", b"Bearer")]})
            await send({"type": "websocket.http.response.body", "body": b"log ",
                        "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"in"})
        disconnects.append(await receive())

    async def main() -> None:
        async with running(app) as server:
            with pytest.raises(InvalidStatus) as info:
                await connect(server.url("/refuse"))
            assert info.value.status == 403
            with pytest.raises(InvalidStatus) as info:
                await connect(server.url("/deny"))
            assert (info.value.status, info.value.body) == (401, b"log in")
            assert info.value.headers.get("www-authenticate") == "Bearer"
        assert disconnects == [{"type": "websocket.disconnect", "code": 1006}] * 2

    asyncio.run(main())


def test_application_mistakes() -> None:
    """Each is the application's error (RuntimeError), not the peer's: before the accept
    the client gets 500; after, the connection ends."""
    errors: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        path = scope["path"]
        if path == "/send-first":
            try:
                await send({"type": "websocket.send", "text": "early"})
            except RuntimeError as exc:
                errors.append(str(exc))
            return  # without an answer: 500
        if path == "/bad-status":
            try:
                await send({"type": "websocket.http.response.start", "status": 101,
                            "headers": []})
            except RuntimeError as exc:
                errors.append(str(exc))
            raise ValueError("the application fails before its answer")
        if path == "/not-offered":
            try:
                await send({"type": "websocket.accept", "subprotocol": "nope"})
            except RuntimeError as exc:
                errors.append(str(exc))
            return
        await send({"type": "websocket.accept"})
        for bad in ({"type": "websocket.http.response.start", "status": 200},
                    {"type": "websocket.send"},
                    {"type": "websocket.close", "code": 1006}):
            try:
                await send(bad)
            except RuntimeError as exc:
                errors.append(str(exc))
        await send({"type": "websocket.close"})
        try:
            await send({"type": "websocket.send", "text": "late"})
        except RuntimeError as exc:
            errors.append(str(exc))

    async def main() -> None:
        async with running(app) as server:
            for path in ("/send-first", "/bad-status", "/not-offered"):
                with pytest.raises(InvalidStatus) as info:
                    await connect(server.url(path))
                assert info.value.status == 500, path
            async with connect(server.url("/open")) as ws:
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1000

    asyncio.run(main())
    assert len(errors) == 7, errors
    assert "websocket.accept" in errors[0] and "101" in errors[1] and "nope" in errors[2]
    assert "after sending 'websocket.close'" in errors[6]


def test_keepalive_timeout_closes_with_1011() -> None:
    disconnects: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        disconnects.append(await receive())

    async def main() -> None:
        async with running(app, ws_ping_interval=0.05, ws_ping_timeout=0.05) as server:
            reader, writer, _ = await upgrade(server)  # reads our frames, answers none
            code, reason = await close_frame(reader)
            assert (code, reason) == (1011, b"keepalive ping timeout")
            await ended(writer, reader)
        assert disconnects == [{"type": "websocket.disconnect", "code": 1011,
                                "reason": "keepalive ping timeout"}]

    asyncio.run(main())


def test_shutdown_answers_a_pending_request_with_500() -> None:
    started = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        started.set()
        await receive()  # never answers: the disconnect ends it

    async def main() -> None:
        async with running(app) as server:
            attempt = asyncio.ensure_future(connect(server.url("/")))
            await asyncio.wait_for(started.wait(), 5)
        with pytest.raises(InvalidStatus) as info:
            await attempt
        assert info.value.status == 500

    asyncio.run(main())


def test_a_cancelled_receive_loses_nothing() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(receive(), 0.05)
        await send({"type": "websocket.send", "text": "ready"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close"})

    async def main() -> None:
        async with running(app) as server, connect(server.url("/")) as ws:
            assert await ws.recv() == "ready"
            await ws.send("kept")
            assert await ws.recv() == "kept"

    asyncio.run(main())


def test_peer_close_reaches_the_application_with_its_code_and_reason() -> None:
    disconnects: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        disconnects.append(await receive())
        # After the disconnect, receive() keeps saying so.
        disconnects.append(await receive())

    async def main() -> None:
        async with running(app) as server:
            reader, writer, _ = await upgrade(server)
            writer.write(cframe(0x8, struct.pack("!H", 4001) + b"bye"))
            code, reason = await close_frame(reader)
            assert (code, reason) == (4001, b"")  # §5.5.1: the code echoed
            await ended(writer, reader)
        assert disconnects == [{"type": "websocket.disconnect", "code": 4001,
                                "reason": "bye"}] * 2

    asyncio.run(main())
