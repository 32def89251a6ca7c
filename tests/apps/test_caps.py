"""Connection caps and the ping timeout of the reference servers, run as subprocesses.

``--max-connections`` (default derived from the open files limit) and
``--max-connections-per-ip``: past a cap an upgrade request gets HTTP 503
(RFC 9110 §15.6.4) instead of waiting in the listen backlog once the process
is out of file descriptors; a freed slot serves the next client.
"""

from __future__ import annotations

import argparse
import re
import resource
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from rfc6455.__main__ import build_parser
from rfc6455.apps.serve import ServerConfig, default_max_connections

from .servers import BACKENDS, Server, masked_frame, read_frames

UPGRADE = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n")


def upgrade(port: int, source: str = "127.0.0.1") -> tuple[int, socket.socket]:
    """An opening handshake from ``source``: the status, and the socket (open after 101)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0))
    sock.sendall(UPGRADE.format(port=port).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: leave any frame in the socket
        assert chunk, f"closed during the handshake after {head!r}"
        head += chunk
        assert len(head) < 16384
    return int(head.split(b" ", 2)[1]), sock


def refused(port: int, source: str = "127.0.0.1") -> bool:
    """True if the server answers 503 with Retry-After, then closes (RFC 9110 §15.6.4)."""
    status, sock = upgrade(port, source)
    with sock:
        if status != 503:
            return False
        rest = b""
        while chunk := sock.recv(4096):
            rest += chunk
            assert len(rest) < 65536
        return True


def close(sock: socket.socket) -> None:
    """The client's closing handshake (§7.1.2), then wait for the server's TCP close."""
    with sock:
        sock.sendall(masked_frame(0x8, b"\x03\xe8"))
        frames = read_frames(sock, timeout=10)
        assert frames and frames[-1][0] == 0x8
        while sock.recv(4096):
            pass


def served_again(port: int, source: str = "127.0.0.1", timeout: float = 10.0
                 ) -> socket.socket:
    """A 101 once the server has counted a closed connection out (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        status, sock = upgrade(port, source)
        if status == 101:
            return sock
        sock.close()
        assert time.monotonic() < deadline, "the freed slot was never given to a new client"
        time.sleep(0.05)


def upgrade_ok(port: int, source: str = "127.0.0.1") -> socket.socket:
    status, sock = upgrade(port, source)
    if status != 101:
        sock.close()
        raise AssertionError(f"expected 101, got {status}")
    return sock


def echoes(sock: socket.socket) -> bool:
    """The connection is served: a text message comes back (pings skipped, §5.5.2)."""
    sock.sendall(masked_frame(0x1, b"still here"))
    sock.settimeout(10)
    buf = b""
    while True:
        while len(buf) >= 2 and len(buf) >= 2 + (buf[1] & 0x7F):  # short frames only
            opcode, size = buf[0] & 0x0F, buf[1] & 0x7F
            payload, buf = buf[2:2 + size], buf[2 + size:]
            if opcode == 0x1:
                return payload == b"still here"
            if opcode != 0x9:
                return False  # a close, or anything else unexpected
        chunk = sock.recv(4096)
        if not chunk:
            return False
        buf += chunk


def no_errors_logged(server: Server) -> None:
    log = server.log()
    assert " ERROR " not in log and "Traceback" not in log, log


@pytest.fixture
def held() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


# ----------------------------------------------------------------- the CLI


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["echo", *argv])


def test_formula_leaves_headroom() -> None:
    assert default_max_connections(256) == 256 - 64 - 32
    assert default_max_connections(1024) == 832
    assert default_max_connections(65536) == 65536 - 64 - 8192
    assert default_max_connections(64) == 1  # never below one
    assert default_max_connections(None) is None  # unlimited: no cap


def test_options_reach_the_adapters() -> None:
    options = ServerConfig.from_args(parse(
        "--max-connections", "7", "--max-connections-per-ip", "3",
        "--ping-timeout", "2.5")).adapter_options()
    assert (options["max_connections"], options["max_connections_per_ip"],
            options["ping_timeout"]) == (7, 3, 2.5)
    options = ServerConfig.from_args(parse(
        "--max-connections", "none", "--ping-timeout", "none")).adapter_options()
    assert options["max_connections"] is None and options["ping_timeout"] is None
    assert options["max_connections_per_ip"] is None  # the default


