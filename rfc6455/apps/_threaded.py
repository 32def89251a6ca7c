"""The reference servers on the sync backend (:func:`rfc6455.sync.serve`)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable

from ..sync import Connection, broadcast, serve
from .backplane import wait_for_broker
from .broadcast import broadcast_sync
from .echo import echo_sync
from .serve import ServerConfig, log_start

__all__ = ["serve_sync"]

logger = logging.getLogger("rfc6455.server")


def serve_sync(config: ServerConfig) -> int:
    handler: Callable[[Connection], None]
    if config.app == "broadcast":
        hub = config.make_hub(broadcast)
        backplane = config.make_backplane()
        publish = None if backplane is None else backplane.publish
        if backplane is not None:
            # The backplane speaks asyncio: give it a loop of its own in a thread;
            # it calls the (thread-safe) hub from there.
            runner = backplane.run(hub.broadcast)
            threading.Thread(target=asyncio.run, args=(runner,), name="backplane",
                             daemon=True).start()
            wait_for_broker(backplane)

        def handler(ws: Connection) -> None:
            broadcast_sync(hub, ws, publish)
    else:
        handler = echo_sync

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with serve(handler, config.host, config.port, ssl=config.ssl_context(),
               **config.adapter_options()) as server:
        log_start(config, server.socket.getsockname())
        accepter = threading.Thread(target=server.serve_forever, name="accept", daemon=True)
        accepter.start()
        # The main thread only waits, so signal handlers run at once.
        while not stop.wait(1.0) and accepter.is_alive():
            pass
        logger.info("shutting down: closing every connection with 1001")
        # §7.4.1 1001 "going away" to everyone; waits for the closing handshakes.
        server.shutdown()
    return 0
