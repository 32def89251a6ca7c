"""Hostile peers that never read: rfc6455's servers against websockets 17, one run.

Usage: ``python benchmarks/hostile.py [--seconds 10]``

Two attacks, one connection each, on a fresh server child per cell (the
servers of ``tests/adversarial/server_main.py``, echo handler):

* ping flood: 64 MiB of masked 125-byte pings, never reading (half a million
  pongs owed, RFC 6455 §5.5.2);
* echo never read: 8 text messages of 1 MiB, each followed by a ping, never
  reading the echoes.

After the payload the attacker goes on sending pings (never reading) until the
server drops the connection or ``--seconds`` pass. Reported: the server's peak
RSS growth over the whole attack (VmRSS of ``/proc/PID/status``, sampled every
50 ms, against the RSS after three warm-up round trips) and whether, and after
how many seconds, the server dropped the attacker.

Every server gets the same options, chosen so that a drop can happen within
the run: ``ping_interval=1, ping_timeout=1, close_timeout=1`` (the option names
are the same in both libraries); everything else is the library's default
(``max_size`` 1 MiB and ``max_queue`` 16 in both). Servers: rfc6455
``asyncio.serve``, ``asyncio.serve_listener``, ``sync.serve``, and
``websockets.asyncio.server.serve``. Loopback only; bounded in time (about a
minute and a half in all).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.adversarial.harness import (  # noqa: E402  (after the path is set)
    PING,
    TEXT,
    MiB,
    ServerProcess,
    client_frame,
    connect_raw,
    flood,
    ping_chunk,
    raise_fd_limit,
    start_server,
    warm_up,
)

SERVERS = {
    "rfc6455 asyncio serve": "asyncio",
    "rfc6455 serve_listener": "listener",
    "rfc6455 sync serve": "sync",
    "websockets 17 asyncio": "websockets",
}
OPTIONS = {"ping_interval": 1, "ping_timeout": 1, "close_timeout": 1}


@dataclass
class Cell:
    growth: float
    sent: float
    dropped_after: float | None


class PeakRSS(threading.Thread):
    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.peak = server.rss()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            try:
                self.peak = max(self.peak, self.server.rss())
            except (OSError, RuntimeError):
                return


def attack(backend: str, payload: bytes, total: int, seconds: float) -> Cell:
    server = start_server(backend, options=OPTIONS)
    try:
        warm_up(server)
        baseline = server.rss()
        sampler = PeakRSS(server)
        sampler.start()
        attacker = connect_raw(server)
        start = time.monotonic()
        first = flood(attacker.sock, payload, total=total, seconds=seconds, stall=1.0)
        sent = first.sent
        dropped_after = first.dropped_after
        if not first.dropped:
            rest = flood(attacker.sock, ping_chunk(), total=0, until_dropped=True,
                         seconds=max(0.0, seconds - (time.monotonic() - start)))
            sent += rest.sent
            if rest.dropped:
                dropped_after = time.monotonic() - start
        time.sleep(0.2)
        sampler.done.set()
        sampler.join(1)
        attacker.close()
        return Cell((sampler.peak - baseline) / MiB, sent / MiB, dropped_after)
    finally:
        server.stop(10)
        server.kill()
        server.stderr_path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="time bound of each attack (default 10)")
    args = parser.parse_args()
    raise_fd_limit()
    echoes = (client_frame(TEXT, b"m" * MiB) + client_frame(PING, b"p" * 125)) * 8
    attacks = {
        "ping flood": (ping_chunk(), 64 * MiB),
        "echo never read": (echoes, len(echoes)),
    }
    rows = []
    for name, backend in SERVERS.items():
        for attack_name, (payload, total) in attacks.items():
            cell = attack(backend, payload, total, args.seconds)
            rows.append((name, attack_name, cell))
            print(f"  {name} / {attack_name}: done", file=sys.stderr, flush=True)
    print(f"\nNever-reading attackers, options {OPTIONS}, {args.seconds:.0f} s bound\n")
    print(f"| {'server':24} | {'attack':16} | {'sent MiB':>8} | {'RSS growth MiB':>14} "
          f"| {'attacker dropped':16} |")
    print(f"|{'-' * 26}|{'-' * 18}|{'-' * 10}|{'-' * 16}|{'-' * 18}|")
    for name, attack_name, cell in rows:
        dropped = "no" if cell.dropped_after is None else f"yes, {cell.dropped_after:.1f} s"
        print(f"| {name:24} | {attack_name:16} | {cell.sent:8.1f} | {cell.growth:14.1f} "
              f"| {dropped:16} |")


if __name__ == "__main__":
    main()
