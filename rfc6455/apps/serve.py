"""A reference server's configuration, the same on either backend.

:class:`ServerConfig` is built from the command line; each backend
(``_aio.py``, ``_threaded.py``) serves with it, and :func:`rfc6455.apps.launch.run_server`
picks the backend. The backends import this module; it imports none of them.
"""

from __future__ import annotations

import argparse
import logging
import ssl
from dataclasses import dataclass
from typing import Any, Final

from ..events import HTTPRequest, Request
from . import web
from .backplane import Backplane, RedisBackplane, RelayBackplane
from .hub import Hub

__all__ = ["ServerConfig", "default_max_connections", "log_start", "open_files_limit"]

logger = logging.getLogger("rfc6455.server")

#: ``--max-connections auto`` (the default): derived from the open files limit.
AUTO: Final = "auto"

#: File descriptors never given to connections: stdio, the listening sockets, the
#: event loop's own, log files, the backplane's sockets, files still to be opened
#: (modules imported late, certificates).
FD_RESERVE: Final = 64


def open_files_limit() -> int | None:
    """The soft ``RLIMIT_NOFILE`` of this process; None when unlimited or unknown."""
    try:
        import resource
    except ImportError:  # not on every platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def default_max_connections(fd_limit: int | None) -> int | None:
    """``--max-connections`` by default: ``fd_limit - 64 - fd_limit // 8``, at least 1.

    An open connection holds one file descriptor on either backend. The cap
    counts open connections only, so besides :data:`FD_RESERVE` an eighth of
    the limit stays free for connections still in their opening handshake and
    for the 503 answers past the cap: a surplus client gets 503 (RFC 9110
    §15.6.4) instead of waiting in the listen backlog for an ``accept()`` that
    fails with EMFILE. None (no cap) when the limit is unknown or unlimited.
    """
    if fd_limit is None:
        return None
    return max(1, fd_limit - FD_RESERVE - fd_limit // 8)


@dataclass(frozen=True)
class ServerConfig:
    """Everything a reference server needs, independent of the backend."""

    app: str  # "echo" or "broadcast"
    host: str = "127.0.0.1"
    port: int = 8080
    backend: str = "asyncio"
    max_size: int | None = 1024 * 1024
    max_fragments: int | None = 4096
    max_queue: int = 16
    compression: bool = True
    compression_threshold: int | None = None
    #: None in the list lets clients that send no Origin in (non-browsers).
    origins: tuple[str | None, ...] | None = None
    certfile: str | None = None
    keyfile: str | None = None
    close_timeout: float | None = 10.0
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    #: Open WebSocket connections at most, past it HTTP 503 (None: no cap).
    max_connections: int | None = None
    max_connections_per_ip: int | None = None
    #: The open files limit ``max_connections`` was derived from, if it was.
    fd_limit: int | None = None
    client_buffer: int = 1024 * 1024
    slow_policy: str = "drop"
    slow_close_code: int = 1008
    redis: str | None = None
    channel: str = "rfc6455:broadcast"
    relay: str | None = None
    reuse_port: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServerConfig:
        max_connections, fd_limit = args.max_connections, None
        if max_connections == AUTO:
            fd_limit = open_files_limit()
            max_connections = default_max_connections(fd_limit)
        return cls(
            app=args.command, host=args.host, port=args.port, backend=args.backend,
            max_size=args.max_size, max_fragments=args.max_fragments,
            max_queue=args.max_queue, compression=not args.no_compression,
            compression_threshold=args.compression_threshold,
            origins=tuple(None if origin.lower() == "none" else origin
                          for origin in args.origins) if args.origins else None,
            certfile=args.certfile, keyfile=args.keyfile,
            close_timeout=args.close_timeout, ping_interval=args.ping_interval,
            ping_timeout=args.ping_timeout, max_connections=max_connections,
            max_connections_per_ip=args.max_connections_per_ip, fd_limit=fd_limit,
            client_buffer=getattr(args, "client_buffer", None) or 1024 * 1024,
            slow_policy=getattr(args, "slow_policy", "drop"),
            slow_close_code=getattr(args, "slow_close_code", 1008),
            redis=getattr(args, "redis", None),
            channel=getattr(args, "channel", "rfc6455:broadcast"),
            relay=getattr(args, "relay", None),
            reuse_port=getattr(args, "reuse_port", False),
        )

    def adapter_options(self) -> dict[str, Any]:
        """Keyword options of ``rfc6455.asyncio.serve`` / ``rfc6455.sync.serve``."""
        compression_options: dict[str, Any] = {}
        if self.app == "broadcast":
            # RFC 7692 §7.1.1.1: without server context takeover every message
            # compresses from a fresh state, so one compressed frame serves all
            # clients (see hub.py); the ratio is a little worse, fan-out O(1).
            compression_options["server_no_context_takeover"] = True
        if self.compression_threshold is not None:
            compression_options["threshold"] = self.compression_threshold
        return {
            "origins": self.origins,
            "max_size": self.max_size,
            "max_fragments": self.max_fragments,
            "max_queue": self.max_queue,
            "compression": "deflate" if self.compression else None,
            "compression_options": compression_options,
            "close_timeout": self.close_timeout,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "max_connections": self.max_connections,
            "max_connections_per_ip": self.max_connections_per_ip,
            "process_request": self.process_request,
            "reuse_port": self.reuse_port,
        }

    def process_request(self, connection: object, request: Request | HTTPRequest) -> \
            web.Answer | None:
        """The adapters' hook: plain HTTP gets the page, health check or 404 (§4.2.1)."""
        if isinstance(request, HTTPRequest):
            return web.answer(request, self.app)
        return None  # a WebSocket upgrade: accept it on any path

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.certfile is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def make_backplane(self) -> Backplane | None:
        """The message bus between processes, when this one is not alone (see backplane.py)."""
        if self.app != "broadcast":
            return None
        if self.redis is not None:
            return RedisBackplane(self.redis, self.channel)
        if self.relay is not None:
            return RelayBackplane(self.relay)
        return None

    def make_hub(self) -> Hub:
        return Hub(buffer_limit=self.client_buffer, policy=self.slow_policy,
                   close_code=self.slow_close_code)


def _url(config: ServerConfig, address: Any) -> str:
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    scheme = "wss" if config.certfile else "ws"
    return f"{scheme}://{host}:{port}/ws"


def _caps(config: ServerConfig) -> str:
    if config.max_connections is None:
        total = "no cap on connections"
    else:
        total = f"at most {config.max_connections} connections"
    if config.fd_limit is not None:
        total += (f" (open files limit {config.fd_limit} - {FD_RESERVE} - "
                  f"{config.fd_limit} // 8)")
    per_ip = config.max_connections_per_ip
    return total + ", " + ("no cap per client address" if per_ip is None
                           else f"at most {per_ip} per client address")


def log_start(config: ServerConfig, address: Any) -> None:
    # Past a cap, upgrade requests get 503 (the adapters' Admission).
    logger.info("%s", _caps(config))
    logger.info("%s server (%s backend) listening on %s", config.app, config.backend,
                _url(config, address))
