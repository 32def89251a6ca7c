"""A server under attack, run in a child process so its memory, CPU and fds are its own.

``python -m tests.adversarial.server_main --backend asyncio|listener|sync|websockets
--app echo|broadcast [--certfile F --keyfile F] [--options JSON] [--hub JSON]``

Serves on 127.0.0.1, port 0, prints the port on stdout (one line), logs every
record on one line of stderr (a traceback is folded into its record, so a test
counts records by counting lines), and on SIGTERM closes the server and exits 0.
The ``websockets`` backend (``websockets.asyncio.server.serve``, an echo
handler, its default options) is the peer that ``benchmarks/hostile.py``
compares with; the tests never use it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import ssl
import sys
import threading
from typing import Any

from rfc6455.apps.broadcast import broadcast_async, broadcast_sync, member_label
from rfc6455.apps.echo import echo_async, echo_sync
from rfc6455.apps.hub import Hub


class OneLineFormatter(logging.Formatter):
    """One record, one line: ``LEVEL logger message | traceback...``."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", " | ")


def announce(port: int) -> None:
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()


def make_listener_factory(app: str, hub: Hub[Any] | None) -> Any:
    from rfc6455.asyncio import Connection, Listener

    if app == "echo":
        class Echo(Listener):
            def on_message(self, ws: Connection, message: str | bytes) -> None:
                ws.send_nowait(message)

        return Echo

    assert hub is not None
    the_hub: Hub[Any] = hub

    class Broadcast(Listener):
        # The reference broadcast glue (apps/broadcast.py) with callbacks in place
        # of the coroutine: join on open, publish each message, leave on close.
        def on_open(self, ws: Connection) -> None:
            the_hub.join(ws, member_label(ws.remote_address))

        def on_message(self, ws: Connection, message: str | bytes) -> None:
            the_hub.broadcast(message)

        def on_close(self, ws: Connection, code: int | None, reason: str) -> None:
            the_hub.leave(ws)

    return Broadcast


async def run_asyncio(args: argparse.Namespace, options: dict[str, Any],
                      context: ssl.SSLContext | None, hub: Hub[Any] | None) -> int:
    from rfc6455.asyncio import Connection, serve, serve_listener

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server: Any
    if args.backend == "listener":
        server = serve_listener(make_listener_factory(args.app, hub), "127.0.0.1", 0,
                                ssl=context, **options)
    else:
        if args.app == "broadcast":
            assert hub is not None

            async def handler(ws: Connection) -> None:
                await broadcast_async(hub, ws)
        else:
            handler = echo_async
        server = serve(handler, "127.0.0.1", 0, ssl=context, **options)
    async with server as running:
        announce(running.port)
        await stop.wait()
        running.close()
        await running.wait_closed()
    return 0


def run_sync(args: argparse.Namespace, options: dict[str, Any],
             context: ssl.SSLContext | None, hub: Hub[Any] | None) -> int:
    from rfc6455.sync import Connection, serve

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    if args.app == "broadcast":
        assert hub is not None

        def handler(ws: Connection) -> None:
            broadcast_sync(hub, ws)
    else:
        handler = echo_sync
    with serve(handler, "127.0.0.1", 0, ssl=context, **options) as server:
        announce(server.port)
        accepter = threading.Thread(target=server.serve_forever, name="accept", daemon=True)
        accepter.start()
        while not stop.wait(0.2) and accepter.is_alive():
            pass
        server.shutdown()
    return 0


async def run_websockets(options: dict[str, Any], context: ssl.SSLContext | None) -> int:
    from websockets.asyncio.server import ServerConnection as PeerConnection
    from websockets.asyncio.server import serve as peer_serve

    async def echo(ws: PeerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with peer_serve(echo, "127.0.0.1", 0, ssl=context, **options) as server:
        announce(server.sockets[0].getsockname()[1])
        await stop.wait()
        server.close()
        await server.wait_closed()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.adversarial.server_main")
    parser.add_argument("--backend", choices=("asyncio", "listener", "sync", "websockets"),
                        default="asyncio")
    parser.add_argument("--app", choices=("echo", "broadcast"), default="echo")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    parser.add_argument("--options", default="{}", help="keyword options of serve, as JSON")
    parser.add_argument("--hub", default="{}", help="keyword options of Hub, as JSON")
    args = parser.parse_args(argv)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    options: dict[str, Any] = json.loads(args.options)
    context = None
    if args.certfile:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.certfile, args.keyfile)
    hub: Hub[Any] | None = None
    if args.app == "broadcast":
        if args.backend == "sync":
            from rfc6455.sync import broadcast
        else:
            from rfc6455.asyncio import broadcast  # type: ignore[assignment]
        hub = Hub(broadcast, **json.loads(args.hub))
    if args.backend == "sync":
        return run_sync(args, options, context, hub)
    if args.backend == "websockets":
        return asyncio.run(run_websockets(options, context))
    return asyncio.run(run_asyncio(args, options, context, hub))


if __name__ == "__main__":
    sys.exit(main())
