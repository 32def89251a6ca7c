"""A real uvicorn server on loopback, in the test's event loop, with our WebSocket protocol;
and the same applications written with FastAPI and with Starlette."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import WebSocket  # at module level: FastAPI resolves the route's annotation here

from rfc6455.uvicorn import WebSocketProtocol

#: What a test waits at most for the server to start or stop.
START_SECONDS = 10.0


@dataclass(frozen=True)
class TLSFiles:
    """A certificate for 127.0.0.1 in files (uvicorn loads them itself) and a client context."""

    certfile: Path
    keyfile: Path
    client: ssl.SSLContext


@dataclass
class Running:
    server: uvicorn.Server
    port: int
    scheme: str

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    @property
    def protocols(self) -> list[WebSocketProtocol]:
        return [c for c in self.server.server_state.connections  # type: ignore[misc]
                if isinstance(c, WebSocketProtocol)]


@asynccontextmanager
async def running(app: Any, *, http: str = "h11", tls: TLSFiles | None = None,
                  ws: type[Any] = WebSocketProtocol, **options: Any) -> AsyncIterator[Running]:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port), stopped and waited for on exit."""
    if tls is not None:
        options.update(ssl_certfile=str(tls.certfile), ssl_keyfile=str(tls.keyfile))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, ws=ws, http=http,
                            lifespan="off", log_config=None, **options)
    server = uvicorn.Server(config)
    # uvicorn's signal handlers are the test runner's business, not the server's.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign, assignment]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(int(START_SECONDS / 0.01)):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            if task.done():
                task.result()  # raises why it did not start
            raise RuntimeError("uvicorn did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield Running(server, port, "wss" if tls is not None else "ws")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, START_SECONDS * 3)


# ------------------------------------------------------------------ the applications

Endpoint = Callable[[Any], Awaitable[None]]


def endpoints(websocket_disconnect: type[Exception], denial: Callable[[], Any],
              ) -> dict[str, Endpoint]:
    """echo, JSON, broadcast and a 403 denial, written against Starlette's WebSocket
    (FastAPI's is the same class)."""
    members: set[Any] = set()

    async def echo(ws: Any) -> None:
        await ws.accept()
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await ws.send_text(message["text"])
            else:
                await ws.send_bytes(message["bytes"])

    async def json_endpoint(ws: Any) -> None:
        await ws.accept()
        try:
            while True:
                value = await ws.receive_json()
                await ws.send_json({"got": value, "path": ws.url.path,
                                    "query": ws.query_params.get("q")})
        except websocket_disconnect:
            return

    async def broadcast(ws: Any) -> None:
        await ws.accept()
        members.add(ws)
        try:
            while True:
                text = await ws.receive_text()
                for member in list(members):
                    await member.send_text(text)
        except websocket_disconnect:
            pass
        finally:
            members.discard(ws)

    async def denied(ws: Any) -> None:
        await ws.send_denial_response(denial())

    return {"/echo": echo, "/json": json_endpoint, "/broadcast": broadcast, "/denied": denied}


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    routes = endpoints(WebSocketDisconnect,
                       lambda: PlainTextResponse("no entry", status_code=403))
    return Starlette(routes=[WebSocketRoute(path, endpoint) for path, endpoint in routes.items()])


def fastapi_app() -> Any:
    from fastapi import FastAPI, WebSocketDisconnect
    from fastapi.responses import PlainTextResponse

    def route(endpoint: Endpoint) -> Callable[[WebSocket], Awaitable[None]]:
        # FastAPI reads the signature: the WebSocket is the only parameter.
        async def handle(websocket: WebSocket) -> None:
            await endpoint(websocket)
        return handle

    app = FastAPI()
    for path, endpoint in endpoints(
            WebSocketDisconnect, lambda: PlainTextResponse("no entry", status_code=403)).items():
        app.add_api_websocket_route(path, route(endpoint))
    return app
