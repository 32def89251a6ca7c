"""Echo and broadcast servers over loopback: rfc6455's asyncio adapter vs the peers, one run.

Usage: ``python benchmarks/servers.py [--quick] [--repeat 3] [--only NAME,...]``

Every server runs in a child process of its own (``--serve KIND``), so its CPU
time is read from ``/proc/PID/task/*/schedstat`` (nanoseconds on a CPU, user and
kernel; ``/proc/PID/stat``'s 10 ms ticks where schedstat is missing) before and
after each workload and its memory from ``/proc/PID/status`` (VmRSS). The load generator is
this process: raw asyncio protocols (uvloop if installed) that write hand-made masked frames
and count the bytes that come back, the same cheap client for every server.
Compression is off everywhere (no extension is offered).

Echo workloads (one connection; the servers echo each message as one frame):

* ping-pong 32 B: N round trips, one in flight; server CPU µs per round trip;
* pipelined 32 B and 4 KiB: many messages in flight; server CPU µs per message;
* pipelined 256 KiB: a few in flight; payload MB/s one way (wall clock);
* idle: server RSS growth over ``--idle`` open, idle connections, KiB each.

Broadcast: ``--clients`` connections to a broadcast server; one of them sends a
64-byte message; the time until the last client has the 66-byte frame back,
median over rounds (also the server's CPU time per broadcast).

Servers: rfc6455 ``serve`` (uvloop; default loop; pure Python with
``RFC6455_NO_EXTENSIONS=1``) and ``serve_listener`` (uvloop; pure), websockets
17 (asyncio server), aiohttp, picows, and a raw TCP echo (asyncio Protocol, the
physical bound: it writes back the bytes it reads, no WebSocket at all).
Broadcast: ``python -m rfc6455 broadcast --no-compression``, a websockets server
with ``websockets.broadcast``, a picows listener that sends to every transport,
and a bare asyncio loop that writes one prebuilt frame to every transport. Echo
servers run under uvloop unless the name says otherwise; broadcast servers under
uvloop.

``--pingpong-rounds R`` measures ping-pong alone, with the echo servers up at
once and taking turns round by round (5,000 round trips a round): the tighter
comparison for a row where the noise between runs is as large as the
differences between servers.

Bounded: loopback only, fixed message counts, a 60 s timeout on each workload.
The machine is shared and noisy: compare rows of one run; ``--repeat`` runs
everything R times (servers interleaved) and reports the median of each cell.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"  # RFC 6455 §1.3
TICK = os.sysconf("SC_CLK_TCK")

# ----------------------------------------------------------------------------- servers


def _run(main: Callable[[], Any], use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main())


async def _forever(port: int) -> None:
    print(port, flush=True)
    await asyncio.Event().wait()


def serve_rfc6455() -> Callable[[], Any]:
    from rfc6455.asyncio import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        server = await serve(echo, "127.0.0.1", 0, compression=None, max_size=2**21,
                             ping_interval=None)
        await _forever(server.port)

    return main


def serve_rfc6455_listener() -> Callable[[], Any]:
    from rfc6455.asyncio import Connection, Listener, serve_listener

    class Echo(Listener):
        def on_message(self, ws: Connection, message: str | bytes) -> None:
            ws.send_nowait(message)

    async def main() -> None:
        server = await serve_listener(Echo, "127.0.0.1", 0, compression=None, max_size=2**21,
                                      ping_interval=None)
        await _forever(server.port)

    return main


def serve_websockets() -> Callable[[], Any]:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        server = await serve(echo, "127.0.0.1", 0, compression=None, max_size=2**21,
                             ping_interval=None)
        await _forever(server.sockets[0].getsockname()[1])

    return main


def serve_aiohttp() -> Callable[[], Any]:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, max_msg_size=2**21, autoping=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/ws", echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        await _forever(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

    return main


def serve_picows() -> Callable[[], Any]:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()
            elif frame.msg_type in (WSMsgType.TEXT, WSMsgType.BINARY):
                # Messages here are single frames (fin set), so a frame is a message.
                transport.send(frame.msg_type, frame.get_payload_as_bytes())

    async def main() -> None:
        server = await ws_create_server(lambda request: Echo(), "127.0.0.1", 0,
                                        max_frame_size=2**21)
        await _forever(server.sockets[0].getsockname()[1])

    return main


def _accept(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


class _Upgrade(asyncio.Protocol):
    """A bare HTTP upgrade (RFC 6455 §4.2.2) with no checks: the bare servers' part."""

    def __init__(self) -> None:
        self.head = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            rest = self.head[end + 4:]
            key = self.head.split(b"Sec-WebSocket-Key: ", 1)[1].split(b"\r\n", 1)[0]
            self.head = None  # type: ignore[assignment]
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                                 + _accept(key) + b"\r\n\r\n")
            self.upgraded()
            if rest:
                self.frames(rest)
            return
        self.frames(data)

    def upgraded(self) -> None:
        pass

    def frames(self, data: bytes) -> None:
        raise NotImplementedError


