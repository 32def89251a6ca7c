"""atheris harness: the opening handshake parsers, server and client (§4).

Byte 0 selects the role, whether permessage-deflate is configured, EOF at the
end, an origin policy / a demanding deflate offer, and one cut point (byte 1);
the rest is the request (server) or response (client). In a response,
``@ACCEPT@`` stands for the right Sec-WebSocket-Accept.
"""

from __future__ import annotations

import sys

import atheris  # type: ignore[import-untyped]

with atheris.instrument_imports(include=["rfc6455", "fuzz", "h11"]):
    from rfc6455 import (
        ClientConnection,
        ConnectionClosed,
        HTTPRequest,
        Limits,
        Request,
        ServerConnection,
        State,
    )
    from rfc6455.extensions.permessage_deflate import (
        ClientPerMessageDeflate,
        ServerPerMessageDeflate,
    )
    from rfc6455.handshake import accept_token

    from .common import drive


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    config, cut, body = data[0], data[1], data[2:]
    pieces = [p for p in (body[:cut], body[cut:]) if p]
    deflate = bool(config & 2)
    eof = bool(config & 4)
    strict = bool(config & 8)  # an explicit origin policy; a demanding deflate offer
    if config & 1:
        factory = ClientPerMessageDeflate(
            server_no_context_takeover=True, server_max_window_bits=10,
            client_max_window_bits=12) if strict else ClientPerMessageDeflate()
        client = ClientConnection("ws://example.com/chat", subprotocols=["chat", "v2"],
                                  extensions=[factory] if deflate else [])
        client.data_to_send()
        key = client.request_headers.get("sec-websocket-key")
        assert key is not None
        body = body.replace(b"@ACCEPT@", accept_token(key).encode())
        pieces = [p for p in (body[:cut], body[cut:]) if p]
        drive(client, pieces, eof=eof, limits=Limits(), streaming=False)
        return
    server = ServerConnection(subprotocols=["chat"], limits=Limits(max_header_bytes=2048),
                              origins=["https://ok.example", "null"] if strict else None,
                              extensions=[ServerPerMessageDeflate()] if deflate else [])
    events: list[object] = []
    for piece in pieces:
        server.receive_data(piece)
        events.extend(server.events())
    if eof:
        server.receive_eof()
        events.extend(server.events())
    for event in events:
        assert isinstance(event, (Request, HTTPRequest, ConnectionClosed)), event
    if server.state is State.CONNECTING and events:
        if isinstance(events[-1], Request):
            server.accept()
            out = server.data_to_send()
            assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 101 ")
        elif isinstance(events[-1], HTTPRequest):
            server.respond(404, [("x-a", "b")], b"nope")
            out = server.data_to_send()
            assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 404 ")
    else:
        out = server.data_to_send()
        if isinstance(out, bytes) and out:
            assert out[:10] in (b"HTTP/1.1 4", b"HTTP/1.1 5"), out


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
