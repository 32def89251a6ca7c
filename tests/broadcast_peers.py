"""Peers for the broadcast tests of both adapters: a member that never reads."""

from __future__ import annotations

import socket
import ssl
from typing import Any

from tests.conftest import Transport
from tests.helpers import client_request

#: The stuck peer's receive buffer: small, so that it is slow almost at once.
STUCK_RCVBUF = 4096


def stuck_peer(transport: Transport, server: Any) -> socket.socket:
    """A client over ``transport`` that completes the opening handshake, then never reads.

    Blocking: from an event loop, call it in a thread (the server must answer).
    """
    if transport.name == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STUCK_RCVBUF)
        sock.settimeout(10)
        sock.connect(transport.connect_kwargs["path"])
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Before connect(): the receive window offered to the server stays small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STUCK_RCVBUF)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        if transport.name == "tls":
            context: ssl.SSLContext = transport.connect_kwargs["ssl"]
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    try:
        sock.sendall(client_request())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # one byte at a time: nothing after the head is read
            assert chunk, "closed during the opening handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101 "), head
    except BaseException:
        sock.close()
        raise
    return sock
