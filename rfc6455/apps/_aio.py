"""The reference servers on the asyncio backend (:func:`rfc6455.asyncio.serve`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from ..asyncio import Connection, broadcast, serve
from .backplane import BROKER_WAIT, Backplane, warn_no_broker
from .broadcast import broadcast_async
from .echo import echo_async
from .serve import ServerConfig, log_start

__all__ = ["serve_asyncio"]

logger = logging.getLogger("rfc6455.server")


async def _broker_answered(backplane: Backplane) -> None:
    """As :func:`~.backplane.wait_for_broker`, without blocking the loop."""
    deadline = asyncio.get_running_loop().time() + BROKER_WAIT
    while not backplane.connected.is_set():
        if asyncio.get_running_loop().time() >= deadline:
            warn_no_broker()
            return
        await asyncio.sleep(0.02)


async def serve_asyncio(config: ServerConfig) -> int:
    handler: Callable[[Connection], Awaitable[None]]
    backplane_task: asyncio.Task[None] | None = None
    if config.app == "broadcast":
        hub = config.make_hub(broadcast)
        backplane = config.make_backplane()
        publish = None if backplane is None else backplane.publish
        if backplane is not None:
            backplane_task = asyncio.create_task(backplane.run(hub.broadcast))
            await _broker_answered(backplane)

        async def handler(ws: Connection) -> None:
            await broadcast_async(hub, ws, publish)
    else:
        handler = echo_async

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(handler, config.host, config.port, ssl=config.ssl_context(),
                     **config.adapter_options()) as server:
        log_start(config, server.sockets[0].getsockname())
        await stop.wait()
        logger.info("shutting down: closing every connection with 1001")
        # §7.4.1 1001 "going away" to everyone; waits up to the close timeout.
        server.close()
        await server.wait_closed()
    if backplane_task is not None:
        backplane_task.cancel()
        await asyncio.gather(backplane_task, return_exceptions=True)
    return 0
