"""Inputs the fuzzers in fuzz/ found to break the engine, minimised; one test per bug."""

from __future__ import annotations

from rfc6455 import HTTPRequest, ServerConnection, State


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
