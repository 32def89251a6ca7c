"""The attack harness: a server in a child process, measured from outside, and raw clients.

:class:`ServerProcess` starts ``tests.adversarial.server_main`` and reads the
child's resident memory (``VmRSS`` of ``/proc/PID/status``), CPU time (utime +
stime of ``/proc/PID/stat``, every thread) and open file descriptors
(``/proc/PID/fd``), so an attack's cost is the server's alone. The clients here
are hand-made on plain sockets (masked frames written by :func:`client_frame`,
frames read by :class:`FrameReader`), independent of the library under test:
an attacker does what the library's own client never would.

Every wait is bounded by a deadline; only 127.0.0.1 is used.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import resource
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA

#: stderr lines that break "no silent failures" whatever the attack.
BAD_LOG = re.compile(r"^(ERROR|CRITICAL) |Future exception was never retrieved|"
                     r"Task was destroyed but it is pending|unclosed|Traceback", re.M)


def raise_fd_limit() -> None:
    """Let this process open as many sockets as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def report(name: str, **figures: Any) -> None:
    """Print one line of figures (shown with ``pytest -s``)."""
    parts = []
    for key, value in figures.items():
        parts.append(f"{key}={value:.2f}" if isinstance(value, float) else f"{key}={value}")
    print(f"\n[adversarial] {name}: " + " ".join(parts), flush=True)


# ------------------------------------------------------------------ TLS


@dataclass
class TLSFiles:
    """A throwaway CA and a certificate for 127.0.0.1 (trustme), as files."""

    certfile: str
    keyfile: str
    cafile: str

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile)
        return context

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context


def make_tls_files(directory: Path) -> TLSFiles:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile = directory / "server.pem"
    keyfile = directory / "server.key"
    cafile = directory / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    return TLSFiles(str(certfile), str(keyfile), str(cafile))


# ------------------------------------------------------------------ the server process


def _rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def rss_of_self() -> int:
    return _rss_of(os.getpid())


def _cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        # Fields after the command name (which may hold spaces), from field 3 on.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class ServerProcess:
    """A running ``server_main`` child."""

    proc: subprocess.Popen[bytes]
    port: int
    tls: TLSFiles | None
    stderr_path: Path
    label: str
    _stopped: int | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return _rss_of(self.pid)

    def cpu(self) -> float:
        return _cpu_of(self.pid)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> tuple[int | None, float]:
        """SIGTERM; returns (exit status or None if it had to be killed, seconds taken)."""
        if self._stopped is not None or not self.alive():
            return self.proc.poll(), 0.0
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            status: int | None = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            status = None
        self._stopped = -1
        return status, time.monotonic() - start

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(5)

    def finish(self, *, stop_within: float = 15.0, allow_log: re.Pattern[str] | None = None
               ) -> None:
        """After an attack: a fresh client is served, then SIGTERM exits 0 in time, quietly."""
        assert self.alive(), f"{self.label}: the server died\n{self.log()[-4000:]}"
        elapsed = echo_round_trip(self)
        report(f"{self.label} fresh client", round_trip_s=elapsed)
        status, took = self.stop(stop_within)
        report(f"{self.label} SIGTERM", exit_status=status, seconds=took)
        assert status == 0, f"{self.label}: exit status {status} after SIGTERM " \
            f"({took:.1f} s)\n{self.log()[-4000:]}"
        bad = [line for line in self.log().splitlines() if BAD_LOG.search(line)
               and not (allow_log and allow_log.search(line))]
        assert not bad, f"{self.label}: the server logged {len(bad)} failures, first:\n" + \
            "\n".join(line[:400] for line in bad[:2])


