"""WebSocket URIs (RFC 6455 §3) and the Host header derived from them (§4.1)."""

from __future__ import annotations

import pytest

from rfc6455.uri import WebSocketURI, parse_uri


@pytest.mark.parametrize(("uri", "parsed", "host_header"), [
    ("ws://example.com", WebSocketURI(False, "example.com", 80, "/"), "example.com"),
    ("ws://example.com/", WebSocketURI(False, "example.com", 80, "/"), "example.com"),
    ("wss://example.com", WebSocketURI(True, "example.com", 443, "/"), "example.com"),
    ("ws://example.com:8080/chat?room=1&x=2",
     WebSocketURI(False, "example.com", 8080, "/chat?room=1&x=2"), "example.com:8080"),
    ("wss://h:443/", WebSocketURI(True, "h", 443, "/"), "h"),
    ("ws://h:443/", WebSocketURI(False, "h", 443, "/"), "h:443"),
    ("ws://h?x=1", WebSocketURI(False, "h", 80, "/?x=1"), "h"),
    ("WS://EXAMPLE.com/Path", WebSocketURI(False, "example.com", 80, "/Path"), "example.com"),
    ("ws://[::1]:9000/x", WebSocketURI(False, "::1", 9000, "/x"), "[::1]:9000"),
    ("ws://[::1]/", WebSocketURI(False, "::1", 80, "/"), "[::1]"),
    ("ws://127.0.0.1:1/", WebSocketURI(False, "127.0.0.1", 1, "/"), "127.0.0.1:1"),
])
def test_3_uri_parsing(uri: str, parsed: WebSocketURI, host_header: str) -> None:
    assert parse_uri(uri) == parsed
    assert parsed.host_header == host_header


@pytest.mark.parametrize("uri", [
    "http://example.com/",
    "https://example.com/",
    "example.com",
    "ws://example.com/#frag",
    "ws://example.com/#",
    "ws://",
    "ws:///path",
    "ws://h:99999/",
    "ws://h:port/",
])
def test_3_invalid_uris(uri: str) -> None:
    with pytest.raises(ValueError):
        parse_uri(uri)


def test_3_explicit_target_overrides_the_uri() -> None:
    """§3/§4.1: the request-target comes from the URI unless the caller gives one."""
    from rfc6455 import ClientConnection

    default = ClientConnection("ws://example.com/from-uri?q=1")
    explicit = ClientConnection("ws://example.com/from-uri?q=1", target="/chosen")
    first_line = bytes(default.data_to_send()).split(b"\r\n", 1)[0]  # type: ignore[arg-type]
    assert first_line == b"GET /from-uri?q=1 HTTP/1.1"
    first_line = bytes(explicit.data_to_send()).split(b"\r\n", 1)[0]  # type: ignore[arg-type]
    assert first_line == b"GET /chosen HTTP/1.1"
