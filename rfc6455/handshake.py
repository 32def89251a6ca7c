"""The opening handshake (RFC 6455 §4), driven through h11.

Each role has one small class that owns an ``h11.Connection``: it turns bytes
into a handshake event and, once the decision is taken, produces the bytes of
the answer. The engine (``connection.py``) calls it while in the CONNECTING
state and hands the bytes left over after the head (``trailing_data``) to the
frame reader.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import h11

from .errors import CloseCode, LocalProtocolError, RemoteProtocolError
from .events import Accepted, ExtensionOffer, HTTPRequest, Rejected, Request
from .extensions.base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParams,
    NegotiationError,
    ServerExtensionFactory,
)
from .headers import (
    _TOKEN_RE,
    Headers,
    build_extensions_header,
    parse_extensions_header,
    parse_token_list,
)

__all__ = [
    "ClientHandshake",
    "OriginAllowList",
    "ServerHandshake",
    "accept_token",
    "origin_allowed",
    "parse_host",
    "validate_origin_options",
]

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # §1.3
SUPPORTED_VERSION = "13"  # §4.1 item 9
MAX_REJECTION_BODY = 65536  # bytes of a non-101 response body kept for the caller

ExtraHeaders = Iterable[tuple[str, str]]


def accept_token(key: str) -> str:
    """``Sec-WebSocket-Accept`` for ``key`` (§4.2.2 item 5.4)."""
    digest = hashlib.sha1(key.encode("ascii") + GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def _has_token(headers: Headers, name: str, token: str) -> bool:
    try:
        return any(t.lower() == token for t in parse_token_list(headers.get(name, "") or ""))
    except ValueError:
        return False


def _parse_extension_offers(headers: Headers) -> tuple[ExtensionOffer, ...]:
    offers: list[ExtensionOffer] = []
    for value in headers.get_all("sec-websocket-extensions"):
        offers.extend(ExtensionOffer(name, params) for name, params in
                      parse_extensions_header(value))
    return tuple(offers)


# ---------------------------------------------------------------- hosts and origins

# RFC 3986 §3.2.2-3.2.3 as RFC 9112 §3.2 uses them for Host: uri-host [ ":" port ].
# One grammar for the Host header and for an origin's host (RFC 6454 §6.2).
_SUB_DELIMS = "!$&'()*+,;="
_REG_NAME = rf"(?:[A-Za-z0-9\-._~{re.escape(_SUB_DELIMS)}]|%[0-9A-Fa-f]{{2}})*"
_IP_LITERAL = (rf"\[(?:(?P<ipv6>[0-9A-Fa-f:.]+)"
               rf"|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~{re.escape(_SUB_DELIMS)}:]+)\]")
_AUTHORITY = rf"(?P<host>{_IP_LITERAL}|{_REG_NAME})(?::(?P<port>[0-9]*))?"
_HOST_RE = re.compile(_AUTHORITY)
_ORIGIN_RE = re.compile(rf"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://{_AUTHORITY}")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_Authority = tuple[str, int | None]  # (lower-cased host, port or None)
_OriginKey = tuple[str, str, int | None]  # (scheme, host, port): RFC 6454 §4's tuple


def _authority(match: re.Match[str]) -> _Authority | None:
    host = match.group("host").lower()
    ipv6 = match.group("ipv6")
    if ipv6 is not None:
        try:
            host = f"[{ipaddress.IPv6Address(ipv6).compressed}]"
        except ValueError:
            return None
    port_text = match.group("port")
    if not port_text:
        return host, None  # "host:" is allowed by the grammar: no port
    port = int(port_text)
    return (host, port) if port <= 65535 else None


def parse_host(value: str) -> _Authority | None:
    """(host, port) of a ``Host`` value (RFC 9112 §3.2), or None if it is not valid."""
    match = _HOST_RE.fullmatch(value)
    return None if match is None else _authority(match)


def _origin_key(origin: str) -> _OriginKey | None:
    """(scheme, host, port) of a serialized origin (RFC 6454 §6.2), or None if it is not one.

    Scheme and host compare case-insensitively, a default port (80/443) equals its
    absence, an IPv6 address compares as an address; nothing else is normalized, so
    a path, userinfo, whitespace, an empty port or any other character is no origin
    and matches nothing.
    """
    match = _ORIGIN_RE.fullmatch(origin)
    if match is None or not match.group("host") or match.group("port") == "":
        return None
    authority = _authority(match)
    if authority is None:
        return None
    scheme = match.group("scheme").lower()
    host, port = authority
    return scheme, host, _DEFAULT_PORTS.get(scheme) if port is None else port


@dataclass(frozen=True, slots=True)
class OriginAllowList:
    """An explicit ``origins`` list, parsed once (see :func:`validate_origin_options`)."""

    origins: frozenset[_OriginKey]
    allow_missing: bool  # None was listed: requests without Origin pass
    allow_null: bool  # "null" was listed: opaque origins (sandboxed pages, file:) pass
    allow_any: bool  # "*" was listed: no origin check at all


def validate_origin_options(
    origins: Collection[str | None] | OriginAllowList | None,
    check_origin: Callable[[Request], bool] | None,
) -> OriginAllowList | None:
    """Check the server's origin options; the allow-list they make, or None for none.

    ``origins`` is None (the default same-host policy) or a collection of origins
    (``"https://app.example"``), ``"null"``, ``"*"`` and ``None``. A ``str`` is
    refused (``TypeError``): iterating over it would allow its characters. An
    entry that is no ``scheme://host[:port]`` raises ``ValueError``, as do both
    options given at once (``check_origin`` replaces the policy). An
    :class:`OriginAllowList` (this function's result) is returned as it is: a
    server parses its list once for all its connections.
    """
    if check_origin is not None and not callable(check_origin):
        raise TypeError(f"check_origin must be callable, not {type(check_origin).__name__}")
    if origins is None:
        return None
    if check_origin is not None:
        raise ValueError("give origins or check_origin, not both")
    if isinstance(origins, OriginAllowList):
        return origins
    if isinstance(origins, (str, bytes, bytearray)):
        raise TypeError(f"origins must be a list of origins, not the {type(origins).__name__} "
                        f"{origins!r}: write origins=[{origins!r}]")
    if not isinstance(origins, Collection):
        # An iterator would be used up by the first connection.
        raise TypeError(f"origins must be a list of origins, not {type(origins).__name__}")
    keys: set[_OriginKey] = set()
    allow_missing = allow_null = allow_any = False
    for entry in origins:
        if entry is None:
            allow_missing = True
        elif not isinstance(entry, str):
            raise TypeError(f"origins entries are str or None, not {entry!r}")
        elif entry == "*":
            allow_any = True
        elif entry == "null":
            allow_null = True
        else:
            key = _origin_key(entry)
            if key is None:
                raise ValueError(f"not an origin (scheme://host[:port]): {entry!r}")
            keys.add(key)
    return OriginAllowList(frozenset(keys), allow_missing, allow_null, allow_any)


def _origin_passes(origin: str | None, host: str | None, allowed: OriginAllowList | None) -> bool:
    if allowed is not None:
        if allowed.allow_any:
            return True
        if origin is None:
            return allowed.allow_missing
        if origin == "null":
            return allowed.allow_null
        return _origin_key(origin) in allowed.origins
    if origin is None:
        return True
    key = _origin_key(origin)
    authority = None if host is None else parse_host(host)
    if key is None or authority is None:
        return False  # "null" (RFC 6454 §7.3) and garbage included
    _, origin_host, origin_port = key
    host_name, host_port = authority
    return host_name == origin_host and (host_port is None or host_port == origin_port)


def origin_allowed(origin: str | None, host: str | None,
                   allowed: Collection[str | None] | None) -> bool:
    """The origin policy (§10.2): protect browsers from cross-site hijacking.

    Without an ``allowed`` list, requests without ``Origin`` come from non-browser
    clients and pass, and a browser's origin must have the host (and the port, when
    ``Host`` names one) of the ``Host`` header: a page may open a WebSocket to the
    server that served it. ``null`` never passes.

    With a list, the origin must equal an entry as (scheme, host, port), compared
    case-insensitively with default ports filled in; ``"null"`` passes only if
    listed, a missing ``Origin`` only if ``None`` is listed; ``"*"`` allows every
    request. See :func:`validate_origin_options` for what the list may hold.
    """
    return _origin_passes(origin, host, validate_origin_options(allowed, None))


class _Answer(Exception):
    """Internal: the request must be answered with an HTTP error."""

    def __init__(self, status: int, message: str, headers: ExtraHeaders = ()) -> None:
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


def _error_response(status: int, message: str, extra: ExtraHeaders = ()) -> tuple[
        int, list[tuple[str, str]], bytes]:
    body = (message + "\n").encode("utf-8")
    headers = [("content-type", "text/plain; charset=utf-8"), *extra]
    return status, headers, body


# RFC 9110 renamed these; http.HTTPStatus has the new names only from Python 3.13.
_RFC9110_PHRASES = {413: b"Content Too Large", 414: b"URI Too Long",
                    416: b"Range Not Satisfiable", 422: b"Unprocessable Content"}


def _reason(status: int) -> bytes:
    """The standard reason phrase of ``status`` (RFC 9110 §15), empty for an unregistered one."""
    phrase = _RFC9110_PHRASES.get(status)
    if phrase is not None:
        return phrase
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""  # RFC 9112 §4: the reason-phrase may be empty


class ServerHandshake:
    """Server role: parse a request, then answer it with 101 or an HTTP response."""

    def __init__(
        self,
        *,
        max_header_bytes: int,
        origins: Collection[str | None] | OriginAllowList | None,
        subprotocols: Sequence[str],
        extensions: Sequence[ServerExtensionFactory],
        check_origin: Callable[[Request], bool] | None = None,
    ) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self._origins = validate_origin_options(origins, check_origin)
        self._check_origin = check_origin
        self._subprotocols = tuple(subprotocols)
        self._factories = tuple(extensions)
        self._request: Request | HTTPRequest | None = None
        self._key = ""
        # h11 bounds only an incomplete head; a whole head arriving at once is
        # measured here (§10.7: bound what the peer controls).
        self._max_header_bytes = max_header_bytes
        self._received = 0
        self._head_bytes = 0  # bytes of the request head, once parsed
        # Where the request line ends (just past its LF), once seen: tells a request
        # line too long (414) from a header section too large (431).
        self._line_end: int | None = None
        self._head_request = False
        # The refusal found in the request, with the headers its answer carries.
        self._pending_error: _Answer | None = None
        self.extension: Extension | None = None
        self.subprotocol: str | None = None

    @property
    def complete(self) -> bool:
        """Whether a whole request head was received and accepted for an answer."""
        return self._request is not None

    def receive_data(self, data: bytes) -> None:
        if self._line_end is None:
            # Each byte is searched once, and only until the first LF.
            found = data.find(b"\n")
            if found >= 0:
                self._line_end = self._received + found + 1
        self._received += len(data)
        self._h11.receive_data(data)

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not parsed: the partial head, or what followed the whole head.

        h11 bounds an incomplete head, but holds whatever arrives after a complete
        one (the client's first frames) until the application answers it.
        """
        return self._received - self._head_bytes

    def _too_large(self) -> RemoteProtocolError:
        # RFC 9110 §15.5.15: 414 when the request target makes the request line alone
        # exceed the bound; RFC 6585 §5: 431 when the header section does.
        line_end = self._line_end
        if line_end is None or line_end > self._max_header_bytes:
            return RemoteProtocolError("request line too long", CloseCode.PROTOCOL_ERROR, 414)
        return RemoteProtocolError("request head too large", CloseCode.PROTOCOL_ERROR, 431)

    def next_event(self) -> Request | HTTPRequest | RemoteProtocolError | None:
        """The request once its head is complete; an error already answered; None for more data.

        After an error is returned, :meth:`answer_error` gives the response bytes.
        """
        if self._request is not None:
            return None
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431:  # h11: the incomplete head outgrew the bound
                return self._too_large()
            return RemoteProtocolError(f"malformed HTTP request: {exc}",
                                       CloseCode.PROTOCOL_ERROR, exc.error_status_hint)
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return None
        if isinstance(event, h11.ConnectionClosed):
            return RemoteProtocolError("connection closed during the opening handshake",
                                       CloseCode.ABNORMAL_CLOSURE, None)
        assert isinstance(event, h11.Request), event
        self._head_request = event.method == b"HEAD"
        self._head_bytes = self._received - len(self._h11.trailing_data[0])
        if self._head_bytes > self._max_header_bytes:
            return self._too_large()
        try:
            self._request = self._check_request(event)
        except _Answer as answer:
            self._pending_error = answer
            error = RemoteProtocolError(str(answer), CloseCode.PROTOCOL_ERROR, answer.status)
            # A failing check_origin: the application's exception, for it to log.
            error.__cause__ = answer.__cause__
            return error
        return self._request

    def _check_request(self, event: h11.Request) -> Request | HTTPRequest:
        headers = Headers(event.headers)
        # RFC 9112 §3.2: a Host with an invalid value is a 400, for any request (h11
        # already refuses a second Host, or none in HTTP/1.1).
        host = headers.get("host")
        authority = None if host is None else parse_host(host)
        if host is not None and authority is None:
            raise _Answer(400, "invalid Host header")
        method = event.method.decode("ascii")
        target = event.target.decode("latin-1")
        upgrade_present = _has_token(headers, "upgrade", "websocket")
        if not upgrade_present and "sec-websocket-key" not in headers:
            # Not a WebSocket request at all: the application may answer it. Its body,
            # if any, is never read: the answer closes the connection (respond), and
            # such a request cannot be accepted, so no byte of it reaches the frames.
            return HTTPRequest(method, target, headers)
        # RFC 9112 §6.3 with RFC 6455 §4.1: an upgrade request has no content. Were a
        # body allowed, h11 would leave it in trailing_data and the frame reader would
        # take it for the client's first frames (request smuggling).
        if "transfer-encoding" in headers or any(
                int(value) != 0 for value in headers.get_all("content-length")):
            raise _Answer(400, "a WebSocket upgrade request has no body")
        # §4.2.1: everything below must hold, else "400 Bad Request".
        if method != "GET":
            raise _Answer(400, "WebSocket upgrade requires GET")
        if event.http_version < b"1.1":
            raise _Answer(400, "WebSocket upgrade requires HTTP/1.1")
        if authority is None or not authority[0]:
            # §4.1 item 4: the Host names the server's authority (h11 allows "Host:").
            raise _Answer(400, "WebSocket upgrade requires a Host")
        if not upgrade_present:
            raise _Answer(400, "missing 'Upgrade: websocket'")
        if not _has_token(headers, "connection", "upgrade"):
            raise _Answer(400, "missing 'Connection: Upgrade'")
        keys = headers.get_all("sec-websocket-key")
        if not keys:
            raise _Answer(400, "missing Sec-WebSocket-Key header")
        if len(keys) != 1:
            raise _Answer(400, "expected exactly one Sec-WebSocket-Key")
        try:
            raw_key = base64.b64decode(keys[0].strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raw_key = b""
        if len(raw_key) != 16:
            raise _Answer(400, "Sec-WebSocket-Key is not 16 bytes in base64")
        # §4.2.2 / §4.4: an unsupported (or missing) version gets 426 and the one we speak.
        versions = headers.get_all("sec-websocket-version")
        if [v.strip() for v in versions] != [SUPPORTED_VERSION]:
            raise _Answer(426, "unsupported WebSocket version",
                          [("sec-websocket-version", SUPPORTED_VERSION)])
        try:
            subprotocols = tuple(parse_token_list(headers.get("sec-websocket-protocol", "") or ""))
            extensions = _parse_extension_offers(headers)
        except ValueError as exc:
            raise _Answer(400, str(exc)) from exc
        request = Request(target, headers, subprotocols, extensions)
        if not self._origin_passes(request):
            raise _Answer(403, "origin not allowed")
        self._key = keys[0].strip()
        return request

    def _origin_passes(self, request: Request) -> bool:
        check = self._check_origin
        if check is not None:
            try:
                return bool(check(request))
            except Exception as exc:
                # Fail closed: a broken policy lets nothing through. The peer learns
                # only "403"; the exception travels as the error's __cause__.
                raise _Answer(403, "origin not allowed") from exc
        origins = request.headers.get_all("origin")
        if len(origins) > 1:
            return False  # RFC 6454 §7.3: one origin per request; several are ambiguous
        return _origin_passes(origins[0] if origins else None, request.host, self._origins)

    def select_subprotocol(self, request: Request) -> str | None:
        """The first of the server's subprotocols that the client offered (§4.2.2 item 5.4)."""
        for candidate in self._subprotocols:
            if candidate in request.subprotocols:
                return candidate
        return None

    def accept(self, subprotocol: str | None, extra_headers: ExtraHeaders) -> bytes:
        request = self._request
        if not isinstance(request, Request):
            raise LocalProtocolError("no WebSocket request to accept")
        if subprotocol is not None and subprotocol not in request.subprotocols:
            raise LocalProtocolError(f"subprotocol {subprotocol!r} was not offered by the client")
        headers: list[tuple[str, str]] = [
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", accept_token(self._key)),
        ]
        if subprotocol is not None:
            headers.append(("sec-websocket-protocol", subprotocol))
        response_ext = self._negotiate_extension(request)
        if response_ext is not None:
            headers.append(("sec-websocket-extensions", response_ext))
        headers.extend(extra_headers)
        try:
            response = h11.InformationalResponse(status_code=101, headers=headers,
                                                  reason=_reason(101))
        except h11.LocalProtocolError as exc:  # e.g. CR/LF in an extra header
            raise LocalProtocolError(f"cannot send this response: {exc}") from exc
        self.subprotocol = subprotocol
        return self._h11.send(response) or b""

    def _negotiate_extension(self, request: Request) -> str | None:
        # At most one extension is negotiated; the first factory with an acceptable
        # offer wins (RFC 7692 §5: the server picks one offer per extension).
        for factory in self._factories:
            offers = [offer.params for offer in request.extensions if offer.name == factory.name]
            if not offers:
                continue
            chosen = factory.negotiate(offers)
            if chosen is not None:
                params, self.extension = chosen
                return build_extensions_header([(factory.name, params)])
        return None

    def trailing_data(self) -> bytes:
        """Bytes the client sent after its request head: the first frames."""
        return bytes(self._h11.trailing_data[0])

    def respond(self, status: int, headers: ExtraHeaders, body: bytes) -> bytes:
        """An HTTP response that ends the connection (a rejection, or a plain HTTP answer)."""
        if self._request is None and self._h11.their_state is h11.ERROR:
            # Answering a request h11 could not parse: h11 refuses to send in its
            # error state, so use a fresh one that has seen a minimal request.
            fresh = h11.Connection(h11.SERVER)
            fresh.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            fresh.next_event()
            conn = fresh
        else:
            conn = self._h11
        all_headers = [(k.lower(), v) for k, v in headers
                       if k.lower() not in ("content-length", "connection")]
        all_headers += [("content-length", str(len(body))), ("connection", "close")]
        try:
            out = conn.send(h11.Response(status_code=status, headers=all_headers,
                                         reason=_reason(status))) or b""
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"cannot send this response: {exc}") from exc
        if conn.our_state is h11.SWITCHED_PROTOCOL:
            # h11 takes a 2xx answer to CONNECT for an opened tunnel and frames
            # nothing more (found by fuzz/): the body follows the head as is.
            return out + (b"" if self._head_request else body)
        if body and not self._head_request:
            # A response to HEAD announces the body's length but carries no body.
            out += conn.send(h11.Data(data=body)) or b""
        out += conn.send(h11.EndOfMessage()) or b""
        return out

    def answer_error(self, error: RemoteProtocolError) -> bytes:
        """The HTTP error response for ``error``, as returned by :meth:`next_event`."""
        pending = self._pending_error
        status, headers, body = _error_response(
            error.status or 400, str(error), pending.headers if pending is not None else ())
        return self.respond(status, headers, body)


