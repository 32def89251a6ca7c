"""Test harness: an in-memory "network" between engines, and raw frame tools.

Most engine tests wire a :class:`ClientConnection` to a :class:`ServerConnection`
with :class:`Pair`, or talk to one engine with hand-built bytes (:func:`frame`,
:func:`client_request`, :func:`server_response`) and read what it wrote back
with :func:`parse_frames`. The frame parser here is written independently of
the engine's, so a test does not check the engine against itself.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rfc6455 import (
    EOF,
    Accepted,
    ClientConnection,
    ConnectionClosed,
    Event,
    Limits,
    Request,
    ServerConnection,
)
from rfc6455._mask import mask
from rfc6455.handshake import accept_token

Engine = ClientConnection | ServerConnection

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


# ------------------------------------------------------------------ raw frames

def xor(data: bytes, key: bytes) -> bytes:
    """Masking (§5.3), written the obvious way, as the reference for the engine's."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    key: bytes = b"\x37\xfa\x21\x3d",
    length: int | None = None,
    form: int | None = None,
) -> bytes:
    """One frame as bytes (§5.2), malformed on request.

    ``length`` overrides the announced payload length, ``form`` forces the
    length encoding (7, 16 or 64 bits) even when not minimal.
    """
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if masked else 0
    if form is None:
        form = 7 if size < 126 else 16 if size < 65536 else 64
    if form == 7:
        head = struct.pack("!BB", first, mbit | size)
    elif form == 16:
        head = struct.pack("!BBH", first, mbit | 126, size)
    else:
        head = struct.pack("!BBQ", first, mbit | 127, size)
    if masked:
        return head + key + xor(payload, key)
    return head + payload