def serve_raw() -> Callable[[], Any]:
    class RawEcho(_Upgrade):
        # The physical bound: the bytes read are written back as they are (still
        # masked, so the client expects 4 more bytes per frame).
        def frames(self, data: bytes) -> None:
            assert self.transport is not None
            self.transport.write(data)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(RawEcho, "127.0.0.1", 0)
        await _forever(server.sockets[0].getsockname()[1])

    return main


def serve_bare_broadcast() -> Callable[[], Any]:
    members: set[asyncio.Transport] = set()

    class Bare(_Upgrade):
        def upgraded(self) -> None:
            assert self.transport is not None
            members.add(self.transport)

        def connection_lost(self, exc: Exception | None) -> None:
            members.discard(self.transport)

        def frames(self, data: bytes) -> None:
            # The test's client sends one masked 64-byte binary frame at a time.
            key, payload = data[2:6], data[6:]
            plain = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
            frame = bytes([0x82, len(plain)]) + plain
            for transport in members:
                transport.write(frame)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Bare, "127.0.0.1", 0)
        await _forever(server.sockets[0].getsockname()[1])

    return main


def serve_websockets_broadcast() -> Callable[[], Any]:
    from websockets.asyncio.server import broadcast, serve

    async def main() -> None:
        async def handler(ws: Any) -> None:
            async for message in ws:
                broadcast(server.connections, message)

        server = await serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None)
        await _forever(server.sockets[0].getsockname()[1])

    return main


def serve_picows_broadcast() -> Callable[[], Any]:
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

    members: set[WSTransport] = set()

    class Fanout(WSListener):
        def on_ws_connected(self, transport: WSTransport) -> None:
            members.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            members.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.BINARY:
                payload = frame.get_payload_as_bytes()
                for member in members:
                    member.send(WSMsgType.BINARY, payload)

    async def main() -> None:
        server = await ws_create_server(lambda request: Fanout(), "127.0.0.1", 0)
        await _forever(server.sockets[0].getsockname()[1])

    return main


SERVE: dict[str, Callable[[], Callable[[], Any]]] = {
    "rfc6455": serve_rfc6455, "rfc6455-listener": serve_rfc6455_listener,
    "websockets": serve_websockets, "aiohttp": serve_aiohttp,
    "picows": serve_picows, "raw": serve_raw, "bare-broadcast": serve_bare_broadcast,
    "websockets-broadcast": serve_websockets_broadcast,
    "picows-broadcast": serve_picows_broadcast,
}


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str  # a SERVE key, or "rfc6455-cli" (python -m rfc6455 broadcast)
    uvloop: bool = True
    pure: bool = False


