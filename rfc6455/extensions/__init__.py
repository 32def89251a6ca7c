"""WebSocket extensions (RFC 6455 §9): the interface and permessage-deflate."""

from .base import (
    ClientExtensionFactory,
    Extension,
    ExtensionParams,
    NegotiationError,
    ServerExtensionFactory,
)
from .permessage_deflate import (
    ClientPerMessageDeflate,
    DeflateOffer,
    PerMessageDeflate,
    ServerPerMessageDeflate,
)

__all__ = [
    "ClientExtensionFactory",
    "ClientPerMessageDeflate",
    "DeflateOffer",
    "Extension",
    "ExtensionParams",
    "NegotiationError",
    "PerMessageDeflate",
    "ServerExtensionFactory",
    "ServerPerMessageDeflate",
]
