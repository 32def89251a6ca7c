"""The echo server as a subprocess, both backends, driven by the `websockets` library."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import threading
import zlib
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import trustme
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .servers import BACKENDS, Server, masked_frame, raw_client

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", params=BACKENDS)
def echo(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server("echo", request.param, "--max-size", "4M") as server:
        yield server


SIZES = [0, 1, 125, 126, 127, 65535, 65536, 1 << 20, 4 << 20]


@pytest.mark.parametrize("size", SIZES)
def test_text_and_binary_echoed_with_their_type_rfc6455_s5_6(echo: Server, size: int) -> None:
    """§5.6: a text message comes back as text, a binary one as binary, every length form."""
    text = ("é" * (size // 2) + "x" * (size % 2))
    data = os.urandom(size)
    with connect(echo.url, compression=None, max_size=None) as ws:
        ws.send(text)
        assert ws.recv(timeout=20) == text
        ws.send(data)
        reply = ws.recv(timeout=20)
        assert isinstance(reply, bytes) and reply == data


def test_fragmented_messages_echoed_rfc6455_s5_4(echo: Server) -> None:
    """§5.4: a message in several frames is echoed whole, type preserved."""
    with connect(echo.url, compression=None) as ws:
        ws.send(["frag", "ment", "ed ✓"])
        assert ws.recv(timeout=10) == "fragmented ✓"
        ws.send([b"\x00" * 1000, b"\x01" * 70000, b"\x02"])
        assert ws.recv(timeout=10) == b"\x00" * 1000 + b"\x01" * 70000 + b"\x02"


def test_control_frames_interleaved_rfc6455_s5_5(echo: Server) -> None:
    """§5.5.2: the server answers pings, also while messages flow."""
    with connect(echo.url) as ws:
        for i in range(5):
            pong = ws.ping(f"p{i}".encode())
            ws.send(f"m{i}")
            assert ws.recv(timeout=10) == f"m{i}"
            assert pong.wait(10)


def test_compression_negotiated_and_used_rfc7692(echo: Server) -> None:
    """RFC 7692 §5: permessage-deflate is accepted; compressed messages echo intact."""
    with connect(echo.url, compression="deflate", max_size=None) as ws:
        assert ws.response is not None
        offered = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        assert offered.startswith("permessage-deflate")
        messages: list[str | bytes] = ["a" * 100_000, os.urandom(50_000), "short", b""]
        for message in messages:
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.send([b"z" * 30_000, b"y" * 30_000])
        assert ws.recv(timeout=10) == b"z" * 30_000 + b"y" * 30_000


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_compression_option_rfc7692_s5(backend: str) -> None:
    with Server("echo", backend, "--no-compression") as server, \
            connect(server.url, compression="deflate") as ws:
        assert ws.response is not None
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        ws.send("plain")
        assert ws.recv(timeout=10) == "plain"


def test_message_over_max_size_closes_1009_rfc6455_s7_4_1(echo: Server) -> None:
    """§7.4.1: 1009 for a message larger than the server accepts (--max-size 4M)."""
    with connect(echo.url, compression=None, max_size=None) as ws:
        ws.send(b"x" * ((4 << 20) + 1))
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=20)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_any_path_is_a_websocket_endpoint_rfc6455_s4_1(echo: Server) -> None:
    base = echo.url.rsplit("/", 1)[0]
    for path in ("/", "/ws", "/some/where?x=1"):
        with connect(base + path) as ws:
            ws.send(path)
            assert ws.recv(timeout=10) == path


def test_concurrent_clients(echo: Server) -> None:
    errors: list[BaseException] = []

    def talk(n: int) -> None:
        try:
            with connect(echo.url) as ws:
                for i in range(20):
                    ws.send(f"{n}:{i}")
                    assert ws.recv(timeout=10) == f"{n}:{i}"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=talk, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def _get(server: Server, path: str, headers: dict[str, str] | None = None) -> tuple[
        int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, \
            response.read()
    finally:
        conn.close()


def test_plain_http_page_health_and_404_rfc6455_s4_2_1(echo: Server) -> None:
    """§4.2.1: requests without an upgrade are the server's to answer."""
    status, headers, body = _get(echo, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"Echo tester" in body and b"new WebSocket(" in body
    status, _, body = _get(echo, "/healthz")
    assert (status, body) == (200, b"ok\n")
    status, _, _ = _get(echo, "/nope")
    assert status == 404
    status, _, _ = _get(echo, "/ws")
    assert status == 404


def test_origin_policy_rfc6455_s10_2(echo: Server) -> None:
    """§10.2: a page from another origin is refused (403); same host passes."""
    with pytest.raises(InvalidStatus) as info:
        connect(echo.url, origin="http://evil.example")  # type: ignore[call-overload]
    assert info.value.response.status_code == 403
    with connect(echo.url, origin=f"http://{echo.host}:{echo.port}") as ws:  # type: ignore[call-overload]
        ws.send("same origin")
        assert ws.recv(timeout=10) == "same origin"


@pytest.mark.parametrize("backend", BACKENDS)
def test_origin_allow_list_rfc6455_s10_2(backend: str) -> None:
    with Server("echo", backend, "--origin", "https://app.example",
                "--origin", "https://other.example") as server:
        for origin in ("https://app.example", "https://other.example"):
            with connect(server.url, origin=origin) as ws:  # type: ignore[call-overload]
                ws.send(origin)
                assert ws.recv(timeout=10) == origin
        with pytest.raises(InvalidStatus) as info:
            connect(server.url, origin="https://evil.example")  # type: ignore[call-overload]
        assert info.value.response.status_code == 403
        # With a list, a client without Origin is refused too ...
        with pytest.raises(InvalidStatus) as info:
            connect(server.url)
        assert info.value.response.status_code == 403
    # ... unless the list says 'none'.
    with Server("echo", backend, "--origin", "https://app.example", "--origin", "none") as server:
        with connect(server.url) as ws:
            ws.send("no origin")
            assert ws.recv(timeout=10) == "no origin"
        with pytest.raises(InvalidStatus) as info:
            connect(server.url, origin="https://evil.example")  # type: ignore[call-overload]
        assert info.value.response.status_code == 403


@pytest.mark.parametrize("backend", BACKENDS)
def test_tls_wss(backend: str, tmp_path: object) -> None:
    """wss:// (§11.1.2) with --certfile/--keyfile; the page is served over https."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    path = str(tmp_path)
    cert.private_key_and_cert_chain_pem.write_to_path(f"{path}/server.pem")
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with Server("echo", backend, "--certfile", f"{path}/server.pem") as server:
        assert server.url.startswith("wss://")
        with connect(server.url, ssl=client_ctx) as ws:
            ws.send("secure")
            assert ws.recv(timeout=10) == "secure"
        conn = http.client.HTTPSConnection(server.host, server.port, context=client_ctx,
                                           timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("backend", BACKENDS)
def test_signal_closes_clients_with_1001_and_exits_0_rfc6455_s7_4_1(
        backend: str, sig: int) -> None:
    """§7.4.1: 1001 "going away" to every client on SIGINT/SIGTERM, then exit status 0."""
    with Server("echo", backend, "--close-timeout", "5") as server, ExitStack() as stack:
        clients = [stack.enter_context(connect(server.url)) for _ in range(3)]
        for ws in clients:
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi"
        assert server.stop(sig) == 0
        for ws in clients:
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        log = server.log()
    assert "Traceback" not in log


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_start_line_with_url(backend: str) -> None:
    with Server("echo", backend, "--no-compression") as server:
        lines = [line for line in server.log().splitlines() if "listening on" in line]
        assert len(lines) == 1 and server.url in lines[0]
        assert server.stop() == 0



@pytest.mark.parametrize(("threshold", "compressed"), [("0", True), (None, False)])
def test_compression_threshold_option_rfc7692_s6(threshold: str | None, compressed: bool) -> None:
    """RFC 7692 §6: the sender decides per message; with --compression-threshold 0 even a
    1-byte echo is compressed (RSV1), by default (128) it is not."""
    args = ("--compression-threshold", threshold) if threshold else ()
    for backend in BACKENDS:
        with Server("echo", backend, *args) as server:
            sock = raw_client(server.port, extensions="permessage-deflate")
            try:
                sock.sendall(masked_frame(0x1, b"x"))
                header = sock.recv(2, socket.MSG_WAITALL)
                payload = sock.recv(header[1] & 0x7F, socket.MSG_WAITALL)
            finally:
                sock.close()
            assert bool(header[0] & 0x40) is compressed
            if compressed:
                inflater = zlib.decompressobj(-15)
                assert inflater.decompress(payload + b"\x00\x00\xff\xff") == b"x"
            else:
                assert payload == b"x"
