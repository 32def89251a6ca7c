"""Write the small seed corpora of the atheris harnesses (not committed; regenerated).

Usage: ``python -m fuzz.make_corpus DIR`` writes ``DIR/frames``, ``DIR/handshake``
and ``DIR/inflate``. Seeds are valid inputs produced by real engines, so the
fuzzer starts from deep inside the protocol rather than from noise.
"""

from __future__ import annotations

import hashlib
import sys
import zlib
from pathlib import Path

from .common import (
    DEFLATE_ANSWER,
    DEFLATE_OFFER,
    build_frame,
    client_request,
    open_client,
    open_server,
)

__all__ = ["write_corpus"]

_KEY = b"\x01\x02\x03\x04"


def _stream(masked: bool, deflate: bool) -> bytes:
    """What an engine of the other role writes: messages whole and in parts, controls."""
    sender = open_client(deflate=deflate) if masked else open_server(deflate=deflate)
    sender.send("héllo")
    sender.send(b"\x00\x01" * 100)
    sender.send("part one, ", final=False)
    sender.ping(b"ping")
    sender.send("part two", final=True)
    sender.send(b"x" * 300)
    sender.pong(b"unsolicited")
    sender.close(1000, "bye")
    out = sender.data_to_send()
    assert isinstance(out, bytes)
    return out


def _frames_seeds() -> list[bytes]:
    seeds = []
    for config in range(32):
        masked = not config & 1  # a server engine (bit 0 clear) expects masked frames
        deflate = bool(config & 2)
        if config & 4 and config & 8:
            continue  # enough variety without every combination
        stream = _stream(masked, deflate)
        seeds.append(bytes([config, 2]) + b"\x00\x03\x00\x40" + stream)
    key = _KEY
    odd = [
        build_frame(1, b"\xed\xa0\x80", key=key),  # §8.1: a surrogate
        build_frame(2, b"abc", key=key, length=2**63),  # §5.2: MSB set
        build_frame(2, b"abc", key=key, length=70000, length_form=2),
        build_frame(9, b"x" * 126, key=key),
        build_frame(8, b"\x03\xe8\xff", key=key),
        build_frame(0, b"cont", key=key),
        build_frame(1, b"a", fin=False, rsv=0x40, key=key) + build_frame(0, b"b", key=key),
    ]
    seeds += [bytes([0, 0]) + frame for frame in odd]
    return seeds


def _handshake_seeds() -> list[bytes]:
    response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: @ACCEPT@\r\n")
    seeds = [
        bytes([0, 40]) + client_request(),
        bytes([2, 255]) + client_request(extensions=DEFLATE_OFFER),
        bytes([2, 10]) + client_request(
            extensions="permessage-deflate; server_max_window_bits=10; "
                       "client_no_context_takeover, permessage-deflate"),
        bytes([0, 3]) + b"GET /health HTTP/1.1\r\nHost: example.com\r\n\r\n",
        bytes([8, 30]) + client_request()[:-2] + b"Origin: https://ok.example\r\n\r\n",
        bytes([0, 30]) + client_request()[:-2] + b"Origin: http://example.com\r\n\r\n",
        bytes([11, 60]) + response + b"Sec-WebSocket-Extensions: permessage-deflate; "
        b"server_no_context_takeover; server_max_window_bits=9; "
        b"client_max_window_bits=12\r\n\r\n",
        bytes([4, 0]) + b"HEAD / HTTP/1.0\r\n\r\n",
        bytes([1, 20]) + response + b"\r\n",
        bytes([3, 50]) + response + f"Sec-WebSocket-Extensions: {DEFLATE_ANSWER}\r\n\r\n".encode(),
        bytes([1, 0]) + response + b"Sec-WebSocket-Protocol: chat\r\n\r\n\x81\x02hi",
        bytes([5, 9]) + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!",
        bytes([1, 9]) + b"HTTP/1.1 100 Continue\r\n\r\n" + response + b"\r\n",
    ]
    return seeds


def _inflate_seeds() -> list[bytes]:
    seeds = []
    for bits in (8, 9, 12, 15):
        for text in (b"", b"hello hello hello", bytes(range(256)) * 2, b"a" * 5000):
            comp = zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9))
            body = comp.compress(text) + comp.flush(zlib.Z_SYNC_FLUSH)
            body = body[:-4]
            pieces = b""
            for start in range(0, len(body), 100):
                chunk = body[start:start + 100]
                final = 0x80 if start + 100 >= len(body) else 0
                pieces += bytes([final | len(chunk)]) + chunk
            if not body:
                pieces = b"\x80"
            seeds.append(bytes([bits - 8, len(text) % 8]) + pieces)
    return seeds


def write_corpus(root: Path) -> dict[str, Path]:
    """Write the seeds under ``root``; return each harness's corpus directory."""
    dirs = {}
    for name, seeds in (("frames", _frames_seeds()), ("handshake", _handshake_seeds()),
                        ("inflate", _inflate_seeds())):
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            (directory / f"seed-{hashlib.sha1(seed).hexdigest()[:16]}").write_bytes(seed)
        dirs[name] = directory
    return dirs


if __name__ == "__main__":
    for name, path in write_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "corpus")).items():
        print(f"{name}: {len(list(path.iterdir()))} seeds in {path}")
