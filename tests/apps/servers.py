"""Run the reference servers as subprocesses, the way users run them."""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

_URL = re.compile(r"listening on (wss?)://([^\s/]+):(\d+)(/\S*)")

BACKENDS = ("asyncio", "sync")  # every server test runs on both adapters


class Server:
    """``python -m rfc6455 APP --port 0 ...`` with its log captured in a file."""

    def __init__(self, app: str, backend: str, *args: str, timeout: float = 20.0,
                 preexec_fn: Callable[[], object] | None = None) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix=f"rfc6455-{app}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rfc6455", app, "--port", "0", "--backend", backend,
             "--log-level", "info", *args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn)
        deadline = time.monotonic() + timeout
        while True:
            match = _URL.search(self.log())
            if match:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                self._log.close()
                raise RuntimeError(f"{app} did not start:\n{self.log()}")
            time.sleep(0.02)
        scheme, self.host, port, self.path = match.groups()
        self.secure = scheme == "wss"
        self.port = int(port)
        self.url = f"{scheme}://{self.host}:{self.port}/ws"
        self.http_url = f"{'https' if self.secure else 'http'}://{self.host}:{self.port}/"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def rss_kib(self) -> int:
        """Resident set size of the server process (/proc/PID/status, VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server did not exit on signal {sig}:\n{self.log()}") from None
        finally:
            self._log.close()  # the child has exited: log() reads the file by its path

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def raw_client(port: int, *, rcvbuf: int | None = None, path: str = "/ws",
               extensions: str | None = None) -> socket.socket:
    """A WebSocket client socket past the handshake, with no library in between.

    ``rcvbuf`` shrinks the kernel receive buffer: a client that then stops
    reading pushes back on the server quickly.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    offer = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n{offer}"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: leave every frame in the socket
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def read_frames(sock: socket.socket, *, until_close: bool = True,
                timeout: float = 20.0) -> list[tuple[int, bytes]]:
    """Read unmasked server frames as (opcode, payload) until a close frame or EOF."""
    sock.settimeout(timeout)
    buf = bytearray()
    frames: list[tuple[int, bytes]] = []
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return frames
        buf += chunk
        while len(buf) >= 2:
            length = buf[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buf) < 4:
                    break
                length = int.from_bytes(buf[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buf) < 10:
                    break
                length = int.from_bytes(buf[2:10], "big")
                offset = 10
            if len(buf) < offset + length:
                break
            opcode = buf[0] & 0x0F
            frames.append((opcode, bytes(buf[offset:offset + length])))
            del buf[:offset + length]
            if opcode == 0x8 and until_close:
                return frames


def masked_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame (§5.3)."""
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 65536:
        header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
    return header + key + body