class ClientHandshake:
    """Client role: build the request, then validate the server's response (§4.1)."""

    def __init__(
        self,
        *,
        host: str,
        target: str,
        origin: str | None,
        subprotocols: Sequence[str],
        extensions: Sequence[ClientExtensionFactory],
        extra_headers: ExtraHeaders,
        max_header_bytes: int,
    ) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
        # §4.1 item 7: 16 fresh random bytes per connection.
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._subprotocols = tuple(subprotocols)
        self._factories = tuple(extensions)
        self._rejected: tuple[int, Headers] | None = None
        self._body = bytearray()
        self._max_header_bytes = max_header_bytes
        self._received = 0
        self._eof = False
        self.extension: Extension | None = None
        headers: list[tuple[str, str]] = [
            ("host", host),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-key", self.key),
            ("sec-websocket-version", SUPPORTED_VERSION),
        ]
        if origin is not None:
            headers.append(("origin", origin))
        if self._subprotocols:
            headers.append(("sec-websocket-protocol", ", ".join(self._subprotocols)))
        offers: list[tuple[str, ExtensionParams]] = [
            (factory.name, params) for factory in self._factories for params in factory.offers()
        ]
        if offers:
            headers.append(("sec-websocket-extensions", build_extensions_header(offers)))
        headers.extend(extra_headers)
        # §4.1: the subprotocols are tokens; a target with whitespace would break
        # the request line (h11 does not check it).
        if any(not _TOKEN_RE.fullmatch(p) for p in self._subprotocols):
            raise ValueError(f"subprotocols must be tokens: {self._subprotocols!r}")
        if not target or any(c <= " " or c == "\x7f" for c in target):
            raise ValueError(f"invalid request target: {target!r}")
        try:
            request = h11.Request(method="GET", target=target, headers=headers)
        except h11.LocalProtocolError as exc:
            raise ValueError(f"invalid request: {exc}") from exc
        self.request_headers = Headers(headers)
        self.request_bytes = (self._h11.send(request) or b"") + (
            self._h11.send(h11.EndOfMessage()) or b"")

    def receive_data(self, data: bytes) -> None:
        self._received += len(data)
        self._eof = self._eof or not data
        self._h11.receive_data(data)

    def next_event(self) -> Accepted | Rejected | RemoteProtocolError | None:
        """The verdict on the response once it is known; None while more data is needed."""
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self._eof and self._rejected is None:
                    # The head was cut short by EOF: nothing to answer, report 1006.
                    return RemoteProtocolError(
                        "connection closed during the opening handshake",
                        CloseCode.ABNORMAL_CLOSURE)
                return RemoteProtocolError(f"malformed HTTP response: {exc}")
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, (h11.InformationalResponse, h11.Response)) and (
                    self._received - len(self._h11.trailing_data[0]) > self._max_header_bytes):
                return RemoteProtocolError("response head too large",
                                           CloseCode.MESSAGE_TOO_BIG)
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    return self._check_response(Headers(event.headers))
                continue  # §4.1: other 1xx are not the answer; 100 Continue etc. are skipped
            if isinstance(event, h11.Response):
                self._rejected = (event.status_code, Headers(event.headers))
            elif isinstance(event, h11.Data):
                room = MAX_REJECTION_BODY - len(self._body)
                self._body += event.data[:room]
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if self._rejected is None:
                    return RemoteProtocolError("connection closed during the opening handshake",
                                               CloseCode.ABNORMAL_CLOSURE)
                status, headers = self._rejected
                return Rejected(status, headers, bytes(self._body))

    def _check_response(self, headers: Headers) -> Accepted | RemoteProtocolError:
        upgrade = [t.lower() for t in _tokens(headers.get("upgrade"))]
        if upgrade != ["websocket"]:
            return RemoteProtocolError("101 response without 'Upgrade: websocket'")
        if not _has_token(headers, "connection", "upgrade"):
            return RemoteProtocolError("101 response without 'Connection: Upgrade'")
        if headers.get_all("sec-websocket-accept") != [accept_token(self.key)]:
            return RemoteProtocolError("wrong Sec-WebSocket-Accept")
        subprotocol: str | None = None
        values = headers.get_all("sec-websocket-protocol")
        if values:
            chosen = _tokens(", ".join(values))
            if len(chosen) != 1 or chosen[0] not in self._subprotocols:
                return RemoteProtocolError(f"server chose a subprotocol not offered: {values!r}")
            subprotocol = chosen[0]
        try:
            names = self._accept_extensions(headers)
        except (ValueError, NegotiationError) as exc:
            return RemoteProtocolError(f"unacceptable extensions: {exc}",
                                       CloseCode.MANDATORY_EXTENSION)
        return Accepted(headers, subprotocol, names)

    def _accept_extensions(self, headers: Headers) -> tuple[str, ...]:
        accepted = []
        for offer in _parse_extension_offers(headers):
            factory = next((f for f in self._factories if f.name == offer.name), None)
            if factory is None:
                raise NegotiationError(f"{offer.name} was not offered")
            if self.extension is not None:
                raise NegotiationError("more than one extension in the response")
            self.extension = factory.accept(offer.params)
            accepted.append(offer.name)
        return tuple(accepted)

    def trailing_data(self) -> bytes:
        return bytes(self._h11.trailing_data[0])


def _tokens(value: str | None) -> list[str]:
    try:
        return parse_token_list(value or "")
    except ValueError:
        return []
