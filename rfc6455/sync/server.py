"""The blocking WebSocket server: one thread per connection.

::

    def echo(ws):
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 8765) as server:
        server.serve_forever()
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import select
import socket
import ssl as ssl_module
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .._driver import (
    ACCEPT_RESOURCE_ERRORS,
    AcceptFailures,
    Admission,
    ServerOptions,
    answer_request,
    check_callback,
    handler_close_code,
    http_linger,
    internal_error_response,
    ip_of,
    server_logger,
    split_options,
)
from ..errors import CloseCode
from ..events import HTTPRequest, Request
from .connection import Connection, flush_blocking, handshake_io, start_reader

__all__ = ["Server", "serve"]

Handler = Callable[[Connection], None]

#: Waits between accept() retries while out of a resource (ACCEPT_RESOURCE_ERRORS),
#: doubling from the first to the second (asyncio's servers wait 1 s).
_ACCEPT_BACKOFF_MIN = 0.1
_ACCEPT_BACKOFF_MAX = 1.0


class Server:
    """A listening socket and the connections it accepted (see :func:`serve`)."""

    #: :meth:`serve_forever` raises the interpreter's thread switch interval
    #: (:func:`sys.setswitchinterval`) to this many seconds unless it is higher
    #: already; None leaves it alone. Two threads per connection means thousands
    #: of threads when many clients come or go at once (2,000 that vanish
    #: together wake 2,000 reader threads), and each thread waiting for the GIL
    #: wakes every interval to claim it: at the default 5 ms that contention
    #: alone took the process 30 s or more to serve anyone again; at 50 ms, well
    #: under a second. The cost: a handler that computes without blocking keeps
    #: others waiting up to this long.
    switch_interval: float | None = 0.05

    def __init__(self, handler: Handler, listener: socket.socket, options: ServerOptions,
                 ssl: ssl_module.SSLContext | None, logger: logging.Logger) -> None:
        self.handler = handler
        self.socket = listener
        self.options = options
        self.logger = logger
        self._ssl = ssl
        self._admission = Admission(options, logger)
        self._lock = threading.Lock()
        self._connections: set[Connection] = set()
        self._threads: set[threading.Thread] = set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._serving = threading.Event()
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def connections(self) -> frozenset[Connection]:
        """Connections whose handshake succeeded and that are not closed yet."""
        with self._lock:
            return frozenset(self._admission.open)

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`; each gets its own thread."""
        poller = select.poll()
        poller.register(self.socket, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        # Out of descriptors (or threads), a pending connection stays in the backlog
        # and the listener stays readable: retrying at once would spin a core. Wait
        # (for shutdown's wake-up only), longer each time up to _ACCEPT_BACKOFF_MAX,
        # and log the episode once when it starts and once when it ends.
        pause = select.poll()
        pause.register(self._wake_r, select.POLLIN)
        backoff = 0.0
        failures = AcceptFailures(self.logger)
        if self.switch_interval is not None and sys.getswitchinterval() < self.switch_interval:
            sys.setswitchinterval(self.switch_interval)
        self._serving.set()
        while not self._stopped:
            if backoff:
                pause.poll(int(backoff * 1000))
                if self._stopped:
                    break
            ready = poller.poll()
            if self._stopped:
                break
            if not any(fd == self.socket.fileno() for fd, _ in ready):
                continue
            try:
                sock, address = self.socket.accept()
            except OSError as exc:
                if exc.errno not in ACCEPT_RESOURCE_ERRORS:
                    continue  # the client left before we took it (ECONNABORTED...)
                failures.failed(exc, time.monotonic())
                backoff = min(_ACCEPT_BACKOFF_MAX, backoff * 2 or _ACCEPT_BACKOFF_MIN)
                continue
            thread = threading.Thread(target=self._handle, args=(sock, address), daemon=True,
                                      name=f"rfc6455-conn-{address}")
            with self._lock:
                self._threads.add(thread)
            try:
                thread.start()
            except RuntimeError as exc:  # no thread to be had: as out of descriptors
                with self._lock:
                    self._threads.discard(thread)
                sock.close()
                failures.failed(exc, time.monotonic())
                backoff = min(_ACCEPT_BACKOFF_MAX, backoff * 2 or _ACCEPT_BACKOFF_MIN)
                continue
            backoff = 0.0
            if failures.failing:
                failures.accepted(time.monotonic())

    def _handle(self, sock: socket.socket, address: Any) -> None:
        options = self.options
        ip = ip_of(address)
        deadline = None if options.open_timeout is None \
            else time.monotonic() + options.open_timeout
        conn: Connection | None = None
        reading = False  # once the reader thread runs, it closes the socket
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock.settimeout(options.open_timeout)
                sock = self._ssl.wrap_socket(sock, server_side=True)
            engine = options.new_engine()
            conn = Connection(sock, engine, options, self.logger)
            event = handshake_io(sock, engine, deadline)
            if not isinstance(event, (Request, HTTPRequest)):
                # A bad request: the engine answered it with an HTTP error and our
                # FIN; read on a moment before closing, as after any answer.
                _linger(sock, options.close_timeout)
                return
            with self._lock:
                response = self._admission.check(conn, ip, event)
                if inspect.isawaitable(response):
                    self.logger.error("process_request returned an awaitable in a sync server")
                    response = internal_error_response()
                accepted = answer_request(engine, event, response, options)
                if accepted:
                    self._admission.opened(conn, ip)
            flush_blocking(sock, engine)
            if not accepted:
                _linger(sock, options.close_timeout)
                return
            conn.handler_thread = threading.current_thread()
            start_reader(conn)
            reading = True
            self._run(conn)
        except (OSError, TimeoutError, ValueError) as exc:
            self.logger.debug("connection from %s failed: %s", address, exc)
        finally:
            if conn is not None:
                with self._lock:
                    self._admission.forget(conn, ip)
            if not reading:
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _run(self, conn: Connection) -> None:
        try:
            self.handler(conn)
        except Exception as exc:
            code = handler_close_code(exc, self.logger)
        else:
            code = handler_close_code(None, self.logger)
        if code is not None:
            conn.close(code)

    def shutdown(self, close_connections: bool = True) -> None:
        """Stop accepting; close every connection with 1001 and wait for the handlers."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        with self._lock:
            self._admission.closing = True
            conns = list(self._admission.open)
            threads = list(self._threads)
        if close_connections:
            for conn in conns:
                conn.start_close(CloseCode.GOING_AWAY, "server shutting down")
                conn.flush(block=False)  # the reader thread writes the rest
            timeout = self.options.close_timeout
            end = None if timeout is None else time.monotonic() + 2 * timeout
            for thread in threads:
                thread.join(None if end is None else max(0.0, end - time.monotonic()))
        with contextlib.suppress(OSError):
            self.socket.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _linger(sock: socket.socket, timeout: float | None) -> None:
    """After an HTTP answer and our FIN, wait briefly for the client's close.

    Closing with unread bytes would reset the connection and could destroy the
    answer before the client read it (the bound: ``_driver.HTTP_LINGER``).
    """
    sock.settimeout(http_linger(timeout))
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass


def serve(handler: Handler, host: str | None = None, port: int | None = None, *,
          path: str | None = None, ssl: ssl_module.SSLContext | None = None,
          reuse_port: bool = False, sock: socket.socket | None = None,
          logger: logging.Logger | None = None, backlog: int = 128,
          **options: Any) -> Server:
    """Listen and return a :class:`Server`; call ``serve_forever()`` to accept.

    ``handler(ws)`` runs in a thread per connection; the connection closes (1000)
    when it returns, 1011 if it raises. Options as for :func:`rfc6455.asyncio.serve`.
    """
    check_callback(handler, "connection handler", 1, asynchronous=False)
    opts: ServerOptions = split_options(ServerOptions, options)
    if sock is None:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.path.exists(path) and not os.path.isfile(path):
                    os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
        else:
            bind_host = host if host is not None else "::"
            family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
            if host is not None and ":" not in host:
                family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((bind_host, port or 0))
        sock.listen(backlog)
    return Server(handler, sock, opts, ssl, logger or server_logger)

