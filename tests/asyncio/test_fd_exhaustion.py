"""The asyncio reference server when a client tries to run it out of file descriptors.

The server runs as a subprocess (``python -m rfc6455 echo``) with its open files
limit lowered to 256, on asyncio's default event loop and on uvloop. Two ways to
hold its descriptors:

* refused connections (503 past ``--max-connections``) that the client keeps open:
  after an HTTP answer and our FIN the server waits for the client's close at most
  ``rfc6455._driver.HTTP_LINGER`` (RFC 9112 §9.6), not the whole close timeout;
* raw TCP connections that send nothing, more than the limit: ``accept()`` fails
  with EMFILE, the loop backs off, and the server says so once (a WARNING on
  ``rfc6455.server``) instead of an asyncio ERROR with a traceback at every retry,
  without spinning, and serves again once the attackers are gone.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import trustme

from rfc6455._driver import AcceptFailures

from ..apps.servers import masked_frame

pytest.importorskip("uvloop")  # installed with the test dependencies

LIMIT = 256

#: Runs the reference server's command line on the event loop named first.
_LAUNCHER = """
import asyncio, runpy, sys
if sys.argv[1] == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
sys.argv = ["rfc6455", *sys.argv[2:]]
runpy.run_module("rfc6455", run_name="__main__", alter_sys=True)
"""

_LISTENING = re.compile(r"listening on wss?://[^\s/]+:(\d+)/")

UPGRADE = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n")

LOOPS = ("asyncio", "uvloop")


def lower_open_files_limit() -> None:
    """In the server's child process, before exec."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))


class EchoServer:
    """``python -m rfc6455 echo --port 0`` on ``loop``, its log in a file."""

    def __init__(self, loop: str, *args: str) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix="rfc6455-fd-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, loop, "echo", "--port", "0",
             "--log-level", "info", "--ping-interval", "none", *args],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=lower_open_files_limit)
        deadline = time.monotonic() + 20
        while not (match := _LISTENING.search(self.log())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the server did not start:\n{self.log()}")
            time.sleep(0.02)
        self.port = int(match.group(1))

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self) -> float:
        """utime + stime of the server process (/proc/PID/stat, fields 14 and 15)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()  # after the command name
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._log.close()
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def held() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def upgrade(port: int, tls: ssl.SSLContext | None = None) -> tuple[int, socket.socket]:
    """An opening handshake: the status, and the socket, still open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
        sock.sendall(UPGRADE.format(port=port).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # byte by byte: leave any frame in the socket
            assert chunk, f"closed during the handshake after {head!r}"
            head += chunk
            assert len(head) < 16384
    except BaseException:
        # served_again() retries on these: the failed attempt's socket must not leak.
        sock.close()
        raise
    return int(head.split(b" ", 2)[1]), sock


def echoes(sock: socket.socket) -> bool:
    """A text message comes back on an open connection."""
    sock.sendall(masked_frame(0x1, b"still here"))
    sock.settimeout(10)
    reply = b""
    while len(reply) < 12:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        reply += chunk
    return reply == b"\x81\x0astill here"


def served_again(port: int, timeout: float = 15.0,
                 tls: ssl.SSLContext | None = None) -> socket.socket:
    """A 101 within ``timeout`` (bounded retries)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, sock = upgrade(port, tls)
        except (OSError, AssertionError):
            status, sock = 0, None
        if status == 101:
            assert sock is not None
            return sock
        if sock is not None:
            sock.close()
        assert time.monotonic() < deadline, "no client was served again"
        time.sleep(0.1)


def no_errors_logged(server: EchoServer) -> None:
    log = server.log()
    assert " ERROR " not in log and "Traceback" not in log, log[-4000:]


# ------------------------------------------------------------ refusals kept open


def close_handshake(sock: socket.socket) -> None:
    """The client's close (§7.1.2), then wait for the server's TCP close."""
    sock.sendall(masked_frame(0x8, b"\x03\xe8"))
    sock.settimeout(10)
    while sock.recv(4096):
        pass
    sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("loop", LOOPS)
def test_refused_sockets_kept_open_are_closed_after_the_linger(
        loop: str, tls: bool, held: ExitStack, tmp_path: Path) -> None:
    """Past the cap, 100 clients read their 503 and never close: the server closes
    their sockets after about a second (not the 10 s close timeout), so none of
    them holds a server descriptor for long."""
    args = ["--max-connections", "2"]
    client_tls = None
    if tls:
        ca = trustme.CA()
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
            str(tmp_path / "server.pem"))
        args += ["--certfile", str(tmp_path / "server.pem")]
        client_tls = ssl.create_default_context()
        ca.configure_trust(client_tls)
    server = EchoServer(loop, *args)
    held.callback(server.close)
    opened = []
    for _ in range(2):
        status, sock = upgrade(server.port, client_tls)
        held.enter_context(sock)
        assert status == 101
        opened.append(sock)
    baseline = server.fds()
    for _ in range(100):
        status, sock = upgrade(server.port, client_tls)
        held.enter_context(sock)  # kept open by the client until the end of the test
        assert status == 503
        sock.settimeout(10)
        while sock.recv(4096):  # the body, then the server's FIN: the whole answer
            pass
    # (Holding them at first is the point of lingering: a close with unread input
    # would reset the answer away.)
    deadline = time.monotonic() + 3.0
    while (extra := server.fds() - baseline) > 2:
        assert time.monotonic() < deadline, f"{extra} refused sockets still held by the server"
        time.sleep(0.05)
    assert echoes(opened[0])
    close_handshake(opened.pop())
    assert echoes(held.enter_context(served_again(server.port, tls=client_tls)))
    no_errors_logged(server)


# ------------------------------------------------------------ accept() out of fds


def attack(port: int, count: int, held: ExitStack) -> int:
    """``count`` raw TCP connections that send nothing; how many connected."""
    connected = 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        held.enter_context(sock)
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except OSError:
            continue  # past the listen backlog the kernel may drop the SYN
        connected += 1
    return connected


@pytest.mark.parametrize("loop", LOOPS)
def test_accept_out_of_descriptors_is_reported_once_and_recovers(loop: str) -> None:
    """More raw connections than the open files limit: the server runs out of
    descriptors in accept(); it says so once, does not spin, and once the
    attackers are gone a new client is served."""
    server = EchoServer(loop)
    try:
        with ExitStack() as attackers:
            connected = attack(server.port, LIMIT + 60, attackers)
            assert connected > LIMIT  # the rest waits in the listen backlog
            time.sleep(1.0)  # the server accepts what it can, then fails
            if loop == "asyncio":
                # (uvloop sheds what it cannot accept: see the module docstring of
                # rfc6455.asyncio.server.)
                assert server.fds() >= LIMIT - 2
            started_cpu, started = server.cpu_seconds(), time.monotonic()
            time.sleep(3.0)
            cpu = (server.cpu_seconds() - started_cpu) / (time.monotonic() - started)
            assert cpu < 0.3, f"the server used {cpu:.0%} of a core while out of descriptors"
        with served_again(server.port) as sock:
            assert echoes(sock)
        # Recovery is reported once accepts have succeeded for AcceptFailures.QUIET
        # after the last failure; the accept above may fall inside that window (the
        # backlog's leftovers are accepted in the same burst), so one more client, later.
        time.sleep(AcceptFailures.QUIET + 0.2)
        with served_again(server.port) as sock:
            assert echoes(sock)
        log = server.log()
        warnings = log.count("WARNING rfc6455.server: accept failing: EMFILE; backing off")
        if loop == "asyncio":
            assert warnings == 1, log[-4000:]
            assert "INFO rfc6455.server: accepting again" in log, log[-4000:]
        else:
            assert warnings <= 1, log[-4000:]
        no_errors_logged(server)
    finally:
        server.close()


#: A server closed while accept() is failing, on a loop that runs on: the back-off
#: retries asyncio left scheduled must not log errors, and the loop gets its
#: exception handler back.
_CLOSED_DURING_EPISODE = """
import asyncio, logging, socket, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                    format="%(levelname)s %(name)s: %(message)s")
from rfc6455.asyncio import serve

