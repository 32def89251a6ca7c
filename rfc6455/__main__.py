"""Command line: ``python -m rfc6455 echo|broadcast|client`` (also the ``rfc6455`` script).

* ``echo`` -- every message comes back to its sender, text or binary as sent.
* ``broadcast`` -- every message any client sends goes to every connected client.
* ``client URL`` -- an interactive client (stdin lines out, messages in), or a
  non-interactive one with ``--send``: exit status 0 when the connection closed
  normally (1000), 1 when it closed otherwise, 2 when it could not be opened.

Both servers answer ``GET /`` with a demo page, ``GET /healthz`` with 200 and
other plain HTTP requests with 404; WebSocket upgrades are accepted on any path.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main", "parse_size"]

_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def parse_size(text: str) -> int | None:
    """``1048576``, ``64k``, ``16M``, ``1G`` (binary multiples); ``none`` lifts the limit."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    if value in ("none", "0"):
        return None
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[:len(value) - len(unit)]
    try:
        size = int(float(number) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"negative size: {text!r}")
    return size


def _positive_int(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _connection_cap(text: str) -> int | str | None:
    """``N``, ``none`` (no cap) or ``auto`` (derived from the open files limit)."""
    if text.strip().lower() == "auto":
        return "auto"
    return _positive_int(text)


def _byte_count(text: str) -> int:
    size = parse_size(text) if text.strip() not in ("0", "none") else 0
    assert size is not None
    return size


def _seconds(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration in seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"negative duration: {text!r}")
    return value


def _server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080,
                        help="port to listen on, 0 for any free one (default: %(default)s)")
    parser.add_argument("--backend", choices=("asyncio", "sync"), default="asyncio",
                        help="adapter that runs the server (default: %(default)s)")
    parser.add_argument("--max-size", type=parse_size, default=1024 * 1024, metavar="BYTES",
                        help="largest message accepted, after decompression; larger ones "
                        "close with 1009 (default: 1M; 'none' for no limit)")
    parser.add_argument("--max-fragments", type=_positive_int, default=4096, metavar="N",
                        help="most frames in one message (default: %(default)s; 'none')")
    parser.add_argument("--max-queue", type=int, default=16, metavar="N",
                        help="incoming messages buffered per connection before reading "
                        "pauses (default: %(default)s)")
    parser.add_argument("--max-connections", type=_connection_cap, default="auto",
                        metavar="N", help="open WebSocket connections at most; further "
                        "upgrade requests get HTTP 503. 'none' for no cap. Default 'auto': "
                        "L - 64 - L // 8 where L is the open files limit (soft "
                        "RLIMIT_NOFILE; ulimit -n), keeping descriptors for handshakes "
                        "in progress, 503 answers, listening sockets, logs and the "
                        "backplane; the value is logged at startup")
    parser.add_argument("--max-connections-per-ip", type=_positive_int, default=None,
                        metavar="N", help="open connections per client address at most; "
                        "HTTP 503 past it (default: none)")
    parser.add_argument("--no-compression", action="store_true",
                        help="do not negotiate permessage-deflate (RFC 7692)")
    parser.add_argument("--compression-threshold", type=_byte_count, metavar="BYTES",
                        help="send messages shorter than this uncompressed (RFC 7692 §6 "
                        "leaves it to the sender; default: the extension's, 128; 0 "
                        "compresses everything)")
    parser.add_argument("--origin", action="append", dest="origins", metavar="ORIGIN",
                        help="allow browser pages from ORIGIN (repeatable; '*' allows all; "
                        "'none' lets in clients that send no Origin, which a list otherwise "
                        "refuses). Default: pages served by this host and port, and clients "
                        "without Origin")
    parser.add_argument("--certfile", help="PEM certificate chain: serve wss:// and https://")
    parser.add_argument("--keyfile", help="PEM private key (if not in --certfile)")
    parser.add_argument("--close-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                        help="how long to wait for closing handshakes (default: %(default)s)")
    parser.add_argument("--ping-interval", type=_seconds, default=20.0, metavar="SECONDS",
                        help="keepalive ping period, 'none' to disable (default: %(default)s)")
    parser.add_argument("--ping-timeout", type=_seconds, default=20.0, metavar="SECONDS",
                        help="close with 1011 when a ping's pong has not come back after "
                        "this long, 'none' to wait forever (default: %(default)s)")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error", "critical"),
                        help="logging threshold (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfc6455", description="WebSocket reference servers and client (RFC 6455).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    echo = commands.add_parser("echo", help="echo every message back to its sender",
                               description="Echo server: ws://HOST:PORT/ws (any path); "
                               "GET / serves an echo tester page.")
    _server_options(echo)

    broadcast = commands.add_parser(
        "broadcast", help="deliver every message to every client",
        description="Broadcast server: every message any client sends is delivered to "
        "every connected client (the sender included). GET / serves a chat room page. "
        "Each message is serialized once for all clients; with compression the server "
        "negotiates server_no_context_takeover (RFC 7692 7.1.1.1) so that one compressed "
        "frame serves every client too.")
    _server_options(broadcast)
    broadcast.add_argument("--client-buffer", type=parse_size, default=1024 * 1024,
                           metavar="BYTES", help="outgoing bytes allowed to wait for one "
                           "client before --slow-policy applies (default: 1M)")
    broadcast.add_argument("--slow-policy", choices=("drop", "close"), default="drop",
                           help="for a client past its buffer: drop messages for it (counted "
                           "and logged) or close it with --slow-close-code (default: drop)")
    broadcast.add_argument("--workers", type=int, default=1, metavar="N",
                           help="run N server processes on the same port (SO_REUSEPORT), "
                           "supervised by this one (default: %(default)s)")
    broadcast.add_argument("--redis", metavar="URL",
                           help="share broadcasts between processes and hosts over Redis "
                           "pub/sub, e.g. redis://127.0.0.1:6379/0 (default: with --workers, "
                           "an embedded relay in the supervising process)")
    broadcast.add_argument("--channel", default="rfc6455:broadcast",
                           help="Redis channel of the broadcasts (default: %(default)s)")
    # Set by the supervisor on the workers it starts.
    broadcast.add_argument("--relay", help=argparse.SUPPRESS)
    broadcast.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    broadcast.add_argument("--slow-close-code", type=int, choices=(1008, 1013), default=1008,
                           help="1008 policy violation or 1013 try again later "
                           "(default: %(default)s)")

    client = commands.add_parser(
        "client", help="connect to a WebSocket server",
        description="Interactive: each line of stdin is sent, each message received is "
        "printed (binary as hex). With --send: send the messages, print the replies, close "
        "and exit 0 if the connection closed normally, 1 if not, 2 if it never opened.")
    client.add_argument("url", help="ws:// or wss:// URL")
    client.add_argument("--binary", action="store_true",
                        help="send lines / --send messages as binary (UTF-8 bytes)")
    client.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="extra request header (repeatable)")
    client.add_argument("--subprotocol", action="append", default=[], metavar="NAME",
                        help="offer this subprotocol (repeatable, most preferred first)")
    client.add_argument("--origin", help="Origin header to send")
    client.add_argument("--no-compression", action="store_true",
                        help="do not offer permessage-deflate")
    client.add_argument("--max-size", type=parse_size, default=1024 * 1024, metavar="BYTES",
                        help="largest message accepted (default: 1M; 'none')")
    client.add_argument("--send", "-m", action="append", metavar="MESSAGE",
                        help="non-interactive: send MESSAGE (repeatable), then close")
    client.add_argument("--expect", type=int, metavar="N",
                        help="with --send: replies to wait for before closing "
                        "(default: one per message sent)")
    client.add_argument("--timeout", type=_seconds, default=10.0, metavar="SECONDS",
                        help="with --send: give up waiting for replies after this long "
                        "(default: %(default)s)")
    client.add_argument("--cafile", help="PEM CA bundle to verify a wss:// server with")
    client.add_argument("--log-level", default="warning",
                        choices=("debug", "info", "warning", "error", "critical"),
                        help="logging threshold (default: %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rfc6455`` and the ``rfc6455`` script; returns the exit code."""
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(raw_argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "client":
        from .apps.client_cli import run_client

        return run_client(args)
    if args.keyfile and not args.certfile:
        build_parser().error("--keyfile needs --certfile")
    if args.command == "broadcast" and args.workers > 1:
        import asyncio

        from .apps.workers import supervise

        return asyncio.run(supervise(raw_argv, workers=args.workers, host=args.host,
                                     port=args.port, redis=args.redis,
                                     close_timeout=args.close_timeout))
    from .apps.launch import run_server

    return run_server(args)


if __name__ == "__main__":
    sys.exit(main())
