"""The opening handshake (RFC 6455 §4), both roles, through the engine façade."""

from __future__ import annotations

import base64

import h11
import pytest

from rfc6455 import (
    Accepted,
    Binary,
    ClientConnection,
    ConnectionClosed,
    Event,
    HTTPRequest,
    Limits,
    LocalProtocolError,
    Rejected,
    Request,
    ServerConnection,
    State,
    Text,
)
from rfc6455.events import ExtensionOffer
from rfc6455.extensions.base import ExtensionParams, NegotiationError
from rfc6455.handshake import accept_token, origin_allowed

from .helpers import (
    BINARY,
    TEXT,
    Pair,
    cframe,
    client_key,
    client_request,
    closed_event,
    drain,
    new_key,
    server_response,
    sframe,
)


def parse_response(data: bytes, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names, repeated ones joined) and body of a response."""
    top, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "incomplete response head"
    status_line, *lines = top.decode("latin-1").split("\r\n")
    version, status, _ = (status_line + " ").split(" ", 2)
    assert version == "HTTP/1.1"
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        name = name.lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    if head:
        assert body == b"", "a response to HEAD has no body"
    elif "content-length" in headers:
        assert len(body) == int(headers["content-length"])
    return int(status), headers, body


def server_answer(request: bytes, **kwargs: object) -> tuple[
        ServerConnection, list[Event], tuple[int, dict[str, str], bytes], bool]:
    """Feed ``request`` to a server; it has answered with an error by itself."""
    server = ServerConnection(**kwargs)  # type: ignore[arg-type]
    server.receive_data(request)
    evs = list(server.events())
    data, eof = drain(server)
    return server, evs, parse_response(data), eof


def assert_refused(request: bytes, status: int, **kwargs: object) -> dict[str, str]:
    server, evs, (got, headers, _), eof = server_answer(request, **kwargs)
    assert got == status
    assert eof, "the server must close after an HTTP error"
    closed = closed_event(evs)  # type: ignore[arg-type]
    assert closed.error is not None and closed.error.status == status
    assert server.state is State.CLOSED
    return headers


# ---------------------------------------------------------------- server: valid requests


def test_4_2_2_accept_value_of_the_rfc_example() -> None:
    """§1.3: the key of the RFC's example gives its accept value."""
    assert accept_token("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_4_2_2_server_accepts_with_101() -> None:
    key = new_key()
    server = ServerConnection()
    server.receive_data(client_request(key=key, target="/chat?room=1"))
    request = server.next_event()
    assert isinstance(request, Request)
    assert request.target == "/chat?room=1" and request.path == "/chat"
    assert request.host == "example.com"
    assert server.request is request
    assert server.next_event() is None  # waiting for the application's decision
    server.accept()
    status, headers, _ = parse_response(drain(server)[0])
    assert status == 101
    assert headers["upgrade"].lower() == "websocket"
    assert "upgrade" in headers["connection"].lower()
    assert headers["sec-websocket-accept"] == accept_token(key)
    assert "sec-websocket-protocol" not in headers
    assert server.state is State.OPEN


@pytest.mark.parametrize(("upgrade", "connection"), [
    ("websocket", "Upgrade"),
    ("WebSocket", "upgrade"),
    ("websocket", "keep-alive, Upgrade"),
    ("websocket", "Upgrade,keep-alive"),
])
def test_4_2_1_upgrade_and_connection_tokens_are_case_insensitive_lists(
        upgrade: str, connection: str) -> None:
    request = client_request(headers=[
        ("Host", "h"), ("Upgrade", upgrade), ("Connection", connection),
        ("Sec-WebSocket-Key", new_key()), ("Sec-WebSocket-Version", "13")])
    server = ServerConnection()
    server.receive_data(request)
    assert isinstance(server.next_event(), Request)


def test_4_2_1_request_split_byte_by_byte() -> None:
    server = ServerConnection()
    for byte in client_request():
        server.receive_data(bytes([byte]))
    assert isinstance(server.next_event(), Request)


def test_4_2_1_request_exposes_subprotocols_and_extension_offers() -> None:
    server = ServerConnection()
    server.receive_data(client_request(extra=[
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Protocol", "v3"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits, x-foo"),
    ]))
    request = server.next_event()
    assert isinstance(request, Request)
    assert request.subprotocols == ("chat", "superchat", "v3")
    assert request.extensions == (
        ExtensionOffer("permessage-deflate", (("client_max_window_bits", None),)),
        ExtensionOffer("x-foo", ()),
    )


