"""The blocking WebSocket client: ``with connect("ws://...") as ws``."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl as ssl_module
import time
from typing import Any
from urllib.parse import urlsplit

from .._driver import (
    ClientOptions,
    InvalidStatus,
    Redirects,
    client_logger,
    handshake_failed,
    proxy_connect_request,
    proxy_connect_status,
    split_options,
)
from ..events import Accepted, Rejected
from ..events import ConnectionClosed as ClosedEvent
from ..uri import parse_uri
from .connection import Connection, handshake_io

__all__ = ["connect"]


def _tunnel(proxy: str, host: str, port: int, timeout: float | None) -> socket.socket:
    """A socket connected to ``host:port`` through an HTTP proxy's CONNECT tunnel."""
    parts = urlsplit(proxy)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"unsupported proxy {proxy!r} (http://host:port only)")
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout)
    try:
        sock.sendall(proxy_connect_request(host, port))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # never read past the proxy's answer
            if not chunk or len(head) > 16384:
                raise OSError("proxy closed the connection or sent too much")
            head += chunk
        status = proxy_connect_status(head)
        if status != 200:
            raise OSError(f"proxy refused the tunnel with HTTP {status}")
    except BaseException:
        sock.close()
        raise
    return sock


def _attempt(uri: str, extra_headers: tuple[tuple[str, str], ...], options: ClientOptions,
             context: ssl_module.SSLContext | None,
             path: str | None, server_hostname: str | None,
             logger: logging.Logger) -> Connection:
    wsuri = parse_uri(uri)
    deadline = None if options.open_timeout is None \
        else time.monotonic() + options.open_timeout
    if wsuri.secure and context is None:
        context = ssl_module.create_default_context()
    elif not wsuri.secure:
        context = None
    if path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(options.open_timeout)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
    elif options.proxy is not None:
        sock = _tunnel(options.proxy, wsuri.host, wsuri.port, options.open_timeout)
    else:
        sock = socket.create_connection((wsuri.host, wsuri.port), options.open_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=server_hostname or wsuri.host)
        engine = options.new_engine(uri, extra_headers)
        event = handshake_io(sock, engine, deadline)
        if isinstance(event, Accepted):
            conn = Connection(sock, engine, options, logger)
            conn._driver.opened(conn.remote_address, time.monotonic(), logger, uri)
            conn._start()
            return conn
        if isinstance(event, Rejected):
            raise InvalidStatus(event.status, event.headers, event.body)
        if isinstance(event, ClosedEvent) and event.error is not None:
            handshake_failed(logger, uri, event.error)
            raise event.error
        raise ConnectionError("connection closed during the opening handshake")
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise


def connect(uri: str, *, ssl: ssl_module.SSLContext | None = None, path: str | None = None,
            server_hostname: str | None = None, logger: logging.Logger | None = None,
            **options: Any) -> Connection:
    """Open a WebSocket connection and return it (usable as a context manager).

    Options as for :func:`rfc6455.asyncio.connect`: ``ssl``, ``path`` (unix
    socket), ``proxy``, ``max_redirects``, ``origin``, ``subprotocols``,
    ``extra_headers``, ``compression``, ``max_size``, ``ping_interval``...

    Redirects as there: 3xx answers followed up to ``max_redirects`` (default
    3), ``http(s)://`` Locations meaning ``ws(s)://``, credentials
    (``Authorization``, ``Cookie``, ``Proxy-Authorization``) not sent to
    another origin, :class:`~rfc6455.sync.InvalidRedirect` for a redirect from
    ``wss`` to ``ws``, another scheme or a Location that is not a URI.
    """
    opts: ClientOptions = split_options(ClientOptions, options)
    hops = Redirects(uri, opts, logger or client_logger)
    while True:
        try:
            return _attempt(hops.uri, hops.extra_headers, opts, ssl, path, server_hostname,
                            logger or client_logger)
        except InvalidStatus as exc:
            if not hops.follow(exc):
                raise
