"""permessage-deflate (RFC 7692): memory per connection and throughput, ours vs websockets.

Run: ``python benchmarks/bench_deflate_memory.py [--conns N] [--messages N]``.

For each configuration, in one process:

* **memory per connection** -- ``N`` server/client pairs are opened in memory
  (real opening handshake), each side sends one compressible message, the
  other side reads it; then one side's objects are dropped and tracemalloc
  reports what the other side still holds, divided by ``N`` ("held"). zlib's
  own buffers are included (CPython allocates them through PyMem_Raw*, which
  tracemalloc traces). "pair peak" is the traced peak per pair (both sides)
  from before the handshakes to after the messages.
* **throughput** -- a corpus of JSON-like messages (about 1 KB each) sent by a
  server (compress + frame) and received by a client (parse + inflate), in
  MB/s of uncompressed payload, with the compression ratio (wire / payload).

Configurations: no compression; our defaults (level 1, 12-bit windows,
memLevel 5); ours at 15 bits / memLevel 8; our level 6 (what the default level
was chosen against); our "frugal" settings (10-bit windows, memLevel 4) with
and without context takeover; websockets' defaults (12-bit windows, memLevel
5, level 6) and websockets at 15 bits / memLevel 8.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rfc6455 import EOF, Accepted, Binary, ClientConnection, Request, ServerConnection, Text
from rfc6455.extensions import ClientPerMessageDeflate, ServerPerMessageDeflate

Pair = tuple[Any, Any]


@dataclass
class Config:
    name: str
    make_pair: Callable[[], Pair]
    send: Callable[[Any, bytes], None]  # server sends a binary message
    pump: Callable[[Any, Any], int]  # move bytes src -> dst, consume events; bytes moved


# ----------------------------------------------------------------------- rfc6455


def _drain(conn: ServerConnection | ClientConnection) -> bytes:
    chunks: list[bytes] = []
    while True:
        out = conn.data_to_send()
        if out is EOF or not out:
            return b"".join(chunks)
        assert isinstance(out, bytes)
        chunks.append(out)


def _ours(server_kw: dict[str, Any] | None,
          client_kw: dict[str, Any] | None) -> Callable[[], Pair]:
    def make() -> Pair:
        server = ServerConnection(
            extensions=[] if server_kw is None else [ServerPerMessageDeflate(**server_kw)])
        client = ClientConnection(
            "ws://example.com/",
            extensions=[] if client_kw is None else [ClientPerMessageDeflate(**client_kw)])
        server.receive_data(_drain(client))
        assert isinstance(server.next_event(), Request)
        server.accept()
        client.receive_data(_drain(server))
        assert isinstance(client.next_event(), Accepted)
        return server, client

    return make


def _ours_send(conn: ServerConnection | ClientConnection, data: bytes) -> None:
    conn.send(data)


def _ours_pump(src: ServerConnection | ClientConnection,
               dst: ServerConnection | ClientConnection) -> int:
    data = _drain(src)
    dst.receive_data(data)
    for event in dst.events():
        assert isinstance(event, (Text, Binary)), event
    return len(data)


# -------------------------------------------------------------------- websockets


def _theirs(server_kw: dict[str, Any] | None,
            client_kw: dict[str, Any] | None) -> Callable[[], Pair]:
    from websockets.client import ClientProtocol
    from websockets.extensions.permessage_deflate import (
        ClientPerMessageDeflateFactory,
        ServerPerMessageDeflateFactory,
    )
    from websockets.http11 import Request as WSRequest
    from websockets.server import ServerProtocol
    from websockets.uri import parse_uri

    uri = parse_uri("ws://example.com/")

    def make() -> Pair:
        server = ServerProtocol(
            extensions=None if server_kw is None else [ServerPerMessageDeflateFactory(
                **server_kw)], max_size=None)
        client = ClientProtocol(
            uri, extensions=None if client_kw is None else [ClientPerMessageDeflateFactory(
                **client_kw)], max_size=None)
        client.send_request(client.connect())
        server.receive_data(b"".join(client.data_to_send()))
        (request,) = server.events_received()
        assert isinstance(request, WSRequest)
        server.send_response(server.accept(request))
        client.receive_data(b"".join(server.data_to_send()))
        client.events_received()
        assert bool(server.extensions) == (server_kw is not None)
        return server, client

    return make


def _theirs_send(conn: Any, data: bytes) -> None:
    conn.send_binary(data)


def _theirs_pump(src: Any, dst: Any) -> int:
    data = b"".join(src.data_to_send())
    dst.receive_data(data)
    dst.events_received()
    return len(data)


# ---------------------------------------------------------------------- measures


def corpus(count: int) -> list[bytes]:
    rng = random.Random(7655)
    words = ["hello", "world", "price", "update", "stock", "user", "status", "ok",
             "message", "channel", "value", "timestamp", "alpha", "beta", "gamma"]
    out = []
    for i in range(count):
        doc = {"id": i, "user": f"user{rng.randint(0, 5000)}", "channel": rng.choice(words),
               "text": " ".join(rng.choice(words) for _ in range(rng.randint(20, 120))),
               "values": [round(rng.random() * 1000, 3) for _ in range(rng.randint(1, 12))],
               "ts": 1_700_000_000 + rng.randint(0, 10**6)}
        out.append(json.dumps(doc).encode())
    return out


def memory_per_connection(cfg: Config, conns: int, message: bytes) -> dict[str, float]:
    """KiB held per connection by each side after one message both ways, and the peak."""
    result: dict[str, float] = {}
    for keep in ("server", "client"):
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        pairs = [cfg.make_pair() for _ in range(conns)]
        for server, client in pairs:
            cfg.send(server, message)
            cfg.pump(server, client)
            cfg.send(client, message)
            cfg.pump(client, server)
        peak = tracemalloc.get_traced_memory()[1]
        kept = [s if keep == "server" else c for s, c in pairs]
        del pairs
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        del kept
        result[keep] = held / conns / 1024
        result["pair_peak"] = max(result.get("pair_peak", 0.0), (peak - base) / conns / 1024)
    return result


def throughput(cfg: Config, messages: list[bytes]) -> tuple[float, float, float]:
    """(send MB/s, receive MB/s, wire/payload ratio) for a server sending to a client."""
    server, client = cfg.make_pair()
    total = sum(map(len, messages))
    best_send = best_recv = float("inf")
    wire = 0
    for _ in range(3):  # best of 3: the machine is shared
        t0 = time.perf_counter()
        for m in messages:
            cfg.send(server, m)
        t1 = time.perf_counter()
        wire = cfg.pump(server, client)
        t2 = time.perf_counter()
        best_send = min(best_send, t1 - t0)
        best_recv = min(best_recv, t2 - t1)
    return total / best_send / 1e6, total / best_recv / 1e6, wire / total


def configs() -> list[Config]:
    ours: dict[str, Any] = {"send": _ours_send, "pump": _ours_pump}
    theirs: dict[str, Any] = {"send": _theirs_send, "pump": _theirs_pump}
    frugal = {"server_max_window_bits": 10, "client_max_window_bits": 10, "mem_level": 4}
    unlimited = {"server_max_window_bits": None, "client_max_window_bits": None, "mem_level": 8}
    frugal_nct = {**frugal, "server_no_context_takeover": True,
                  "client_no_context_takeover": True}
    return [
        Config("rfc6455 no compression", _ours(None, None), **ours),
        Config("rfc6455 default (level 1, 12 bits, mem 5)", _ours({}, {}), **ours),
        Config("rfc6455 15 bits, mem 8 (level 1)", _ours(unlimited, {"mem_level": 8}), **ours),
        Config("rfc6455 level 6 (12 bits, mem 5)",
               _ours({"compress_level": 6}, {"compress_level": 6}), **ours),
        Config("rfc6455 frugal (10 bits, mem 4)", _ours(frugal, {"mem_level": 4}), **ours),
        Config("rfc6455 frugal + no context takeover", _ours(frugal_nct, {"mem_level": 4}),
               **ours),
        Config("websockets no compression", _theirs(None, None), **theirs),
        Config("websockets default (12 bits, mem 5, level 6)",
               _theirs({"server_max_window_bits": 12, "client_max_window_bits": 12,
                        "compress_settings": {"memLevel": 5}},
                       {"compress_settings": {"memLevel": 5}}), **theirs),
        Config("websockets 15 bits, mem 8",
               _theirs({}, {"client_max_window_bits": None}), **theirs),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conns", type=int, default=200, help="connections for memory")
    parser.add_argument("--messages", type=int, default=2000, help="messages for throughput")
    args = parser.parse_args()
    messages = corpus(args.messages)
    message = b"".join(messages[:4])  # ~2-4 KB, compressible, over every threshold
    print(f"{args.conns} connections; {args.messages} messages, "
          f"{sum(map(len, messages)) / args.messages:.0f} B average, JSON-like\n")
    header = (f"{'configuration':46} {'server KiB':>10} {'client KiB':>10} {'pair peak':>9} "
              f"{'send MB/s':>9} {'recv MB/s':>9} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for cfg in configs():
        mem = memory_per_connection(cfg, args.conns, message)
        send, recv, ratio = throughput(cfg, messages)
        print(f"{cfg.name:46} {mem['server']:10.1f} {mem['client']:10.1f} "
              f"{mem['pair_peak']:9.1f} {send:9.1f} {recv:9.1f} {ratio:6.3f}", flush=True)
    print("\nserver/client KiB: held by one side per connection after one message each way "
          "(idle).\npair peak: traced peak per client+server pair, handshake and messages "
          "included.\nMB/s: uncompressed payload, server send (compress + frame) and client "
          "receive\n(parse + inflate), best of 3. ratio: bytes on the wire / payload.")


if __name__ == "__main__":
    main()
