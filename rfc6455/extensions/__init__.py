"""WebSocket extensions (RFC 6455 §9): the interface and permessage-deflate."""

from .base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParams,
    NegotiationError,
    ServerExtensionFactory,
)

__all__ = [
    "ClientExtensionFactory",
    "Extension",
    "ExtensionParams",
    "NegotiationError",
    "ServerExtensionFactory",
]
