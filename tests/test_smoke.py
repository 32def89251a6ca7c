"""Smoke test: a client and a server engine exchange a message and close (§1.4, §7)."""

from rfc6455 import (
    EOF,
    Accepted,
    ClientConnection,
    ConnectionClosed,
    Request,
    ServerConnection,
    Text,
)

Engine = ClientConnection | ServerConnection


def _pump(src: Engine, dst: Engine) -> None:
    while out := src.data_to_send():
        if out is EOF:
            dst.receive_eof()
        else:
            assert isinstance(out, bytes)
            dst.receive_data(out)


def test_echo_and_close() -> None:
    server, client = ServerConnection(), ClientConnection("ws://localhost/chat")
    _pump(client, server)
    assert isinstance(server.next_event(), Request)
    server.accept()
    _pump(server, client)
    assert isinstance(client.next_event(), Accepted)
    client.send("hi")
    _pump(client, server)
    assert server.next_event() == Text("hi")
    client.close()
    _pump(client, server)
    assert server.next_event() == ConnectionClosed(1000, "")
    _pump(server, client)
    assert client.next_event() == ConnectionClosed(1000, "")
