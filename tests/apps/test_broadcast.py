"""The broadcast server as a subprocess, both backends, driven by the `websockets` library."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.sync.client import connect as sync_connect

from .servers import BACKENDS, Server, masked_frame, raw_client, read_frames

pytestmark = pytest.mark.interop

CLIENTS = 200
SENDERS = 4
PER_SENDER = 10
# 8 MiB in 16 KiB messages: more than the kernel's socket buffers can absorb for a
# client that does not read (Linux autotunes a send buffer up to tcp_wmem's 4 MiB).
FLOOD = 512


async def _open_many(url: str, count: int, **kwargs: object) -> list[ClientConnection]:
    sockets: list[ClientConnection] = []
    for start in range(0, count, 50):  # in batches: stay under the listen backlog
        sockets += await asyncio.gather(*(connect(url, **kwargs)  # type: ignore[arg-type]
                                          for _ in range(start, min(count, start + 50))))
    return sockets


async def _until_all_members(clients: list[ClientConnection]) -> None:
    """A client is a member once the server's handler for it runs, a moment after its
    handshake: probe until every client has received a broadcast."""
    seen = [False] * len(clients)

    async def watch(k: int) -> None:
        assert await clients[k].recv() == "probe"
        seen[k] = True

    watchers = [asyncio.create_task(watch(k)) for k in range(len(clients))]
    for _ in range(100):
        await clients[0].send("probe")
        await asyncio.sleep(0.1)
        if all(seen):
            break
    assert all(seen)
    await asyncio.gather(*watchers)


@pytest.mark.parametrize("compression", [None, "deflate"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_200_clients_receive_every_message_in_order_per_sender(
        backend: str, compression: str | None) -> None:
    """Every message any client sends reaches all clients, each sender's in order (§6.1)."""

    async def scenario(url: str) -> None:
        clients = await _open_many(url, CLIENTS, compression=compression, max_queue=None)
        try:
            if compression:
                # RFC 7692 §7.1.1.1: asked by the server so one compressed frame serves all.
                assert clients[0].response is not None
                extensions = clients[0].response.headers["Sec-WebSocket-Extensions"]
                assert "server_no_context_takeover" in extensions
            await _until_all_members(clients)

            async def send(n: int) -> None:
                for i in range(PER_SENDER):
                    await clients[n].send(f"{n}:{i}:" + "p" * (i * 100))

            async def receive(ws: ClientConnection) -> list[str]:
                got: list[str] = []
                while len(got) < SENDERS * PER_SENDER:
                    message = await asyncio.wait_for(ws.recv(), 30)
                    assert isinstance(message, str)
                    if message != "probe":
                        got.append(message)
                return got

            receivers = [asyncio.create_task(receive(ws)) for ws in clients]
            await asyncio.gather(*(send(n) for n in range(SENDERS)))
            results = await asyncio.gather(*receivers)
        finally:
            await asyncio.gather(*(ws.close() for ws in clients))
        for got in results:
            for n in range(SENDERS):
                mine = [m for m in got if m.startswith(f"{n}:")]
                assert mine == [f"{n}:{i}:" + "p" * (i * 100) for i in range(PER_SENDER)]

    with Server("broadcast", backend) as server:
        asyncio.run(scenario(server.url))
        assert server.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_and_fragmented_messages_are_broadcast_rfc6455_s5_4(backend: str) -> None:
    """§5.4: a fragmented message is delivered to everyone as one message, type kept."""
    with Server("broadcast", backend) as server, sync_connect(server.url) as a, \
            sync_connect(server.url) as b:
        _join([a, b])
        a.send([b"\x01" * 10, b"\x02" * 70000])
        for ws in (a, b):
            assert ws.recv(timeout=10) == b"\x01" * 10 + b"\x02" * 70000
        b.send(["to ", "all"])
        for ws in (a, b):
            assert ws.recv(timeout=10) == "to all"


def _join(clients: list[Any], raws: tuple[socket.socket, ...] = ()) -> None:
    """Return once every client is a member: probe until each has received a broadcast.

    A client joins when the server's handler for it runs, a moment after the
    handshake; messages sent before that are not for it.
    """
    seen = [-1] * len(clients)  # the last probe each client read
    got_raw = [False] * len(raws)
    sent = 0
    while min(seen, default=0) < 0 or not all(got_raw):
        assert sent < 200, "clients never became members"
        clients[0].send(f"probe-{sent}")
        sent += 1
        for i, ws in enumerate(clients):
            if seen[i] < 0:
                with contextlib.suppress(TimeoutError):
                    seen[i] = int(str(ws.recv(timeout=0.05)).removeprefix("probe-"))
        for i, sock in enumerate(raws):
            if not got_raw[i]:
                sock.settimeout(0.05)
                with contextlib.suppress(TimeoutError):
                    got_raw[i] = bool(sock.recv(1, socket.MSG_PEEK))
    last = f"probe-{sent - 1}"
    for i, ws in enumerate(clients):  # later probes are still on their way
        if seen[i] < sent - 1:
            while ws.recv(timeout=10) != last:
                pass
    for sock in raws:
        sock.settimeout(10)
        while (0x1, last.encode()) not in _read_available(sock):
            pass


