"""The extension interface the engine calls (RFC 6455 §9).

An extension is negotiated during the opening handshake by a *factory* and then
lives for the connection. The frame layer asks it only two questions per
message -- "is this message yours?" (by its RSV bits) and "transform this
payload" -- so an extension costs nothing on the hot path of connections that
did not negotiate one. At most one extension is negotiated per connection.
"""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "ClientExtensionFactory",
    "Extension",
    "ExtensionParams",
    "NegotiationError",
    "ServerExtensionFactory",
]

ExtensionParams = tuple[tuple[str, "str | None"], ...]


class NegotiationError(ValueError):
    """An offer or a response cannot be accepted."""


class Extension(Protocol):
    """A negotiated extension, as the frame layer sees it."""

    #: The registered extension token, e.g. ``permessage-deflate``.
    name: str
    #: The RSV bits (``0x40`` is RSV1) this extension may set on a message's first frame.
    rsv_bits: int

    def begin_incoming(self, rsv: int) -> bool:
        """A data message starts with RSV bits ``rsv``; return True if it is to be decoded."""
        ...

    def decode(self, data: bytes, final: bool, max_length: int | None) -> bytes:
        """Decode a piece of an incoming message; ``final`` marks its last piece.

        Must not return more than ``max_length`` bytes (when not None) and must
        raise :class:`~rfc6455.errors.RemoteProtocolError` (code 1009) when
        the output would exceed it, or (code 1007) when the data is corrupt.
        """
        ...

    def begin_outgoing(self, size: int | None, compress: bool | None) -> int:
        """A message of ``size`` bytes (None if unknown) starts; return its first frame's RSV.

        ``compress`` is the caller's explicit choice (None: let the extension
        decide). Returning 0 sends the message untransformed.
        """
        ...

    def encode(self, data: bytes, final: bool) -> bytes:
        """Encode a piece of an outgoing message; ``final`` marks its last piece."""
        ...


class ClientExtensionFactory(Protocol):
    """Client side of a negotiation: makes offers, accepts the server's answer."""

    name: str

    def offers(self) -> list[ExtensionParams]:
        """The parameter sets to offer, most preferred first."""
        ...

    def accept(self, params: ExtensionParams) -> Extension:
        """Build the extension from the server's response, or raise NegotiationError."""
        ...


class ServerExtensionFactory(Protocol):
    """Server side of a negotiation: picks one of the client's offers."""

    name: str

    def negotiate(self, offers: list[ExtensionParams]) -> tuple[ExtensionParams, Extension] | None:
        """Pick the first acceptable offer: return the response parameters and the extension.

        ``offers`` are the client's offers for this extension name, in its order
        of preference. Return None when none is acceptable.
        """
        ...
