"""``ws://`` and ``wss://`` URIs (RFC 6455 §3)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["WebSocketURI", "parse_uri"]


@dataclass(frozen=True, slots=True)
class WebSocketURI:
    secure: bool
    host: str
    port: int
    target: str  # path and query: the request-target of §4.1 item 2

    @property
    def host_header(self) -> str:
        """The ``Host`` value: the port is left out when it is the scheme's default (§4.1)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_uri(uri: str) -> WebSocketURI:
    """Split a WebSocket URI; raises ``ValueError`` for other schemes or a fragment (§3)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a WebSocket URI: {uri!r}")
    if parts.fragment or "#" in uri:
        raise ValueError("WebSocket URIs cannot have a fragment (§3)")
    if not parts.hostname:
        raise ValueError(f"no host in {uri!r}")
    secure = scheme == "wss"
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebSocketURI(secure, parts.hostname, port, target)
