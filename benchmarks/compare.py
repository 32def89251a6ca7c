"""Compare rfc6455's engine with its peers on the same workloads, in one run.

    python benchmarks/compare.py [--repeat 5] [--only small,large] [--json out.json]

Each implementation runs each workload family (small, large, deflate, unmask)
in a fresh subprocess, the implementations taking turns family by family, so
no state (allocator, caches, CPU vector state) carries over from one family to
the next and a load spike hits every implementation alike (``--in-process``:
all in this one, except pure-Python rfc6455). rfc6455 runs twice: with the C accelerator and
with ``RFC6455_NO_EXTENSIONS=1``, over the byte streams of
``engine_workloads.py``. Peers are driven at the same level as our engine:

* websockets: the sans-I/O ``Protocol`` (``receive_data`` / ``events_received``);
  it yields frames, so text is decoded here as its connection layer would.
* wsproto: ``Connection`` (``receive_data`` / ``events``), messages with UTF-8 checked.
* aiohttp: ``WebSocketReader`` feeding its ``WebSocketDataQueue``, drained with
  the queue's own read path; ``WebSocketWriter`` over a transport that keeps the bytes.
* picows: ``WSProtocol`` after a handshake over an in-memory transport, bytes
  copied into the buffer it hands out (as the event loop's ``recv_into`` would);
  the listener takes each payload as ``str`` or ``bytes``.

Each number is the best of ``--repeat`` runs after one warm-up, in CPU time of
the process (``time.process_time``), not wall-clock: on a shared machine other
processes only add waiting. Noise still only ever slows a run down. Compare
implementations within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from engine_workloads import (  # noqa: E402
    MAX_SIZE,
    Workload,
    deflate_factories,
    parse_workload,
    rfc6455_parser,
    rfc6455_serializer,
    serialize_workload,
    unmask_inputs,
)

IMPLS = ["rfc6455", "rfc6455-pure", "websockets", "wsproto", "aiohttp", "picows"]
PEERS = IMPLS[2:]
PARSE = [("small", "server"), ("small", "client"), ("large", "client"), ("large", "server"),
         ("large64k", "client"), ("large64k", "server"), ("deflate", "server")]
SERIALIZE = [("small", "server"), ("small", "client"), ("large", "server"), ("large", "client"),
             ("deflate", "server")]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Runner = Callable[[], int]


# ----------------------------------------------------------------- websockets


def websockets_parser(w: Workload) -> Runner:
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.frames import Frame, Opcode
    from websockets.protocol import Protocol, Side

    proto = Protocol(Side.SERVER if w.role == "server" else Side.CLIENT, max_size=MAX_SIZE)
    if w.compressed:
        proto.extensions = [PerMessageDeflate(False, False, 15, 15)]
    text = Opcode.TEXT

    def run() -> int:
        count = 0
        for chunk in w.chunks:
            proto.receive_data(chunk)
            for frame in proto.events_received():
                # websockets checks UTF-8 above its sans-I/O layer; do what it does.
                assert isinstance(frame, Frame)
                data = bytes(frame.data).decode() if frame.opcode is text else frame.data
                count += data is not None
        return count

    return run


def websockets_serializer(w: Workload) -> Runner:
    from websockets.extensions.permessage_deflate import PerMessageDeflate
    from websockets.protocol import Protocol, Side

    proto = Protocol(Side.SERVER if w.role == "server" else Side.CLIENT, max_size=MAX_SIZE)
    if w.compressed:
        proto.extensions = [PerMessageDeflate(False, False, 15, 15, {"level": 1})]

    def run() -> int:
        total = 0
        for payload in w.payloads:
            if isinstance(payload, str):
                proto.send_text(payload.encode())
            else:
                proto.send_binary(payload)
            total += sum(map(len, proto.data_to_send()))
        return total

    return run


# -------------------------------------------------------------------- wsproto


def _wsproto_conn(w: Workload) -> Any:
    from wsproto.connection import Connection, ConnectionType
    from wsproto.extensions import Extension, PerMessageDeflate

    extensions: list[Extension] = []
    if w.compressed:
        deflate = PerMessageDeflate()
        deflate.finalize("permessage-deflate")
        extensions.append(deflate)
    kind = ConnectionType.SERVER if w.role == "server" else ConnectionType.CLIENT
    return Connection(kind, extensions=extensions)


def wsproto_parser(w: Workload) -> Runner:
    conn = _wsproto_conn(w)

    def run() -> int:
        count = 0
        for chunk in w.chunks:
            conn.receive_data(chunk)
            for event in conn.events():
                # wsproto hands over the pieces of a message as they arrive.
                count += event.message_finished
        return count

    return run


def wsproto_serializer(w: Workload) -> Runner:
    from wsproto.events import BytesMessage, TextMessage

    conn = _wsproto_conn(w)

    def run() -> int:
        total = 0
        for payload in w.payloads:
            event = TextMessage(payload) if isinstance(payload, str) else BytesMessage(payload)
            total += len(conn.send(event))
        return total

    return run


# -------------------------------------------------------------------- aiohttp


class _FakeProtocol:
    _reading_paused = False
    _paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


class _SinkTransport(asyncio.Transport):
    """Keeps the size of what is written; enough for the writers under test."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.chunks: list[bytes] = []
        self.keep = False

    def write(self, data: Any) -> None:
        self.written += len(data)
        if self.keep:
            self.chunks.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        # Never 0: picows would then send() on the socket itself instead of write().
        return 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        if name in ("peername", "sockname"):
            return ("127.0.0.1", 1)
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    sock: Any = None


