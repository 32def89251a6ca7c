"""The opening handshake against hostile HTTP: smuggled bodies, origins, Host, sizes, status lines.

* An upgrade request has no content (RFC 9112 §6.3, RFC 6455 §4.1): a body announced by
  ``Content-Length`` or ``Transfer-Encoding`` gets 400, and none of its bytes is ever parsed
  as frames, over the engine and over real sockets with both adapters.
* Origins are compared exactly as (scheme, host, port) (RFC 6454 §5, RFC 6455 §10.2); a
  ``str`` is not an allow-list; ``check_origin`` replaces the policy.
* ``Host`` appears once with a valid value (RFC 9112 §3.2); a request line over the head
  bound is 414, a header section over it 431; every status line has its reason phrase.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from rfc6455 import (
    ConnectionClosed,
    HTTPRequest,
    Limits,
    LocalProtocolError,
    Request,
    ServerConnection,
    State,
    Text,
)
from rfc6455._driver import ServerOptions
from rfc6455.handshake import origin_allowed, validate_origin_options

from .helpers import TEXT, cframe, client_request, closed_event, drain, split
from .sync.raw import RawClient

SMUGGLED = cframe(TEXT, b"smuggled")  # 14 bytes: a masked text frame a client would send


def answer(data: bytes, chunk: int | None = None, **kwargs: Any) -> tuple[
        ServerConnection, list[object], bytes, bool]:
    """Feed ``data`` to a fresh server (in pieces of ``chunk`` bytes): events, output, EOF."""
    server = ServerConnection(**kwargs)
    evs: list[object] = []
    for piece in split(data, chunk):
        server.receive_data(piece)
        evs.extend(server.events())
    out, eof = drain(server)
    return server, evs, out, eof


def status_of(out: bytes) -> int:
    assert out.startswith(b"HTTP/1.1 "), out[:60]
    return int(out.split(b" ", 2)[1])


def assert_refused(data: bytes, status: int, chunk: int | None = None, **kwargs: Any) -> bytes:
    """The server answered ``status`` by itself, sent nothing else, and closed."""
    server, evs, out, eof = answer(data, chunk, **kwargs)
    assert status_of(out) == status, out[:200]
    assert eof, "an HTTP error ends the connection"
    assert not any(isinstance(e, (Request, HTTPRequest, Text)) for e in evs), evs
    closed = closed_event(evs)  # type: ignore[arg-type]
    assert closed.error is not None and closed.error.status == status
    assert server.state is State.CLOSED
    return out


def upgrade(extra: list[tuple[str, str]] | None = None, **kwargs: Any) -> bytes:
    return client_request(extra=extra or [], **kwargs)


# ------------------------------------------------------- 1. no body on an upgrade (RFC 9112 §6.3)


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_upgrade_with_content_length_is_400_and_its_body_never_a_frame(chunk: int | None) -> None:
    request = upgrade([("Content-Length", str(len(SMUGGLED)))]) + SMUGGLED
    out = assert_refused(request, 400, chunk)
    assert b"\x81" not in out.partition(b"\r\n\r\n")[2], "no frame is echoed or sent"


@pytest.mark.parametrize("chunk", [None, 3])
def test_upgrade_with_chunked_body_is_400(chunk: int | None) -> None:
    body = f"{len(SMUGGLED):x}\r\n".encode() + SMUGGLED + b"\r\n0\r\n\r\n"
    assert_refused(upgrade([("Transfer-Encoding", "chunked")]) + body, 400, chunk)


def test_upgrade_with_both_content_length_and_transfer_encoding_is_400() -> None:
    request = upgrade([("Transfer-Encoding", "chunked"), ("Content-Length", "14")])
    assert_refused(request + b"e\r\n" + SMUGGLED + b"\r\n0\r\n\r\n", 400)


def test_upgrade_with_an_unknown_transfer_coding_is_refused_never_101() -> None:
    # h11 stops at a coding it does not implement before the request is known to be an
    # upgrade: 501 (RFC 9112 §6.1), which is documented; never a 101.
    assert_refused(upgrade([("Transfer-Encoding", "gzip")]) + SMUGGLED, 501)


@pytest.mark.parametrize("zero", ["0", "00"])
def test_upgrade_with_content_length_zero_is_accepted_and_frames_follow(zero: str) -> None:
    server, evs, _, _ = answer(upgrade([("Content-Length", zero)]) + SMUGGLED)
    assert [type(e) for e in evs] == [Request]
    server.accept()
    assert list(server.events()) == [Text("smuggled")]


def test_plain_request_with_a_body_is_answered_and_its_body_never_parsed() -> None:
    """A plain request may carry a body; the engine never reads it as frames: the request
    cannot be accepted, its answer ends the connection, and the body is dropped."""
    for extra in ([("Content-Length", str(len(SMUGGLED)))], [("Transfer-Encoding", "chunked")]):
        head = client_request(method="POST", target="/form", headers=[("Host", "example.com")],
                              extra=extra)
        server, evs, out, eof = answer(head + SMUGGLED + SMUGGLED)
        assert [type(e) for e in evs] == [HTTPRequest] and out == b"" and not eof
        with pytest.raises(LocalProtocolError):
            server.accept()
        server.respond(200, [("content-type", "text/plain")], b"ok")
        out, eof = drain(server)
        assert status_of(out) == 200 and out.endswith(b"\r\n\r\nok") and eof
        assert [e for e in server.events() if isinstance(e, Text)] == []
        assert server.state is State.CLOSED


def test_upgrade_h2c_with_a_body_is_a_plain_request_and_never_switches() -> None:
    head = client_request(headers=[("Host", "example.com"), ("Upgrade", "h2c"),
                                   ("Connection", "Upgrade"),
                                   ("Content-Length", str(len(SMUGGLED)))])
    server, evs, _, _ = answer(head + SMUGGLED)
    assert [type(e) for e in evs] == [HTTPRequest]
    with pytest.raises(LocalProtocolError):
        server.accept()


SMUGGLING = {
    "content-length": upgrade([("Content-Length", str(len(SMUGGLED)))]) + SMUGGLED,
    "chunked": upgrade([("Transfer-Encoding", "chunked")])
    + f"{len(SMUGGLED):x}\r\n".encode() + SMUGGLED + b"\r\n0\r\n\r\n",
}


def _smuggle_over_socket(port: int, how: str) -> bytes:
    with RawClient(port, handshake=False) as raw:
        raw.send(SMUGGLING[how])
        return raw.read_until_eof(10)


def _assert_smuggling_refused(reply: bytes) -> None:
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply[:80]
    body = reply.partition(b"\r\n\r\n")[2]
    assert b"smuggled" not in reply and not body.startswith(b"\x81"), body


@pytest.mark.parametrize("how", sorted(SMUGGLING))
def test_smuggled_frame_is_refused_by_the_asyncio_server(
        how: str, caplog: pytest.LogCaptureFixture) -> None:
    from rfc6455.asyncio import Connection, connect, serve

    async def echo(ws: Connection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as srv:
            reply = await asyncio.to_thread(_smuggle_over_socket, srv.port, how)
            _assert_smuggling_refused(reply)
            # Everyone else is still served.
            async with connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                await ws.send("still here")
                assert await ws.recv() == "still here"

    with caplog.at_level(logging.ERROR):
        asyncio.run(asyncio.wait_for(main(), 30))
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("how", sorted(SMUGGLING))
def test_smuggled_frame_is_refused_by_the_sync_server(
        how: str, caplog: pytest.LogCaptureFixture) -> None:
    from rfc6455.sync import Connection, connect, serve

    def echo(ws: Connection) -> None:
        for message in ws:
            ws.send(message)

    with caplog.at_level(logging.ERROR):
        server = serve(echo, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            _assert_smuggling_refused(_smuggle_over_socket(server.port, how))
            with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                ws.send("still here")
                assert ws.recv(timeout=10) == "still here"
        finally:
            server.shutdown()
            thread.join(5)
    assert not thread.is_alive()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# ---------------------------------------------------------------- 9. origins (RFC 6455 §10.2)


def with_origin(*origins: str) -> bytes:
    return upgrade([("Origin", o) for o in origins])


def outcome(request: bytes, **kwargs: Any) -> int:
    """101-to-be (the Request surfaced) or the status the engine answered by itself."""
    _, evs, out, _ = answer(request, **kwargs)
    if evs and isinstance(evs[0], Request):
        return 101
    return status_of(out)


@pytest.mark.parametrize("make", [
    lambda o: ServerConnection(origins=o),
    lambda o: ServerOptions(origins=o),
    lambda o: validate_origin_options(o, None),
])
@pytest.mark.parametrize("bad", ["https://trusted-site.com", b"https://trusted-site.com"])
def test_a_string_is_not_an_allow_list(make: Callable[[Any], object], bad: object) -> None:
    with pytest.raises(TypeError, match="origins"):
        make(bad)


def test_allow_list_entries_must_be_origins() -> None:
    for entry in ["trusted-site.com", "https://trusted-site.com/", "https://a.example/path",
                  "https://user@a.example", "https://a.example:99999", "https://", ""]:
        with pytest.raises(ValueError, match="origin"):
            ServerOptions(origins=[entry])
    with pytest.raises(TypeError):
        ServerConnection(origins=[42])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        ServerConnection(origins=iter(["https://a.example"]))  # type: ignore[arg-type]


TRUSTED = ["https://trusted-site.com"]


@pytest.mark.parametrize("origin", [
    "h", ":", "https://trusted-site.co", "https://trusted-site.com.evil.example",
    "https://evil.example/https://trusted-site.com", "http://trusted-site.com",
    "https://trusted-site.com:8443", "https://trusted-site.com/", "wss://trusted-site.com",
    "https://trusted\t-site.com", "https://trusted-site.com:", "null", "*", "",
])
def test_allow_list_refuses_everything_but_the_exact_origin(origin: str) -> None:
    assert outcome(with_origin(origin), origins=TRUSTED) == 403
    assert origin_allowed(origin, "example.com", TRUSTED) is False


@pytest.mark.parametrize("origin", [
    "https://trusted-site.com", "HTTPS://Trusted-Site.COM", "https://trusted-site.com:443",
])
def test_allow_list_matches_normalized_scheme_host_and_port(origin: str) -> None:
    assert outcome(with_origin(origin), origins=TRUSTED) == 101


@pytest.mark.parametrize(("entry", "origin", "ok"), [
    ("http://a.example:80", "http://a.example", True),
    ("http://a.example", "http://a.example:80", True),
    ("http://a.example", "http://a.example:8080", False),
    ("https://[::1]:8443", "https://[0:0::1]:8443", True),
    ("https://[::1]", "https://[::2]", False),
    ("https://127.0.0.1", "https://127.0.0.1:443", True),
    ("app://local", "app://local", True),
    ("app://local", "app://local:1", False),
])
def test_origin_comparison(entry: str, origin: str, ok: bool) -> None:
    assert origin_allowed(origin, "example.com", [entry]) is ok


def test_null_matches_only_a_literal_null_entry() -> None:
    assert outcome(with_origin("null"), origins=TRUSTED) == 403
    assert outcome(with_origin("null"), origins=[*TRUSTED, "null"]) == 101
    assert outcome(with_origin("null")) == 403  # the default policy refuses it too


def test_no_origin_against_an_allow_list_is_403_unless_none_is_listed() -> None:
    assert outcome(upgrade(), origins=TRUSTED) == 403
    assert outcome(upgrade(), origins=[*TRUSTED, None]) == 101
    assert outcome(upgrade(), origins=[]) == 403
    assert outcome(upgrade()) == 101  # the default policy: a non-browser client


def test_star_disables_the_origin_check() -> None:
    for request in (upgrade(), with_origin("https://evil.example"), with_origin("null")):
        assert outcome(request, origins=["*"]) == 101


def test_more_than_one_origin_header_is_403() -> None:
    twice = with_origin("https://trusted-site.com", "https://trusted-site.com")
    assert outcome(twice, origins=TRUSTED) == 403
    assert outcome(with_origin("https://example.com", "https://example.com")) == 403


def test_default_policy_is_unchanged() -> None:
    assert outcome(with_origin("https://example.com")) == 101
    assert outcome(with_origin("http://EXAMPLE.com:8080")) == 101  # Host names no port
    assert outcome(with_origin("https://evil.example")) == 403
    assert outcome(with_origin("https://example.com.evil.example")) == 403


def host_allow_list(request: Request) -> bool:
    """A ``check_origin`` against DNS rebinding: only our own names, any origin."""
    return request.host in {"example.com", "example.com:8080"}


def test_check_origin_replaces_the_policy() -> None:
    seen: list[Request] = []

    def check(request: Request) -> bool:
        seen.append(request)
        return host_allow_list(request)

    assert outcome(with_origin("https://evil.example"), check_origin=check) == 101
    assert outcome(upgrade(), check_origin=check) == 101
    rebound = client_request(headers=[("Host", "attacker.example"), ("Upgrade", "websocket"),
                                      ("Connection", "Upgrade"),
                                      ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                      ("Sec-WebSocket-Version", "13")])
    assert outcome(rebound, check_origin=check) == 403
    assert [r.host for r in seen] == ["example.com", "example.com", "attacker.example"]
    assert all(isinstance(r, Request) for r in seen)


def test_check_origin_that_raises_refuses_with_403_and_keeps_the_exception() -> None:
    failure = RuntimeError("policy store down")

    def broken(request: Request) -> bool:
        raise failure

    _, evs, out, eof = answer(upgrade(), check_origin=broken)
    assert status_of(out) == 403 and eof
    assert b"policy store down" not in out, "the server's internals are not told to the peer"
    closed = closed_event(evs)  # type: ignore[arg-type]
    assert closed.error is not None and closed.error.status == 403
    assert closed.error.__cause__ is failure


def test_check_origin_through_server_options() -> None:
    options = ServerOptions(check_origin=host_allow_list)
    server = options.new_engine()
    server.receive_data(client_request(headers=[
        ("Host", "attacker.example"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]))
    assert isinstance(next(server.events()), ConnectionClosed)
    assert status_of(drain(server)[0]) == 403


def test_check_origin_through_serve(caplog: pytest.LogCaptureFixture) -> None:
    """The adapters take ``check_origin`` like any server option (ServerOptions)."""
    from rfc6455.sync import Connection, connect, serve

    def echo(ws: Connection) -> None:
        for message in ws:
            ws.send(message)

    def loopback_only(request: Request) -> bool:
        return (request.host or "").startswith("127.0.0.1:")

    with caplog.at_level(logging.ERROR):
        server = serve(echo, "127.0.0.1", 0, check_origin=loopback_only)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with RawClient(server.port, handshake=False) as raw:
                raw.send(with_host("attacker.example"))
                assert raw.read_until_eof(10).startswith(b"HTTP/1.1 403 Forbidden\r\n")
            with connect(f"ws://127.0.0.1:{server.port}/", origin="https://any.example") as ws:
                ws.send("allowed")
                assert ws.recv(timeout=10) == "allowed"
        finally:
            server.shutdown()
            thread.join(5)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_check_origin_options_are_validated() -> None:
    with pytest.raises(TypeError, match="check_origin"):
        ServerOptions(check_origin="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        ServerConnection(origins=TRUSTED, check_origin=host_allow_list)
    with pytest.raises(ValueError, match="not both"):
        ServerOptions(origins=TRUSTED, check_origin=host_allow_list)


# ------------------------------------------------------------ 12a. Host (RFC 9112 §3.2)


def with_host(*hosts: str, **kwargs: Any) -> bytes:
    return client_request(headers=[*(("Host", h) for h in hosts), ("Upgrade", "websocket"),
                                   ("Connection", "Upgrade"),
                                   ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                   ("Sec-WebSocket-Version", "13")], **kwargs)


@pytest.mark.parametrize("host", [
    "exa mple.com", "example.com/ws", "example.com:80:80", "example.com:http", "user@example.com",
    "[::1", "[zz::1]", "[::1]x", "example.com:65536", "example.com?", "example.com#x",
    "ex\"ample.com", "example.com:8080/", "",
])
def test_invalid_host_value_is_400(host: str) -> None:
    assert_refused(with_host(host), 400)


@pytest.mark.parametrize("host", ["exa mple.com", "example.com/x"])
def test_invalid_host_on_a_plain_request_is_400(host: str) -> None:
    assert_refused(client_request(headers=[("Host", host)]), 400)


@pytest.mark.parametrize("host", [
    "example.com", "EXAMPLE.com:8080", "127.0.0.1:80", "[::1]:8080", "[2001:db8::1]",
    "xn--bcher-kva.example", "a_b.example", "example.com.", "example.com:", "[v1.fe]",
])
def test_valid_host_values_are_accepted(host: str) -> None:
    assert outcome(with_host(host)) == 101


def test_host_must_appear_exactly_once() -> None:
    assert_refused(with_host("example.com", "example.com"), 400)
    assert_refused(with_host(), 400)
    assert_refused(client_request(method="GET", headers=[("Host", "a"), ("Host", "b")]), 400)


# --------------------------------------------------- 12b. 414 request line, 431 header section


HEAD_LIMIT = Limits(max_header_bytes=4096)


@pytest.mark.parametrize("chunk", [None, 1000, 4096, 5000])
def test_request_line_over_the_bound_is_414(chunk: int | None) -> None:
    out = assert_refused(upgrade(target="/" + "a" * 100_000), 414, chunk, limits=HEAD_LIMIT)
    # "URI Too Long" in RFC 9110 §15.5.15, whatever this Python's http.HTTPStatus says.
    assert out.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert_refused(upgrade(target="/" + "a" * 4100), 414, chunk, limits=HEAD_LIMIT)


@pytest.mark.parametrize("chunk", [None, 1000, 4096, 5000])
def test_header_section_over_the_bound_is_431(chunk: int | None) -> None:
    big = upgrade([("X-Pad", "b" * 100_000)])
    out = assert_refused(big, 431, chunk, limits=HEAD_LIMIT)
    assert out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    # A long request line still under the bound, with headers that push the head over it.
    assert_refused(upgrade([("X-Pad", "b" * 2000)], target="/" + "a" * 3000), 431, chunk,
                   limits=HEAD_LIMIT)


def test_head_just_under_the_bound_is_accepted() -> None:
    request = upgrade(target="/" + "a" * 3000)
    assert len(request) < HEAD_LIMIT.max_header_bytes
    assert outcome(request, limits=HEAD_LIMIT) == 101


# ------------------------------------------------------------ 12c. reason phrases (RFC 9112 §4)


def status_line(out: bytes) -> bytes:
    return out.partition(b"\r\n")[0]


def test_101_says_switching_protocols() -> None:
    server, _, _, _ = answer(upgrade())
    server.accept()
    assert status_line(drain(server)[0]) == b"HTTP/1.1 101 Switching Protocols"


@pytest.mark.parametrize(("request_bytes", "line"), [
    (upgrade([("Content-Length", "1")]) + b"x", b"HTTP/1.1 400 Bad Request"),
    (b"\x16\x03\x01 not HTTP\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
    (with_origin("https://evil.example"), b"HTTP/1.1 403 Forbidden"),
    (upgrade().replace(b"Version: 13", b"Version: 8"), b"HTTP/1.1 426 Upgrade Required"),
])
def test_errors_carry_their_reason_phrase(request_bytes: bytes, line: bytes) -> None:
    _, _, out, _ = answer(request_bytes)
    assert status_line(out) == line


@pytest.mark.parametrize(("status", "line"), [
    (200, b"HTTP/1.1 200 OK"), (204, b"HTTP/1.1 204 No Content"),
    (301, b"HTTP/1.1 301 Moved Permanently"), (404, b"HTTP/1.1 404 Not Found"),
    (503, b"HTTP/1.1 503 Service Unavailable"), (299, b"HTTP/1.1 299 "),
])
def test_application_responses_carry_their_reason_phrase(status: int, line: bytes) -> None:
    server, _, _, _ = answer(client_request(headers=[("Host", "example.com")]))
    server.respond(status, [], b"")
    assert status_line(drain(server)[0]) == line
