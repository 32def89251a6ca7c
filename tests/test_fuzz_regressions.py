"""Inputs the fuzzers in fuzz/ found to break the engine, minimised; one test per bug."""

from __future__ import annotations

from rfc6455 import ConnectionClosed, HTTPRequest, Request, ServerConnection, State


def test_respond_to_connect_request_rfc9110_9_3_6() -> None:
    """§4.2.1 / RFC 9110 §9.3.6: a plain CONNECT request is answerable with respond().

    h11 takes any 2xx answer to CONNECT for an opened tunnel and refused the body
    with its own LocalProtocolError (found by fuzz.hostile.server_handshake_bytes).
    """
    server = ServerConnection()
    server.receive_data(b"CONNECT / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    event = server.next_event()
    assert isinstance(event, HTTPRequest) and event.method == "CONNECT"
    server.respond(200, [("content-type", "text/plain")], b"ok")
    out = server.data_to_send()
    assert isinstance(out, bytes)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\nok")
    assert server.state is State.CLOSED


def test_bytes_behind_an_unanswered_request_count_as_buffered_rfc6455_10_4() -> None:
    """§10.4: frames a client sends behind its request, before the application accepts,
    are held by the engine, so ``buffered_bytes`` must show them (it said 0, and an
    adapter pausing on it kept reading without bound)."""
    server = ServerConnection()
    request = (b"GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")
    server.receive_data(request[:40])
    assert server.buffered_bytes == 40  # a partial head
    server.receive_data(request[40:])
    assert isinstance(server.next_event(), Request)
    assert server.buffered_bytes == 0
    for _ in range(10):
        server.receive_data(b"\x82\xfe\xff\xff" + b"\x00" * 65532)
    assert server.buffered_bytes == 10 * 65536
    server.accept()
    assert server.buffered_bytes == 10 * 65536


def test_origin_with_unbalanced_bracket_is_refused_rfc6455_10_2() -> None:
    """§10.2 / §4.2.2: ``Origin: http://e[x`` made urlsplit raise ValueError out of
    next_event(); it is now an origin that does not match (403), found by
    fuzz/harness_handshake.py. A Host header with a stray bracket is no valid Host
    (RFC 9112 §3.2): 400."""
    base = (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
    for headers, status in ((b"Host: example.com\r\nOrigin: http://e[x\r\n", 403),
                            (b"Host: [example.com\r\nOrigin: http://example.com\r\n", 400)):
        server = ServerConnection()
        server.receive_data(base + headers + b"\r\n")
        event = server.next_event()
        assert isinstance(event, ConnectionClosed)
        assert event.error is not None and event.error.status == status
        out = server.data_to_send()
        assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 %d " % status)
