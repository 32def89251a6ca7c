"""ASGI echo under uvicorn: rfc6455's ``--ws`` protocol vs uvicorn's websockets-sansio and wsproto.

Usage: ``python benchmarks/asgi.py [--quick] [--repeat 3] [--only rfc6455,wsproto]
[--apps raw,starlette]``

Each server is ``python -m uvicorn`` in a child process, on uvloop and httptools
(``--loop uvloop --http httptools``), serving one of two echo applications from
this module:

* ``raw``: a bare ASGI callable (:func:`raw_echo`), so the figures are the
  WebSocket protocol's and uvicorn's own, nothing else;
* ``starlette``: the same echo as a Starlette ``WebSocketRoute`` endpoint
  (:func:`starlette_app`, through ``--factory``), as an application is usually
  written.

with each ``--ws`` implementation: ours (``rfc6455.uvicorn:WebSocketProtocol``),
``websockets-sansio`` and ``wsproto``. uvicorn's defaults otherwise (``ws_max_size``
16 MiB, ``ws_max_queue`` 32, permessage-deflate allowed but never offered by the
client, so off) but for keepalive pings, off (``--ws-ping-interval 0``): the client
counts reply bytes, and a ping is 6 bytes it did not ask for.

The measurement is ``benchmarks/servers.py``'s, imported, not copied: the same
cheap load generator (raw asyncio protocols on uvloop in this process, writing
hand-made masked frames and counting the bytes that come back), the server's CPU
time from ``/proc/PID/task/*/schedstat`` and its RSS from ``/proc/PID/status``:

* ping-pong 32 B: one message in flight; server CPU µs per round trip;
* pipelined 32 B, 4 KiB, 256 KiB: many in flight; server CPU µs per message;
* idle: server RSS growth over ``--idle`` (1,000) open, idle connections, KiB each.

The ratio columns are ours over each peer: below 1 means rfc6455 is ahead.
The child servers import rfc6455 from ``PYTHONPATH`` first, then from this
checkout, so ``PYTHONPATH=/other/checkout python benchmarks/asgi.py`` measures
another tree's ``rfc6455.uvicorn``. Bounded: loopback only, fixed counts, a 60 s
timeout on each workload; ``--quick`` takes well under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from servers import (  # noqa: E402
    FULL,
    QUICK,
    Server,
    Sizes,
    Spec,
    echo_run,
    fmt,
    measure_echo,
    open_client,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# ----------------------------------------------------------------------------- applications


async def raw_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo every message back as it came (text as text, bytes as bytes); 404 for HTTP."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["type"] != "websocket":
        return  # lifespan is off (--lifespan off)
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})


def starlette_app() -> Any:
    """The same echo as a Starlette endpoint, written as its documentation shows."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                # The load generator sends binary messages only.
                await websocket.send_bytes(await websocket.receive_bytes())
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/ws", echo)])


APPS: dict[str, list[str]] = {
    "raw": ["asgi:raw_echo"],
    "starlette": ["asgi:starlette_app", "--factory"],
}
OURS = "rfc6455"
PROTOCOLS: dict[str, str] = {
    OURS: "rfc6455.uvicorn:WebSocketProtocol",
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
}

# ----------------------------------------------------------------------------- servers

def server_environment() -> dict[str, str]:
    """The servers' environment: rfc6455 from PYTHONPATH first (another checkout under
    test), then from this checkout; the accelerator on."""
    env = dict(os.environ)
    env.pop("RFC6455_NO_EXTENSIONS", None)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.environ.get("PYTHONPATH", ""), str(ROOT)) if p)
    return env


def server_rfc6455() -> str:
    """Which rfc6455 the servers import, and whether its C accelerator is built."""
    probe = ("import rfc6455, os; from rfc6455._mask import ACCELERATED; "
             "print(os.path.dirname(os.path.dirname(rfc6455.__file__)), ACCELERATED)")
    out = subprocess.run([sys.executable, "-P", "-c", probe], env=server_environment(),
                         cwd=HERE, capture_output=True, text=True, timeout=60, check=True)
    tree, accelerated = out.stdout.split()
    return f"rfc6455 from {tree} (accelerator built: {'yes' if accelerated == 'True' else 'no'})"


_LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class UvicornServer(Server):
    """``python -m uvicorn`` in a child process; CPU and RSS as :class:`servers.Server`'s."""

    def __init__(self, app: str, ws: str) -> None:
        env = server_environment()
        cmd = [sys.executable, "-m", "uvicorn", *APPS[app], "--app-dir", str(HERE),
               "--host", "127.0.0.1", "--port", "0", "--ws", PROTOCOLS[ws],
               "--loop", "uvloop", "--http", "httptools", "--lifespan", "off",
               "--ws-ping-interval", "0", "--no-access-log", "--log-level", "info"]
        # The working directory is this one (no rfc6455 package in it), so that the
        # child's rfc6455 is the one PYTHONPATH names.
        self.proc = subprocess.Popen(cmd, env=env, cwd=HERE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.proc.stderr is not None
        seen = b""
        while True:
            line = self.proc.stderr.readline()
            if not line:
                self.proc.wait(10)
                self.proc.stderr.close()
                raise RuntimeError(f"uvicorn --ws {ws} ({app}) did not start: "
                                   f"{seen.decode(errors='replace')[-2000:]}")
            seen += line
            found = _LISTENING.search(line)
            if found:
                self.port = int(found.group(1))
                break
        # Drain stderr (uvicorn logs every connection) so the server never blocks on it.
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stderr,
                                       stdout=subprocess.DEVNULL)


# ----------------------------------------------------------------------------- run

COLUMNS = {
    "ping-pong 32 B µs/rt": "ping-pong 32 B, CPU µs per round trip",
    "pipelined 32 B µs/msg": "pipelined 32 B, CPU µs per message",
    "pipelined 4 KiB µs/msg": "pipelined 4 KiB, CPU µs per message",
    "256 KiB µs/msg": "pipelined 256 KiB, CPU µs per message",
    "idle KiB/conn": "idle, RSS KiB per connection",
}
IDLE = 1000


def raise_fd_limit(connections: int) -> None:
    """Room for both ends of every idle connection (the children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * connections + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"the open file limit is {hard} (hard); {needed} are needed "
                             f"for {connections} idle connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def measure(app: str, ws: str, sizes: Sizes) -> dict[str, float]:
    print(f"{app}: --ws {ws}...", file=sys.stderr, flush=True)
    server = UvicornServer(app, ws)
    try:
        # servers.measure_echo: warm-up, the four echo workloads, then the idle connections.
        values = asyncio.run(measure_echo(server, Spec(ws, "uvicorn"), sizes))
        if server.proc.poll() is not None:
            raise RuntimeError(f"uvicorn --ws {ws} exited during the run")
        return values
    finally:
        server.stop()


def workloads(sizes: Sizes) -> list[tuple[str, int, int, int]]:
    """(column, message size, count, window): servers.measure_echo's four echo workloads."""
    return [("ping-pong 32 B µs/rt", 32, sizes.pingpong, 1),
            ("pipelined 32 B µs/msg", 32, sizes.small, 256),
            ("pipelined 4 KiB µs/msg", 4096, sizes.medium, 64),
            ("256 KiB µs/msg", 256 * 1024, sizes.large, 8)]


