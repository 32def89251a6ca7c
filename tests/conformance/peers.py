"""Echo peers for the conformance runner, each started as its own process.

* ``websockets-server`` -- the ``websockets`` library's asyncio server, the
  reference the 9.* durations are compared with (not held to our bar).

Every server prints ``PORT <n>`` on its first line of output once it listens.

    python -m tests.conformance.peers websockets-server
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

# The same bounds as our peers (see standin.LIMITS): Autobahn 9.* needs 16 MiB messages.
MAX_SIZE = 16 * 1024 * 1024 + 1024


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
    parser.add_argument("peer", choices=["websockets-server"])
    args = parser.parse_args(argv)
    if args.peer == "websockets-server":
        asyncio.run(_websockets_server())


if __name__ == "__main__":
    main()
