"""A stand-in echo server and echo client driven directly by the engine.

Clearly a test fixture, not a product: one thread per connection over blocking
sockets, so the whole Autobahn suite can run against the sans-I/O engine itself,
independently of the asyncio and sync adapters. The loop shows the engine's
contract: feed bytes, handle each event *before* pulling the next (so the echo
of a good message is queued before the close a later bad frame causes), then
write everything ``data_to_send()`` returns, shutting the socket down on EOF.

    python -m tests.conformance.standin server [--port 0]   # prints "PORT <n>"
    python -m tests.conformance.standin client ws://127.0.0.1:9001 AGENT [--parallel N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from rfc6455 import (
    EOF,
    Binary,
    ClientConnection,
    ConnectionClosed,
    HTTPRequest,
    Limits,
    Request,
    ServerConnection,
    Text,
)
from rfc6455._core import Connection
from rfc6455.extensions.base import ClientExtensionFactory, ServerExtensionFactory
from rfc6455.extensions.permessage_deflate import (
    ClientPerMessageDeflate,
    DeflateOffer,
    ServerPerMessageDeflate,
)

# Autobahn 9.* sends messages up to 16 MiB, and 9.3.x 4 MiB in 64-byte fragments
# (65536 frames): lift the fragment count bound and allow a little over 16 MiB.
LIMITS = Limits(max_message_size=16 * 1024 * 1024 + 1024, max_fragments=None)
READ_SIZE = 256 * 1024
CLOSE_TIMEOUT = 10.0


# kosoku 0.1.0 ERRORs ("Strings must be encoded before hashing") on any message
# that arrives uncompressed once permessage-deflate is negotiated, although
# RFC 7692 §6 allows it and our default threshold sends messages under 128
# bytes that way. The conformance peers compress every message instead.
DEFLATE_THRESHOLD = 0


def server_extensions() -> list[ServerExtensionFactory]:
    """permessage-deflate with the defaults, but every message compressed (see above)."""
    return [ServerPerMessageDeflate(threshold=DEFLATE_THRESHOLD)]


def client_extensions() -> list[ClientExtensionFactory]:
    """permessage-deflate offers that let kosoku's server run every 13.* case.

    13.* answers with client_no_context_takeover (13.2, 13.5-13.7) or a
    client_max_window_bits value (13.3-13.7), but only to an offer that carries
    that parameter (RFC 7692 §7.1.1.2, §7.1.2.2): offer the value-less window
    parameter first, then the same with client_no_context_takeover.
    """
    return [ClientPerMessageDeflate(**CLIENT_DEFLATE_OPTIONS)]


#: Keyword arguments of ClientPerMessageDeflate for every conformance client.
CLIENT_DEFLATE_OPTIONS: dict[str, Any] = {
    "client_max_window_bits": True,
    "fallback_offers": [DeflateOffer(client_no_context_takeover=True,
                                     client_max_window_bits=True)],
    "threshold": DEFLATE_THRESHOLD,
}


def _flush(sock: socket.socket, conn: Connection) -> bool:
    """Write what the engine produced; True once the write side was shut down."""
    while True:
        out = conn.data_to_send()
        if out is EOF:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            return True
        if not out:
            return False
        assert isinstance(out, bytes)
        sock.sendall(out)


def _echo(conn: Connection, event: object) -> None:
    if isinstance(event, Text | Binary):
        conn.send(event.data)


def _run(sock: socket.socket, conn: Connection, on_event: object = None) -> ConnectionClosed:
    """Drive ``conn`` over ``sock`` until its ConnectionClosed event; echo messages."""
    closed: ConnectionClosed | None = None
    shut = _flush(sock, conn)
    while True:
        try:
            data = sock.recv(READ_SIZE)
        except OSError:
            data = b""
        if data:
            conn.receive_data(data)
        else:
            conn.receive_eof()
        for event in conn.events():
            if isinstance(event, Request):
                assert isinstance(conn, ServerConnection)
                conn.accept()
            elif isinstance(event, HTTPRequest):
                assert isinstance(conn, ServerConnection)
                conn.respond(404)
            elif isinstance(event, ConnectionClosed):
                closed = event
            elif callable(on_event):
                on_event(conn, event)
            # Write after each event: the echo precedes a later failure's close.
            if not shut:
                try:
                    shut = _flush(sock, conn)
                except OSError:
                    shut = True
        if not data:
            break
        if closed is not None and shut:
            # Our side is done; wait (bounded by the socket timeout) for the peer's EOF.
            continue
    assert closed is not None
    return closed


def _serve_one(sock: socket.socket) -> None:
    with sock:
        sock.settimeout(CLOSE_TIMEOUT * 6)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = ServerConnection(limits=LIMITS, extensions=server_extensions())
        with contextlib.suppress(OSError):
            _run(sock, conn, _echo)


def serve(port: int) -> None:
    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(sock,), daemon=True).start()


def _connect(url: str, on_event: object) -> ConnectionClosed:
    conn = ClientConnection(url, limits=LIMITS, extensions=client_extensions())
    host, _, port = url.split("/")[2].partition(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(CLOSE_TIMEOUT * 6)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _run(sock, conn, on_event)


def run_client(base: str, agent: str, parallel: int = 1) -> None:
    """Drive kosoku's fuzzing server: count the cases, echo each one, ask for reports.

    With ``parallel`` > 1, that many cases run at once (each on its own connection).
    """
    received: list[str] = []

    def keep(conn: Connection, event: object) -> None:
        if isinstance(event, Text):
            received.append(event.data)

    _connect(f"{base}/getCaseCount", keep)
    cases = iter(range(1, json.loads(received[0]) + 1))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                case = next(cases, None)
            if case is None:
                return
            _connect(f"{base}/runCase?case={case}&agent={quote(agent)}", _echo)

    workers = [threading.Thread(target=worker) for _ in range(max(1, parallel))]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    _connect(f"{base}/updateReports?agent={quote(agent)}", None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance.standin")
    sub = parser.add_subparsers(dest="role", required=True)
    server = sub.add_parser("server")
    server.add_argument("--port", type=int, default=0)
    client = sub.add_parser("client")
    client.add_argument("url")
    client.add_argument("agent")
    client.add_argument("--parallel", type=int, default=1, help="cases run at once")
    args = parser.parse_args(argv)
    if args.role == "server":
        serve(args.port)
    else:
        run_client(args.url.rstrip("/"), args.agent, args.parallel)


if __name__ == "__main__":
    main()
