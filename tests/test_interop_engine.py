"""Interoperability of the bare engine with the `websockets` library over loopback TCP.

Our engine is driven by the minimal blocking loop of ``helpers.socket_pump``;
the other side is websockets' threaded (sync) server or client. Covers §4
(handshake), §5 (frames of every length encoding, fragmentation, ping/pong)
and §7 (close with a code and a reason), in both directions.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed as WSConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import Server, serve
from websockets.sync.server import ServerConnection as WSServerConnection

from rfc6455 import (
    Accepted,
    Binary,
    ClientConnection,
    ConnectionClosed,
    Event,
    Limits,
    Ping,
    Pong,
    Request,
    ServerConnection,
    Text,
)

from .helpers import AcceptLoop, flush, socket_pump

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

SIZES = [0, 1, 125, 126, 65535, 65536, 300_000]
LIMITS = Limits(max_message_size=4 << 20)


# ---------------------------------------------------------------- our client, their server


def _their_handler(ws: WSServerConnection) -> None:
    for message in ws:
        if message == "fragment-me":
            ws.send(["frag", "mented ", "reply"])
        elif message == "ping-me":
            pong = ws.ping(b"from-them")
            ws.send("pong-ok" if pong.wait(5) else "pong-missing")
        elif message == "close-me":
            ws.close(4001, "their reason")
        else:
            ws.send(message)


@pytest.fixture
def their_server() -> Iterator[Server]:
    with serve(_their_handler, "127.0.0.1", 0, max_size=4 << 20, compression=None,
               ping_interval=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server
        server.shutdown()
        thread.join(5)


def _our_client(server: Server) -> tuple[socket.socket, ClientConnection]:
    host, port = server.socket.getsockname()[:2]
    sock = socket.create_connection((host, port), timeout=10)
    client = ClientConnection(f"ws://{host}:{port}/echo", limits=LIMITS)
    events = socket_pump(sock, client, until=Accepted)
    assert isinstance(events[0], Accepted), events
    return sock, client


def _recv_one(sock: socket.socket, client: ClientConnection) -> Event:
    events = socket_pump(sock, client, until=(Text, Binary, Pong, ConnectionClosed))
    assert len(events) == 1, events
    return events[0]


def test_4_our_client_exchanges_messages_with_their_server(their_server: Server) -> None:
    sock, client = _our_client(their_server)
    with sock:
        for size in SIZES:
            payload = os.urandom(size)
            client.send(payload)
            assert _recv_one(sock, client) == Binary(payload)
            text = "ü€" * (size // 5)
            client.send(text)
            assert _recv_one(sock, client) == Text(text)
        client.close(4000, "our reason")
        events = socket_pump(sock, client)
        assert events == [ConnectionClosed(4000, "our reason")]
        assert client.close_expected()  # §7.1.1: now wait for the server to close TCP
        assert sock.recv(1) == b""
        client.receive_eof()
        assert not client.close_expected()


def test_5_4_our_fragmented_message_to_their_server(their_server: Server) -> None:
    sock, client = _our_client(their_server)
    with sock:
        client.send("frag", final=False)
        client.ping(b"interleaved")
        client.send("mented " * 20000, final=False)
        client.send("end")
        events = socket_pump(sock, client, until=Text)
        assert Pong(b"interleaved") in events
        assert events[-1] == Text("frag" + "mented " * 20000 + "end")
        client.close()
        socket_pump(sock, client)


def test_5_4_our_fragment_size_with_their_server(their_server: Server) -> None:
    host, port = their_server.socket.getsockname()[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        client = ClientConnection(f"ws://{host}:{port}/", fragment_size=1000, limits=LIMITS)
        socket_pump(sock, client, until=Accepted)
        payload = os.urandom(70_000)
        client.send(payload)
        assert _recv_one(sock, client) == Binary(payload)


def test_5_4_their_fragmented_message_to_our_client(their_server: Server) -> None:
    sock, client = _our_client(their_server)
    with sock:
        client.send("fragment-me")
        assert _recv_one(sock, client) == Text("fragmented reply")


def test_5_5_2_our_ping_gets_their_pong(their_server: Server) -> None:
    sock, client = _our_client(their_server)
    with sock:
        client.ping(b"payload-123")
        assert _recv_one(sock, client) == Pong(b"payload-123")


def test_5_5_2_their_ping_gets_our_automatic_pong(their_server: Server) -> None:
    sock, client = _our_client(their_server)
    with sock:
        client.send("ping-me")
        events = socket_pump(sock, client, until=Text)
        assert events[-1] == Text("pong-ok")


def test_7_their_server_closes_with_code_and_reason(their_server: Server) -> None:
    sock, client = _our_client(their_server)
    with sock:
        client.send("close-me")
        events = socket_pump(sock, client)
        assert events == [ConnectionClosed(4001, "their reason")]


# ---------------------------------------------------------------- their client, our server


class OurServer(AcceptLoop):
    """One-connection-at-a-time server: our engine behind a blocking accept loop."""

    def __init__(self) -> None:
        super().__init__()
        self.closed: list[ConnectionClosed] = []
        self.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        conn = ServerConnection(limits=LIMITS)
        waiting_pong: bytes | None = None
        while True:
            for event in conn.events():
                if isinstance(event, Request):
                    conn.accept()
                elif isinstance(event, Text) and event.data == "ping-me":
                    waiting_pong = b"from-us"
                    conn.ping(waiting_pong)
                elif isinstance(event, Text) and event.data == "close-me":
                    conn.close(4002, "our reason")
                elif isinstance(event, Text) and event.data == "fragment-me":
                    conn.send("frag", final=False)
                    conn.send("mented ", final=False)
                    conn.send("reply")
                elif isinstance(event, (Text, Binary)):
                    conn.send(event.data)
                elif isinstance(event, Pong) and event.payload == waiting_pong:
                    conn.send(f"pong:{event.payload.decode()}")
                    waiting_pong = None
                elif isinstance(event, ConnectionClosed):
                    self.closed.append(event)
                    flush(sock, conn)
                    return
            flush(sock, conn)
            data = sock.recv(65536)
            if data:
                conn.receive_data(data)
            else:
                conn.receive_eof()



@pytest.fixture
def our_server() -> Iterator[OurServer]:
    server = OurServer()
    yield server
    server.stop()


def test_4_their_client_exchanges_messages_with_our_server(our_server: OurServer) -> None:
    with connect(f"ws://127.0.0.1:{our_server.port}/", max_size=4 << 20, proxy=None,
                 ping_interval=None) as ws:
        for size in SIZES:
            payload = os.urandom(size)
            ws.send(payload)
            assert ws.recv(timeout=10) == payload
            text = "ü€" * (size // 5)
            ws.send(text)
            assert ws.recv(timeout=10) == text
        ws.close(4000, "their reason")
    our_server.thread.join(0.1)
    _wait(lambda: bool(our_server.closed))
    assert our_server.closed == [ConnectionClosed(4000, "their reason")]


def test_5_4_their_fragmented_message_to_our_server(our_server: OurServer) -> None:
    with connect(f"ws://127.0.0.1:{our_server.port}/", proxy=None, ping_interval=None) as ws:
        ws.send([b"a" * 70000, b"b", b"c" * 3])
        assert ws.recv(timeout=10) == b"a" * 70000 + b"bccc"
        ws.send("fragment-me")
        assert ws.recv(timeout=10) == "fragmented reply"


def test_5_5_2_their_ping_gets_our_pong(our_server: OurServer) -> None:
    with connect(f"ws://127.0.0.1:{our_server.port}/", proxy=None, ping_interval=None) as ws:
        assert ws.ping(b"their-ping").wait(10)
        ws.send("ping-me")
        assert ws.recv(timeout=10) == "pong:from-us"


def test_7_our_server_closes_with_code_and_reason(our_server: OurServer) -> None:
    with connect(f"ws://127.0.0.1:{our_server.port}/", proxy=None, ping_interval=None) as ws:
        ws.send("close-me")
        with pytest.raises(WSConnectionClosed) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "our reason")
    _wait(lambda: bool(our_server.closed))
    assert our_server.closed[0].code == 4002


def test_4_2_1_their_deflate_offer_is_declined_by_our_server(our_server: OurServer) -> None:
    with connect(f"ws://127.0.0.1:{our_server.port}/", proxy=None, ping_interval=None,
                 compression="deflate") as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("x" * 10000)
        assert ws.recv(timeout=10) == "x" * 10000


def _wait(condition: object, timeout: float = 5.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():  # type: ignore[operator]
            return
        done.wait(0.01)
    raise AssertionError("condition not met")


# ---------------------------------------------------------------- wsproto, in memory


def _wsproto_pair(our_role: str) -> tuple[object, ServerConnection | ClientConnection]:
    """Our engine joined to a wsproto connection through memory, past the handshake."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection
    from wsproto.events import Request as WPRequest

    if our_role == "server":
        theirs = WSConnection(ConnectionType.CLIENT)
        ours: ServerConnection | ClientConnection = ServerConnection()
        ours.receive_data(theirs.send(WPRequest(host="example.com", target="/")))
        assert isinstance(ours.next_event(), Request)
        assert isinstance(ours, ServerConnection)
        ours.accept()
        out = ours.data_to_send()
        assert isinstance(out, bytes)
        theirs.receive_data(out)
        assert any(isinstance(e, AcceptConnection) for e in theirs.events())
    else:
        theirs = WSConnection(ConnectionType.SERVER)
        ours = ClientConnection("ws://example.com/")
        out = ours.data_to_send()
        assert isinstance(out, bytes)
        theirs.receive_data(out)
        assert any(isinstance(e, WPRequest) for e in theirs.events())
        ours.receive_data(theirs.send(AcceptConnection()))
        assert isinstance(ours.next_event(), Accepted)
    return theirs, ours