def aiohttp_parser(w: Workload) -> Runner:
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader

    loop = asyncio.new_event_loop()

    def run() -> int:
        # A fresh reader per run: the compiled queue's byte count cannot be reset.
        queue = WebSocketDataQueue(_FakeProtocol(), 1 << 30, loop=loop)  # type: ignore[arg-type]
        reader = WebSocketReader(queue, MAX_SIZE, compress=w.compressed, decode_text=True)
        # The compiled queue hides its read path; take messages off its deque the same way.
        read = queue._buffer.popleft
        count = 0
        for chunk in w.chunks:
            reader.feed_data(chunk)
            while queue._buffer:
                read()
                count += 1
        return count

    return run


def aiohttp_serializer(w: Workload) -> Runner:
    from aiohttp._websocket.writer import WebSocketWriter

    loop = asyncio.new_event_loop()
    transport = _SinkTransport()
    writer = WebSocketWriter(_FakeProtocol(), transport,  # type: ignore[arg-type]
                             use_mask=w.role == "client", limit=1 << 40,
                             compress=15 if w.compressed else 0)  # level 1 in aiohttp

    async def send_all() -> None:
        send = writer.send_frame
        for payload in w.payloads:
            if isinstance(payload, str):
                await send(payload.encode(), 1)
            else:
                await send(payload, 2)

    def run() -> int:
        transport.written = 0
        loop.run_until_complete(send_all())
        return transport.written

    return run


# --------------------------------------------------------------------- picows