async def handler(ws):
    await ws.wait_closed()

async def main():
    server = await serve(handler, "127.0.0.1", 0)
    clients = []
    for _ in range(90):  # connected in the listen backlog before the server accepts
        sock = socket.socket()
        sock.connect(("127.0.0.1", server.port))
        clients.append(sock)
    await asyncio.sleep(1.5)  # accepts what it can, fails, backs off
    server.close()
    await server.wait_closed()
    await asyncio.sleep(2.5)  # the retries come and go
    print("handler given back:", asyncio.get_running_loop().get_exception_handler() is None)
    for sock in clients:
        sock.close()

asyncio.run(main())
"""


def test_closing_while_accept_fails_logs_no_error() -> None:
    def lower() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))

    result = subprocess.run([sys.executable, "-c", _CLOSED_DURING_EPISODE],
                            capture_output=True, text=True, timeout=60, preexec_fn=lower)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("WARNING rfc6455.server: accept failing: EMFILE") == 1, output
    assert "ERROR" not in output and "Traceback" not in output, output[-4000:]
    assert "handler given back: True" in output, output


# ---------------------------------------------- what the loop handler takes over


def test_only_our_sockets_resource_errors_are_taken(
        caplog: pytest.LogCaptureFixture) -> None:
    """The exception handler the server installs takes accept() resource errors on
    its own listening socket, passes everything else on to the previous handler,
    and gives it back once the server is closed."""
    import errno
    import logging

    from rfc6455.asyncio import serve

    emfile = OSError(errno.EMFILE, "Too many open files")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        seen: list[dict[str, object]] = []

        def previous(_loop: object, context: dict[str, object]) -> None:
            seen.append(context)

        loop.set_exception_handler(previous)
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            async with serve(_echo, "127.0.0.1", 0) as server:
                ours = server.sockets[0]
                with caplog.at_level(logging.INFO, "rfc6455.server"):
                    for _ in range(3):
                        loop.call_exception_handler({"message": "accept", "exception": emfile,
                                                     "socket": ours})
                assert seen == []
                assert [(r.levelname, r.getMessage()) for r in caplog.records] == \
                    [("WARNING", "accept failing: EMFILE; backing off")]
                # Another socket, another error: not ours to take.
                loop.call_exception_handler({"message": "accept", "exception": emfile,
                                             "socket": other})
                loop.call_exception_handler({"message": "accept", "socket": ours,
                                             "exception": OSError(errno.EBADF, "bad")})
                assert len(seen) == 2
            # Closed: nothing is taken any more, and the handler comes back once
            # asyncio's back-off retries are past.
            loop.call_exception_handler({"message": "after", "exception": emfile,
                                         "socket": other})
            assert len(seen) == 3
            for _ in range(40):
                if loop.get_exception_handler() is previous:
                    break
                await asyncio.sleep(0.1)
            assert loop.get_exception_handler() is previous

    asyncio.run(asyncio.wait_for(main(), 20))


async def _echo(ws: object) -> None:
    pass
