"""A bare TCP peer for adapter tests: the opening handshake by hand, then raw frames.

It lets a test be the misbehaving peer (one that stops answering pings, sends
its request slowly, or breaks the protocol after a good message) against a
real server of either adapter.
"""

from __future__ import annotations

import socket
import time

from tests.helpers import Frame, client_request, parse_frames


class RawClient:
    def __init__(self, port: int, *, host: str = "127.0.0.1", target: str = "/",
                 extra: tuple[tuple[str, str], ...] = (), handshake: bool = True) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buffer = b""
        self.head = b""
        if handshake:
            self.sock.sendall(client_request(target=target, extra=extra))
            self.read_head()

    def read_head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed before the response head"
            self.buffer += chunk
        self.head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return self.head

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until_eof(self, timeout: float = 10.0) -> bytes:
        """Everything until the server closes the TCP connection."""
        deadline = time.monotonic() + timeout
        data = self.buffer
        self.buffer = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data  # an abort after the close frame went out
            except TimeoutError:
                break
            if not chunk:
                return data
            data += chunk
        raise AssertionError("the server did not close the connection in time")

    def frames_until_eof(self, timeout: float = 10.0) -> list[Frame]:
        return parse_frames(self.read_until_eof(timeout))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def frames_after_handshake(port: int, timeout: float = 10.0) -> list[Frame]:
    """Complete the handshake, then read (never answer) until the server closes TCP."""
    with RawClient(port) as raw:
        return raw.frames_until_eof(timeout)