def cframe(opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as a client sends it (masked)."""
    return frame(opcode, payload, masked=True, **kwargs)  # type: ignore[arg-type]


def sframe(opcode: int, payload: bytes = b"", **kwargs: object) -> bytes:
    """A frame as a server sends it (unmasked)."""
    return frame(opcode, payload, masked=False, **kwargs)  # type: ignore[arg-type]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes  # unmasked

    @property
    def close_code(self) -> int | None:
        assert self.opcode == CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


def parse_frames(data: bytes) -> list[Frame]:
    """Split bytes written by an engine into frames; fails on a truncated stream."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        size = b1 & 0x7F
        pos += 2
        if size == 126:
            (size,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif size == 127:
            (size,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            key = data[pos:pos + 4]
            pos += 4
        payload = data[pos:pos + size]
        assert len(payload) == size, "truncated frame"
        pos += size
        frames.append(Frame(bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, masked,
                            xor(payload, key) if masked else payload))
    return frames


# ------------------------------------------------------------------ handshakes

def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def client_request(
    *,
    key: str | None = None,
    target: str = "/",
    headers: Iterable[tuple[str, str]] | None = None,
    extra: Iterable[tuple[str, str]] = (),
    method: str = "GET",
    version: str = "HTTP/1.1",
) -> bytes:
    """An opening request as bytes (§4.1); ``headers`` replaces the defaults entirely."""
    if headers is None:
        headers = [
            ("Host", "example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key or new_key()),
            ("Sec-WebSocket-Version", "13"),
        ]
    lines = [f"{method} {target} {version}"]
    lines += [f"{k}: {v}" for k, v in (*headers, *extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def server_response(
    key: str,
    *,
    status: str = "101 Switching Protocols",
    headers: Iterable[tuple[str, str]] | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A response to the client whose key is ``key`` (§4.2.2)."""
    if headers is None:
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_token(key)),
        ]
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in (*headers, *extra)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def client_key(client: ClientConnection) -> str:
    key = client.request_headers.get("sec-websocket-key")
    assert key is not None
    return key


def open_server(**kwargs: object) -> ServerConnection:
    """A server past the opening handshake with a scripted client; its 101 is drained."""
    server = ServerConnection(**kwargs)  # type: ignore[arg-type]
    server.receive_data(client_request())
    event = server.next_event()
    assert isinstance(event, Request), event
    server.accept()
    out = server.data_to_send()
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 101 ")
    return server


def open_client(**kwargs: object) -> ClientConnection:
    """A client past the opening handshake with a scripted server; its request is drained."""
    client = ClientConnection("ws://example.com/", **kwargs)  # type: ignore[arg-type]
    out = client.data_to_send()
    assert isinstance(out, bytes) and out.startswith(b"GET / HTTP/1.1\r\n")
    client.receive_data(server_response(client_key(client)))
    event = client.next_event()
    assert isinstance(event, Accepted), event
    return client


# ------------------------------------------------------------------ driving engines

def drain(conn: Engine) -> tuple[bytes, bool]:
    """Everything the engine wants written, and whether it asked to shut down (EOF)."""
    chunks: list[bytes] = []
    eof = False
    while True:
        out = conn.data_to_send()
        if out is EOF:
            eof = True
            continue
        assert isinstance(out, bytes)
        if not out:
            return b"".join(chunks), eof
        chunks.append(out)


def written_frames(conn: Engine) -> list[Frame]:
    data, _ = drain(conn)
    return parse_frames(data)


def events(conn: Engine) -> list[Event]:
    return list(conn.events())


def feed(conn: Engine, data: bytes, chunk: int | None = None) -> list[Event]:
    """Feed ``data`` (in pieces of ``chunk`` bytes, collecting events between them)."""
    collected: list[Event] = []
    for piece in split(data, chunk):
        conn.receive_data(piece)
        collected.extend(conn.events())
    return collected


def split(data: bytes, chunk: int | None) -> Iterator[bytes]:
    if chunk is None:
        yield data
        return
    for i in range(0, len(data), chunk):
        yield data[i:i + chunk]


def closed_event(evs: list[Event]) -> ConnectionClosed:
    assert evs, "no events"
    last = evs[-1]
    assert isinstance(last, ConnectionClosed), evs
    return last


def sent_close_code(conn: Engine) -> int | None:
    """The code of the close frame the engine wrote last (None if it had no code)."""
    closes = [f for f in written_frames(conn) if f.opcode == CLOSE]
    assert closes, "no close frame was written"
    return closes[-1].close_code


class Pair:
    """A client and a server engine joined by an in-memory network.

    ``chunk`` re-splits every transfer into pieces of that many bytes, to
    exercise the parsers on partial input. Events are collected per side.
    """

    def __init__(
        self,
        *,
        chunk: int | None = None,
        server: ServerConnection | None = None,
        client: ClientConnection | None = None,
        handshake: bool = True,
        limits: Limits | None = None,
        **kwargs: object,
    ) -> None:
        if limits is not None:
            kwargs["limits"] = limits
        self.server = server or ServerConnection(**kwargs)  # type: ignore[arg-type]
        self.client = client or ClientConnection("ws://example.com/", **kwargs)  # type: ignore[arg-type]
        self.chunk = chunk
        self.server_events: list[Event] = []
        self.client_events: list[Event] = []
        self.server_eof = False  # the server shut its write side
        self.client_eof = False
        if handshake:
            self.handshake()

    def handshake(self) -> None:
        self.to_server()
        request = self.server_events.pop(0)
        assert isinstance(request, Request), request
        self.server.accept()
        self.to_client()
        accepted = self.client_events.pop(0)
        assert isinstance(accepted, Accepted), accepted

    def _transfer(self, src: Engine, dst: Engine, sink: list[Event]) -> bool:
        data, eof = drain(src)
        for piece in split(data, self.chunk):
            dst.receive_data(piece)
            sink.extend(dst.events())
        if eof:
            dst.receive_eof()
        sink.extend(dst.events())
        return eof

    def to_server(self) -> list[Event]:
        """Deliver the client's output to the server; return the server's new events."""
        before = len(self.server_events)
        if self.client_eof:
            drain(self.client)
        else:
            self.client_eof = self._transfer(self.client, self.server, self.server_events)
        return self.server_events[before:]

    def to_client(self) -> list[Event]:
        before = len(self.client_events)
        if self.server_eof:
            drain(self.server)
        else:
            self.server_eof = self._transfer(self.server, self.client, self.client_events)
        return self.client_events[before:]

    def settle(self) -> None:
        """Move bytes both ways until neither side has anything left to say."""
        for _ in range(10):
            if not (self.to_server() or self.to_client()):
                return


# ------------------------------------------------------------------ real sockets

def socket_pump(sock: socket.socket, conn: Engine, *,
                until: type | tuple[type, ...] | None = None,
                timeout: float = 10.0) -> list[Event]:
    """A minimal blocking driver: write what the engine has, read, collect events.

    Stops after an event of type ``until`` (or ConnectionClosed) arrives.
    """
    sock.settimeout(timeout)
    got: list[Event] = []
    while True:
        flush(sock, conn)
        for event in conn.events():
            got.append(event)
        flush(sock, conn)
        if got and (isinstance(got[-1], ConnectionClosed)
                    or (until is not None and any(isinstance(e, until) for e in got))):
            return got
        data = sock.recv(65536)
        if data:
            conn.receive_data(data)
        else:
            conn.receive_eof()


def flush(sock: socket.socket, conn: Engine) -> None:
    while True:
        out = conn.data_to_send()
        if out is EOF:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            continue
        assert isinstance(out, bytes)
        if not out:
            return
        sock.sendall(out)


# ------------------------------------------------------------------ a toy extension (§9)

class Scrambler:
    """A toy extension owning RSV2: XORs message payloads with 0x55, records its calls.

    Lets the engine's extension plumbing (RSV checks, encode/decode, limits) be
    tested without depending on permessage-deflate.
    """

    name = "x-scramble"
    rsv_bits = 0x20

    def __init__(self, *, fail_with: int | None = None, accept_rsv: bool = True) -> None:
        self.fail_with = fail_with
        self.accept_rsv = accept_rsv
        self.max_lengths: list[int | None] = []

    def begin_incoming(self, rsv: int) -> bool:
        return self.accept_rsv

    def decode(self, data: bytes, final: bool, max_length: int | None) -> bytes:
        from rfc6455 import RemoteProtocolError

        self.max_lengths.append(max_length)
        if self.fail_with is not None:
            raise RemoteProtocolError("decoder refused", self.fail_with)
        return mask(data, b"UUUU")  # 0x55 repeated

    def begin_outgoing(self, size: int | None, compress: bool | None) -> int:
        return 0 if compress is False else 0x20

    def encode(self, data: bytes, final: bool) -> bytes:
        return mask(data, b"UUUU")


class ScramblerServerFactory:
    name = "x-scramble"

    def __init__(self, extension: Scrambler | None = None) -> None:
        self.extension = extension or Scrambler()

    def negotiate(self, offers: list[tuple[tuple[str, str | None], ...]]
                  ) -> tuple[tuple[tuple[str, str | None], ...], Scrambler] | None:
        return ((), self.extension) if offers else None


class ScramblerClientFactory:
    name = "x-scramble"

    def __init__(self, extension: Scrambler | None = None) -> None:
        self.extension = extension or Scrambler()

    def offers(self) -> list[tuple[tuple[str, str | None], ...]]:
        return [()]

    def accept(self, params: tuple[tuple[str, str | None], ...]) -> Scrambler:
        return self.extension


def open_server_with(extension: Scrambler, **kwargs: object) -> ServerConnection:
    """A server that negotiated ``extension`` with a scripted client."""
    server = ServerConnection(extensions=[ScramblerServerFactory(extension)],  # type: ignore[list-item]
                              **kwargs)  # type: ignore[arg-type]
    server.receive_data(client_request(extra=[("Sec-WebSocket-Extensions", "x-scramble")]))
    assert isinstance(server.next_event(), Request)
    server.accept()
    drain(server)
    assert server.extension is extension
    return server


class AcceptLoop:
    """A blocking loopback server for interop tests: one connection at a time.

    Subclasses implement ``_serve(sock)``; exceptions raised there are kept and
    re-raised by :meth:`stop` instead of dying silently in the thread.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with sock:
                try:
                    self._serve(sock)
                except BaseException as exc:  # reported by stop(), not lost in the thread
                    self.errors.append(exc)

    def _serve(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        # close() alone does not wake a thread blocked in accept(); shutdown() does.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join(5)
        assert not self.thread.is_alive()
        assert not self.errors, self.errors
