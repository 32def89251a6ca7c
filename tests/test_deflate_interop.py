"""permessage-deflate (RFC 7692) interop with the `websockets` library over loopback TCP.

Their threaded (sync) server and client on one side; our engine on the other,
driven by the small blocking socket loop below. Every parameter set checks
what both sides negotiated, that compressed bytes really crossed the wire
(the byte counts), and that messages of every kind survive both directions:
empty, small (under our threshold), large and compressible, incompressible,
fragmented, and repeated (context takeover, §7.1.1).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate as TheirDeflate,
)
from websockets.sync.client import connect
from websockets.sync.server import Server, serve
from websockets.sync.server import ServerConnection as WSServerConnection

from rfc6455 import (
    EOF,
    Accepted,
    Binary,
    ClientConnection,
    ConnectionClosed,
    Event,
    Limits,
    Request,
    ServerConnection,
    Text,
)
from rfc6455.extensions import (
    ClientPerMessageDeflate,
    DeflateOffer,
    PerMessageDeflate,
    ServerPerMessageDeflate,
)

from .helpers import AcceptLoop

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

LIMITS = Limits(max_message_size=4 << 20)
COMPRESSIBLE = ("the same words again and again, " * 8000).encode()  # 256 KB
RANDOM = os.urandom(100_000)

Engine = ServerConnection | ClientConnection


@dataclass
class Counted:
    """A blocking driver for one engine that counts the bytes crossing the socket."""

    sock: socket.socket
    conn: Engine
    sent: int = 0
    received: int = 0
    pending: list[Event] = field(default_factory=list)

    def flush(self) -> None:
        while True:
            out = self.conn.data_to_send()
            if out is EOF:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_WR)
                continue
            assert isinstance(out, bytes)
            if not out:
                return
            self.sent += len(out)
            self.sock.sendall(out)

    def next(self, *kinds: type) -> Event:
        """The next event of one of ``kinds`` (others are kept), or ConnectionClosed."""
        while True:
            self.flush()
            for event in self.conn.events():
                self.pending.append(event)
            self.flush()
            for i, event in enumerate(self.pending):
                if isinstance(event, (*kinds, ConnectionClosed)):
                    del self.pending[i]
                    return event
            data = self.sock.recv(65536)
            if data:
                self.received += len(data)
                self.conn.receive_data(data)
            else:
                self.conn.receive_eof()


def _exchange(peer: Counted) -> None:
    """Messages of every kind to the echoing peer and back; checks compression on the wire."""
    messages: list[str | bytes] = [b"", "", "tiny", b"\x00" * 10, "é€☃" * 3000, RANDOM,
                                   COMPRESSIBLE, COMPRESSIBLE, COMPRESSIBLE.decode()]
    for msg in messages:
        peer.conn.send(msg)
        expect = Text(msg) if isinstance(msg, str) else Binary(msg)
        assert peer.next(Text, Binary) == expect
    # Compressible data crossed the wire deflated in both directions.
    peer.sent = peer.received = 0
    peer.conn.send(COMPRESSIBLE)
    assert peer.next(Binary) == Binary(COMPRESSIBLE)
    # (A 9-bit window at level 1 still shrinks it 20x; 15 bits at level 6, 400x.)
    assert peer.sent < len(COMPRESSIBLE) // 10
    assert peer.received < len(COMPRESSIBLE) // 10
    # A message we stream in parts (RSV1 on the first frame only, §6.1).
    peer.conn.send("part one, " * 100, final=False)
    peer.conn.send("part two, " * 100, final=False)
    peer.conn.send("end")
    assert peer.next(Text) == Text("part one, " * 100 + "part two, " * 100 + "end")
    # Explicitly uncompressed message (§6: RSV1 clear) in the middle of the context.
    peer.conn.send(COMPRESSIBLE[:5000], compress=False)
    assert peer.next(Binary) == Binary(COMPRESSIBLE[:5000])
    peer.conn.send(COMPRESSIBLE[:5000])
    assert peer.next(Binary) == Binary(COMPRESSIBLE[:5000])
    # A message they fragment.
    peer.conn.send("fragment-me")
    assert peer.next(Text) == Text("frag" + "mented " * 500 + "reply")


def _their_handler(ws: WSServerConnection) -> None:
    for message in ws:
        if message == "fragment-me":
            ws.send(["frag", "mented " * 500, "reply"])
        else:
            ws.send(message)


def _our_deflate(conn: Engine) -> PerMessageDeflate:
    ext = conn.extension
    assert isinstance(ext, PerMessageDeflate), ext
    return ext


# ---------------------------------------------------------------- their server, our client


@contextlib.contextmanager
def their_server(factory: ServerPerMessageDeflateFactory | None,
                 seen: list[WSServerConnection]) -> Iterator[Server]:
    def handler(ws: WSServerConnection) -> None:
        seen.append(ws)
        _their_handler(ws)

    with serve(handler, "127.0.0.1", 0, max_size=4 << 20, ping_interval=None,
               compression="deflate" if factory is None else None,
               extensions=None if factory is None else [factory]) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            thread.join(5)


CLIENT_CASES = [
    # (their server factory (None: websockets' default 12/12 memLevel 5), our client factory,
    #  expected our (send_bits, recv_bits, send_reset, recv_reset))
    pytest.param(None, ClientPerMessageDeflate(), (12, 12, False, False), id="their-default"),
    pytest.param(ServerPerMessageDeflateFactory(), ClientPerMessageDeflate(),
                 (15, 15, False, False), id="plain"),
    pytest.param(ServerPerMessageDeflateFactory(), ClientPerMessageDeflate(
        client_max_window_bits=10), (10, 15, False, False), id="our-client-window-hint"),
    pytest.param(ServerPerMessageDeflateFactory(client_max_window_bits=9),
                 ClientPerMessageDeflate(), (9, 15, False, False), id="their-client-window"),
    pytest.param(ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True),
        ClientPerMessageDeflate(), (15, 15, True, True), id="their-no-context-both"),
    pytest.param(ServerPerMessageDeflateFactory(), ClientPerMessageDeflate(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=9, client_max_window_bits=8),
        (8, 9, True, True), id="our-everything-small"),
    pytest.param(ServerPerMessageDeflateFactory(server_max_window_bits=11),
                 ClientPerMessageDeflate(server_max_window_bits=13),
                 (15, 11, False, False), id="server-window-lowered"),
    pytest.param(ServerPerMessageDeflateFactory(client_max_window_bits=10,
                                                require_client_max_window_bits=True),
                 ClientPerMessageDeflate(client_max_window_bits=None,
                                         fallback_offers=[DeflateOffer(
                                             client_max_window_bits=True)]),
                 (10, 15, False, False), id="fallback-offer"),
]


@pytest.mark.parametrize(("theirs", "ours", "expected"), CLIENT_CASES)
def test_rfc7692_our_client_their_server(
        theirs: ServerPerMessageDeflateFactory | None, ours: ClientPerMessageDeflate,
        expected: tuple[int, int, bool, bool]) -> None:
    seen: list[WSServerConnection] = []
    with their_server(theirs, seen) as server:
        host, port = server.socket.getsockname()[:2]
        with socket.create_connection((host, port), timeout=10) as sock:
            client = ClientConnection(f"ws://{host}:{port}/", limits=LIMITS, extensions=[ours])
            peer = Counted(sock, client)
            assert isinstance(peer.next(Accepted), Accepted)
            ext = _our_deflate(client)
            assert (ext.send_bits, ext.recv_bits, ext.send_reset, ext.recv_reset) == expected
            _exchange(peer)  # also lets their handler thread start and record itself
            their_ext = seen[0].protocol.extensions
            assert len(their_ext) == 1 and isinstance(their_ext[0], TheirDeflate)
            # What they apply mirrors what we apply (their "remote" is us).
            assert their_ext[0].remote_max_window_bits == ext.send_bits
            assert their_ext[0].local_max_window_bits == ext.recv_bits
            assert their_ext[0].local_no_context_takeover == ext.recv_reset
            assert their_ext[0].remote_no_context_takeover == ext.send_reset
            client.close()
            closed = peer.next()
            assert isinstance(closed, ConnectionClosed) and closed.code == 1000


# ---------------------------------------------------------------- their client, our server


class OurServer(AcceptLoop):
    """Our engine behind a blocking accept loop (one connection at a time), echoing."""

    def __init__(self, factory: ServerPerMessageDeflate) -> None:
        super().__init__()
        self.factory = factory
        self.extensions: list[PerMessageDeflate | None] = []
        self.closed: list[ConnectionClosed] = []
        self.sent: list[int] = []  # bytes written / read per connection
        self.received: list[int] = []
        self.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        conn = ServerConnection(limits=LIMITS, extensions=[self.factory])
        peer = Counted(sock, conn)
        while True:
            event = peer.next(Request, Text, Binary)
            if isinstance(event, Request):
                conn.accept()
                ext = conn.extension
                self.extensions.append(ext if isinstance(ext, PerMessageDeflate) else None)
            elif isinstance(event, ConnectionClosed):
                self.closed.append(event)
                peer.flush()
                self.sent.append(peer.sent)
                self.received.append(peer.received)
                return
            elif isinstance(event, Text) and event.data == "fragment-me":
                conn.send("frag", final=False)
                conn.send("mented " * 500, final=False)
                conn.send("reply")
            else:
                assert isinstance(event, (Text, Binary))
                conn.send(event.data)



SERVER_CASES = [
    # (their client factory (None: websockets' default), our server factory,
    #  expected our (send_bits, recv_bits, send_reset, recv_reset))
    pytest.param(None, ServerPerMessageDeflate(), (12, 12, False, False), id="defaults"),
    pytest.param(ClientPerMessageDeflateFactory(), ServerPerMessageDeflate(
        server_max_window_bits=None, client_max_window_bits=None),
        (15, 15, False, False), id="unlimited"),
    pytest.param(ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True),
        ServerPerMessageDeflate(), (12, 12, True, True), id="their-no-context-both"),
    pytest.param(ClientPerMessageDeflateFactory(), ServerPerMessageDeflate(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=None, mem_level=8),
        (15, 12, True, True), id="our-no-context-both-full-flush"),
    pytest.param(ClientPerMessageDeflateFactory(client_max_window_bits=True),
                 ServerPerMessageDeflate(client_max_window_bits=9, server_max_window_bits=10),
                 (10, 9, False, False), id="our-windows"),
    # websockets refuses to offer client_max_window_bits=8 (zlib cannot deflate with it).
    pytest.param(ClientPerMessageDeflateFactory(server_max_window_bits=8,
                                                client_max_window_bits=9),
                 ServerPerMessageDeflate(), (8, 9, False, False), id="their-windows-8-9"),
    pytest.param(ClientPerMessageDeflateFactory(client_max_window_bits=None),
                 ServerPerMessageDeflate(client_max_window_bits=9), (12, 15, False, False),
                 id="client-window-not-offered"),
    pytest.param(ClientPerMessageDeflateFactory(compress_settings={"level": 9, "memLevel": 9}),
                 ServerPerMessageDeflate(compress_level=9, mem_level=1, threshold=0),
                 (12, 12, False, False), id="levels"),
]


@pytest.mark.parametrize(("theirs", "ours", "expected"), SERVER_CASES)
def test_rfc7692_their_client_our_server(
        theirs: ClientPerMessageDeflateFactory | None, ours: ServerPerMessageDeflate,
        expected: tuple[int, int, bool, bool]) -> None:
    server = OurServer(ours)
    try:
        with connect(f"ws://127.0.0.1:{server.port}/", max_size=4 << 20, proxy=None,
                     ping_interval=None, compression="deflate" if theirs is None else None,
                     extensions=None if theirs is None else [theirs]) as ws:
            (their_ext,) = ws.protocol.extensions
            assert isinstance(their_ext, TheirDeflate)
            messages: list[str | bytes] = [b"", "", "tiny", RANDOM, COMPRESSIBLE, COMPRESSIBLE,
                                           COMPRESSIBLE.decode(), "é€☃" * 3000]
            for msg in messages:
                ws.send(msg)
                assert ws.recv(timeout=10) == msg
            ws.send([b"a" * 70000, b"b", b"c" * 3])  # their fragmented compressed message
            assert ws.recv(timeout=10) == b"a" * 70000 + b"bccc"
            ws.send("fragment-me")  # our streamed compressed message
            assert ws.recv(timeout=10) == "frag" + "mented " * 500 + "reply"
        ext = server.extensions[0]
        assert ext is not None
        assert (ext.send_bits, ext.recv_bits, ext.send_reset, ext.recv_reset) == expected
        assert their_ext.remote_max_window_bits == ext.send_bits
        assert their_ext.local_max_window_bits == ext.recv_bits
        assert their_ext.remote_no_context_takeover == ext.send_reset
        assert their_ext.local_no_context_takeover == ext.recv_reset
    finally:
        server.stop()
    assert server.closed and server.closed[0].code == 1000


def test_rfc7692_our_compressed_bytes_on_the_wire_to_their_client() -> None:
    """Compressible data goes out deflated from our server (counted on the socket)."""
    server = OurServer(ServerPerMessageDeflate())
    try:
        with connect(f"ws://127.0.0.1:{server.port}/", max_size=4 << 20, proxy=None,
                     ping_interval=None, compression="deflate") as ws:
            ws.send(COMPRESSIBLE)
            assert ws.recv(timeout=10) == COMPRESSIBLE
            ws.send(COMPRESSIBLE)
            assert ws.recv(timeout=10) == COMPRESSIBLE
    finally:
        server.stop()
    assert server.received and server.received[0] < len(COMPRESSIBLE) // 10
    assert server.sent and server.sent[0] < len(COMPRESSIBLE) // 10
