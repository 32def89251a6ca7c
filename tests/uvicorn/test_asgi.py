"""FastAPI and Starlette applications under a real uvicorn with ``--ws rfc6455``:
echo, JSON, broadcast and a 403 denial, through both of uvicorn's HTTP protocols,
with and without TLS and permessage-deflate, by our client and by websockets'."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect as websockets_connect

from rfc6455.asyncio import InvalidStatus
from rfc6455.asyncio import connect as rfc6455_connect

from .servers import Running, TLSFiles, fastapi_app, running, starlette_app

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSFiles]:
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = Path(tmp_path_factory.mktemp("uvicorn-tls"))
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    keyfile.write_bytes(cert.private_key_pem.bytes())
    client = ssl.create_default_context()
    ca.configure_trust(client)
    yield TLSFiles(certfile, keyfile, client)


class Client:
    """Our client or websockets', behind the same four calls."""

    def __init__(self, kind: str, deflate: bool, tls: TLSFiles | None) -> None:
        self.kind = kind
        self.deflate = deflate
        self.ssl = None if tls is None else tls.client

    def connect(self, url: str) -> Any:
        compression = "deflate" if self.deflate else None
        if self.kind == "rfc6455":
            return rfc6455_connect(url, ssl=self.ssl, compression=compression)
        return websockets_connect(url, ssl=self.ssl, compression=compression)

    def negotiated_deflate(self, ws: Any) -> bool:
        if self.kind == "rfc6455":
            return ws.engine.extension is not None
        return bool(ws.protocol.extensions)

    async def denied_status(self, url: str) -> tuple[int, bytes]:
        if self.kind == "rfc6455":
            with pytest.raises(InvalidStatus) as info:
                await rfc6455_connect(url, ssl=self.ssl)
            return info.value.status, info.value.body
        with pytest.raises(websockets.InvalidStatus) as ws_info:
            await websockets_connect(url, ssl=self.ssl)
        return ws_info.value.response.status_code, bytes(ws_info.value.response.body)


async def exercise(server: Running, client: Client) -> None:
    async with client.connect(server.url("/echo")) as ws:
        assert client.negotiated_deflate(ws) is client.deflate
        await ws.send("héllo")
        assert await ws.recv() == "héllo"
        await ws.send(b"\x00\xff" * 5000)
        assert await ws.recv() == b"\x00\xff" * 5000
        big = "x" * 300_000  # several reads, compressible
        await ws.send(big)
        assert await ws.recv() == big

    async with client.connect(server.url("/json?q=%C3%A9t%C3%A9")) as ws:
        await ws.send(json.dumps({"n": [1, 2, 3]}))
        assert json.loads(await ws.recv()) == {"got": {"n": [1, 2, 3]}, "path": "/json",
                                               "query": "été"}

    async with client.connect(server.url("/broadcast")) as first, \
            client.connect(server.url("/broadcast")) as second:
        # Each is a member once accepted (the endpoint adds it right after the accept).
        await first.send("one")
        assert (await first.recv(), await second.recv()) == ("one", "one")
        await second.send("two")
        assert (await first.recv(), await second.recv()) == ("two", "two")

    status, body = await client.denied_status(server.url("/denied"))
    assert (status, body) == (403, b"no entry")


@pytest.mark.parametrize("deflate", [True, False], ids=["deflate", "plain"])
@pytest.mark.parametrize("use_tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("http", ["h11", "httptools"])
@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_application(framework: str, http: str, use_tls: bool, deflate: bool,
                     tls_files: TLSFiles) -> None:
    app = fastapi_app() if framework == "fastapi" else starlette_app()
    tls = tls_files if use_tls else None

    async def main() -> None:
        async with running(app, http=http, tls=tls, ws_per_message_deflate=True) as server:
            for kind in ("rfc6455", "websockets"):
                await exercise(server, Client(kind, deflate, tls))

    asyncio.run(main())


def test_deflate_can_be_turned_off() -> None:
    """``ws_per_message_deflate=False``: the offer of a client is declined."""

    async def main() -> None:
        async with running(starlette_app(), ws_per_message_deflate=False) as server, \
                rfc6455_connect(server.url("/echo")) as ws:
                assert ws.engine.extension is None
                await ws.send("plain")
                assert await ws.recv() == "plain"

    asyncio.run(main())


@pytest.mark.parametrize("use_tls", [False, True], ids=["tcp", "tls"])
def test_application_under_uvloop(use_tls: bool, tls_files: TLSFiles) -> None:
    """uvloop's transports (``--loop uvloop``, with httptools: uvicorn's fastest setup)."""
    uvloop = pytest.importorskip("uvloop")
    tls = tls_files if use_tls else None

    async def main() -> None:
        async with running(starlette_app(), http="httptools", tls=tls) as server:
            for kind in ("rfc6455", "websockets"):
                await exercise(server, Client(kind, True, tls))

    uvloop.run(main())


def test_import_string_and_optional_dependency() -> None:
    """``--ws rfc6455.uvicorn:WebSocketProtocol`` names the class; ``import rfc6455``
    alone does not import uvicorn (it stays an optional dependency)."""
    import subprocess
    import sys

    import uvicorn

    from rfc6455.uvicorn import WebSocketProtocol

    config = uvicorn.Config(starlette_app(), ws="rfc6455.uvicorn:WebSocketProtocol")
    config.load()
    assert config.ws_protocol_class is WebSocketProtocol
    probe = "import sys, rfc6455, rfc6455.asyncio, rfc6455.sync; print('uvicorn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "False"


def test_graceful_shutdown_sends_1012() -> None:
    disconnects: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        disconnects.append(await receive())

    async def main() -> None:
        ws: Any = None
        async with running(app) as server:
            ws = await rfc6455_connect(server.url("/"))
            reader = asyncio.ensure_future(ws.recv())
        # uvicorn stopped: the connection ended with its 1012, the handshake complete.
        with pytest.raises(Exception) as info:
            await reader
        assert getattr(info.value, "code", None) == 1012
        assert ws.close_code == 1012
        await ws.wait_closed()

    asyncio.run(main())
    assert disconnects == [{"type": "websocket.disconnect", "code": 1012}]


def test_keepalive_spares_a_peer_whose_pong_waits_behind_unreceived_messages() -> None:
    """The application is behind (reading is paused on its queue), not the peer: the
    pong may be among the bytes not read yet, so the ping timeout waits for them."""
    release = asyncio.Event()
    got: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()  # busy: receives nothing for a while
        got.append(await receive())

    async def main() -> None:
        async with running(app, ws_ping_interval=0.05, ws_ping_timeout=0.05) as server, \
                rfc6455_connect(server.url("/")) as ws:
            await ws.send("queued")  # reading pauses on it
            await asyncio.sleep(0.6)  # many ping periods
            protocol = server.protocols[0]
            assert not protocol.transport.is_closing()
            release.set()
            for _ in range(100):
                if got:
                    break
                await asyncio.sleep(0.01)
            assert got == [{"type": "websocket.receive", "text": "queued"}]

    asyncio.run(main())
