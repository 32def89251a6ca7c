"""Our asyncio server vs the websockets server, with the same client (websockets').

Run: ``python benchmarks/bench_adapters.py [--seconds 2] [--idle 1000]``.

* round trips/s: one 16-byte text message echoed at a time, for ``--seconds``;
* MB/s: 1 MiB binary messages echoed one at a time, payload bytes one way;
* the server process's CPU time for each (on a shared machine the wall-clock
  rates mostly measure scheduling; CPU time per unit of work does not);
* idle memory per connection: the server runs in a child process; its RSS is
  read before and after ``--idle`` connections opened and left idle.

Loopback only, bounded in count and time. Compression off unless ``--deflate``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from typing import Any

SERVER = r"""
import asyncio, sys
kind, compression = sys.argv[1], (None if sys.argv[2] == "none" else "deflate")

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    if kind == "rfc6455":
        from rfc6455.asyncio import serve
        server = await serve(echo, "127.0.0.1", 0, compression=compression, max_size=2**21,
                             ping_interval=None)
        port = server.port
    else:
        from websockets.asyncio.server import serve
        server = await serve(echo, "127.0.0.1", 0, compression=compression, max_size=2**21,
                             ping_interval=None)
        port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (robust to a loaded machine, unlike wall rates)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def measure(port: int, seconds: float, idle: int, compression: str | None,
                  pid: int) -> dict[str, float]:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{port}/"
    results: dict[str, float] = {}
    async with connect(url, compression=compression, max_size=2**21) as ws:
        message = "x" * 16
        count = 0
        cpu = cpu_seconds(pid)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            await ws.send(message)
            await ws.recv()
            count += 1
        results["round trips/s"] = count / seconds
        results["server CPU us/round trip"] = (cpu_seconds(pid) - cpu) / count * 1e6
        big = os.urandom(1024 * 1024)
        total = 0
        cpu = cpu_seconds(pid)
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            await ws.send(big)
            await ws.recv()
            total += len(big)
        results["MB/s (1 MiB echo)"] = total / (time.perf_counter() - start) / 1e6
        results["server CPU ms/MiB"] = (cpu_seconds(pid) - cpu) / (total / 2**20) * 1e3
    await asyncio.sleep(0.2)
    before = rss_kib(pid)
    clients = [await connect(url, compression=compression, ping_interval=None)
               for _ in range(idle)]
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    results["idle KiB/connection"] = (after - before) / idle
    for ws in clients:
        await ws.close()
    return results


def run_one(kind: str, args: argparse.Namespace) -> dict[str, float]:
    compression = "deflate" if args.deflate else None
    child = subprocess.Popen([sys.executable, "-c", SERVER, kind, compression or "none"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        return asyncio.run(measure(port, args.seconds, args.idle, compression, child.pid))
    finally:
        child.terminate()
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--deflate", action="store_true")
    args = parser.parse_args()
    rows: dict[str, Any] = {kind: run_one(kind, args) for kind in ("rfc6455", "websockets")}
    keys = list(rows["rfc6455"])
    print(f"{'server':12}" + "".join(f"{k:>26}" for k in keys))
    for kind, values in rows.items():
        print(f"{kind:12}" + "".join(f"{values[k]:>26.1f}" for k in keys))


if __name__ == "__main__":
    main()