def test_default_cap_is_derived_from_the_open_files_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    config = ServerConfig.from_args(parse())
    if soft == resource.RLIM_INFINITY:
        assert config.max_connections is None and config.fd_limit is None
    else:
        assert config.max_connections == soft - 64 - soft // 8
        assert config.fd_limit == soft


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5"])
def test_bad_caps_are_usage_errors(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    for option in ("--max-connections", "--max-connections-per-ip"):
        with pytest.raises(SystemExit) as info:
            parse(option, value)
        assert info.value.code == 2
    assert "max-connections" in capsys.readouterr().err


# ------------------------------------------------------------ over the network


@pytest.mark.parametrize("backend", BACKENDS)
def test_third_client_gets_503_until_one_closes(backend: str, held: ExitStack) -> None:
    with Server("echo", backend, "--max-connections", "2") as server:
        assert "at most 2 connections" in server.log()
        first, second = (held.enter_context(upgrade_ok(server.port)) for _ in range(2))
        assert refused(server.port)
        assert refused(server.port)  # every surplus client, not just one
        assert echoes(first) and echoes(second)  # the open ones are unharmed
        close(first)
        third = held.enter_context(served_again(server.port))
        assert echoes(third)
        assert refused(server.port)  # full again
        no_errors_logged(server)


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_ip_cap(backend: str, held: ExitStack) -> None:
    """One connection per address: a second from 127.0.0.1 gets 503, 127.0.0.2 is served."""
    with Server("echo", backend, "--max-connections-per-ip", "1") as server:
        assert "at most 1 per client address" in server.log()
        first = held.enter_context(upgrade_ok(server.port))
        assert refused(server.port)
        other = held.enter_context(upgrade_ok(server.port, source="127.0.0.2"))
        assert echoes(other)
        assert refused(server.port, source="127.0.0.2")
        close(first)
        again = held.enter_context(served_again(server.port))
        assert echoes(again)
        no_errors_logged(server)


def lower_open_files_limit() -> None:
    """In the server's child process, before exec: the limit a small machine has."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_cap_from_a_lowered_limit_is_enforced(backend: str, held: ExitStack) -> None:
    """Open files limit 256, no --max-connections: 160 served, the rest get 503 instead
    of hanging in the backlog, and the server still serves when a slot frees."""
    with Server("echo", backend, "--ping-interval", "none",
                preexec_fn=lower_open_files_limit) as server:
        match = re.search(r"at most (\d+) connections \(open files limit 256 ", server.log())
        assert match, server.log()
        cap = int(match.group(1))
        assert cap == 256 - 64 - 256 // 8
        clients = [held.enter_context(upgrade_ok(server.port)) for _ in range(cap)]
        # More surplus clients than the cap's headroom of descriptors would survive
        # without it: each is answered, none waits.
        for _ in range(120):
            assert refused(server.port)
        assert echoes(clients[0]) and echoes(clients[-1])
        close(clients.pop())
        assert echoes(held.enter_context(served_again(server.port)))
        no_errors_logged(server)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ping_timeout_option(backend: str, held: ExitStack) -> None:
    """A client that never answers pings is closed with 1011 after --ping-timeout."""
    with Server("echo", backend, "--ping-interval", "0.2", "--ping-timeout", "0.5") as server:
        status, sock = upgrade(server.port)
        held.enter_context(sock)
        assert status == 101
        started = time.monotonic()
        frames = read_frames(sock, timeout=15)
        assert frames[0][0] == 0x9  # the ping we ignore
        opcode, payload = frames[-1]
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1011
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_ping_timeout_none_keeps_a_silent_client(backend: str, held: ExitStack) -> None:
    with Server("echo", backend, "--ping-interval", "0.1", "--ping-timeout", "none") as server:
        status, sock = upgrade(server.port)
        held.enter_context(sock)
        assert status == 101
        time.sleep(1.0)  # ten pings unanswered
        assert echoes(sock)
