"""Scale-out of the broadcast server: several processes, several hosts, over Redis.

Every test runs real server processes (``python -m rfc6455 broadcast``) and,
where Redis is involved, a real ``redis-server`` on a free loopback port. The
invariant everywhere: every message reaches every client exactly once, and
each sender's messages arrive in the order it sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from rfc6455.apps.backplane import decode, encode

from .servers import Server

REDIS = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, port: int) -> None:
        assert REDIS is not None
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if REDIS is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: .ci/run must install Debian's redis-server")
        pytest.skip("REDIS-SERVER NOT INSTALLED: apt-get install redis-server to run this test")
    server = RedisServer(_free_port())
    yield server
    server.stop()


def test_message_encoding_round_trip() -> None:
    """Text and binary keep their type through the backplane (RFC 6455 §5.6)."""
    for message in ("héllo", "", b"\x00\xff", b""):
        assert decode(encode(message)) == message
    with pytest.raises(ValueError):
        decode(b"?junk")


async def _connect_all(urls: list[str]) -> list[websockets.ClientConnection]:
    return [await websockets.connect(url, compression=None) for url in urls]


async def _exchange(clients: list[websockets.ClientConnection],
                    senders: dict[int, str], count: int) -> None:
    """Each sender sends ``count`` numbered messages; check every client got all, in order."""
    await asyncio.sleep(0.3)  # let every server register its clients with the hub
    for index in range(count):
        for client_index, name in senders.items():
            await clients[client_index].send(f"{name}:{index}")
    expected = len(senders) * count
    for client in clients:
        received = [await asyncio.wait_for(client.recv(), 15) for _ in range(expected)]
        for name in senders.values():
            mine = [m for m in received if isinstance(m, str) and m.startswith(name + ":")]
            assert mine == [f"{name}:{i}" for i in range(count)], "per-sender order broken"
        assert len(received) == expected
    for client in clients:
        # Exactly once: nothing further arrives.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.recv(), 0.3)


def test_two_servers_share_one_redis(redis_server: RedisServer) -> None:
    """Two processes (different ports, both backends) behind one Redis act as one server."""
    first = Server("broadcast", "asyncio", "--redis", redis_server.url)
    second = Server("broadcast", "sync", "--redis", redis_server.url)
    try:
        async def scenario() -> None:
            clients = await _connect_all([first.url] * 3 + [second.url] * 3)
            await _exchange(clients, {0: "a", 4: "b"}, 50)
            for client in clients:
                await client.close()

        asyncio.run(scenario())
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_redis_restart_keeps_clients_connected(redis_server: RedisServer) -> None:
    """Redis going away loses (and counts) messages, never connections; delivery resumes."""
    server = Server("broadcast", "asyncio", "--redis", redis_server.url)
    try:
        async def scenario() -> None:
            clients = await _connect_all([server.url] * 3)
            await _exchange(clients, {0: "before"}, 5)
            redis_server.stop()
            await asyncio.sleep(1.5)  # the server notices (health checks) and starts retrying
            await clients[1].send("during")  # cannot be delivered: counted and logged
            restarted = RedisServer(redis_server.port)
            redis_server.proc = restarted.proc
            deadline = time.monotonic() + 20
            while True:  # probe until the server has resubscribed
                await clients[2].send("probe")
                try:
                    reply = await asyncio.wait_for(clients[2].recv(), 1.0)
                except asyncio.TimeoutError:
                    assert time.monotonic() < deadline, "delivery did not resume"
                    continue
                if reply == "probe":
                    break
            for client in clients:  # drain probes that arrived late
                while True:
                    try:
                        await asyncio.wait_for(client.recv(), 0.5)
                    except asyncio.TimeoutError:
                        break
            await _exchange(clients, {0: "after", 1: "again"}, 20)
            for client in clients:
                assert client.close_code is None, "a client was disconnected"
                await client.close()

        asyncio.run(scenario())
        assert "not delivered" in server.log()
        assert "unreachable" in server.log()
    finally:
        assert server.stop() == 0


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        return [int(p) for p in children.read_text().split()]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def _wait_workers(supervisor: Server, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while True:
        workers = _children(supervisor.pid)
        listening = supervisor.log().count("(asyncio backend) listening on")
        if len(workers) == count and listening >= count:
            return workers
        assert time.monotonic() < deadline, supervisor.log()
        time.sleep(0.05)


@pytest.mark.parametrize("use_redis", [False, True], ids=["embedded-relay", "redis"])
def test_workers_share_one_port(use_redis: bool, request: pytest.FixtureRequest) -> None:
    """``--workers 2``: one port, clients spread over both processes, every message everywhere."""
    extra: list[str] = []
    if use_redis:
        extra = ["--redis", request.getfixturevalue("redis_server").url]
    supervisor = Server("broadcast", "asyncio", "--workers", "2", *extra)
    try:
        workers = _wait_workers(supervisor, 2)
        baseline = {pid: _sockets(pid) for pid in workers}

        async def scenario() -> None:
            clients = await _connect_all([supervisor.url] * 16)
            # SO_REUSEPORT hashes connections over both workers: each got some.
            spread = {pid: _sockets(pid) - baseline[pid] for pid in workers}
            assert all(extra > 0 for extra in spread.values()), spread
            await _exchange(clients, {0: "x", 7: "y", 15: "z"}, 20)
            for client in clients:
                await client.close()

        asyncio.run(scenario())
    finally:
        assert supervisor.stop() == 0
    assert "2 workers listening on" in supervisor.log()


def test_supervisor_restarts_a_crashed_worker() -> None:
    """A worker killed outright is replaced; the service keeps answering on the same port."""
    supervisor = Server("broadcast", "asyncio", "--workers", "2")
    try:
        workers = _wait_workers(supervisor, 2)
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.monotonic() + 20
        while True:
            current = _children(supervisor.pid)
            if len(current) == 2 and workers[0] not in current:
                break
            assert time.monotonic() < deadline, supervisor.log()
            time.sleep(0.1)

        async def scenario() -> None:
            deadline = time.monotonic() + 20
            while True:
                try:
                    clients = await _connect_all([supervisor.url] * 4)
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.2)
            await _exchange(clients, {1: "r"}, 10)
            for client in clients:
                await client.close()

        asyncio.run(scenario())
        assert "restarting it" in supervisor.log()
    finally:
        assert supervisor.stop() == 0
