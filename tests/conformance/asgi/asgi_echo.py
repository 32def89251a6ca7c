"""A raw ASGI echo application for the Autobahn run under uvicorn (``uvicorn_runner``).

Loaded by uvicorn as ``asgi_echo:app`` with ``--app-dir`` pointing here: a directory
with no ``rfc6455`` package in it, so the server's rfc6455 is the one on ``PYTHONPATH``.

``asgi_echo:CompressAll`` is ``rfc6455.uvicorn.WebSocketProtocol`` compressing every
message under permessage-deflate, as uvicorn's other two protocols do: its default
leaves messages under 128 bytes uncompressed (RFC 7692 §6 allows it), and kosoku 0.1.0
reports those as ERROR in 12.* and 13.*. Everything else is the class as shipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]


def __getattr__(name: str) -> Any:
    # Made on first use: the runs of uvicorn's own protocols never import rfc6455.uvicorn.
    if name == "CompressAll":
        return _compress_all()
    raise AttributeError(name)


def _compress_all() -> type[Any]:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from rfc6455 import ServerConnection
    from rfc6455.extensions.permessage_deflate import ServerPerMessageDeflate
    from rfc6455.uvicorn import WebSocketProtocol

    class CompressAll(WebSocketProtocol):
        def __init__(self, config: Config, server_state: ServerState,
                     app_state: dict[str, Any],
                     _loop: Any = None) -> None:
            super().__init__(config, server_state, app_state, _loop)
            if config.ws_per_message_deflate:
                # The same engine as the class makes (its limits, its origin policy),
                # with a compression threshold of 0.
                self.engine = ServerConnection(
                    origins=type(self).origins, check_origin=type(self).check_origin,
                    extensions=(ServerPerMessageDeflate(threshold=0),),
                    limits=self.engine._limits)

    return CompressAll


async def app(scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    """Accept, then send every message back as it came: text as text, bytes as bytes."""
    if scope["type"] != "websocket":
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404,
                        "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        if event.get("text") is not None:
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            await send({"type": "websocket.send", "bytes": event["bytes"]})
