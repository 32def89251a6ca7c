"""The blocking WebSocket client: ``with connect("ws://...") as ws``."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl as ssl_module
import time
from typing import Any

from .._driver import (
    ClientOptions,
    InvalidStatus,
    ProxyAnswer,
    Redirects,
    client_logger,
    client_tls,
    handshake_failure,
    proxy_address,
    proxy_connect_request,
    split_options,
)
from ..uri import parse_uri
from .connection import Connection, handshake_io, start_reader

__all__ = ["connect"]


def _tunnel(proxy: str, host: str, port: int, timeout: float | None) -> socket.socket:
    """A socket connected to ``host:port`` through an HTTP proxy's CONNECT tunnel."""
    sock = socket.create_connection(proxy_address(proxy), timeout)
    try:
        sock.sendall(proxy_connect_request(host, port))
        answer = ProxyAnswer()
        while not answer.feed(sock.recv(1)):
            pass
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
    context = client_tls(wsuri.secure, context)
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
        error = handshake_failure(handshake_io(sock, engine, deadline))
        if error is not None:
            raise error
        conn = Connection(sock, engine, options, logger)
        start_reader(conn)
        return conn
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
    hops = Redirects(uri, opts)
    while True:
        try:
            return _attempt(hops.uri, hops.extra_headers, opts, ssl, path, server_hostname,
                            logger or client_logger)
        except InvalidStatus as exc:
            if not hops.follow(exc):
                raise