def _flood(url: str, messages: int, size: int,
           raws: tuple[socket.socket, ...] = ()) -> tuple[int, float]:
    """One client sends ``messages`` of ``size`` bytes; another receives them all."""
    payload = b"m" * size
    with sync_connect(url, compression=None, max_size=None) as sender, \
            sync_connect(url, compression=None, max_size=None) as watcher:
        _join([sender, watcher], raws)
        start = time.monotonic()
        received = 0
        for i in range(messages):
            sender.send(payload[:size - 4] + i.to_bytes(4, "big"))
            # The sender is also a member: keep its own copy drained.
            assert sender.recv(timeout=30)[-4:] == i.to_bytes(4, "big")
            assert watcher.recv(timeout=30)[-4:] == i.to_bytes(4, "big")
            received += 1
        return received, time.monotonic() - start


@pytest.mark.parametrize("backend", BACKENDS)
def test_stuck_client_does_not_delay_others_and_memory_stays_bounded(backend: str) -> None:
    """A client that stops reading costs at most its buffer; everyone else gets everything.

    32 MiB flow through the server while one client reads nothing; the server's
    resident memory grows by far less than that (its per-client bound is 256 KiB).
    """
    with Server("broadcast", backend, "--client-buffer", "256k", "--slow-policy", "drop",
                "--no-compression") as server:
        stuck = raw_client(server.port, rcvbuf=4096)
        try:
            _flood(server.url, 20, 1024, (stuck,))  # warm up; the stuck client is a member
            before = server.rss_kib()
            received, _ = _flood(server.url, 512, 64 * 1024)
            after = server.rss_kib()
            assert received == 512
            assert after - before < 16 * 1024, (before, after)
            # The drop is counted and logged.
            assert "dropped" in server.log()
        finally:
            stuck.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_policy_skips_messages_then_resumes(backend: str) -> None:
    """Drop policy: a slow client loses messages but stays connected and resumes."""
    with Server("broadcast", backend, "--client-buffer", "64k", "--slow-policy", "drop",
                "--no-compression") as server:
        slow = raw_client(server.port, rcvbuf=4096)
        try:
            _flood(server.url, FLOOD, 16 * 1024, (slow,))
            # Read what the slow client was given, until nothing more comes...
            frames: list[tuple[int, bytes]] = []
            slow.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                while True:
                    frames += _read_available(slow)
            slow.settimeout(10)
            indexes = [int.from_bytes(p[-4:], "big") for op, p in frames if op == 0x2]
            assert indexes == sorted(indexes)  # in order, with a gap
            assert 0 < len(indexes) < FLOOD
            # ... then prove that it is still a member.
            with sync_connect(server.url, compression=None) as sender:
                _join([sender], (slow,))
                sender.send("after the flood")
                assert sender.recv(timeout=10) == "after the flood"
            while (0x1, b"after the flood") not in _read_available(slow):
                pass
        finally:
            slow.close()
        assert "dropped" in server.log()


def _read_available(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Frames readable now (blocks for the first bytes); a partial frame is completed."""
    buf = bytearray(sock.recv(1 << 20))
    frames: list[tuple[int, bytes]] = []
    while buf:
        if len(buf) < 2:
            buf += sock.recv(1 << 20)
            continue
        length = buf[1] & 0x7F
        offset = 2
        if length == 126:
            offset = 4
        elif length == 127:
            offset = 10
        while len(buf) < offset:
            buf += sock.recv(1 << 20)
        if offset == 4:
            length = int.from_bytes(buf[2:4], "big")
        elif offset == 10:
            length = int.from_bytes(buf[2:10], "big")
        while len(buf) < offset + length:
            buf += sock.recv(1 << 20)
        frames.append((buf[0] & 0x0F, bytes(buf[offset:offset + length])))
        del buf[:offset + length]
    return frames


@pytest.mark.parametrize("code", [1008, 1013])
@pytest.mark.parametrize("backend", BACKENDS)
def test_close_policy_disconnects_slow_client_rfc6455_s7_4_1(backend: str, code: int) -> None:
    """Close policy: the slow client gets a close frame with 1008 or 1013 after its data."""
    with Server("broadcast", backend, "--client-buffer", "64k", "--slow-policy", "close",
                "--slow-close-code", str(code), "--close-timeout", "30",
                "--no-compression") as server:
        slow = raw_client(server.port, rcvbuf=4096)
        try:
            _flood(server.url, FLOOD, 16 * 1024, (slow,))
            frames = read_frames(slow)
            assert frames and frames[-1][0] == 0x8
            assert int.from_bytes(frames[-1][1][:2], "big") == code
            assert len(frames) - 1 < FLOOD
            slow.sendall(masked_frame(0x8, frames[-1][1][:2]))
        finally:
            slow.close()
        # Everyone else is unaffected.
        with sync_connect(server.url) as ws:
            _join([ws])
            ws.send("still here")
            assert ws.recv(timeout=10) == "still here"
        assert server.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_closes_members_with_1001_rfc6455_s7_4_1(backend: str) -> None:
    with Server("broadcast", backend, "--close-timeout", "1") as server:
        socks = [raw_client(server.port) for _ in range(3)]
        try:
            assert server.stop() == 0
            for sock in socks:
                frames = read_frames(sock)
                assert frames[-1][0] == 0x8
                assert int.from_bytes(frames[-1][1][:2], "big") == 1001
        finally:
            for sock in socks:
                sock.close()
