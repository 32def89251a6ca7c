"""The asyncio WebSocket client: ``async with connect("ws://...") as ws``."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Generator
from time import monotonic as _now
from typing import Any

from .._core import State
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
from .connection import Connection

__all__ = ["connect"]


class _ClientProtocol(Connection):
    __slots__ = ("_keepalive_timer", "_opened")

    def __init__(self, uri: str, extra_headers: tuple[tuple[str, str], ...],
                 options: ClientOptions, logger: logging.Logger) -> None:
        super().__init__(options.new_engine(uri, extra_headers), options, logger)
        self._opened: asyncio.Future[None] = self._loop.create_future()
        self._keepalive_timer: asyncio.TimerHandle | None = None

    def _handshake(self) -> None:
        event = self.engine.next_event()
        if event is None:
            self._flush()
            return
        error = handshake_failure(event)
        if error is None:
            if not self._opened.done():  # else connect() gave up (open_timeout)
                self._opened.set_result(None)
            self._schedule_keepalive()
            self._hold_for_first_recv()
            return
        self._flush()
        if not self._opened.done():
            self._opened.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._keepalive_timer is not None:
            self._keepalive_timer.cancel()
            self._keepalive_timer = None
        if self.engine.state is State.CONNECTING or not self._opened.done():
            super().connection_lost(exc)
            if not self._opened.done():
                self._opened.set_exception(
                    exc or ConnectionError("connection closed during the opening handshake"))
            return
        super().connection_lost(exc)

    def _schedule_keepalive(self) -> None:
        deadline = self._driver.next_deadline()
        if deadline is not None and not self._lost:
            self._keepalive_timer = self._loop.call_later(max(0.0, deadline - _now()),
                                                          self._on_keepalive)

    def _on_keepalive(self) -> None:
        self._keepalive_timer = None
        self._keepalive(_now())
        if self.engine.state is State.OPEN:
            self._schedule_keepalive()


async def _tunnel(proxy: str, host: str, port: int) -> socket.socket:
    """A socket connected to ``host:port`` through an HTTP proxy's CONNECT tunnel."""
    loop = asyncio.get_running_loop()
    proxy_host, proxy_port = proxy_address(proxy)
    infos = await loop.getaddrinfo(proxy_host, proxy_port, type=socket.SOCK_STREAM)
    family, type_, proto, _, address = infos[0]
    sock = socket.socket(family, type_, proto)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, proxy_connect_request(host, port))
        answer = ProxyAnswer()
        while not answer.feed(await loop.sock_recv(sock, 1)):
            pass
    except BaseException:
        sock.close()
        raise
    return sock


class connect:
    """Open a WebSocket client connection; awaitable and an async context manager.

    ``await connect(uri)`` returns the open :class:`Connection`;
    ``async with connect(uri) as ws`` also closes it. Options: ``ssl`` (an
    :class:`ssl.SSLContext` for ``wss://``), ``path`` (a unix socket),
    ``server_hostname``, ``logger``, ``proxy`` ("http://host:port", HTTP CONNECT),
    ``max_redirects`` (3xx answers followed, default 3), and the fields of
    :class:`rfc6455._driver.ClientOptions` (``origin``, ``subprotocols``,
    ``extra_headers``, ``compression``, ``max_size``, ``ping_interval``...).

    Redirects: a 3xx answer with a ``Location`` is followed (relative ones
    too); ``http://`` and ``https://`` Locations mean ``ws://`` and ``wss://``
    (RFC 6455 §3). To another origin (scheme, host or port) the
    ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` headers of
    ``extra_headers`` are not sent. A redirect from ``wss`` to ``ws``, to
    another scheme, or to something that is not a URI raises
    :class:`~rfc6455.asyncio.InvalidRedirect`; past ``max_redirects`` the last
    answer raises :class:`~rfc6455.asyncio.InvalidStatus`.
    """

    def __init__(self, uri: str, *, ssl: ssl_module.SSLContext | None = None,
                 path: str | None = None, server_hostname: str | None = None,
                 logger: logging.Logger | None = None, **options: Any) -> None:
        self.uri = uri
        self.options: ClientOptions = split_options(ClientOptions, options)
        self._ssl = ssl
        self._path = path
        self._server_hostname = server_hostname
        self._logger = logger or client_logger
        self._ws: Connection | None = None

    async def _attempt(self, uri: str, extra_headers: tuple[tuple[str, str], ...]
                       ) -> Connection:
        loop = asyncio.get_running_loop()
        wsuri = parse_uri(uri)
        context = client_tls(wsuri.secure, self._ssl)
        hostname = (self._server_hostname or wsuri.host) if context is not None else None

        def factory() -> _ClientProtocol:
            return _ClientProtocol(uri, extra_headers, self.options, self._logger)

        if self._path is not None:
            _, protocol = await loop.create_unix_connection(
                factory, self._path, ssl=context, server_hostname=hostname)
        elif self.options.proxy is not None:
            sock = await _tunnel(self.options.proxy, wsuri.host, wsuri.port)
            _, protocol = await loop.create_connection(
                factory, sock=sock, ssl=context, server_hostname=hostname)
        else:
            _, protocol = await loop.create_connection(
                factory, wsuri.host, wsuri.port, ssl=context, server_hostname=hostname)
        try:
            await protocol._opened
        except BaseException:
            protocol.abort()
            raise
        return protocol

    async def _open(self) -> Connection:
        hops = Redirects(self.uri, self.options)
        while True:
            attempt = self._attempt(hops.uri, hops.extra_headers)
            try:
                if self.options.open_timeout is None:
                    ws = await attempt
                else:
                    ws = await asyncio.wait_for(attempt, self.options.open_timeout)
            except InvalidStatus as exc:
                if hops.follow(exc):
                    continue
                raise
            self._ws = ws
            return ws

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def __aenter__(self) -> Connection:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
