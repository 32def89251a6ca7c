"""Running a reference server on either backend, with the same behaviour on both.

``run_server(args)`` builds the options from the command line, serves until
SIGINT or SIGTERM, then closes every connection with 1001 "going away"
(RFC 6455 §7.4.1), waits for the closing handshakes up to the close timeout and
returns exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio

from .serve import ServerConfig

__all__ = ["run_server"]


def run_server(args: argparse.Namespace) -> int:
    config = ServerConfig.from_args(args)
    if config.backend == "asyncio":
        # Imported here: only the backend asked for is loaded.
        from ._aio import serve_asyncio

        return asyncio.run(serve_asyncio(config))
    from ._threaded import serve_sync

    return serve_sync(config)
