"""The sync server against hostile peers, measured from outside its process.

Each test runs the server in a subprocess (``tests/sync/server_child.py``) and
reads its resident memory, CPU time, threads and descriptors from /proc, over
plain TCP and over TLS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rfc6455.sync import connect
from tests.helpers import BINARY, PING, client_request, frame

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

TRANSPORTS = ("tcp", "tls")


class Tls:
    """A trustme CA and a certificate for 127.0.0.1, as files and client contexts."""

    def __init__(self, directory: str) -> None:
        trustme = pytest.importorskip("trustme")
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1")
        self.certfile = os.path.join(directory, "cert.pem")
        self.keyfile = os.path.join(directory, "key.pem")
        cert.private_key_and_cert_chain_pem.write_to_path(self.certfile)
        cert.private_key_pem.write_to_path(self.keyfile)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


class Child:
    """``python -m tests.sync.server_child``: a sync server in its own process."""

    def __init__(self, transport: str, *, app: str = "echo", nofile: int | None = None,
                 hub: dict[str, Any] | None = None, switchinterval: float | None = None,
                 **options: Any) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self.tls = Tls(self._dir.name) if transport == "tls" else None
        config = {"app": app, "options": options, "nofile": nofile, "hub": hub or {},
                  "switchinterval": switchinterval,
                  "tls": None if self.tls is None else [self.tls.certfile, self.tls.keyfile]}
        self.log_path = Path(self._dir.name) / "server.log"
        self._log = self.log_path.open("wb")
        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.sync.server_child", json.dumps(config)],
            cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        match = re.match(r"PORT (\d+)", line)
        if match is None:
            self.close()
            raise RuntimeError(f"the server did not start: {line!r}\n{self.log()}")
        self.port = int(match.group(1))
        scheme = "ws" if self.tls is None else "wss"
        self.url = f"{scheme}://127.0.0.1:{self.port}/"

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text("utf-8", "replace")

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {key}")

    def rss_kib(self) -> int:
        return self._status("VmRSS")

    def threads(self) -> int:
        return self._status("Threads")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (/proc/PID/stat fields 14 and 15)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def raw(self, rcvbuf: int | None = 4096) -> socket.socket:
        """A client past the handshake, that reads nothing more (a tiny window)."""
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each write a segment
        sock.settimeout(10)
        sock.connect(("127.0.0.1", self.port))
        if self.tls is not None:
            sock = self.tls.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(client_request())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # byte by byte: leave every frame unread
            assert chunk, "closed during the handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 "), head
        return sock

    def echo_round_trip(self, message: str = "still served", timeout: float = 10) -> None:
        context = None if self.tls is None else self.tls.client_context()
        with connect(self.url, ssl=context, open_timeout=timeout) as ws:
            ws.send(message)
            assert ws.recv(timeout=timeout) == message

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        self._dir.cleanup()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def peak_rss(child: Child) -> Iterator[list[int]]:
    """Sample the child's RSS every 50 ms meanwhile; yields [baseline, peak]."""
    result = [child.rss_kib(), 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            with contextlib.suppress(OSError, RuntimeError):
                result[1] = max(result[1], child.rss_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join(5)
        result[1] = max(result[1], child.rss_kib())


def flood(sock: socket.socket, chunk: bytes, total: int, seconds: float,
          sent_out: list[int] | None = None) -> float | None:
    """Send ``chunk`` until ``total`` bytes went or ``seconds`` passed, never reading.

    Returns how long after the start the server dropped the connection (the send
    failed), or None if it did not; ``sent_out`` gets the bytes the kernel took.
    """
    start = time.monotonic()
    sent = 0
    sock.settimeout(0.2)
    while sent < total and time.monotonic() - start < seconds:
        try:
            sock.sendall(chunk)
            sent += len(chunk)
        except TimeoutError:
            continue  # the server stopped reading: keep trying until it drops us
        except (OSError, ssl.SSLError):
            return time.monotonic() - start
        finally:
            if sent_out is not None:
                sent_out[:] = [sent]
    return None


def wait_dropped(sock: socket.socket, seconds: float) -> float | None:
    """Keep pushing a byte at a time until the send fails; seconds waited, or None."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < seconds:
        try:
            sock.sendall(frame(PING, b"x"))
        except TimeoutError:
            continue
        except (OSError, ssl.SSLError):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


# 125-byte pings (§5.5: the most a control frame carries), 8 per write: the server
# reads them a few at a time, so the engine answers each (it coalesces pongs only
# past 16 unsent frames): without backpressure every pong waits in memory.
PING_FLOOD = frame(PING, b"p" * 125) * 8
MIB = 1024 * 1024


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ping_flooder_that_never_reads_is_dropped_in_bounded_memory(transport: str) -> None:
    """§5.5.3: pongs to a peer that does not read stay bounded, and the timers still
    run: ping_interval + ping_timeout + close_timeout later the flooder is gone."""
    # 2 + 2 + 1 s: long enough for the pongs to fill the kernel's buffers for this
    # peer (so that a reader thread writing them blocking would stop there for good).
    with Child(transport, ping_interval=2, ping_timeout=2, close_timeout=1) as child:
        child.echo_round_trip("warm up")
        flooder = child.raw()
        try:
            start = time.monotonic()
            with peak_rss(child) as rss:
                dropped = flood(flooder, PING_FLOOD, 1024 * MIB, 12)
                # Meanwhile (or right after) everyone else is served.
                child.echo_round_trip()
            if dropped is None:  # the whole flood went in: the timers drop it later
                dropped = wait_dropped(flooder, 20)
            elapsed = time.monotonic() - start
            assert dropped is not None and elapsed < 10, (dropped, elapsed)
            assert rss[1] - rss[0] < 16 * 1024, rss
        finally:
            flooder.close()
        child.echo_round_trip()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_echo_to_a_peer_that_never_reads_stays_bounded(transport: str) -> None:
    """A client sends 8 x 1 MiB to echo, then floods pings and never reads: the server
    holds at most its queue (max_queue x max_size), the write limit and some slack."""
    max_queue = 16  # the 8 messages fit: the reader thread keeps reading
    with Child(transport, ping_interval=None, max_queue=max_queue, compression=None) as child:
        child.echo_round_trip("warm up")
        flooder = child.raw()
        message = frame(BINARY, b"m" * MIB, key=b"\0\0\0\0")
        try:
            with peak_rss(child) as rss:
                flood(flooder, message, 8 * len(message), 3)
                pings: list[int] = []
                flood(flooder, PING_FLOOD, 64 * MIB, 6, pings)
                child.echo_round_trip()
            # Its output backed up, the server stopped reading, pings included: the
            # flood stalls once the kernel's buffers are full (a few MiB).
            assert pings[0] < 32 * MIB, pings
            bound = max_queue * MIB + 64 * 1024 + 16 * MIB
            assert (rss[1] - rss[0]) * 1024 < bound, rss
        finally:
            flooder.close()
        child.echo_round_trip()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_echo_reader_that_never_reads_is_dropped_by_the_timers(transport: str) -> None:
    """The handler blocks writing the echo; the reader thread's timers still drop the peer."""
    with Child(transport, ping_interval=1, ping_timeout=1, close_timeout=1,
               compression=None) as child:
        flooder = child.raw()
        message = frame(BINARY, b"m" * MIB, key=b"\0\0\0\0")
        try:
            start = time.monotonic()
            dropped = flood(flooder, message, 8 * len(message), 20)
            if dropped is None:
                dropped = wait_dropped(flooder, 20 - (time.monotonic() - start))
            else:
                dropped = time.monotonic() - start
            assert dropped is not None and dropped < 10, dropped
        finally:
            flooder.close()
        child.echo_round_trip()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_out_of_descriptors_backs_off_logs_once_then_serves(transport: str) -> None:
    """At EMFILE the listener stays readable: the server must wait, not spin, log the
    episode once, and serve again once descriptors are free."""
    with Child(transport, nofile=64, open_timeout=60) as child:
        attackers = []
        try:
            for _ in range(100):  # more than the limit; the rest waits in the backlog
                attackers.append(socket.create_connection(("127.0.0.1", child.port), 10))
            deadline = time.monotonic() + 10
            while "accept failing" not in child.log() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "accept failing" in child.log(), child.log()
            before = child.cpu_seconds()
            time.sleep(3)
            busy = (child.cpu_seconds() - before) / 3
            assert busy < 0.3, f"{busy:.0%} of a core while out of descriptors"
        finally:
            for sock in attackers:
                sock.close()
        child.echo_round_trip(timeout=15)
        log = child.log()
        assert log.count("accept failing") == 1, log
        assert "accepting again" in log, log
        assert "ERROR" not in log, log


async def _open_and_abandon(child: Child, count: int) -> int:
    """``count`` clients complete the handshake (100 at a time: under the listen
    backlog), then all vanish without a close frame: half with a FIN, half reset
    (SO_LINGER 0). Returns how many handshakes succeeded."""
    import asyncio

    context = None if child.tls is None else child.tls.client_context()
    gate = asyncio.Semaphore(100)

    async def one() -> asyncio.StreamWriter:
        async with gate:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", child.port, ssl=context,
                server_hostname=None if context is None else "127.0.0.1"), 30)
            writer.write(client_request())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            assert head.startswith(b"HTTP/1.1 101 ")
            return writer

    writers = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    opened = [w for w in writers if isinstance(w, asyncio.StreamWriter)]
    for index, writer in enumerate(opened):
        sock = writer.get_extra_info("socket")
        if index % 2:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            # A FIN below TLS too (no close_notify): the peer just goes.
            sock.shutdown(socket.SHUT_WR)
        writer.transport.abort()
    await asyncio.sleep(0.2)  # let the transports close
    return len(opened)


@pytest.mark.parametrize(("transport", "count"), [("tcp", 2000), ("tls", 1000)])
def test_abandoned_connections_leave_the_server_serving(transport: str, count: int) -> None:
    """Thousands of clients that vanish after the handshake (FIN or RST, no close
    frame): a new client is served at once, threads and descriptors go back down."""
    import asyncio

    with Child(transport) as child:
        child.echo_round_trip("warm up")
        threads, fds = child.threads(), child.fds()
        opened = asyncio.run(_open_and_abandon(child, count))
        assert opened >= count * 0.9, opened
        start = time.monotonic()
        child.echo_round_trip(timeout=5)
        served = time.monotonic() - start
        assert served < 5, served
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
                child.threads() > threads + 2 or child.fds() > fds + 2):
            time.sleep(0.2)
        assert child.threads() <= threads + 2 and child.fds() <= fds + 2, (
            threads, fds, child.threads(), child.fds())
        assert "ERROR" not in child.log(), child.log()
