"""Engine workloads shared by ``test_engine.py`` (pytest-benchmark) and ``compare.py``.

A workload is a fixed list of wire chunks to parse, or of messages to serialize.
Every implementation gets exactly the same bytes: frames are built once here.

* ``small``: 10,000 text messages of 16 bytes, all in one chunk (a busy socket
  read holds many small frames).
* ``large``: 100 binary messages of 1 MiB, one frame per chunk.
* ``large64k``: the same stream cut into 64 KiB reads (asyncio's read size), so
  frames straddle reads and each message is assembled from pieces.
* ``deflate``: 10,000 compressed text messages of 1 KiB (permessage-deflate with
  context takeover, zlib level 1), all in one chunk.

"server" parses masked frames (what a client sends); "client" parses unmasked ones.
"""

from __future__ import annotations

import os
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from rfc6455 import Binary, ClientConnection, Limits, ServerConnection, Text
from rfc6455.frames import serialize_frame

SMALL_COUNT = 10_000
SMALL_SIZE = 16
LARGE_COUNT = 100
LARGE_SIZE = 1 << 20
DEFLATE_COUNT = 10_000
DEFLATE_SIZE = 1024
# Room for the largest message: 1 MiB of payload exactly is allowed by every peer.
MAX_SIZE = 4 << 20
RSV1 = 0x40
READ_SIZE = 64 * 1024


@dataclass(frozen=True)
class Workload:
    name: str
    role: str  # "server" or "client": the endpoint that parses or serializes
    chunks: Sequence[bytes]  # wire bytes, one receive_data() each (parse workloads)
    payloads: Sequence[str | bytes]  # the messages, in order
    compressed: bool = False

    @property
    def messages(self) -> int:
        return len(self.payloads)

    @property
    def payload_bytes(self) -> int:
        return sum(len(p) for p in self.payloads)  # text is ASCII: chars == bytes


def small_text() -> list[str]:
    return [f"message {i:07d}."[:SMALL_SIZE].ljust(SMALL_SIZE, "!") for i in range(SMALL_COUNT)]


@cache
def large_payload() -> bytes:
    return random.Random(6455).randbytes(LARGE_SIZE)


@cache
def deflate_text() -> list[str]:
    """JSON-ish ASCII text, compressible like real application messages."""
    rng = random.Random(7692)
    words = ["price", "symbol", "volume", "bid", "ask", "time", "update", "order", "true",
             "false", "null", "trade", "side", "buy", "sell", "id"]
    texts = []
    for _ in range(DEFLATE_COUNT):
        parts: list[str] = []
        while sum(map(len, parts)) < DEFLATE_SIZE:
            parts.append(f'"{rng.choice(words)}": {rng.randint(0, 99999)}, ')
        texts.append("".join(parts)[:DEFLATE_SIZE])
    return texts


def deflate_wire(texts: Sequence[str], *, masked: bool, level: int = 1) -> bytes:
    """RFC 7692 §7.2.1 messages with context takeover: sync flush, tail 00 00 ff ff removed."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    frames = []
    for text in texts:
        data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
        frames.append(serialize_frame(1, data[:-4], rsv=RSV1, masked=masked))
    return b"".join(frames)


@cache
def parse_workload(name: str, role: str) -> Workload:
    masked = role == "server"  # a server parses what clients send: masked frames (§5.3)
    if name == "small":
        texts = small_text()
        wire = b"".join(serialize_frame(1, t.encode(), masked=masked) for t in texts)
        return Workload(name, role, [wire], texts)
    if name == "large":
        payload = large_payload()
        # One frame reused: the parser does the same work for each, and the stream
        # stays small in memory. Masked frames keep one key; that costs nothing extra.
        frame = serialize_frame(2, payload, masked=masked)
        return Workload(name, role, [frame] * LARGE_COUNT, [payload] * LARGE_COUNT)
    if name == "large64k":
        stream = b"".join(parse_workload("large", role).chunks)
        chunks = [stream[i:i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]
        return Workload(name, role, chunks, [large_payload()] * LARGE_COUNT)
    if name == "deflate":
        texts = deflate_text()
        return Workload(name, role, [deflate_wire(texts, masked=masked)], texts, True)
    raise ValueError(name)


@cache
def serialize_workload(name: str, role: str) -> Workload:
    if name == "small":
        return Workload(name, role, [], small_text())
    if name == "large":
        return Workload(name, role, [], [large_payload()] * LARGE_COUNT)
    if name == "deflate":
        return Workload(name, role, [], deflate_text(), True)
    raise ValueError(name)


# ----------------------------------------------------------------------- rfc6455


def deflate_factories() -> tuple[list[object], list[object]] | None:
    """(server factories, client factories) for permessage-deflate, if the module exists."""
    try:
        from rfc6455.extensions import permessage_deflate as pmd
    except ImportError:
        return None
    # 15-bit windows both ways and zlib level 1: what the peers use in compare.py
    # and what the wire of deflate_wire() needs.
    return ([pmd.ServerPerMessageDeflate(server_max_window_bits=None,
                                         client_max_window_bits=None, compress_level=1)],
            [pmd.ClientPerMessageDeflate(client_max_window_bits=None, compress_level=1)])


def open_pair(compressed: bool = False) -> tuple[ServerConnection, ClientConnection]:
    """A server and a client engine after a real opening handshake (§4)."""
    limits = Limits(max_message_size=MAX_SIZE)
    server_ext: list[object] = []
    client_ext: list[object] = []
    if compressed:
        factories = deflate_factories()
        if factories is None:
            raise RuntimeError("rfc6455.extensions.permessage_deflate is not available")
        server_ext, client_ext = factories
    server = ServerConnection(limits=limits, extensions=server_ext)  # type: ignore[arg-type]
    client = ClientConnection("ws://localhost/", limits=limits,
                              extensions=client_ext)  # type: ignore[arg-type]
    request = client.data_to_send()
    assert isinstance(request, bytes)
    server.receive_data(request)
    server.next_event()
    server.accept()
    response = server.data_to_send()
    assert isinstance(response, bytes)
    client.receive_data(response)
    client.next_event()
    if compressed:
        assert server.extension is not None and client.extension is not None
    return server, client


def rfc6455_parser(workload: Workload) -> Callable[[], int]:
    """A callable that parses the workload once and returns the number of messages."""
    server, client = open_pair(workload.compressed)
    conn = server if workload.role == "server" else client
    chunks = workload.chunks
    receive = conn.receive_data
    next_event = conn.next_event

    def run() -> int:
        count = 0
        for chunk in chunks:
            receive(chunk)
            while (event := next_event()) is not None:
                assert type(event) is Text or type(event) is Binary
                count += 1
        return count

    return run


def rfc6455_serializer(workload: Workload) -> Callable[[], int]:
    """A callable that sends every message and collects the bytes; returns bytes produced."""
    server, client = open_pair(workload.compressed)
    conn = server if workload.role == "server" else client
    payloads = workload.payloads
    send = conn.send
    # What the adapters hand to the transport: a large payload stays its own
    # buffer (writelines / sendmsg), as the peers' writers leave it too.
    data_to_send_parts = conn.data_to_send_parts

    def run() -> int:
        total = 0
        for payload in payloads:
            send(payload)
            for part in data_to_send_parts():  # type: ignore[union-attr]
                total += len(part)
        return total

    return run


def unmask_inputs() -> tuple[bytes, bytes]:
    return os.urandom(LARGE_SIZE), os.urandom(4)
