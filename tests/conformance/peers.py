"""Echo peers for the conformance runner, each run as its own process.

* ``asyncio-server`` / ``sync-server`` -- our adapters' servers
  (:func:`rfc6455.asyncio.serve`, :func:`rfc6455.sync.serve`) echoing every message;
  ``listener-server`` -- the same through :func:`rfc6455.asyncio.serve_listener`.
* ``asyncio-client URL AGENT`` / ``sync-client URL AGENT`` -- our adapters'
  clients (:func:`rfc6455.asyncio.connect`, :func:`rfc6455.sync.connect`)
  driving kosoku's fuzzing server: count the cases, echo each one, then ask
  for the reports.
* ``websockets-server`` -- the ``websockets`` library's asyncio server, the
  reference the 9.* durations are compared with (not held to our bar).

Every server prints ``PORT <n>`` once it listens. All of ours use only the
public adapter API, with permessage-deflate on (see ``standin`` for the
offers 13.* needs) and limits large enough for 9.*.

    python -m tests.conformance.peers asyncio-server
    python -m tests.conformance.peers sync-client ws://127.0.0.1:9001 AGENT --parallel 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

from .standin import CLIENT_DEFLATE_OPTIONS, DEFLATE_THRESHOLD, LIMITS

# Autobahn 9.* needs 16 MiB messages and 65536 fragments (see standin.LIMITS).
MAX_SIZE = LIMITS.max_message_size
SERVER_OPTIONS: dict[str, Any] = {
    "max_size": MAX_SIZE,
    "max_fragments": None,
    "compression_options": {"threshold": DEFLATE_THRESHOLD},
    # Keepalive pings would add frames the cases do not expect.
    "ping_interval": None,
}
CLIENT_OPTIONS: dict[str, Any] = {
    "max_size": MAX_SIZE,
    "max_fragments": None,
    "compression_options": CLIENT_DEFLATE_OPTIONS,
    "ping_interval": None,
}


def _case_urls(base: str, agent: str, count: int) -> Iterator[str]:
    for case in range(1, count + 1):
        yield f"{base}/runCase?case={case}&agent={quote(agent)}"


# ------------------------------------------------------------------ asyncio

async def _asyncio_server() -> None:
    from rfc6455.asyncio import ConnectionClosed, serve

    async def echo(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, **SERVER_OPTIONS) as server:
        print(f"PORT {server.port}", flush=True)
        await server.serve_forever()


async def _listener_server() -> None:
    from rfc6455.asyncio import Listener, serve_listener

    class Echo(Listener):
        def on_message(self, ws: Any, message: str | bytes) -> None:
            ws.send_nowait(message)

    async with serve_listener(Echo, "127.0.0.1", 0, **SERVER_OPTIONS) as server:
        print(f"PORT {server.port}", flush=True)
        await server.serve_forever()


async def _asyncio_client(base: str, agent: str, parallel: int) -> None:
    from rfc6455.asyncio import ConnectionClosed, connect

    async with connect(f"{base}/getCaseCount", **CLIENT_OPTIONS) as ws:
        count = int(await ws.recv())
    urls = iter(_case_urls(base, agent, count))

    async def worker() -> None:
        for url in urls:
            with contextlib.suppress(ConnectionClosed):
                async with connect(url, **CLIENT_OPTIONS) as ws:
                    async for message in ws:
                        await ws.send(message)

    await asyncio.gather(*(worker() for _ in range(max(1, parallel))))
    async with connect(f"{base}/updateReports?agent={quote(agent)}", **CLIENT_OPTIONS):
        pass


# ------------------------------------------------------------------ sync

def _sync_server() -> None:
    from rfc6455.sync import ConnectionClosed, serve

    def echo(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            for message in ws:
                ws.send(message)

    with serve(echo, "127.0.0.1", 0, **SERVER_OPTIONS) as server:
        print(f"PORT {server.port}", flush=True)
        server.serve_forever()


def _sync_client(base: str, agent: str, parallel: int) -> None:
    from rfc6455.sync import ConnectionClosed, connect

    with connect(f"{base}/getCaseCount", **CLIENT_OPTIONS) as ws:
        count = int(ws.recv())
    urls = _case_urls(base, agent, count)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                url = next(urls, None)
            if url is None:
                return
            with contextlib.suppress(ConnectionClosed), connect(url, **CLIENT_OPTIONS) as ws:
                for message in ws:
                    ws.send(message)

    threads = [threading.Thread(target=worker) for _ in range(max(1, parallel))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with connect(f"{base}/updateReports?agent={quote(agent)}", **CLIENT_OPTIONS):
        pass


# ------------------------------------------------------------------ reference

async def _websockets_server() -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, max_size=MAX_SIZE, compression="deflate") as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.peers")
    parser.add_argument("peer", choices=["asyncio-server", "listener-server", "sync-server",
                                         "asyncio-client", "sync-client", "websockets-server"])
    parser.add_argument("url", nargs="?", help="the fuzzing server (clients)")
    parser.add_argument("agent", nargs="?", help="the agent name to report as (clients)")
    parser.add_argument("--parallel", type=int, default=1, help="cases run at once (clients)")
    args = parser.parse_args(argv)
    if args.peer.endswith("-client") and not (args.url and args.agent):
        parser.error("a client needs the fuzzing server's URL and an agent name")
    if args.peer == "asyncio-server":
        asyncio.run(_asyncio_server())
    elif args.peer == "listener-server":
        asyncio.run(_listener_server())
    elif args.peer == "sync-server":
        _sync_server()
    elif args.peer == "asyncio-client":
        asyncio.run(_asyncio_client(args.url.rstrip("/"), args.agent, args.parallel))
    elif args.peer == "sync-client":
        _sync_client(args.url.rstrip("/"), args.agent, args.parallel)
    else:
        asyncio.run(_websockets_server())


if __name__ == "__main__":
    main()