def _picows_protocol(w: Workload, loop: asyncio.AbstractEventLoop) -> tuple[Any, list[int]]:
    """A picows WSProtocol past its handshake, fed through an in-memory transport."""
    import logging
    import socket

    from picows import WSAutoPingStrategy, WSListener, WSMsgType
    from picows.picows import WSProtocol  # type: ignore[attr-defined]

    counter = [0]
    text_type = WSMsgType.TEXT

    class Listener(WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == text_type:
                frame.get_payload_as_utf8_text()
            else:
                frame.get_payload_as_bytes()
            counter[0] += 1

    client = w.role == "client"
    transport = _SinkTransport()
    transport.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    transport.keep = True
    result: list[Any] = []

    async def make() -> None:
        proto = WSProtocol("localhost:1" if client else None, "/" if client else None, client,
                           Listener, logging.getLogger("picows-bench"), True, None, False,
                           10.0, 10.0, WSAutoPingStrategy.PING_WHEN_IDLE, True, MAX_SIZE,
                           None, 1 << 16)
        proto.connection_made(transport)
        if client:
            request = b"".join(transport.chunks)
            key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
            handshake = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        else:
            key = base64.b64encode(os.urandom(16))
            handshake = (b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                         b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        _picows_feed(proto, handshake)
        result.append(proto)

    loop.run_until_complete(make())
    transport.keep = False
    return result[0], counter


def _picows_feed(proto: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        target = proto.get_buffer(-1)
        size = min(len(target), len(view))
        target[:size] = view[:size]
        proto.buffer_updated(size)
        view = view[size:]


def picows_parser(w: Workload) -> Runner | None:
    if w.compressed:
        return None  # picows has no permessage-deflate
    loop = asyncio.new_event_loop()
    proto, counter = _picows_protocol(w, loop)

    def run() -> int:
        counter[0] = 0
        for chunk in w.chunks:
            _picows_feed(proto, chunk)
        return counter[0]

    return run


def picows_serializer(w: Workload) -> Runner | None:
    from picows import WSMsgType

    if w.compressed:
        return None

    loop = asyncio.new_event_loop()
    proto, _ = _picows_protocol(w, loop)
    ws = proto.transport
    sink = ws.underlying_transport

    def run() -> int:
        sink.written = 0
        send = ws.send
        for payload in w.payloads:
            if isinstance(payload, str):
                send(WSMsgType.TEXT, payload.encode())
            else:
                send(WSMsgType.BINARY, payload)
        return int(sink.written)

    return run


# -------------------------------------------------------------------- workers


def _unmask(impl: str) -> tuple[Callable[[bytes, bytes], Any], bool] | None:
    """The 1 MiB unmasking function of each implementation; the flag tells if in place."""
    if impl.startswith("rfc6455"):
        from rfc6455 import _mask

        if _mask.ACCELERATED:
            return _mask.mask_inplace, True  # type: ignore[return-value]
        return _mask.mask, False
    if impl == "websockets":
        from websockets.frames import apply_mask  # type: ignore[attr-defined]

        return apply_mask, False
    if impl == "wsproto":
        from wsproto.frame_protocol import XorMaskerSimple

        return (lambda data, key: XorMaskerSimple(key).process(data)), False
    if impl == "aiohttp":
        from aiohttp._websocket.helpers import websocket_mask

        return (lambda data, key: websocket_mask(key, data)), True
    if impl == "picows":
        return None  # no public masking function
    raise ValueError(impl)


def _best(run: Runner, repeat: int) -> tuple[float, int]:
    result = run()  # warm-up, and the result to check
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best, result


def worker(impl: str, repeat: int, only: set[str]) -> dict[str, Any]:
    name = "rfc6455" if impl.startswith("rfc6455") else impl
    parsers = {"rfc6455": rfc6455_parser, "websockets": websockets_parser,
               "wsproto": wsproto_parser, "aiohttp": aiohttp_parser, "picows": picows_parser}
    serializers: dict[str, Callable[[Workload], Runner | None]] = {
                   "rfc6455": rfc6455_serializer, "websockets": websockets_serializer,
                   "wsproto": wsproto_serializer, "aiohttp": aiohttp_serializer,
                   "picows": picows_serializer}
    results: dict[str, Any] = {}
    jobs: list[tuple[str, Workload, Callable[[Workload], Runner | None]]] = []
    for kind, role in PARSE:
        if kind in only or (kind == "large64k" and "large" in only):
            jobs.append((f"parse {kind} {role}", parse_workload(kind, role), parsers[name]))
    for kind, role in SERIALIZE:
        if kind in only:
            jobs.append((f"serialize {kind} {role}", serialize_workload(kind, role),
                         serializers[name]))
    for label, workload, factory in jobs:
        try:
            if name == "rfc6455" and workload.compressed and deflate_factories() is None:
                raise RuntimeError("permessage_deflate not available")
            run = factory(workload)
            if run is None:
                continue
            seconds, result = _best(run, repeat)
            if label.startswith("parse") and result != workload.messages:
                raise RuntimeError(f"parsed {result} messages, expected {workload.messages}")
            results[label] = {"seconds": seconds, "messages": workload.messages,
                              "bytes": workload.payload_bytes}
        except Exception as exc:
            results[label] = {"error": f"{type(exc).__name__}: {exc}"}
    if "unmask" in only:
        found = _unmask(impl)
        if found is not None:
            function, in_place = found
            data, key = unmask_inputs()
            arg: Any = bytearray(data) if in_place else data
            seconds, _ = _best(lambda: function(arg, key) and 0, repeat * 20)
            label = "unmask 1 MiB" + (" (in place)" if in_place else "")
            results["unmask 1 MiB"] = {"seconds": seconds, "messages": 1, "bytes": len(data),
                                       "note": label}
    return results


# ---------------------------------------------------------------------- table


def _metric(label: str, entry: dict[str, Any]) -> tuple[float, str] | None:
    if "seconds" not in entry:
        return None
    if "large" in label or "unmask" in label:
        rate = entry["bytes"] / entry["seconds"] / 1e9
        return rate, f"{rate:.2f} GB/s"
    rate = entry["messages"] / entry["seconds"]
    text = f"{rate / 1e6:.2f}M/s" if rate >= 1e6 else f"{rate / 1e3:.0f}k/s"
    return rate, text


def print_table(all_results: dict[str, dict[str, Any]]) -> None:
    labels: list[str] = []
    for results in all_results.values():
        labels += [label for label in results if label not in labels]
    impls = list(all_results)
    width = max(len(label) for label in labels) + 2
    print("rate (messages/s for small and deflate, payload GB/s for large and unmask)")
    print("".ljust(width) + "".join(impl.rjust(14) for impl in impls))
    for label in labels:
        row = label.ljust(width)
        for impl in impls:
            entry = all_results[impl].get(label)
            metric = _metric(label, entry) if entry else None
            row += (metric[1] if metric else ("error" if entry else "-")).rjust(14)
        print(row)
    print()
    print("ratio: rfc6455 / peer  (pure-Python rfc6455 / peer); > 1 means rfc6455 is faster")
    peers = [impl for impl in impls if not impl.startswith("rfc6455")]
    print("".ljust(width) + "".join(peer.rjust(16) for peer in peers))
    for label in labels:
        row = label.ljust(width)
        ours = [_metric(label, all_results.get(i, {}).get(label) or {})
                for i in ("rfc6455", "rfc6455-pure")]
        for peer in peers:
            theirs = _metric(label, all_results[peer].get(label) or {})
            if theirs is None or ours[0] is None:
                row += "-".rjust(16)
                continue
            cell = f"{ours[0][0] / theirs[0]:.2f}"
            if ours[1] is not None:
                cell += f" ({ours[1][0] / theirs[0]:.2f})"
            row += cell.rjust(16)
        print(row)
    for impl, results in all_results.items():
        for label, entry in results.items():
            if "error" in entry:
                print(f"note: {impl} / {label}: {entry['error']}")
            elif "note" in entry and "in place" in entry["note"]:
                print(f"note: {impl} / {label}: in place")


def print_markdown(all_results: dict[str, dict[str, Any]]) -> None:
    """The same two tables in Markdown, for docs/performance.md."""
    labels: list[str] = []
    for results in all_results.values():
        labels += [label for label in results if label not in labels]
    impls = list(all_results)
    print("| workload | " + " | ".join(impls) + " |")
    print("|---" * (len(impls) + 1) + "|")
    for label in labels:
        cells = []
        for impl in impls:
            metric = _metric(label, all_results[impl].get(label) or {})
            cells.append(metric[1].replace(" GB/s", "").replace("/s", "") if metric else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    peers = [impl for impl in impls if not impl.startswith("rfc6455")]
    print("| workload | " + " | ".join(f"/ {peer}" for peer in peers) + " |")
    print("|---" * (len(peers) + 1) + "|")
    for label in labels:
        ours = [_metric(label, all_results.get(i, {}).get(label) or {})
                for i in ("rfc6455", "rfc6455-pure")]
        cells = []
        for peer in peers:
            theirs = _metric(label, all_results[peer].get(label) or {})
            if theirs is None or ours[0] is None:
                cells.append("-")
                continue
            cell = f"{ours[0][0] / theirs[0]:.2f}"
            if ours[1] is not None:
                cell += f" ({ours[1][0] / theirs[0]:.2f})"
            cells.append(cell)
        print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="small,large,deflate,unmask",
                        help="comma-separated subset of: small, large, deflate, unmask")
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--in-process", action="store_true",
                        help="run every implementation in this process (rfc6455-pure still "
                             "needs its own: the accelerator is chosen at import)")
    parser.add_argument("--markdown", help="print the tables of a --json file as Markdown")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    only = set(args.only.split(","))
    if args.markdown:
        print_markdown(json.loads(Path(args.markdown).read_text()))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeat, only)))
        return
    impls = args.impls.split(",")
    all_results: dict[str, dict[str, Any]] = {impl: {} for impl in impls}
    families = [kind for kind in ("small", "large", "deflate", "unmask") if kind in only]
    for kind in families:
        for impl in impls:
            env = dict(os.environ)
            env.pop("RFC6455_NO_EXTENSIONS", None)
            if impl == "rfc6455-pure":
                env["RFC6455_NO_EXTENSIONS"] = "1"
            print(f"running {impl} {kind} ...", file=sys.stderr)
            if args.in_process and impl != "rfc6455-pure":
                all_results[impl].update(worker(impl, args.repeat, {kind}))
                continue
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", impl, "--repeat", str(args.repeat),
                 "--only", kind], env=env, capture_output=True, text=True, check=False)
            if proc.returncode:
                print(f"{impl} {kind} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            all_results[impl].update(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {args.repeat}")
    print_table(all_results)
    if args.json:
        Path(args.json).write_text(json.dumps(all_results, indent=2))


if __name__ == "__main__":
    main()