def start_server(backend: str, *, app: str = "echo", tls: TLSFiles | None = None,
                 options: dict[str, Any] | None = None, hub: dict[str, Any] | None = None,
                 nofile: int | None = None, module: str = "tests.adversarial.server_main",
                 startup: float = 20.0) -> ServerProcess:
    """Start a server child on 127.0.0.1 port 0 and wait for its port."""
    argv = [sys.executable, "-m", module, "--backend", backend, "--app", app,
            "--options", json.dumps(options or {}), "--hub", json.dumps(hub or {})]
    if tls is not None:
        argv += ["--certfile", tls.certfile, "--keyfile", tls.keyfile]
    fd, name = tempfile.mkstemp(prefix=f"adversarial-{backend}-", suffix=".log")
    stderr_path = Path(name)

    def lower_fd_limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=fd, cwd=str(ROOT), env=env, preexec_fn=lower_fd_limit)
    os.close(fd)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], startup)
    line = proc.stdout.readline() if ready else b""
    proc.stdout.close()  # the port is all the server writes there
    if not line.strip().isdigit():
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"server {backend} did not start: {line!r}\n"
                           f"{stderr_path.read_text(errors='replace')[-4000:]}")
    label = f"{backend}/{'tls' if tls else 'tcp'}"
    return ServerProcess(proc, int(line), tls, stderr_path, label)


def start_cli(backend: str, *, tls: TLSFiles | None = None, startup: float = 20.0
              ) -> ServerProcess:
    """``python -m rfc6455 echo --port 0`` itself, default options; its port from its log."""
    argv = [sys.executable, "-m", "rfc6455", "echo", "--host", "127.0.0.1", "--port", "0",
            "--backend", backend]
    if tls is not None:
        argv += ["--certfile", tls.certfile, "--keyfile", tls.keyfile]
    fd, name = tempfile.mkstemp(prefix=f"adversarial-cli-{backend}-", suffix=".log")
    stderr_path = Path(name)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=fd, cwd=str(ROOT), env=env)
    os.close(fd)
    deadline = time.monotonic() + startup
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"listening on wss?://127\.0\.0\.1:(\d+)/", stderr_path.read_text())
        if found:
            label = f"cli-{backend}/{'tls' if tls else 'tcp'}"
            return ServerProcess(proc, int(found.group(1)), tls, stderr_path, label)
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"python -m rfc6455 echo did not start:\n{stderr_path.read_text()}")


# ------------------------------------------------------------------ raw frames


def client_frame(opcode: int, payload: bytes = b"", *, fin: bool = True,
                 key: bytes | None = None, rsv: int = 0) -> bytes:
    """A masked client frame (RFC 6455 §5.2, §5.3)."""
    key = os.urandom(4) if key is None else key
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + key + mask(payload, key)


def mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    # XOR with the key repeated, as one big-integer operation.
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    number = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return number.to_bytes(len(payload), "big")


def server_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """An unmasked server frame (§5.1)."""
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


