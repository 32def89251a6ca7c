"""Plain HTTP on the reference servers: the demo page, a health check, 404 otherwise.

A request without ``Upgrade: websocket`` reaches the application as an
:class:`~rfc6455.events.HTTPRequest` (RFC 6455 §4.2.1 leaves non-upgrade
requests to the server); these helpers decide the answer, the adapter sends it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from ..events import HTTPRequest

__all__ = ["Answer", "answer", "page"]

Answer = tuple[int, list[tuple[str, str]], bytes]

_PAGES = {"echo": "echo.html", "broadcast": "chat.html"}


@cache
def page(app: str) -> bytes:
    """The self-contained HTML page of ``app`` (``echo`` or ``broadcast``)."""
    return resources.files(__package__).joinpath(_PAGES[app]).read_bytes()


def answer(request: HTTPRequest, app: str) -> Answer:
    """Status, headers and body for a plain HTTP request to the ``app`` server."""
    if request.method == "GET" and request.path == "/":
        return 200, [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            # The page only talks back to its own origin.
            ("content-security-policy",
             "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
             "connect-src 'self' ws: wss:"),
        ], page(app)
    if request.method == "GET" and request.path == "/healthz":
        return 200, [("content-type", "text/plain; charset=utf-8")], b"ok\n"
    return 404, [("content-type", "text/plain; charset=utf-8")], b"not found\n"