# ---------------------------------------------------------------- server: refusals


def test_4_2_1_missing_host_gets_400() -> None:
    assert_refused(client_request(headers=[
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", new_key()), ("Sec-WebSocket-Version", "13")]), 400)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_4_2_1_method_other_than_get_gets_400(method: str) -> None:
    assert_refused(client_request(method=method, extra=[("Content-Length", "0")]), 400)


def test_4_2_1_head_upgrade_request_gets_400_without_body() -> None:
    """Regression: answering HEAD with a body made h11 raise out of next_event()."""
    server = ServerConnection()
    server.receive_data(client_request(method="HEAD"))
    closed = closed_event(list(server.events()))
    assert closed.error is not None and closed.error.status == 400
    data, eof = drain(server)
    status, headers, _ = parse_response(data, head=True)
    assert status == 400 and int(headers["content-length"]) > 0 and eof


def test_4_2_1_plain_head_request_is_answered_without_body() -> None:
    server = ServerConnection()
    server.receive_data(b"HEAD /health HTTP/1.1\r\nHost: h\r\n\r\n")
    event = server.next_event()
    assert isinstance(event, HTTPRequest) and event.method == "HEAD"
    server.respond(200, [], b"hello")
    status, headers, _ = parse_response(drain(server)[0], head=True)
    assert (status, headers["content-length"]) == (200, "5")


def test_4_2_1_http_1_0_gets_400() -> None:
    assert_refused(client_request(version="HTTP/1.0"), 400)


def test_4_2_1_missing_upgrade_gets_400() -> None:
    assert_refused(client_request(headers=[
        ("Host", "h"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", new_key()), ("Sec-WebSocket-Version", "13")]), 400)


@pytest.mark.parametrize("upgrade", ["h2c", "websocket2", "web socket"])
def test_4_2_1_wrong_upgrade_with_key_gets_400(upgrade: str) -> None:
    assert_refused(client_request(headers=[
        ("Host", "h"), ("Upgrade", upgrade), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", new_key()), ("Sec-WebSocket-Version", "13")]), 400)


@pytest.mark.parametrize("connection", [None, "keep-alive", "close"])
def test_4_2_1_missing_connection_upgrade_gets_400(connection: str | None) -> None:
    headers = [("Host", "h"), ("Upgrade", "websocket"),
               ("Sec-WebSocket-Key", new_key()), ("Sec-WebSocket-Version", "13")]
    if connection is not None:
        headers.append(("Connection", connection))
    assert_refused(client_request(headers=headers), 400)


@pytest.mark.parametrize("key", [
    None,
    "",
    "not base64!!",
    base64.b64encode(b"x" * 15).decode(),
    base64.b64encode(b"x" * 17).decode(),
    "dGhlIHNhbXBsZSBub25jZQ",  # padding stripped
])
def test_4_2_1_missing_or_invalid_key_gets_400(key: str | None) -> None:
    headers = [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Version", "13")]
    if key is not None:
        headers.append(("Sec-WebSocket-Key", key))
    assert_refused(client_request(headers=headers), 400)


def test_4_2_1_two_keys_get_400() -> None:
    assert_refused(client_request(extra=[("Sec-WebSocket-Key", new_key())]), 400)


@pytest.mark.parametrize("version", [None, "8", "12", "14", "13, 8"])
def test_4_4_unsupported_version_gets_426_with_supported_version(version: str | None) -> None:
    headers = [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", new_key())]
    if version is not None:
        headers.append(("Sec-WebSocket-Version", version))
    response_headers = assert_refused(client_request(headers=headers), 426)
    assert response_headers["sec-websocket-version"] == "13"


def test_4_2_1_malformed_http_gets_400() -> None:
    assert_refused(b"GET / HTTP/1.1\r\nHost example.com\r\n\r\n", 400)
    assert_refused(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40 + b"\r\n\r\n", 400)


def test_10_7_oversized_request_head_gets_431() -> None:
    """Regression: h11 bounds only incomplete heads; a whole big head passed."""
    request = client_request(extra=[("X-Big", "a" * 20000)])
    assert_refused(request, 431, limits=Limits(max_header_bytes=16 * 1024))


def test_10_7_request_head_within_limit_is_accepted() -> None:
    server = ServerConnection(limits=Limits(max_header_bytes=64 * 1024))
    server.receive_data(client_request(extra=[("X-Big", "a" * 20000)]))
    assert isinstance(server.next_event(), Request)


def test_10_7_oversized_head_fed_in_pieces_gets_431_before_it_ends() -> None:
    server = ServerConnection(limits=Limits(max_header_bytes=1024))
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n")
    for _ in range(40):
        server.receive_data(b"X-Pad: " + b"a" * 100 + b"\r\n")
        evs = list(server.events())
        if evs:
            break
    closed = closed_event(evs)
    assert closed.error is not None and closed.error.status == 431
    assert parse_response(drain(server)[0])[0] == 431


def test_4_2_2_reject_never_sends_101() -> None:
    server = ServerConnection()
    server.receive_data(client_request())
    assert isinstance(server.next_event(), Request)
    server.reject(403, [("X-Why", "no")], b"go away")
    data, eof = drain(server)
    status, headers, body = parse_response(data)
    assert (status, headers["x-why"], body) == (403, "no", b"go away")
    assert eof
    assert isinstance(server.next_event(), ConnectionClosed)
    assert server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        server.send("x")


# ---------------------------------------------------------------- origin policy (§10.2)


@pytest.mark.parametrize(("origin", "host", "allowed", "ok"), [
    (None, "example.com", None, True),
    ("http://example.com", "example.com", None, True),
    ("https://example.com", "example.com", None, True),
    ("http://example.com:8080", "example.com:8080", None, True),
    ("https://example.com", "example.com:443", None, True),
    ("http://EXAMPLE.com", "example.com", None, True),
    ("http://evil.com", "example.com", None, False),
    ("http://example.com:8081", "example.com:8080", None, False),
    ("null", "example.com", None, False),
    ("garbage", "example.com", None, False),
    ("http://example.com", None, None, False),
    ("http://evil.com", "example.com", ["http://evil.com"], True),
    ("http://other.com", "example.com", ["http://evil.com"], False),
    ("http://any.com", "example.com", ["*"], True),
    ("http://example.com", "example.com", [], False),
])
def test_10_2_origin_policy(origin: str | None, host: str | None, allowed: list[str] | None,
                            ok: bool) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def test_10_2_cross_origin_request_gets_403() -> None:
    assert_refused(client_request(extra=[("Origin", "https://evil.example")]), 403)


def test_10_2_same_origin_request_is_accepted() -> None:
    server = ServerConnection()
    server.receive_data(client_request(extra=[("Origin", "https://example.com")]))
    assert isinstance(server.next_event(), Request)


def test_10_2_listed_origin_is_accepted_others_get_403() -> None:
    server = ServerConnection(origins=["https://app.example"])
    server.receive_data(client_request(extra=[("Origin", "https://app.example")]))
    assert isinstance(server.next_event(), Request)
    assert_refused(client_request(extra=[("Origin", "https://example.com")]), 403,
                   origins=["https://app.example"])


# ---------------------------------------------------------------- subprotocols (§4.2.2)


def test_4_2_2_server_picks_its_preferred_offered_subprotocol() -> None:
    server = ServerConnection(subprotocols=["v2", "v1"])
    server.receive_data(client_request(extra=[("Sec-WebSocket-Protocol", "v1, v2")]))
    assert isinstance(server.next_event(), Request)
    server.accept()
    _, headers, _ = parse_response(drain(server)[0])
    assert headers["sec-websocket-protocol"] == "v2"
    assert server.subprotocol == "v2"


def test_4_2_2_no_common_subprotocol_sends_none() -> None:
    server = ServerConnection(subprotocols=["v3"])
    server.receive_data(client_request(extra=[("Sec-WebSocket-Protocol", "v1")]))
    assert isinstance(server.next_event(), Request)
    server.accept()
    assert "sec-websocket-protocol" not in parse_response(drain(server)[0])[1]


def test_4_2_2_server_cannot_choose_unoffered_subprotocol() -> None:
    server = ServerConnection()
    server.receive_data(client_request(extra=[("Sec-WebSocket-Protocol", "v1")]))
    assert isinstance(server.next_event(), Request)
    with pytest.raises(LocalProtocolError):
        server.accept("v9")
    server.accept("v1")
    assert parse_response(drain(server)[0])[1]["sec-websocket-protocol"] == "v1"


def test_4_2_2_subprotocol_negotiated_end_to_end() -> None:
    pair = Pair(handshake=False, server=ServerConnection(subprotocols=["b"]),
                client=ClientConnection("ws://h/", subprotocols=["a", "b"]))
    pair.handshake()
    assert pair.client.subprotocol == "b" and pair.server.subprotocol == "b"


# ---------------------------------------------------------------- extensions (§9.1)


class _Identity:
    """A do-nothing extension, to check the negotiation plumbing."""

    name = "x-identity"
    rsv_bits = 0x20

    def begin_incoming(self, rsv: int) -> bool:
        return True

    def decode(self, data: bytes, final: bool, max_length: int | None) -> bytes:
        return data

    def begin_outgoing(self, size: int | None, compress: bool | None) -> int:
        return 0x20 if compress else 0

    def encode(self, data: bytes, final: bool) -> bytes:
        return data


class _ServerFactory:
    name = "x-identity"

    def negotiate(self, offers: list[ExtensionParams]) -> tuple[ExtensionParams, _Identity] | None:
        for params in offers:
            if params == (("ok", None),):
                return params, _Identity()
        return None


class _ClientFactory:
    name = "x-identity"

    def offers(self) -> list[ExtensionParams]:
        return [(("ok", None),)]

    def accept(self, params: ExtensionParams) -> _Identity:
        if params != (("ok", None),):
            raise NegotiationError("bad params")
        return _Identity()


def test_9_1_extension_negotiated_only_when_offered() -> None:
    server = ServerConnection(extensions=[_ServerFactory()])
    server.receive_data(client_request())
    assert isinstance(server.next_event(), Request)
    server.accept()
    assert "sec-websocket-extensions" not in parse_response(drain(server)[0])[1]
    assert server.extension is None


def test_9_1_server_declines_unacceptable_offer() -> None:
    server = ServerConnection(extensions=[_ServerFactory()])
    server.receive_data(client_request(extra=[("Sec-WebSocket-Extensions", "x-identity; bad")]))
    assert isinstance(server.next_event(), Request)
    server.accept()
    assert "sec-websocket-extensions" not in parse_response(drain(server)[0])[1]


def test_9_1_extension_negotiated_end_to_end_and_sets_rsv() -> None:
    pair = Pair(handshake=False, server=ServerConnection(extensions=[_ServerFactory()]),
                client=ClientConnection("ws://h/", extensions=[_ClientFactory()]))
    pair.handshake()
    assert pair.server.extension is not None and pair.client.extension is not None
    pair.client.send("hi", compress=True)
    assert pair.to_server() == [Text("hi")]


def test_9_1_malformed_extensions_header_gets_400() -> None:
    assert_refused(client_request(extra=[("Sec-WebSocket-Extensions", "a;;b")]), 400)


def test_4_1_client_fails_on_extension_it_did_not_offer() -> None:
    client = ClientConnection("ws://h/")
    drain(client)
    client.receive_data(server_response(client_key(client),
                                        extra=[("Sec-WebSocket-Extensions", "x-identity")]))
    closed = closed_event(list(client.events()))
    assert closed.error is not None
    assert client.state is State.CLOSED


def test_4_1_client_fails_on_extension_params_it_rejects() -> None:
    client = ClientConnection("ws://h/", extensions=[_ClientFactory()])
    drain(client)
    client.receive_data(server_response(client_key(client),
                                        extra=[("Sec-WebSocket-Extensions", "x-identity; no")]))
    assert closed_event(list(client.events())).error is not None


# ---------------------------------------------------------------- plain HTTP (hook)


def test_4_2_1_plain_http_request_is_surfaced_and_answered() -> None:
    server = ServerConnection()
    server.receive_data(b"GET /health?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    event = server.next_event()
    assert isinstance(event, HTTPRequest)
    assert (event.method, event.target, event.path) == ("GET", "/health?x=1", "/health")
    assert event.headers.get("host") == "example.com"
    server.respond(200, [("Content-Type", "text/plain")], b"ok")
    data, eof = drain(server)
    status, headers, body = parse_response(data)
    assert (status, headers["content-type"], headers["content-length"], body) == (
        200, "text/plain", "2", b"ok")
    assert headers["connection"] == "close"
    assert eof
    assert isinstance(server.next_event(), ConnectionClosed)
    assert server.state is State.CLOSED


def test_4_2_1_plain_http_request_cannot_be_accepted() -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(server.next_event(), HTTPRequest)
    with pytest.raises(LocalProtocolError):
        server.accept()


@pytest.mark.parametrize("status", [101, 100, 600, 42])
def test_4_2_1_respond_refuses_invalid_status(status: int) -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(server.next_event(), HTTPRequest)
    with pytest.raises(LocalProtocolError):
        server.respond(status)


# ---------------------------------------------------------------- trailing data


def test_4_2_2_frames_in_the_request_packet_reach_the_frame_parser() -> None:
    server = ServerConnection()
    server.receive_data(client_request() + cframe(TEXT, b"early") + cframe(BINARY, b"\x01")[:3])
    assert isinstance(server.next_event(), Request)
    server.accept()
    assert server.next_event() == Text("early")
    assert server.next_event() is None
    server.receive_data(cframe(BINARY, b"\x01")[3:])
    assert server.next_event() == Binary(b"\x01")


def test_4_2_2_frames_between_request_and_accept_are_kept() -> None:
    server = ServerConnection()
    server.receive_data(client_request())
    assert isinstance(server.next_event(), Request)
    server.receive_data(cframe(TEXT, b"waiting"))
    assert server.next_event() is None
    server.accept()
    assert server.next_event() == Text("waiting")


def test_4_1_frames_in_the_response_packet_reach_the_frame_parser() -> None:
    client = ClientConnection("ws://h/")
    drain(client)
    client.receive_data(server_response(client_key(client)) + sframe(TEXT, b"hello"))
    assert isinstance(client.next_event(), Accepted)
    assert client.next_event() == Text("hello")


def test_7_1_5_eof_during_handshake_reports_1006() -> None:
    """Regression: a client cut off mid-response reported 1002 though it sent nothing."""
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost:")
    server.receive_eof()
    closed = closed_event(list(server.events()))
    assert closed.code == 1006
    client = ClientConnection("ws://h/")
    drain(client)
    client.receive_data(b"HTTP/1.1 101 Switching")
    client.receive_eof()
    assert closed_event(list(client.events())).code == 1006


def test_4_2_2_accept_twice_or_too_early_is_a_local_error() -> None:
    server = ServerConnection()
    with pytest.raises(LocalProtocolError):
        server.accept()
    server.receive_data(client_request())
    assert isinstance(server.next_event(), Request)
    server.accept()
    with pytest.raises(LocalProtocolError):
        server.accept()
    with pytest.raises(LocalProtocolError):
        server.reject()


# ---------------------------------------------------------------- client request (§4.1)


def test_4_1_client_request_fields() -> None:
    client = ClientConnection("ws://example.com:8080/chat?x=1", origin="https://example.com",
                              subprotocols=["a", "b"])
    data = drain(client)[0]
    server = h11.Connection(h11.SERVER)
    server.receive_data(data)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert request.method == b"GET" and request.target == b"/chat?x=1"
    assert request.http_version == b"1.1"
    headers = {k.decode(): v.decode() for k, v in request.headers}
    assert headers["host"] == "example.com:8080"
    assert headers["upgrade"].lower() == "websocket"
    assert "upgrade" in headers["connection"].lower()
    assert headers["sec-websocket-version"] == "13"
    assert len(base64.b64decode(headers["sec-websocket-key"], validate=True)) == 16
    assert headers["origin"] == "https://example.com"
    assert headers["sec-websocket-protocol"] == "a, b"


def test_4_1_client_key_is_fresh_per_connection() -> None:
    keys = {client_key(ClientConnection("ws://h/")) for _ in range(50)}
    assert len(keys) == 50


def test_4_1_default_ports_are_left_out_of_host() -> None:
    assert ClientConnection("ws://h:80/").request_headers.get("host") == "h"
    assert ClientConnection("wss://h:443/").request_headers.get("host") == "h"
    assert ClientConnection("wss://h:80/").request_headers.get("host") == "h:80"


def test_4_1_sending_before_handshake_is_a_local_error() -> None:
    client = ClientConnection("ws://h/")
    for action in (lambda: client.send("x"), lambda: client.ping(), lambda: client.close()):
        with pytest.raises(LocalProtocolError):
            action()
    server = ServerConnection()
    with pytest.raises(LocalProtocolError):
        server.send(b"x")


# ---------------------------------------------------------------- client validation (§4.1)


def client_after(response: bytes, **kwargs: object) -> tuple[ClientConnection, list[object]]:
    client = ClientConnection("ws://h/", **kwargs)  # type: ignore[arg-type]
    drain(client)
    client.receive_data(response.replace(b"{KEY}", client_key(client).encode()))
    return client, list(client.events())


def _response_with(headers: list[tuple[str, str]], status: str = "101 Switching Protocols"
                   ) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_4_1_client_accepts_valid_101() -> None:
    client = ClientConnection("ws://h/")
    drain(client)
    client.receive_data(server_response(client_key(client),
                                        extra=[("Connection", "keep-alive")]))
    event = client.next_event()
    assert isinstance(event, Accepted) and event.subprotocol is None
    assert client.state is State.OPEN


def test_4_1_non_101_surfaces_status_headers_and_body() -> None:
    client, evs = client_after(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\nX-A: b\r\n\r\n"
                               b"nope")
    rejected = evs[0]
    assert isinstance(rejected, Rejected)
    assert (rejected.status, rejected.headers.get("x-a"), rejected.body) == (403, "b", b"nope")
    closed = closed_event(evs)  # type: ignore[arg-type]
    assert closed.error is not None and closed.error.status == 403
    assert client.state is State.CLOSED


def test_4_1_non_101_body_until_eof() -> None:
    client = ClientConnection("ws://h/")
    drain(client)
    client.receive_data(b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\npart one, ")
    assert list(client.events()) == []
    client.receive_data(b"part two")
    client.receive_eof()
    evs = list(client.events())
    assert isinstance(evs[0], Rejected) and evs[0].body == b"part one, part two"
    assert isinstance(evs[-1], ConnectionClosed)


def test_4_1_redirect_is_not_followed() -> None:
    _, evs = client_after(b"HTTP/1.1 302 Found\r\nLocation: ws://other/\r\n"
                          b"Content-Length: 0\r\n\r\n")
    assert isinstance(evs[0], Rejected) and evs[0].status == 302
    assert evs[0].headers.get("location") == "ws://other/"


def test_4_1_informational_responses_before_101_are_skipped() -> None:
    client = ClientConnection("ws://h/")
    drain(client)
    client.receive_data(b"HTTP/1.1 100 Continue\r\n\r\n" + server_response(client_key(client)))
    assert isinstance(client.next_event(), Accepted)


@pytest.mark.parametrize("headers", [
    [("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "{ACCEPT}")],
    [("Upgrade", "h2c"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "{ACCEPT}")],
    [("Upgrade", "websocket"), ("Sec-WebSocket-Accept", "{ACCEPT}")],
    [("Upgrade", "websocket"), ("Connection", "close"), ("Sec-WebSocket-Accept", "{ACCEPT}")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"),
     ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")],
    [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "{ACCEPT}"),
     ("Sec-WebSocket-Accept", "{ACCEPT}")],
], ids=["no-upgrade", "wrong-upgrade", "no-connection", "connection-close", "no-accept",
        "wrong-accept", "two-accepts"])
def test_4_1_invalid_101_fails_the_connection(headers: list[tuple[str, str]]) -> None:
    client = ClientConnection("ws://h/")
    drain(client)
    accept = accept_token(client_key(client))
    client.receive_data(_response_with([(k, v.replace("{ACCEPT}", accept)) for k, v in headers]))
    evs = list(client.events())
    assert len(evs) == 1
    closed = closed_event(evs)  # type: ignore[arg-type]
    assert closed.error is not None
    assert client.state is State.CLOSED
    data, eof = drain(client)
    assert data == b"" and eof  # no frame before the connection is established (§4.1)


@pytest.mark.parametrize("chosen", ["c", "a, b", "a, a"])
def test_4_1_subprotocol_not_offered_fails(chosen: str) -> None:
    client = ClientConnection("ws://h/", subprotocols=["a", "b"])
    drain(client)
    client.receive_data(server_response(client_key(client),
                                        extra=[("Sec-WebSocket-Protocol", chosen)]))
    assert closed_event(list(client.events())).error is not None


def test_4_1_subprotocol_without_offer_fails() -> None:
    client = ClientConnection("ws://h/")
    drain(client)
    client.receive_data(server_response(client_key(client),
                                        extra=[("Sec-WebSocket-Protocol", "a")]))
    assert closed_event(list(client.events())).error is not None


def test_4_1_offered_subprotocol_is_reported() -> None:
    client = ClientConnection("ws://h/", subprotocols=["a", "b"])
    drain(client)
    client.receive_data(server_response(client_key(client),
                                        extra=[("Sec-WebSocket-Protocol", "b")]))
    event = client.next_event()
    assert isinstance(event, Accepted) and event.subprotocol == "b"
    assert client.subprotocol == "b"


def test_4_1_malformed_response_fails() -> None:
    _, evs = client_after(b"HTTP/1.1 abc\r\n\r\n")
    assert closed_event(evs).error is not None  # type: ignore[arg-type]


def test_10_7_oversized_response_head_fails() -> None:
    """Regression: a whole oversized 101 head arriving at once was accepted."""
    client = ClientConnection("ws://h/", limits=Limits(max_header_bytes=1024))
    drain(client)
    client.receive_data(server_response(client_key(client), extra=[("X-Pad", "a" * 2000)]))
    assert closed_event(list(client.events())).error is not None


def test_4_2_1_request_followed_by_eof_can_still_be_answered() -> None:
    """Regression: an EOF right after a whole request head discarded the request."""
    server = ServerConnection()
    server.receive_data(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n")
    server.receive_eof()  # an HTTP client may half-close after its request
    event = server.next_event()
    assert isinstance(event, HTTPRequest)
    server.respond(200, [], b"ok")
    status, _, body = parse_response(drain(server)[0])
    assert (status, body) == (200, b"ok")
    assert isinstance(server.next_event(), ConnectionClosed)


def test_4_2_2_websocket_request_and_frames_then_eof() -> None:
    server = ServerConnection()
    server.receive_data(client_request() + cframe(TEXT, b"last words"))
    server.receive_eof()
    assert isinstance(server.next_event(), Request)
    server.accept()
    assert list(server.events()) == [Text("last words"), ConnectionClosed(1006, "")]
    data, eof = drain(server)
    assert data.startswith(b"HTTP/1.1 101 ") and eof


def test_4_2_1_eof_after_request_event_before_accept() -> None:
    server = ServerConnection()
    server.receive_data(client_request())
    assert isinstance(server.next_event(), Request)
    server.receive_eof()
    server.reject(503)
    assert parse_response(drain(server)[0])[0] == 503


@pytest.mark.parametrize("value", ["a b", "chat;v=1", "/x"])
def test_4_2_1_malformed_subprotocol_header_gets_400(value: str) -> None:
    assert_refused(client_request(extra=[("Sec-WebSocket-Protocol", value)]), 400)


def test_4_2_2_accept_with_invalid_extra_header_is_a_local_error() -> None:
    """Regression: h11's own exception escaped from accept()."""
    server = ServerConnection()
    server.receive_data(client_request())
    assert isinstance(server.next_event(), Request)
    with pytest.raises(LocalProtocolError):
        server.accept(extra_headers=[("X-Bad", "a\r\nInjected: yes")])
    assert server.state is State.CONNECTING
    server.accept(extra_headers=[("X-Good", "yes")])
    assert parse_response(drain(server)[0])[1]["x-good"] == "yes"


def test_4_2_1_respond_with_invalid_header_is_a_local_error() -> None:
    server = ServerConnection()
    server.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(server.next_event(), HTTPRequest)
    with pytest.raises(LocalProtocolError):
        server.respond(200, [("X-Bad", "a\nb")])
    server.respond(200)
    assert parse_response(drain(server)[0])[0] == 200


@pytest.mark.parametrize("kwargs", [
    {"extra_headers": [("X-Bad", "a\r\nInjected: yes")]},
    {"origin": "http://a\r\nInjected: yes"},
    {"subprotocols": ["not a token"]},
    {"subprotocols": ["a,b"]},
    {"target": "/ HTTP/1.0\r\nInjected: yes"},
    {"target": "/a b"},
])
def test_4_1_client_refuses_to_build_a_malformed_request(kwargs: dict[str, object]) -> None:
    """Regression: h11's exception escaped, and bad targets/subprotocols went on the wire."""
    with pytest.raises(ValueError):
        ClientConnection(host="h", **kwargs)  # type: ignore[arg-type]
