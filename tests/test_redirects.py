"""Client redirects (RFC 6455 §4.1, RFC 9110 §15.4): where both clients follow a 3xx.

Unit tests of the shared rule (:func:`rfc6455._driver.redirect`,
:class:`rfc6455._driver.Redirects`), then both clients end to end over loopback
against a hostile HTTP server written here: it answers chosen paths with a
redirect and records the headers of every request it gets, so a test sees
exactly which credentials reached which origin.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import logging
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from rfc6455 import asyncio as rfc_asyncio
from rfc6455 import sync as rfc_sync
from rfc6455._driver import ClientOptions, InvalidRedirect, InvalidStatus, Redirects, redirect
from rfc6455.errors import WebSocketError
from rfc6455.headers import Headers

BACKENDS = ("asyncio", "sync")

#: Credentials as a caller passes them in ``extra_headers``, names in mixed case.
CREDENTIALS = [("Authorization", "Bearer s3cret"), ("cookie", "session=42"),
               ("PROXY-AUTHORIZATION", "Basic dXNlcjpwdw==")]
TRACE = ("X-Trace", "t-1")
CREDENTIAL_NAMES = {"authorization", "cookie", "proxy-authorization"}


# ------------------------------------------------------------- the shared rule


def names(headers: tuple[tuple[str, str], ...]) -> set[str]:
    return {name.lower() for name, _ in headers}


@pytest.mark.parametrize(("current", "location", "expected"), [
    ("ws://a.example:8000/x/y?q=1", "/z", "ws://a.example:8000/z"),  # absolute path
    ("ws://a.example:8000/x/y", "z?k=1", "ws://a.example:8000/x/z?k=1"),  # relative path
    ("wss://a.example/x", "/y", "wss://a.example/y"),  # stays on TLS
    ("ws://a.example/x", "?page=2", "ws://a.example/x?page=2"),
    ("ws://a.example/x", "ws://a.example/y", "ws://a.example/y"),
    ("ws://a.example/x", "http://a.example/y", "ws://a.example/y"),  # RFC 6455 §3
    ("wss://a.example/x", "https://a.example/y", "wss://a.example/y"),
    ("ws://a.example/x", "HTTP://a.example/y", "ws://a.example/y"),  # RFC 3986 §3.1
    ("ws://a.example/x", "/y#section", "ws://a.example/y"),  # no fragment in ws URIs
    ("ws://[::1]:5000/x", "/y", "ws://[::1]:5000/y"),
    ("ws://a.example/x", "ws://a.example:80/y", "ws://a.example:80/y"),
    ("ws://a.example/x", "ws://A.EXAMPLE/y", "ws://A.EXAMPLE/y"),
])
def test_same_origin_target_keeps_every_header(current: str, location: str,
                                               expected: str) -> None:
    headers = (*CREDENTIALS, TRACE)
    new_uri, sent = redirect(current, location, headers, 302)
    assert new_uri == expected
    assert sent == headers


@pytest.mark.parametrize(("current", "location", "expected"), [
    ("ws://a.example:8000/x", "ws://a.example:8001/x", "ws://a.example:8001/x"),  # port
    ("ws://a.example/x", "ws://b.example/x", "ws://b.example/x"),  # host
    ("ws://a.example/x", "//b.example/y", "ws://b.example/y"),  # network-path reference
    ("wss://a.example/x", "//b.example/y", "wss://b.example/y"),  # keeps the scheme
    ("ws://a.example/x", "wss://a.example/x", "wss://a.example/x"),  # scheme (an upgrade)
    ("ws://a.example/x", "https://a.example/x", "wss://a.example/x"),
    ("ws://a.example/x", "http://a.example:8080/x", "ws://a.example:8080/x"),
    ("ws://127.0.0.1/x", "ws://127.0.0.2/x", "ws://127.0.0.2/x"),
])
def test_cross_origin_target_drops_credentials(current: str, location: str,
                                               expected: str) -> None:
    new_uri, sent = redirect(current, location, [*CREDENTIALS, TRACE], 307)
    assert new_uri == expected
    assert sent == (TRACE,)


def test_credential_names_match_in_any_case() -> None:
    headers = [("aUtHoRiZaTiOn", "a"), ("COOKIE", "c"), ("Proxy-authorization", "p"),
               ("Cookie2", "kept: not a credential header"), TRACE]
    _, sent = redirect("ws://a/", "ws://b/", headers, 302)
    assert sent == (("Cookie2", "kept: not a credential header"), TRACE)


@pytest.mark.parametrize("location", [
    "ws://a.example/", "http://a.example/", "ws://b.example/", "HTTP://a.example/"])
def test_downgrade_from_wss_is_refused(location: str) -> None:
    current = "wss://a.example/x"
    with pytest.raises(InvalidRedirect) as info:
        redirect(current, location, CREDENTIALS, 301)
    error = info.value
    assert isinstance(error, WebSocketError)
    assert (error.status, error.location) == (301, location)
    assert "TLS" in error.reason and location in str(error)


@pytest.mark.parametrize("location", [
    "ftp://a.example/", "file:///etc/passwd", "javascript:alert(1)", "mailto:x@a.example",
    "data:text/plain,hi", "gopher://a.example/"])
def test_other_schemes_are_refused(location: str) -> None:
    with pytest.raises(InvalidRedirect) as info:
        redirect("ws://a.example/", location, (), 302)
    assert info.value.location == location
    assert "unsupported scheme" in info.value.reason


@pytest.mark.parametrize("location", [
    "http://[::1", "ws://a.example:99999/", "ws://a.example:port/", "ws:///no-host",
    "http://", "/a b", "/a\tb", "/caf\u00e9", "/\x00", "ws://a.example/\x7f"])
def test_locations_that_are_not_uris_are_refused(location: str) -> None:
    with pytest.raises(InvalidRedirect) as info:
        redirect("ws://a.example/", location, (), 303)
    assert (info.value.status, info.value.location) == (303, location)


def status(code: int, *locations: str) -> InvalidStatus:
    return InvalidStatus(code, Headers([("Location", value) for value in locations]), b"")


def test_redirects_follows_at_most_max_redirects() -> None:
    hops = Redirects("ws://a/0", ClientOptions(max_redirects=2, extra_headers=CREDENTIALS))
    assert hops.follow(status(302, "/1")) and hops.uri == "ws://a/1"
    assert hops.follow(status(308, "/2")) and hops.uri == "ws://a/2"
    assert not hops.follow(status(302, "/3"))  # the third: its InvalidStatus is raised
    assert hops.uri == "ws://a/2" and hops.extra_headers == tuple(CREDENTIALS)


def test_redirects_past_the_limit_is_not_refused_but_raised_as_status() -> None:
    """Past ``max_redirects`` nothing is followed, so nothing is refused either."""
    hops = Redirects("wss://a/", ClientOptions(max_redirects=0))
    assert not hops.follow(status(302, "ws://a/"))


@pytest.mark.parametrize("error", [
    status(200, "/x"), status(404, "/x"), status(401), status(302), status(302, ""),
    status(400, "/x")])
def test_redirects_only_follows_3xx_with_a_location(error: InvalidStatus) -> None:
    hops = Redirects("ws://a/", ClientOptions())
    assert not hops.follow(error)
    assert hops.uri == "ws://a/"


def test_several_locations_are_refused() -> None:
    hops = Redirects("ws://a/", ClientOptions())
    with pytest.raises(InvalidRedirect, match="several Location"):
        hops.follow(status(302, "/x", "ws://evil.example/"))


def test_credentials_dropped_once_stay_dropped() -> None:
    """Back at the first origin after a detour, the credentials are not restored: what
    the detour's server redirects to is its choice, not the caller's."""
    hops = Redirects("ws://a/", ClientOptions(extra_headers=[*CREDENTIALS, TRACE]))
    assert hops.follow(status(302, "ws://b/"))
    assert hops.follow(status(302, "ws://a/"))
    assert hops.uri == "ws://a/" and hops.extra_headers == (TRACE,)


def test_exported_from_both_adapters() -> None:
    for module in (rfc_asyncio, rfc_sync):
        assert module.InvalidRedirect is InvalidRedirect
        assert "InvalidRedirect" in module.__all__


# ---------------------------------------------------- a hostile server, end to end

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class RawServer:
    """An HTTP server on loopback that redirects the paths in :attr:`routes`.

    Every request's path and headers go to :attr:`requests`. A path not in
    :attr:`routes` gets a valid 101 (§4.2.2), then the closing handshake.
    Connections are handled one at a time, as a client makes them.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 context: ssl.SSLContext | None = None) -> None:
        self.listener = socket.create_server((host, port))
        self.listener.settimeout(0.05)
        self.host = host
        self.port: int = self.listener.getsockname()[1]
        self.context = context
        self.routes: dict[str, tuple[int, str]] = {}
        self.requests: list[tuple[str, list[tuple[str, str]]]] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"{'https' if self.context else 'http'}://{self.host}:{self.port}"

    def ws(self, path: str) -> str:
        return f"{'wss' if self.context else 'ws'}://{self.host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def headers_at(self, path: str) -> list[tuple[str, str]]:
        [headers] = [headers for seen, headers in self.requests if seen == path]
        return headers

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            try:
                conn.settimeout(10)
                if self.context is not None:
                    conn = self.context.wrap_socket(conn, server_side=True)
                self._answer(conn)
            except BaseException as exc:  # reported by close()
                self.errors.append(exc)
            finally:
                conn.close()

    def _answer(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return  # the client gave up (e.g. a TLS client refusing our certificate)
            head += chunk
            assert len(head) < 65536
        lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = [(name.strip(), value.strip())
                   for name, _, value in (line.partition(":") for line in lines[1:])]
        self.requests.append((path, headers))
        if path in self.routes:
            code, location = self.routes[path]
            conn.sendall(f"HTTP/1.1 {code} Redirect\r\nLocation: {location}\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n".encode("latin-1"))
            return
        [key] = [value for name, value in headers if name.lower() == "sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        # The client's close frame (§5.5.1): masked, 2-byte code, nothing else.
        frame = b""
        while len(frame) < 2 or len(frame) < 6 + (frame[1] & 0x7F):
            chunk = conn.recv(4096)
            assert chunk, "the client left without a closing handshake"
            frame += chunk
        assert frame[0] == 0x88, frame
        conn.sendall(b"\x88\x02\x03\xe8")  # our close reply: 1000

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.listener.close()
        assert not self._thread.is_alive()
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def servers() -> Iterator[list[RawServer]]:
    """Every RawServer a test starts, closed (and its errors raised) at the end."""
    started: list[RawServer] = []
    yield started
    for server in started:
        server.close()


@pytest.fixture(autouse=True)
def no_silent_failures(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No ERROR logged and no socket or transport left unclosed."""
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) for a certificate naming 127.0.0.1."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def open_and_close(backend: str, uri: str, **options: Any) -> None:
    """Open a connection with ``backend``'s client and close it normally."""
    options = {"extra_headers": [*CREDENTIALS, TRACE], "close_timeout": 5.0,
               "open_timeout": 10.0, **options}
    if backend == "sync":
        with rfc_sync.connect(uri, **options) as ws:
            ws.close()
        return

    async def main() -> None:
        async with rfc_asyncio.connect(uri, **options):
            pass

    asyncio.run(main())


def start(servers: list[RawServer], **kwargs: Any) -> RawServer:
    server = RawServer(**kwargs)
    servers.append(server)
    return server


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_origin_port_gets_no_credentials(backend: str, servers: list[RawServer]) -> None:
    first, second = start(servers), start(servers)
    first.routes["/start"] = (302, second.ws("/final"))
    open_and_close(backend, first.ws("/start"))
    assert names(tuple(first.headers_at("/start"))) >= CREDENTIAL_NAMES  # the caller's choice
    assert second.paths() == ["/final"]
    received = second.headers_at("/final")
    assert TRACE in received
    assert not names(tuple(received)) & CREDENTIAL_NAMES
    assert ("host", f"127.0.0.1:{second.port}") in [(n.lower(), v) for n, v in received]


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_origin_host_gets_no_credentials(backend: str, servers: list[RawServer]) -> None:
    """Only the host differs: 127.0.0.2 on the same port is another origin."""
    first = start(servers)
    second = start(servers, host="127.0.0.2", port=first.port)
    first.routes["/start"] = (301, second.ws("/final"))
    open_and_close(backend, first.ws("/start"))
    received = second.headers_at("/final")
    assert TRACE in received and not names(tuple(received)) & CREDENTIAL_NAMES


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", ["relative", "absolute-path", "ws", "http", "HTTP",
                                  "fragment"])
def test_same_origin_keeps_credentials(backend: str, form: str,
                                       servers: list[RawServer]) -> None:
    server = start(servers)
    location = {"relative": "final?x=1", "absolute-path": "/final?x=1",
                "ws": server.ws("/final?x=1"), "http": f"{server.origin}/final?x=1",
                "HTTP": f"HTTP://127.0.0.1:{server.port}/final?x=1",
                "fragment": "/final?x=1#top"}[form]
    server.routes["/start"] = (307, location)
    open_and_close(backend, server.ws("/start"))
    assert server.paths() == ["/start", "/final?x=1"]
    assert set(CREDENTIALS) | {TRACE} <= set(server.headers_at("/final?x=1"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_network_path_location_to_another_host(backend: str,
                                               servers: list[RawServer]) -> None:
    """``//host:port/path`` keeps the scheme and changes the origin."""
    first = start(servers)
    second = start(servers, host="127.0.0.2", port=first.port)
    first.routes["/start"] = (302, f"//127.0.0.2:{first.port}/final")
    open_and_close(backend, first.ws("/start"))
    assert not names(tuple(second.headers_at("/final"))) & CREDENTIAL_NAMES


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", ["https", "wss"])
def test_secure_location_maps_to_wss(backend: str, scheme: str, servers: list[RawServer],
                                     tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """From ws to an https (or wss) Location on another port: TLS there, no credentials."""
    server_ctx, client_ctx = tls
    first, second = start(servers), start(servers, context=server_ctx)
    first.routes["/start"] = (302, f"{scheme}://127.0.0.1:{second.port}/final")
    open_and_close(backend, first.ws("/start"), ssl=client_ctx)
    assert second.paths() == ["/final"]
    assert not names(tuple(second.headers_at("/final"))) & CREDENTIAL_NAMES


@pytest.mark.parametrize("backend", BACKENDS)
def test_https_location_from_wss_stays_secure(backend: str, servers: list[RawServer],
                                              tls: tuple[ssl.SSLContext, ssl.SSLContext]
                                              ) -> None:
    server_ctx, client_ctx = tls
    server = start(servers, context=server_ctx)
    server.routes["/start"] = (302, f"{server.origin}/final")  # https://127.0.0.1:port
    open_and_close(backend, server.ws("/start"), ssl=client_ctx)
    assert set(CREDENTIALS) <= set(server.headers_at("/final"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_wss_to_ws_is_refused(backend: str, scheme: str, servers: list[RawServer],
                              tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """A TLS server cannot send the client, credentials and all, into the clear."""
    server_ctx, client_ctx = tls
    first, clear = start(servers, context=server_ctx), start(servers)
    location = f"{scheme}://127.0.0.1:{clear.port}/final"
    first.routes["/start"] = (302, location)
    with pytest.raises(InvalidRedirect) as info:
        open_and_close(backend, first.ws("/start"), ssl=client_ctx)
    assert (info.value.status, info.value.location) == (302, location)
    assert first.paths() == ["/start"]
    assert clear.requests == []  # nothing went out in the clear


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("location", ["ftp://127.0.0.1/", "http://[::1", "/a b"])
def test_bad_location_is_refused(backend: str, location: str,
                                 servers: list[RawServer]) -> None:
    server = start(servers)
    server.routes["/start"] = (302, location)
    with pytest.raises(InvalidRedirect) as info:
        open_and_close(backend, server.ws("/start"))
    assert info.value.location == location
    assert server.paths() == ["/start"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_too_many_redirects_raise_the_last_status(backend: str,
                                                  servers: list[RawServer]) -> None:
    """Ping-pong between two origins: followed ``max_redirects`` times, then the last
    answer is raised; the credentials never come back once another origin was reached."""
    first, second = start(servers), start(servers)
    first.routes["/0"] = (302, second.ws("/1"))
    second.routes["/1"] = (302, first.ws("/2"))
    first.routes["/2"] = (302, second.ws("/3"))
    with pytest.raises(InvalidStatus) as info:
        open_and_close(backend, first.ws("/0"), max_redirects=2)
    assert info.value.status == 302
    assert info.value.headers.get("location") == second.ws("/3")
    assert first.paths() == ["/0", "/2"] and second.paths() == ["/1"]
    assert not names(tuple(first.headers_at("/2"))) & CREDENTIAL_NAMES


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_redirect_followed_with_max_redirects_zero(backend: str,
                                                      servers: list[RawServer]) -> None:
    first, second = start(servers), start(servers)
    first.routes["/0"] = (302, second.ws("/1"))
    with pytest.raises(InvalidStatus):
        open_and_close(backend, first.ws("/0"), max_redirects=0)
    assert second.requests == []
