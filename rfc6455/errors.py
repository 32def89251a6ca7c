"""Exceptions, split by whose fault the problem is.

* :class:`LocalProtocolError` -- the application misused the API (sending after
  close, accepting a handshake twice...). Nothing was sent; fix the caller.
* :class:`RemoteProtocolError` -- the peer broke RFC 6455. It carries the close
  code (:attr:`~RemoteProtocolError.code`) that the engine sent, or, during the
  opening handshake, the HTTP status (:attr:`~RemoteProtocolError.status`) that
  was answered.

The engine never raises :class:`RemoteProtocolError` out of ``receive_data``:
it fails the connection itself and reports the error in the final
:class:`~rfc6455.events.ConnectionClosed` event.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "CloseCode",
    "LocalProtocolError",
    "RemoteProtocolError",
    "WebSocketError",
]


class CloseCode(IntEnum):
    """Status codes of RFC 6455 §7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005  # reported to the application only, never sent (§7.4.1)
    ABNORMAL_CLOSURE = 1006  # reported to the application only, never sent (§7.4.1)
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # reported to the application only, never sent (§7.4.1)


class WebSocketError(Exception):
    """Base class of every exception this package raises."""


class LocalProtocolError(WebSocketError):
    """The application asked for something the protocol or the state forbids."""


class RemoteProtocolError(WebSocketError):
    """The peer violated the protocol.

    ``code`` is the close code sent to the peer (§7.4.1), ``status`` the HTTP
    status answered when the violation happened during the opening handshake
    (server role), else ``None``.
    """

    def __init__(self, message: str, code: int = CloseCode.PROTOCOL_ERROR,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
