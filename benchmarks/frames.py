"""Python frames per echo round trip: how many Python-level calls a server makes.

Each echo server of ``servers.py`` runs in a child process (uvloop, loopback);
a client thread in that process does ping-pong round trips of 32 bytes over a
real socket while a profile hook (``sys.setprofile``) on the event loop's
thread counts the Python functions entered (coroutine resumptions included)
and the C functions called from Python. Run::

    python benchmarks/frames.py                  # every server, with the accelerator
    python benchmarks/frames.py --pure           # rfc6455 without it (RFC6455_NO_EXTENSIONS=1)
    python benchmarks/frames.py --only rfc6455 -v   # and the calls of one round trip

No clock is read: the figures do not depend on the machine's load. A Python
frame costs 50-80 ns warm and more between system calls, with the caches cold;
this is what docs/performance.md counts ("Python frames per round trip").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import servers

KINDS = ["rfc6455", "rfc6455-listener", "websockets", "aiohttp", "picows"]
WARMUP = 50
MEASURED = 20


def _client(port_box: list[int], calls: list[tuple[str, str]], recording: list[bool],
            verbose: bool) -> None:
    while not port_box:
        time.sleep(0.01)
    sock = socket.create_connection(("127.0.0.1", port_box[0]))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                 f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    frame = servers.masked_frame(b"x" * 32)
    for i in range(WARMUP + MEASURED):
        if i == WARMUP:
            time.sleep(0.05)  # the server is back in its poll: nothing of the last trip counts
            recording[0] = True
        sock.sendall(frame)
        got = 0
        while got < 34:
            got += len(sock.recv(100))
    recording[0] = False
    python = sum(1 for kind, _ in calls if kind == "py")
    print(f"{python / MEASURED:.1f} {len(calls) / MEASURED:.1f}", flush=True)
    if verbose:
        for kind, name in calls[:len(calls) // MEASURED]:
            print(f"  {kind} {name}", flush=True)
    os._exit(0)


def serve(kind: str, verbose: bool) -> None:
    """In the child: the server with the hook on, the client in a thread."""
    import uvloop

    port_box: list[int] = []
    calls: list[tuple[str, str]] = []
    recording = [False]

    async def forever(port: int) -> None:
        port_box.append(port)
        await asyncio.Event().wait()

    servers._forever = forever

    def hook(frame: Any, event: str, arg: Any) -> None:
        if recording[0]:
            if event == "call":
                code = frame.f_code
                calls.append(("py", f"{code.co_name} ({os.path.basename(code.co_filename)})"))
            elif event == "c_call":
                calls.append(("c", getattr(arg, "__qualname__", repr(arg))))

    threading.Thread(target=_client, args=(port_box, calls, recording, verbose),
                     daemon=True).start()
    uvloop.install()
    sys.setprofile(hook)
    asyncio.run(servers.SERVE[kind]()())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated servers (default: all)")
    parser.add_argument("--pure", action="store_true", help="rfc6455 without the accelerator")
    parser.add_argument("-v", "--verbose", action="store_true", help="list one round trip")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.verbose)
        return
    env = dict(os.environ)
    env.pop("RFC6455_NO_EXTENSIONS", None)
    if args.pure:
        env["RFC6455_NO_EXTENSIONS"] = "1"
    print("| server | Python frames per round trip | all calls per round trip |")
    print("|---|---|---|")
    for kind in args.only.split(",") if args.only else KINDS:
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", kind]
        if args.verbose:
            cmd.append("-v")
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            print(f"| {kind} | (timed out) | |")
            continue
        lines = out.stdout.splitlines()
        if out.returncode != 0 or not lines:
            print(f"| {kind} | (failed: {out.stderr.strip().splitlines()[-1:]}) | |")
            continue
        python, total = lines[0].split()
        print(f"| {kind}{' (pure)' if args.pure and kind.startswith('rfc6455') else ''} "
              f"| {python} | {total} |")
        for line in lines[1:]:
            print(line)


if __name__ == "__main__":
    main()
