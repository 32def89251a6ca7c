"""``on_ping`` / ``on_pong`` callbacks and ``auto_pong`` (both adapters, real sockets).

A callback is ``callback(ws, payload)``, a plain callable run from the adapter's
reading context once the frames read were parsed; one that raises is logged at
ERROR and closes the connection with 1011. ``auto_pong=False``: the engine does
not answer pings (§5.5.2); the application does, with ``ws.pong(payload)``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pytest

from tests.helpers import CLOSE, PING, PONG, client_request, frame, parse_frames
from tests.servers_in_thread import ADAPTERS, SERVERS, running_server


class Calls:
    """What the callbacks saw, from whatever thread runs them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, Any, bytes]] = []

    def hook(self, name: str) -> Callable[[Any, bytes], None]:
        def callback(ws: Any, payload: bytes) -> None:
            with self.lock:
                self.seen.append((name, ws, payload))
        return callback

    def payloads(self, name: str) -> list[bytes]:
        with self.lock:
            return [payload for kind, _, payload in self.seen if kind == name]

    def wait(self, name: str, count: int) -> list[bytes]:
        for _ in range(500):  # at most 5 s
            if len(self.payloads(name)) >= count:
                break
            time.sleep(0.01)
        return self.payloads(name)


def upgraded(port: int) -> tuple[socket.socket, bytes]:
    """A raw client past the handshake; the bytes read after the 101's head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(client_request())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


def frames_for(sock: socket.socket, rest: bytes, seconds: float) -> list[Any]:
    """The whole frames the server sends within ``seconds``."""
    sock.settimeout(0.05)
    data = rest
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return parse_frames(data)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_server_callbacks_get_the_payloads(adapter: str) -> None:
    calls = Calls()
    with running_server(adapter, server_ping=b"from-server", on_ping=calls.hook("ping"),
                        on_pong=calls.hook("pong")) as port:
        sock, rest = upgraded(port)
        with sock:
            # The server's ping comes first: answer it, then ping twice.
            first = parse_frames(rest) or frames_for(sock, b"", 1.0)
            assert (first[0].opcode, first[0].payload) == (PING, b"from-server")
            sock.sendall(frame(PONG, b"from-server") + frame(PING, b"one") + frame(PING, b""))
            assert calls.wait("ping", 2) == [b"one", b""]
            assert calls.wait("pong", 1) == [b"from-server"]
            # The automatic pongs went out all the same (auto_pong defaults to True).
            got = frames_for(sock, b"", 0.3)
            assert [(f.opcode, f.payload) for f in got] == [(PONG, b"one"), (PONG, b"")]
            sock.sendall(frame(CLOSE, b"\x03\xe8"))
            frames_for(sock, b"", 0.3)
    # The callback's first argument is the server's connection.
    assert all(hasattr(ws, "send") and hasattr(ws, "pong") for _, ws, _ in calls.seen)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_client_callbacks_get_the_payloads(adapter: str) -> None:
    calls = Calls()
    options: dict[str, Any] = {"on_ping": calls.hook("ping"), "on_pong": calls.hook("pong")}
    with running_server(adapter, server_ping=b"hello-client") as port:
        uri = f"ws://127.0.0.1:{port}/"
        if adapter == "sync":
            from rfc6455.sync import connect

            with connect(uri, **options) as ws:
                ws.send("x")
                assert ws.recv(timeout=5) == "x"  # the server's ping came before the echo
                ws.ping(b"mine", timeout=5)
                assert calls.wait("ping", 1) == [b"hello-client"]
                assert calls.wait("pong", 1) == [b"mine"]
                assert calls.seen[0][1] is ws
        else:
            from rfc6455.asyncio import connect as aconnect

            async def main() -> None:
                async with aconnect(uri, **options) as ws:
                    await ws.send("x")
                    assert await asyncio.wait_for(ws.recv(), 5) == "x"
                    await asyncio.wait_for(ws.ping(b"mine"), 5)
                    assert calls.payloads("ping") == [b"hello-client"]
                    assert calls.payloads("pong") == [b"mine"]
                    assert calls.seen[0][1] is ws

            asyncio.run(main())


@pytest.mark.parametrize("adapter", SERVERS)
def test_auto_pong_false_sends_no_pong(adapter: str) -> None:
    calls = Calls()
    with running_server(adapter, auto_pong=False, on_ping=calls.hook("ping")) as port:
        sock, rest = upgraded(port)
        with sock:
            sock.sendall(frame(PING, b"anyone?"))
            assert calls.wait("ping", 1) == [b"anyone?"]
            got = frames_for(sock, rest, 0.5)
            assert [f.opcode for f in got] == []  # no pong on the wire
            # The connection is fine otherwise.
            sock.sendall(frame(0x1, b"still here"))
            got = frames_for(sock, b"", 0.5)
            assert [(f.opcode, f.payload) for f in got] == [(0x1, b"still here")]
            sock.sendall(frame(CLOSE, b"\x03\xe8"))
            frames_for(sock, b"", 0.3)


def answer_late(ws: Any, payload: bytes) -> None:
    """The application's own pong (auto_pong=False), sent from the callback."""
    ws.pong(b"late:" + payload)