ECHO = [
    Spec("rfc6455", "rfc6455"),
    Spec("rfc6455 listener", "rfc6455-listener"),
    Spec("rfc6455 (asyncio loop)", "rfc6455", uvloop=False),
    Spec("rfc6455 pure", "rfc6455", pure=True),
    Spec("rfc6455 listener pure", "rfc6455-listener", pure=True),
    Spec("websockets", "websockets"),
    Spec("aiohttp", "aiohttp"),
    Spec("picows", "picows"),
    Spec("raw TCP echo", "raw"),
]
BROADCAST = [
    Spec("rfc6455", "rfc6455-cli"),
    Spec("rfc6455 pure", "rfc6455-cli", pure=True),
    Spec("websockets", "websockets-broadcast"),
    Spec("picows", "picows-broadcast"),
    Spec("bare send loop", "bare-broadcast"),
]

CLI_BROADCAST = """
import runpy, sys
if sys.argv[1] == "uvloop":
    import uvloop
    uvloop.install()  # asyncio.run() in the CLI then runs on uvloop
sys.argv = ["rfc6455", "broadcast", "--port", "0", "--no-compression", "--ping-interval",
            "none", "--log-level", "info", "--max-queue", "16"]  # info: the port is logged
runpy.run_module("rfc6455", run_name="__main__")
"""


