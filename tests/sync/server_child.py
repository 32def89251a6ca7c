"""A sync server in a process of its own, for tests that measure it (RSS, CPU, fds).

``python -m tests.sync.server_child CONFIG_JSON`` serves until killed and prints
``PORT <n>`` once listening. CONFIG: ``app`` ("echo" or "broadcast"), ``options``
(keyword options of :func:`rfc6455.sync.serve`), ``tls`` ([certfile, keyfile] or
null), ``hub`` (keyword arguments of :class:`rfc6455.apps.hub.Hub`), ``nofile``
(an RLIMIT_NOFILE soft limit to set before serving, or null). Logs go to stderr.
"""

from __future__ import annotations

import faulthandler
import functools
import json
import logging
import resource
import signal
import ssl
import sys
from typing import Any

from rfc6455.apps.broadcast import broadcast_sync
from rfc6455.apps.hub import Hub
from rfc6455.sync import Connection, broadcast, serve


def echo(ws: Connection) -> None:
    for message in ws:
        ws.send(message)


def main(config: dict[str, Any]) -> None:
    # A test that finds the server stuck dumps its threads' stacks with SIGUSR1.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    context = None
    if config.get("tls"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*config["tls"])
    if config.get("switchinterval"):
        sys.setswitchinterval(config["switchinterval"])
    handler: Any = echo
    if config.get("app") == "broadcast":
        handler = functools.partial(broadcast_sync, Hub(broadcast, **config.get("hub", {})))
    with serve(handler, "127.0.0.1", 0, ssl=context, **config.get("options", {})) as server:
        if config.get("nofile"):
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (config["nofile"], hard))
        print(f"PORT {server.port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