@pytest.mark.parametrize("adapter", SERVERS)
def test_auto_pong_false_the_callback_answers(adapter: str) -> None:
    with running_server(adapter, auto_pong=False, on_ping=answer_late) as port:
        sock, rest = upgraded(port)
        with sock:
            sock.sendall(frame(PING, b"1") + frame(PING, b"2"))
            got = frames_for(sock, rest, 0.5)
            assert [(f.opcode, f.payload) for f in got] == [(PONG, b"late:1"), (PONG, b"late:2")]
            sock.sendall(frame(CLOSE, b"\x03\xe8"))
            frames_for(sock, b"", 0.3)


@pytest.mark.parametrize("adapter", SERVERS)
def test_a_ping_flood_reaches_every_callback(adapter: str) -> None:
    """The pull stops every few callbacks for the adapter to run them: it must
    go on afterwards, even when nothing more arrives."""
    calls = Calls()
    count = 1000
    with running_server(adapter, on_ping=calls.hook("ping")) as port:
        sock, rest = upgraded(port)
        with sock:
            sock.sendall(b"".join(frame(PING, b"%d" % i) for i in range(count)))
            assert calls.wait("ping", count) == [b"%d" % i for i in range(count)]
            sock.sendall(frame(0x1, b"after"))
            got = frames_for(sock, rest, 1.0)
            assert [f.payload for f in got if f.opcode == 0x1] == [b"after"]
            sock.sendall(frame(CLOSE, b"\x03\xe8"))
            frames_for(sock, b"", 0.3)


def broken(ws: Any, payload: bytes) -> None:
    raise RuntimeError("a bug in the application's on_ping")


@pytest.mark.parametrize("adapter", SERVERS)
@pytest.mark.expect_error_log("rfc6455.server", "on_ping callback failed")
def test_a_failing_callback_closes_with_1011(adapter: str) -> None:
    with running_server(adapter, on_ping=broken) as port:
        sock, rest = upgraded(port)
        with sock:
            sock.sendall(frame(PING, b"boom"))
            got = frames_for(sock, rest, 1.0)
    closes = [f for f in got if f.opcode == CLOSE]
    assert closes and closes[0].close_code == 1011, got


async def async_handler(ws: Any) -> None:
    pass


def sync_handler(ws: Any) -> None:
    pass


def no_arguments() -> None:
    pass


async def coroutine_callback(ws: Any, payload: bytes) -> None:
    pass


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_callbacks_are_checked_up_front(adapter: str) -> None:
    from rfc6455._driver import ClientOptions

    if adapter == "sync":
        from rfc6455.sync import serve

        def start(**options: Any) -> Any:
            return serve(sync_handler, "127.0.0.1", 0, **options)
    else:
        from rfc6455.asyncio import serve as aserve

        def start(**options: Any) -> Any:
            return aserve(async_handler, "127.0.0.1", 0, **options)
    with pytest.raises(TypeError, match=r"on_ping callback .* 2 positional arguments"):
        start(on_ping=lambda payload: None)
    with pytest.raises(TypeError, match=r"on_pong callback .* coroutine function"):
        start(on_pong=coroutine_callback)
    with pytest.raises(TypeError, match=r"on_pong callback .* 2 positional arguments"):
        ClientOptions(on_pong=cast(Any, no_arguments))  # (mypy refuses it too)
