"""HTTP header helpers: an immutable header list and the WebSocket header grammars.

Header names are kept lower-cased, values as sent (decoded as ISO-8859-1, the
byte-preserving choice of RFC 7230 §3.2.4).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

__all__ = [
    "Headers",
    "build_extensions_header",
    "parse_extensions_header",
    "parse_token_list",
]

HeaderPairs = Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]

# Names and values that nearly every opening handshake carries, shared by every
# Headers instead of one copy per connection: a server keeps each connection's
# request headers for its whole life (idle memory, GitHub issue #7).
_SHARED = {s: s for s in (
    "host", "upgrade", "connection", "origin", "user-agent", "sec-websocket-key",
    "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol",
    "sec-websocket-accept", "accept-encoding", "accept-language", "cache-control",
    "pragma", "cookie", "authorization", "x-forwarded-for", "x-real-ip", "websocket",
    "Upgrade", "upgrade", "13", "keep-alive, Upgrade", "no-cache", "permessage-deflate",
    "permessage-deflate; client_max_window_bits", "gzip, deflate, br")}


class Headers:
    """An ordered, immutable multi-map of HTTP headers with case-insensitive names."""

    # One flat tuple (name, value, name, value...): a connection keeps its request's
    # headers for its lifetime, and pairs of tuples cost 56 bytes each (issue #7).
    __slots__ = ("_flat",)

    def __init__(self, items: HeaderPairs = ()) -> None:
        flat: list[str] = []
        for name, value in items:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            name = name.lower()
            flat.append(_SHARED.get(name, name))
            flat.append(_SHARED.get(value, value))
        self._flat: tuple[str, ...] = tuple(flat)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of ``name``; several lines are joined with ``", "`` (RFC 7230 §3.2.2)."""
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        flat = self._flat
        return [flat[i + 1] for i in range(0, len(flat), 2) if flat[i] == name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._flat[::2]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        flat = self._flat
        return zip(flat[::2], flat[1::2], strict=True)

    def __len__(self) -> int:
        return len(self._flat) // 2

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and other._flat == self._flat

    def __hash__(self) -> int:
        return hash(self._flat)

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def raw(self) -> list[tuple[bytes, bytes]]:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self]


# RFC 7230 §3.2.6
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_OWS = r"[ \t]*"
_PARAM_RE = re.compile(rf"{_OWS};{_OWS}({_TOKEN})(?:{_OWS}={_OWS}({_TOKEN}|{_QUOTED}))?")
_EXT_RE = re.compile(rf"{_OWS}({_TOKEN})")
_LIST_SEP_RE = re.compile(rf"{_OWS},{_OWS}")


def parse_token_list(value: str) -> list[str]:
    """Parse a ``1#token`` list (``Connection``, ``Upgrade``, ``Sec-WebSocket-Protocol``).

    Empty elements are skipped, as RFC 7230 §7 asks of recipients. Raises
    ``ValueError`` on anything that is not a token.
    """
    tokens = []
    for element in value.split(","):
        element = element.strip(" \t")
        if not element:
            continue
        if not _TOKEN_RE.fullmatch(element):
            raise ValueError(f"not a token: {element!r}")
        tokens.append(element)
    return tokens


def _unquote(value: str) -> str:
    if value.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
        # §9.1: a quoted value must still be a token once unquoted.
        if not _TOKEN_RE.fullmatch(value):
            raise ValueError(f"quoted extension parameter is not a token: {value!r}")
    return value


def parse_extensions_header(
    value: str,
) -> list[tuple[str, tuple[tuple[str, str | None], ...]]]:
    """Parse ``Sec-WebSocket-Extensions`` (RFC 6455 §9.1) into (name, params) pairs.

    Raises ``ValueError`` when the value does not follow the grammar.
    """
    result: list[tuple[str, tuple[tuple[str, str | None], ...]]] = []
    pos, end = 0, len(value)
    while pos < end:
        sep = _LIST_SEP_RE.match(value, pos)
        if sep and sep.end() > pos:
            pos = sep.end()
            continue
        match = _EXT_RE.match(value, pos)
        if not match:
            raise ValueError(f"invalid extension at {value[pos:]!r}")
        name, pos = match.group(1), match.end()
        params: list[tuple[str, str | None]] = []
        while (param := _PARAM_RE.match(value, pos)) is not None:
            raw = param.group(2)
            params.append((param.group(1), None if raw is None else _unquote(raw)))
            pos = param.end()
        tail = re.compile(_OWS).match(value, pos)
        pos = tail.end() if tail else pos
        if pos < end and value[pos] != ",":
            raise ValueError(f"invalid extension parameters at {value[pos:]!r}")
        result.append((name, tuple(params)))
    return result


def build_extensions_header(
    extensions: Iterable[tuple[str, Iterable[tuple[str, str | None]]]],
) -> str:
    """Serialize (name, params) pairs for ``Sec-WebSocket-Extensions``."""
    parts = []
    for name, params in extensions:
        items = [name] + [k if v is None else f"{k}={v}" for k, v in params]
        parts.append("; ".join(items))
    return ", ".join(parts)
