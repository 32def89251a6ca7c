"""``python -m rfc6455 client URL``: an interactive (or scripted) WebSocket client.

Received messages are printed one per line: text as it is, binary as
``[binary] <hex>``. Interactive mode sends each line of stdin (without its line
end) and closes with 1000 at end of input. With ``--send`` the messages are
sent, the replies printed, and the connection closed.

Exit status: 0 when the connection ended with a closing handshake carrying 1000
(RFC 6455 §7.4.1 "normal closure"), 1 when it ended otherwise (another code, or
no closing handshake), 2 when it never opened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import ssl
import sys
import threading
from typing import Any

from ..asyncio import Connection, ConnectionClosed, InvalidStatus, connect
from ..errors import CloseCode

__all__ = ["format_message", "run_client"]

logger = logging.getLogger("rfc6455.client")

EXIT_NORMAL, EXIT_ABNORMAL, EXIT_NOT_OPENED = 0, 1, 2


def format_message(message: str | bytes) -> str:
    if isinstance(message, str):
        return message
    return "[binary] " + message.hex()


def _print(message: str | bytes) -> None:
    sys.stdout.write(format_message(message) + "\n")
    sys.stdout.flush()


def _headers(values: list[str]) -> list[tuple[str, str]]:
    headers = []
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"rfc6455 client: --header needs 'Name: value', got {value!r}")
        headers.append((name.strip(), content.strip()))
    return headers


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "extra_headers": _headers(args.header),
        "subprotocols": args.subprotocol,
        "compression": None if args.no_compression else "deflate",
        "max_size": args.max_size,
    }
    if args.origin:
        options["origin"] = args.origin
    if args.url.lower().startswith("wss:"):
        options["ssl"] = ssl.create_default_context(cafile=args.cafile)
    return options


def _outcome(ws: Connection) -> int:
    code, reason = ws.close_code, ws.close_reason
    if code == CloseCode.NORMAL_CLOSURE:
        return EXIT_NORMAL
    sys.stderr.write(f"rfc6455 client: connection closed with {code}"
                     + (f" ({reason})" if reason else "") + "\n")
    return EXIT_ABNORMAL


def _encode(text: str, binary: bool) -> str | bytes:
    return text.encode("utf-8") if binary else text


async def _scripted(ws: Connection, args: argparse.Namespace) -> None:
    expect = len(args.send) if args.expect is None else args.expect
    loop = asyncio.get_running_loop()
    deadline = None if args.timeout is None else loop.time() + args.timeout
    with contextlib.suppress(ConnectionClosed):
        for text in args.send:
            await ws.send(_encode(text, args.binary))
        for _ in range(expect):
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                _print(await asyncio.wait_for(ws.recv(), timeout))
            except TimeoutError:
                sys.stderr.write("rfc6455 client: timed out waiting for a reply\n")
                break


def _read_lines(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    # A daemon thread, not the loop's executor: when the server closes first,
    # the process must exit without waiting for a line that may never come.
    for line in sys.stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\r\n"))
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def _interactive(ws: Connection, args: argparse.Namespace) -> None:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_lines, args=(asyncio.get_running_loop(), lines),
                     daemon=True, name="stdin").start()
    if sys.stdin.isatty():
        sys.stderr.write(f"Connected to {args.url}; type messages, Ctrl-D to close.\n")

    async def send_lines() -> None:
        with contextlib.suppress(ConnectionClosed):
            while (line := await lines.get()) is not None:
                await ws.send(_encode(line, args.binary))
        await ws.close(CloseCode.NORMAL_CLOSURE)  # end of input

    sender = asyncio.create_task(send_lines())
    try:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                _print(message)
    finally:
        sender.cancel()


async def _run(args: argparse.Namespace) -> int:
    try:
        ws = await connect(args.url, **_options(args))
    except InvalidStatus as exc:
        sys.stderr.write(f"rfc6455 client: {args.url}: {exc}\n")
        return EXIT_NOT_OPENED
    except Exception as exc:  # refused, DNS, TLS, a bad handshake: never opened
        sys.stderr.write(f"rfc6455 client: cannot connect to {args.url}: {exc}\n")
        return EXIT_NOT_OPENED
    try:
        if args.send is not None:
            await _scripted(ws, args)
        else:
            await _interactive(ws, args)
    finally:
        await ws.close(CloseCode.NORMAL_CLOSURE)
    return _outcome(ws)


def run_client(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return EXIT_ABNORMAL