def _to_theirs(ours: ServerConnection | ClientConnection, theirs: object) -> list[object]:
    out = ours.data_to_send()
    if isinstance(out, bytes) and out:
        theirs.receive_data(out)  # type: ignore[attr-defined]
    return list(theirs.events())  # type: ignore[attr-defined]


@pytest.mark.parametrize("role", ["server", "client"])
def test_5_messages_pings_and_close_with_wsproto(role: str) -> None:
    from wsproto.events import BytesMessage, CloseConnection, Message, TextMessage
    from wsproto.events import Ping as WPPing
    from wsproto.events import Pong as WPPong

    theirs, ours = _wsproto_pair(role)
    for size in (0, 125, 126, 70000):
        payload = os.urandom(size)
        ours.send(payload)
        ours.send("é" * size)
        got = _to_theirs(ours, theirs)
        assert [(type(e), e.data) for e in got] == [  # type: ignore[attr-defined]
            (BytesMessage, payload), (TextMessage, "é" * size)]
        ours.receive_data(theirs.send(BytesMessage(data=payload))  # type: ignore[attr-defined]
                          + theirs.send(TextMessage(data="é" * size)))  # type: ignore[attr-defined]
        assert list(ours.events()) == [Binary(payload), Text("é" * size)]
    # Fragmented both ways, with an interleaved ping.
    ours.send(b"ab", final=False)
    ours.ping(b"mid")
    ours.send(b"cd")
    got = _to_theirs(ours, theirs)
    assert [e.payload for e in got if isinstance(e, WPPing)] == [b"mid"]
    assert b"".join(e.data for e in got if isinstance(e, Message)) == b"abcd"
    ours.receive_data(theirs.send(WPPong(payload=b"mid")))  # type: ignore[attr-defined]
    ours.receive_data(theirs.send(TextMessage(data="x", message_finished=False))  # type: ignore[attr-defined]
                      + theirs.send(WPPing(payload=b"theirs"))  # type: ignore[attr-defined]
                      + theirs.send(TextMessage(data="y")))  # type: ignore[attr-defined]
    assert list(ours.events()) == [Pong(b"mid"), Ping(b"theirs"), Text("xy")]
    assert [(type(e), e.payload) for e in _to_theirs(ours, theirs)] == [  # type: ignore[attr-defined]
        (WPPong, b"theirs")]
    # They close with a code and a reason; we echo the code.
    ours.receive_data(theirs.send(CloseConnection(code=4005, reason="wsproto bye")))  # type: ignore[attr-defined]
    assert list(ours.events()) == [ConnectionClosed(4005, "wsproto bye")]
    (closed,) = _to_theirs(ours, theirs)
    assert isinstance(closed, CloseConnection) and closed.code == 4005