async def interleaved(app: str, protocols: list[str], sizes: Sizes,
                      rounds: int) -> dict[str, dict[str, float]]:
    """Every protocol's server up at once, one connection each, taking turns for
    ``rounds`` rounds of each workload (a round: 1/``rounds`` of its messages), so that
    a slow spell of the machine hits every server alike; the median round of each."""
    servers = {ws: UvicornServer(app, ws) for ws in protocols}
    try:
        clients = {ws: await open_client(server.port) for ws, server in servers.items()}
        for client in clients.values():
            await echo_run(client, 32, 200, 1, False)  # warm-up
            await echo_run(client, 256 * 1024, 4, 4, False)
        out: dict[str, dict[str, float]] = {ws: {} for ws in protocols}
        for column, size, count, window in workloads(sizes):
            per_round = max(1, count // rounds)
            samples: dict[str, list[float]] = {ws: [] for ws in protocols}
            for _ in range(rounds):
                for ws, server in servers.items():
                    before = server.cpu()
                    await echo_run(clients[ws], size, per_round, window, False)
                    samples[ws].append((server.cpu() - before) / per_round * 1e6)
            for ws in protocols:
                out[ws][column] = statistics.median(samples[ws])
        for client in clients.values():
            assert client.transport is not None
            client.transport.close()
        await asyncio.sleep(0.2)
        return out
    finally:
        for server in servers.values():
            server.stop()


def report(rows: dict[str, dict[str, float]], protocols: list[str]) -> list[str]:
    """Workloads down, implementations across, then ours over each peer."""
    peers = [p for p in protocols if p != OURS]
    ratio_heads = [f"{OURS} / {p}" for p in peers] if OURS in protocols else []
    lines = ["| workload | " + " | ".join(protocols + ratio_heads) + " |",
             "|---|" + "---:|" * (len(protocols) + len(ratio_heads))]
    for column, title in COLUMNS.items():
        cells = [fmt(rows[p][column]) if p in rows else "-" for p in protocols]
        if ratio_heads:
            ours = rows.get(OURS, {}).get(column)
            for peer in peers:
                theirs = rows.get(peer, {}).get(column)
                cells.append(f"{ours / theirs:.2f}" if ours is not None and theirs else "-")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (small counts)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; cells are medians")
    parser.add_argument("--only", help=f"comma-separated --ws names: {', '.join(PROTOCOLS)}")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated: raw,starlette")
    parser.add_argument("--rounds", type=int, metavar="R",
                        help="CPU rows from R interleaved rounds with all servers up at "
                        "once (see interleaved); idle memory still from the runs")
    parser.add_argument("--idle", type=int, help=f"idle connections (default {IDLE}; "
                        f"{QUICK.idle} with --quick)")
    args = parser.parse_args(argv)
    protocols = [p for p in PROTOCOLS if not args.only or p in args.only.split(",")]
    apps = [a for a in args.apps.split(",") if a]
    unknown = set(apps) - set(APPS) | set((args.only or "").split(",")) - set(PROTOCOLS) - {""}
    if unknown:
        raise SystemExit(f"unknown: {', '.join(sorted(unknown))}")
    sizes = QUICK if args.quick else dataclasses.replace(FULL, idle=IDLE)
    if args.idle:
        sizes = dataclasses.replace(sizes, idle=max(1, min(args.idle, 5000)))
    raise_fd_limit(sizes.idle)
    try:
        import uvloop  # the load generator: the cheaper the client, the truer the figures

        uvloop.install()
    except ImportError:
        pass
    repeat = max(1, min(args.repeat, 10))
    started = time.monotonic()
    load = os.getloadavg()[0]
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(repeat):
        # The servers take turns within each repetition, so a load spike hits all alike.
        for app in apps:
            for ws in protocols:
                samples.setdefault((app, ws), []).append(measure(app, ws, sizes))
    turns: dict[str, dict[str, dict[str, float]]] = {}
    if args.rounds:
        for app in apps:
            print(f"{app}: interleaved rounds...", file=sys.stderr, flush=True)
            turns[app] = asyncio.run(interleaved(app, protocols, sizes,
                                                 max(1, min(args.rounds, 50))))
    import uvicorn

    print(f"Python {sys.version.split()[0]}, uvicorn {uvicorn.__version__} (uvloop, httptools), "
          f"{server_rfc6455()}, {os.cpu_count()} CPUs, load average {load:.1f}, {repeat} "
          f"run(s), medians; {'quick' if args.quick else 'full'} sizes: ping-pong "
          f"{sizes.pingpong}, pipelined {sizes.small} / {sizes.medium} / {sizes.large}, "
          f"idle {sizes.idle}; {time.monotonic() - started:.0f} s")
    for app in apps:
        rows = {ws: {c: statistics.median(s[c] for s in samples[(app, ws)]) for c in COLUMNS}
                for ws in protocols}
        for ws, values in turns.get(app, {}).items():
            rows[ws].update(values)
        print(f"\n{app} ASGI echo" + (f" (CPU rows: medians of {args.rounds} interleaved "
                                      "rounds)" if args.rounds else "") + "\n")
        print("\n".join(report(rows, protocols)))
    print("\nLower is better everywhere; a ratio below 1: rfc6455 ahead.")


if __name__ == "__main__":
    main()
