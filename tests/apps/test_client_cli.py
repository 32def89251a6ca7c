"""``python -m rfc6455 client`` against both servers (both backends) and a websockets server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.server import ServerConnection, serve

from rfc6455.__main__ import build_parser, parse_size

from .servers import BACKENDS, Server

pytestmark = pytest.mark.interop


def client(*args: str, stdin: str | None = None, timeout: float = 30) -> \
        subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rfc6455", "client", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module", params=[(a, b) for a in ("echo", "broadcast") for b in BACKENDS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    app, backend = request.param
    with Server(app, backend) as srv:
        yield srv


def test_non_interactive_text_exit_0_rfc6455_s7_1_2(server: Server) -> None:
    """Messages sent, replies printed, then a clean closing handshake (§7.1.2): status 0."""
    result = client(server.url, "--send", "hello", "--send", "wörld ✓")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\nwörld ✓\n"


def test_non_interactive_binary(server: Server) -> None:
    result = client(server.url, "--binary", "--send", "AB", "--no-compression")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[binary] 4142\n"


def test_interactive_through_a_pipe(server: Server) -> None:
    """Each stdin line is sent as it is typed and each reply printed as it arrives."""
    proc = subprocess.Popen([sys.executable, "-m", "rfc6455", "client", server.url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in ("first line", "second ✓"):
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == line + "\n"
        proc.stdin.close()  # end of input: close normally
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_abnormal_close_exits_1_rfc6455_s7_4_1(backend: str) -> None:
    """A close other than 1000 (here 1009, message too big) gives exit status 1."""
    with Server("echo", backend, "--max-size", "1k") as srv:
        result = client(srv.url, "--send", "x" * 2000)
    assert result.returncode == 1
    assert "1009" in result.stderr


def test_connection_refused_exits_2() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = client(f"ws://127.0.0.1:{port}/", "--send", "x")
    assert result.returncode == 2
    assert result.stdout == ""


def test_rejected_handshake_exits_2_rfc6455_s4_1() -> None:
    """§4.1: a response other than 101 means the connection never opened."""
    with Server("echo", "asyncio", "--origin", "https://only.example") as srv:
        result = client(srv.url, "--origin", "https://evil.example", "--send", "x")
    assert result.returncode == 2
    assert "403" in result.stderr


def test_headers_and_subprotocol_reach_the_server_rfc6455_s4_1() -> None:
    """--header and --subprotocol go into the opening request (§4.1 items 9-10)."""
    ready = threading.Event()
    port: list[int] = []
    stop: list[asyncio.Future[None]] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        await ws.send(f"{ws.subprotocol}|{ws.request.headers.get('X-Test')}")
        await ws.recv()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop.append(loop.create_future())
        async with serve(handler, "127.0.0.1", 0, subprotocols=["chat", "other"]) as srv:  # type: ignore[list-item]
            port.append(next(iter(srv.sockets)).getsockname()[1])
            ready.set()
            await stop[0]

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    try:
        assert ready.wait(10)
        result = client(f"ws://127.0.0.1:{port[0]}/", "--header", "X-Test: yes",
                        "--subprotocol", "other", "--send", "bye", "--expect", "1")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "other|yes\n"
    finally:
        loop = stop[0].get_loop() if stop else None
        if loop is not None:
            loop.call_soon_threadsafe(stop[0].set_result, None)
        thread.join(10)


def test_console_script_and_module_help() -> None:
    """The ``rfc6455`` console script (pyproject [project.scripts]) runs the same main."""
    script = Path(sysconfig.get_path("scripts")) / "rfc6455"
    for cmd in ([sys.executable, "-m", "rfc6455", "--help"], [str(script), "--help"]):
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0
        assert "echo" in result.stdout and "broadcast" in result.stdout
        assert "client" in result.stdout


def test_parse_size() -> None:
    assert parse_size("1048576") == 1 << 20
    assert parse_size("64k") == 64 << 10
    assert parse_size("16M") == 16 << 20
    assert parse_size("16MiB") == 16 << 20
    assert parse_size("none") is None
    with pytest.raises(Exception, match="not a size"):
        parse_size("lots")


def test_server_defaults() -> None:
    """Defaults documented in the issue: 127.0.0.1:8080, asyncio, compression on."""
    args = build_parser().parse_args(["echo"])
    assert (args.host, args.port, args.backend) == ("127.0.0.1", 8080, "asyncio")
    assert args.no_compression is False and args.origins is None


def test_wss_with_cafile(tmp_path: Path) -> None:
    """wss:// (§11.1.2): the client verifies the server's certificate against --cafile."""
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    with Server("echo", "asyncio", "--certfile", str(tmp_path / "server.pem")) as srv:
        result = client(srv.url, "--cafile", str(tmp_path / "ca.pem"), "--send", "secret")
        assert result.returncode == 0, result.stderr
        assert result.stdout == "secret\n"
        # Without the CA the certificate cannot be verified: never opened.
        assert client(srv.url, "--send", "secret").returncode == 2