def repeated_frames(frame: bytes, total: int) -> bytes:
    """``frame`` back to back, about ``total`` bytes (whole frames only)."""
    return frame * max(1, total // len(frame))


class FrameReader:
    """Parses frames out of a byte stream (either role; unmasks masked frames)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> tuple[int, bool, bytes] | None:
        """The next whole frame as (opcode, fin, payload), or None if incomplete."""
        buf = self.buffer
        if len(buf) < 2:
            return None
        masked = buf[1] & 0x80
        size = buf[1] & 0x7F
        offset = 2
        if size == 126:
            if len(buf) < 4:
                return None
            size = struct.unpack_from("!H", buf, 2)[0]
            offset = 4
        elif size == 127:
            if len(buf) < 10:
                return None
            size = struct.unpack_from("!Q", buf, 2)[0]
            offset = 10
        key = b""
        if masked:
            key = bytes(buf[offset:offset + 4])
            offset += 4
        if len(buf) < offset + size:
            return None
        payload = bytes(buf[offset:offset + size])
        if masked:
            payload = mask(payload, key)
        opcode, fin = buf[0] & 0x0F, bool(buf[0] & 0x80)
        del buf[:offset + size]
        return opcode, fin, payload


def close_code(payload: bytes) -> int | None:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


# ------------------------------------------------------------------ raw clients


def upgrade_request(port: int, path: str = "/", extra: Sequence[tuple[str, str]] = (),
                    host: str | None = None, key: str | None = None) -> bytes:
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host if host is not None else f'127.0.0.1:{port}'}",
             "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             "Sec-WebSocket-Version: 13"]
    lines += [f"{name}: {value}" for name, value in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def open_socket(server: ServerProcess, *, timeout: float = 5.0, rcvbuf: int | None = None
                ) -> socket.socket:
    """A TCP (or TLS, for a TLS server) connection to the server, handshake not done."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    if rcvbuf is not None:
        # Before connect: the window the kernel advertises follows it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if server.tls is not None:
        sock = server.tls.client_context().wrap_socket(sock, server_hostname="127.0.0.1")
    return sock


def read_head(sock: socket.socket, deadline: float, limit: int = 1 << 20) -> tuple[bytes, bytes]:
    """Read an HTTP head: (head up to the blank line, the bytes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete HTTP head in time: {data[:200]!r}")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            if data:
                return data, b""
            raise ConnectionError("EOF before an HTTP head")
        data += chunk
        if len(data) > limit:
            raise ValueError("HTTP head too long")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def read_all_until_eof(sock: socket.socket, deadline: float, first: bytes = b"") -> bytes:
    """What the peer sends until it closes (or the deadline)."""
    data = first
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@dataclass
class RawClient:
    """An open WebSocket connection driven by hand."""

    sock: socket.socket
    reader: FrameReader
    head: bytes
    # OpenSSL takes one call at a time on a connection, and a test may read a member in
    # a thread while another thread writes to it (a broadcast sender that is also a
    # member): over TLS both go through this lock, reads in short non-blocking turns.
    # Without it the two threads corrupt the TLS stream now and then, and the server
    # rightly drops the connection.
    tls_lock: threading.Lock | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket):
            self.tls_lock = threading.Lock()

    def send(self, data: bytes) -> None:
        if self.tls_lock is None:
            self.sock.sendall(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), 1 << 16):
            with self.tls_lock:
                self.sock.settimeout(30.0)
                self.sock.sendall(view[start:start + (1 << 16)])

    def _recv_tls(self, lock: threading.Lock, remaining: float) -> bytes | None:
        """A chunk, b"" at EOF, or None when nothing came within a short turn."""
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        if not sock.pending():
            select.select([sock], [], [], min(remaining, 0.05))
        with lock:
            timeout = sock.gettimeout()
            sock.setblocking(False)
            try:
                return sock.recv(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None
            finally:
                sock.settimeout(timeout)

    def recv_frame(self, deadline: float) -> tuple[int, bool, bytes]:
        while True:
            frame = self.reader.next()
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame in time")
            if self.tls_lock is not None:
                chunk = self._recv_tls(self.tls_lock, remaining)
                if chunk is None:
                    continue
            else:
                self.sock.settimeout(remaining)
                chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("EOF")
            self.reader.feed(chunk)

    def recv_message(self, deadline: float) -> tuple[int, bytes]:
        """The next data message (answering nothing; control frames skipped)."""
        while True:
            opcode, _fin, payload = self.recv_frame(deadline)
            if opcode in (TEXT, BINARY):
                return opcode, payload
            if opcode == CLOSE:
                raise ConnectionError(f"closed with {close_code(payload)}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def connect_raw(server: ServerProcess, *, path: str = "/", timeout: float = 5.0,
                extra: Sequence[tuple[str, str]] = (), rcvbuf: int | None = None) -> RawClient:
    """Open a connection and complete the opening handshake (expects 101)."""
    deadline = time.monotonic() + timeout
    sock = open_socket(server, timeout=timeout, rcvbuf=rcvbuf)
    try:
        sock.sendall(upgrade_request(server.port, path, extra))
        head, rest = read_head(sock, deadline)
        if status_of(head) != 101:
            raise ConnectionError(f"handshake refused: {head[:200]!r}")
    except BaseException:
        sock.close()
        raise
    reader = FrameReader()
    reader.feed(rest)
    return RawClient(sock, reader, head)


def echo_round_trip(server: ServerProcess, timeout: float = 5.0) -> float:
    """A well-behaved client: handshake, one text message echoed, close. Seconds taken."""
    start = time.monotonic()
    deadline = start + timeout
    client = connect_raw(server, timeout=timeout)
    try:
        client.send(client_frame(TEXT, b"still served?"))
        opcode, payload = client.recv_message(deadline)
        assert (opcode, payload) == (TEXT, b"still served?"), (opcode, payload[:100])
        client.send(client_frame(CLOSE, struct.pack("!H", 1000)))
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            while True:
                opcode, _, _ = client.recv_frame(min(deadline, time.monotonic() + 1.0))
                if opcode == CLOSE:
                    break
    finally:
        client.close()
    return time.monotonic() - start


def warm_up(server: ServerProcess) -> None:
    """Round trips before a baseline: imports, lazy structures and allocator arenas settle."""
    for _ in range(3):
        echo_round_trip(server)
    time.sleep(0.2)


# ------------------------------------------------------------------ attackers


def peer_gone(sock: socket.socket) -> bool:
    """Whether the peer closed or reset the connection (seen without reading)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return any(events & (select.POLLRDHUP | select.POLLHUP | select.POLLERR)
               for _, events in poller.poll(0))


@dataclass
class FloodResult:
    sent: int
    seconds: float
    dropped: bool
    #: Seconds from the start of the flood until the peer dropped us (or None).
    dropped_after: float | None


def flood(sock: socket.socket, chunk: bytes, *, total: int, seconds: float,
          stall: float | None = 1.0, until_dropped: bool = False,
          drain: Callable[[], None] | None = None) -> FloodResult:
    """Write ``chunk`` over and over, never reading (unless ``drain`` reads).

    Stops after ``total`` bytes, after ``seconds``, when no byte could be written
    for ``stall`` seconds (the server stopped reading: its defence), or when the
    server dropped the connection. With ``until_dropped`` neither the total nor a
    stall stops it: it goes on until the drop or the time bound.
    """
    start = time.monotonic()
    end = start + seconds
    sent = 0
    offset = 0
    last_progress = start
    sock.settimeout(0.05)
    while time.monotonic() < end:
        if peer_gone(sock):
            return FloodResult(sent, time.monotonic() - start, True, time.monotonic() - start)
        if not until_dropped:
            if sent >= total:
                break
            if stall is not None and time.monotonic() - last_progress > stall:
                break
        try:
            written = sock.send(chunk[offset:] if offset else chunk)
        except (TimeoutError, ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            written = 0
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            return FloodResult(sent, time.monotonic() - start, True, time.monotonic() - start)
        if written:
            sent += written
            offset = (offset + written) % len(chunk)
            last_progress = time.monotonic()
        if drain is not None:
            drain()
    return FloodResult(sent, time.monotonic() - start, False, None)


def wait_dropped(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the peer closes or resets ``sock`` (not reading it), or None."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if peer_gone(sock):
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def ping_chunk(size: int = MiB) -> bytes:
    """About ``size`` bytes of masked 125-byte pings (the largest control payload, §5.5)."""
    return repeated_frames(client_frame(PING, b"p" * 125), size)


def pong_chunk(size: int = MiB) -> bytes:
    """About ``size`` bytes of unsolicited masked pongs (§5.5.3 allows them)."""
    return repeated_frames(client_frame(PONG, b"q" * 125), size)


@contextlib.contextmanager
def many(items: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield items
    finally:
        for sock in items:
            with contextlib.suppress(OSError):
                sock.close()


def settle_rss(server: ServerProcess, seconds: float = 0.5) -> int:
    """The server's largest RSS seen over a short while (growth still in flight counts)."""
    end = time.monotonic() + seconds
    peak = server.rss()
    while time.monotonic() < end:
        time.sleep(0.05)
        peak = max(peak, server.rss())
    return peak