class Server:
    """A server child process; its port, CPU time and resident memory."""

    def __init__(self, spec: Spec) -> None:
        env = dict(os.environ)
        env.pop("RFC6455_NO_EXTENSIONS", None)
        if spec.pure:
            env["RFC6455_NO_EXTENSIONS"] = "1"
        if spec.kind == "rfc6455-cli":
            cmd = [sys.executable, "-c", CLI_BROADCAST, "uvloop" if spec.uvloop else "asyncio"]
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--serve", spec.kind]
            if spec.uvloop:
                cmd.append("--uvloop")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if spec.kind == "rfc6455-cli":
            # The CLI logs "listening on ws://host:port/" to stderr.
            line = b""
            while b"ws://" not in line:
                line = self.proc.stderr.readline()
                if not line:
                    raise RuntimeError(f"{spec.name}: server did not start")
            self.port = int(line.split(b"ws://", 1)[1].split(b"/", 1)[0].rsplit(b":", 1)[1])
        else:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{spec.name}: {self.proc.stderr.read().decode()}")
            self.port = int(line)
        # Drain stderr so a chatty server never blocks on a full pipe.
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stderr,
                                       stdout=subprocess.DEVNULL)

    def cpu(self) -> float:
        """Seconds on a CPU, user and kernel, over all the server's threads.

        From schedstat (nanoseconds) where the kernel keeps it: utime and stime
        in /proc/PID/stat count 10 ms ticks, too coarse for a few thousand
        round trips of 25 µs.
        """
        pid = self.proc.pid
        try:
            total = 0
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
            return total / 1e9
        except (OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (proc(5))

    def user_system(self) -> tuple[float, float]:
        """Seconds of user and of kernel time so far (10 ms ticks: for long spans)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / TICK, int(fields[12]) / TICK

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


# ----------------------------------------------------------------------------- client


def masked_frame(payload: bytes, opcode: int = 0x2) -> bytes:
    """One client frame (RFC 6455 §5.2, masked as §5.3 requires)."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    mask = int.from_bytes(key * (n // 4 + 1), "little")
    body = (int.from_bytes(payload, "little") ^ mask).to_bytes(n + 4, "little")[:n]
    return head + key + body


def reply_size(n: int, raw: bool) -> int:
    """Bytes of the frame the server sends back for an n-byte message."""
    head = 2 if n < 126 else 4 if n < 65536 else 10
    return head + n + (4 if raw else 0)


class Client(asyncio.Protocol):
    """Handshake, then count reply bytes; ``on_bytes`` runs after each read."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.head: bytes | None = b""
        self.received = 0
        self.transport: asyncio.Transport | None = None
        self.on_bytes: Callable[[], None] | None = None
        self.lost = False
        self.kept: bytearray | None = None  # set to a bytearray to keep what arrives

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16))
        transport.write(  # type: ignore[attr-defined]
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
            b"\r\n" % (self.port, key))

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(self.head[:200].decode(errors="replace")))
                return
            data = self.head[end + 4:]
            self.head = None
            self.opened.set_result(None)
        self.received += len(data)
        if self.kept is not None:
            self.kept += data
        if self.on_bytes is not None:
            self.on_bytes()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.opened.done():
            self.opened.set_exception(RuntimeError("closed during the handshake"))


async def open_client(port: int) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(port), "127.0.0.1", port)
    await asyncio.wait_for(client.opened, 30)
    return client


async def echo_run(client: Client, size: int, count: int, window: int, raw: bool) -> float:
    """Send ``count`` messages of ``size`` bytes, at most ``window`` unanswered; seconds."""
    assert client.transport is not None
    transport = client.transport
    frame = masked_frame(b"x" * size)
    reply = reply_size(size, raw)
    batch = max(1, min(window // 2, 64))
    chunk = frame * batch
    done = asyncio.get_running_loop().create_future()
    base = client.received
    total = reply * count
    sent = 0

    def pump() -> None:
        nonlocal sent
        answered = (client.received - base) // reply
        if client.received - base >= total:
            if not done.done():
                done.set_result(None)
            return
        while sent < count and sent - answered < window:
            k = min(batch, count - sent, window - (sent - answered))
            transport.write(chunk if k == batch else frame * k)
            sent += k

    client.on_bytes = pump
    start = time.perf_counter()
    pump()
    try:
        await asyncio.wait_for(done, 60)
    finally:
        client.on_bytes = None
    elapsed = time.perf_counter() - start
    if client.received - base != total:
        raise RuntimeError(f"got {client.received - base} bytes, expected {total}")
    return elapsed


@dataclass(frozen=True)
class Sizes:
    pingpong: int
    small: int
    medium: int
    large: int
    idle: int
    clients: int
    rounds: int


FULL = Sizes(pingpong=20000, small=50000, medium=20000, large=1000, idle=2000,
             clients=1000, rounds=50)
QUICK = Sizes(pingpong=500, small=5000, medium=1000, large=40, idle=100, clients=100,
              rounds=3)

ECHO_COLUMNS = ["ping-pong 32 B µs/rt", "pipelined 32 B µs/msg", "pipelined 4 KiB µs/msg",
                "256 KiB µs/msg", "256 KiB MB/s", "idle KiB/conn"]
BROADCAST_COLUMNS = ["broadcast ms", "broadcast CPU ms"]


async def measure_echo(server: Server, spec: Spec, sizes: Sizes) -> dict[str, float]:
    raw = spec.kind == "raw"
    out: dict[str, float] = {}
    client = await open_client(server.port)
    # Warm-up: the first messages pay for imports, caches and allocations.
    await echo_run(client, 32, 200, 1, raw)
    for column, size, count, window in (
            ("ping-pong 32 B µs/rt", 32, sizes.pingpong, 1),
            ("pipelined 32 B µs/msg", 32, sizes.small, 256),
            ("pipelined 4 KiB µs/msg", 4096, sizes.medium, 64)):
        before = server.cpu()
        await echo_run(client, size, count, window, raw)
        out[column] = (server.cpu() - before) / count * 1e6
    await echo_run(client, 256 * 1024, 4, 4, raw)
    before = server.cpu()
    elapsed = await echo_run(client, 256 * 1024, sizes.large, 8, raw)
    out["256 KiB µs/msg"] = (server.cpu() - before) / sizes.large * 1e6
    out["256 KiB MB/s"] = sizes.large * 256 * 1024 / elapsed / 1e6
    assert client.transport is not None
    client.transport.close()
    await asyncio.sleep(0.3)
    before_rss = server.rss_kib()
    idle = [await open_client(server.port) for _ in range(sizes.idle)]
    await asyncio.sleep(0.5)  # the servers' handlers start after the handshake
    if any(c.lost for c in idle):
        raise RuntimeError("an idle connection was closed")
    out["idle KiB/conn"] = (server.rss_kib() - before_rss) / sizes.idle
    for c in idle:
        assert c.transport is not None
        c.transport.close()
    await asyncio.sleep(0.2)
    return out


async def measure_broadcast(server: Server, sizes: Sizes) -> dict[str, float]:
    clients = [await open_client(server.port) for _ in range(sizes.clients)]
    await asyncio.sleep(1.0)  # members join when their handler runs, after the handshake
    reply = reply_size(64, False)
    times: list[float] = []
    cpu: list[float] = []
    for r in range(sizes.rounds + 2):
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        bases = [c.received for c in clients]
        remaining = len(clients)

        def arrived(c: Client, base: int, done: asyncio.Future[None]) -> Callable[[], None]:
            def check() -> None:
                nonlocal remaining
                if c.received - base >= reply:
                    c.on_bytes = None
                    remaining -= 1
                    if remaining == 0 and not done.done():
                        done.set_result(None)
            return check

        for c, base in zip(clients, bases, strict=True):
            c.on_bytes = arrived(c, base, done)
        before = server.cpu()
        start = time.perf_counter()
        assert clients[0].transport is not None
        clients[0].transport.write(masked_frame(os.urandom(64)))
        await asyncio.wait_for(done, 60)
        elapsed = time.perf_counter() - start
        await asyncio.sleep(0.05)
        if r >= 2:  # two warm-up rounds
            times.append(elapsed)
            cpu.append(server.cpu() - before)
    for c in clients:
        assert c.transport is not None
        c.transport.close()
    await asyncio.sleep(0.2)
    # CPU per broadcast, averaged over the rounds.
    return {"broadcast ms": statistics.median(times) * 1e3,
            "broadcast CPU ms": sum(cpu) / len(cpu) * 1e3}


def run_spec(spec: Spec, sizes: Sizes, broadcast: bool) -> dict[str, float]:
    print(f"{'broadcast' if broadcast else 'echo'}: {spec.name}...", file=sys.stderr, flush=True)
    server = Server(spec)
    try:
        coro = measure_broadcast(server, sizes) if broadcast else measure_echo(server, spec, sizes)
        return asyncio.run(coro)
    finally:
        server.stop()


# ----------------------------------------------------------------------------- report


async def interleaved_pingpong(specs: list[Spec], rounds: int, count: int) -> list[str]:
    """Every server up at once, one connection each, ``rounds`` rounds of ``count``
    round trips taking turns: a slow spell of the machine hits every server alike.
    A table of server CPU µs per round trip (median and range over the rounds),
    with the user/kernel split over all rounds."""
    servers = [Server(spec) for spec in specs]
    try:
        clients = []
        for server, spec in zip(servers, specs, strict=True):
            clients.append(await open_client(server.port))
            await echo_run(clients[-1], 32, 500, 1, spec.kind == "raw")  # warm-up
        per_round: list[list[float]] = [[] for _ in specs]
        start = [server.user_system() for server in servers]
        for _ in range(rounds):
            for i, (server, spec) in enumerate(zip(servers, specs, strict=True)):
                before = server.cpu()
                await echo_run(clients[i], 32, count, 1, spec.kind == "raw")
                per_round[i].append((server.cpu() - before) / count * 1e6)
        end = [server.user_system() for server in servers]
    finally:
        for server in servers:
            server.stop()
    total = rounds * count
    lines = [f"| ping-pong 32 B, {rounds} rounds of {count} | CPU µs/rt (median) | range "
             "| user µs/rt | kernel µs/rt |", "|---|---|---|---|---|"]
    for i, spec in enumerate(specs):
        user = (end[i][0] - start[i][0]) / total * 1e6
        kernel = (end[i][1] - start[i][1]) / total * 1e6
        lines.append(f"| {spec.name} | {statistics.median(per_round[i]):.1f} | "
                     f"{min(per_round[i]):.1f}-{max(per_round[i]):.1f} | {user:.1f} | "
                     f"{kernel:.1f} |")
    return lines


def fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def table(title: str, columns: list[str], rows: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"| {title} | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, values in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            fmt(values[c]) if c in values else "-" for c in columns) + " |")
    return lines


def ratios(columns: list[str], rows: dict[str, dict[str, float]], ours: list[str]) -> list[str]:
    peers = [name for name in rows if not name.startswith("rfc6455")]
    lines = ["| ratio | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for mine in ours:
        if mine not in rows:
            continue
        for peer in peers:
            cells = []
            for c in columns:
                a, b = rows[mine].get(c), rows[peer].get(c)
                cells.append(f"{a / b:.2f}" if a is not None and b else "-")
            lines.append(f"| {mine} / {peer} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (small counts)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; cells are medians")
    parser.add_argument("--only", help="comma-separated server names (default: all)")
    parser.add_argument("--no-broadcast", action="store_true")
    parser.add_argument("--pingpong-rounds", type=int, metavar="R",
                        help="only ping-pong: the echo servers up at once, taking turns "
                             "for R rounds (see interleaved_pingpong)")
    parser.add_argument("--serve", choices=sorted(SERVE), help=argparse.SUPPRESS)
    parser.add_argument("--uvloop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _run(SERVE[args.serve](), args.uvloop)
        return
    try:
        import uvloop  # the load generator: the cheaper the client, the truer the wall clock

        uvloop.install()
    except ImportError:
        pass
    sizes = QUICK if args.quick else FULL
    repeat = max(1, min(args.repeat, 10))
    only = set(args.only.split(",")) if args.only else None
    echo = [s for s in ECHO if only is None or s.name in only or s.kind in only]
    bcast = [] if args.no_broadcast else [
        s for s in BROADCAST if only is None or s.name in only or s.kind in only]
    if args.pingpong_rounds:
        count = 500 if args.quick else 5000
        print("\n".join(asyncio.run(interleaved_pingpong(
            echo, max(1, min(args.pingpong_rounds, 50)), count))))
        return
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    started = time.monotonic()
    load = os.getloadavg()[0]
    for _ in range(repeat):
        # Servers take turns within each repetition, so a load spike hits all of them.
        for spec in echo:
            samples.setdefault(("echo", spec.name), []).append(run_spec(spec, sizes, False))
        for spec in bcast:
            samples.setdefault(("broadcast", spec.name), []).append(run_spec(spec, sizes, True))

    def medians(section: str, columns: list[str]) -> dict[str, dict[str, float]]:
        return {name: {c: statistics.median(s[c] for s in runs) for c in columns}
                for (sec, name), runs in samples.items() if sec == section}

    from rfc6455._mask import ACCELERATED

    accel = "yes" if ACCELERATED else "no"
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load:.1f}, "
          f"{repeat} run(s), medians; {'quick' if args.quick else 'full'} sizes "
          f"(accelerator built: {accel}); {time.monotonic() - started:.0f} s")
    echo_rows = medians("echo", ECHO_COLUMNS)
    ours = ["rfc6455", "rfc6455 listener", "rfc6455 (asyncio loop)", "rfc6455 pure",
            "rfc6455 listener pure"]
    if echo_rows:
        print("\n".join(["", *table("echo server", ECHO_COLUMNS, echo_rows), "",
                         *ratios(ECHO_COLUMNS, echo_rows, ours)]))
    bcast_rows = medians("broadcast", BROADCAST_COLUMNS)
    if bcast_rows:
        print("\n".join(["", *table(f"broadcast 64 B to {sizes.clients}", BROADCAST_COLUMNS,
                                    bcast_rows), "",
                         *ratios(BROADCAST_COLUMNS, bcast_rows, ["rfc6455", "rfc6455 pure"])]))
    print("\nµs, KiB and ms: lower is better (ratio < 1: rfc6455 ahead); MB/s: higher is better.")


if __name__ == "__main__":
    main()
