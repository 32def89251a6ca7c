"""Control-frame floods from a peer that does read: the cost stays in proportion.

Unsolicited pongs are allowed and ignored (RFC 6455 §5.5.3); pings are each
owed a pong (§5.5.2), or only the latest one when several arrive before one
could be sent (§5.5.3). A flood of either must cost the server CPU in
proportion to the bytes received and hold no memory for them, and another
client must be served meanwhile.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from .harness import (
    MiB,
    ServerProcess,
    connect_raw,
    echo_round_trip,
    flood,
    ping_chunk,
    pong_chunk,
    report,
    settle_rss,
    warm_up,
)

pytestmark = pytest.mark.adversarial

Launch = Callable[..., ServerProcess]
T = TypeVar("T")

FLOOD = 8 * MiB
#: Server CPU seconds per MiB of control frames (8,000 frames) it may spend: a
#: generous bound for pure Python on a busy machine (measured: about 0.05-0.2).
CPU_PER_MIB = 0.6


class Drain:
    """Reads whatever the server sends, between writes, from the writing thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = 0

    def __call__(self) -> None:
        sock = self.sock
        timeout = sock.gettimeout()
        # Non-blocking reads until none is ready: select() does not see the TLS
        # records that the SSL object already holds.
        sock.setblocking(False)
        try:
            for _ in range(256):
                try:
                    data = sock.recv(1 << 20)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    return
                if not data:
                    return
                self.received += len(data)
        finally:
            sock.settimeout(timeout)


def served_during(server: ServerProcess, attack: Callable[[], T]) -> tuple[T, float]:
    """Run ``attack`` while a well-behaved client does round trips; the slowest one."""
    slowest = 0.0
    stop = threading.Event()
    errors: list[BaseException] = []

    def client() -> None:
        nonlocal slowest
        while not stop.is_set():
            try:
                slowest = max(slowest, echo_round_trip(server))
            except BaseException as exc:  # reported by the test
                errors.append(exc)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        result = attack()
    finally:
        stop.set()
        thread.join(10)
    assert not errors, f"a well-behaved client failed during the flood: {errors[0]!r}"
    return result, slowest


@pytest.mark.parametrize("kind", ["pong", "ping"])
def test_control_flood_while_reading(launch: Launch, backend: str, transport: str,
                                     kind: str) -> None:
    server = launch(backend, tls=transport == "tls", options={"close_timeout": 2})
    warm_up(server)
    baseline_rss, baseline_cpu = server.rss(), server.cpu()
    attacker = connect_raw(server)
    drain = Drain(attacker.sock)
    # Small writes, so that reading keeps up between them (a TLS write is all or nothing).
    chunk = pong_chunk(64 * 1024) if kind == "pong" else ping_chunk(64 * 1024)
    result, slowest = served_during(server, lambda: flood(
        attacker.sock, chunk, total=FLOOD, seconds=12.0, stall=3.0, drain=drain))
    sent = result.sent
    # What is still in flight is processed before we count the cost.
    deadline = time.monotonic() + 5.0
    while kind == "ping" and time.monotonic() < deadline:
        before = drain.received
        time.sleep(0.2)
        drain()
        if drain.received == before:
            break
    cpu = server.cpu() - baseline_cpu
    growth = settle_rss(server, 0.3) - baseline_rss
    pongs = drain.received // 127  # a 125-byte pong is 127 bytes from the server
    report(f"{server.label} {kind} flood while reading", sent_mib=sent / MiB,
           seconds=result.seconds, server_cpu_s=cpu,
           rss_growth_mib=growth / MiB, pongs_back=pongs, slowest_round_trip_s=slowest)
    assert sent >= FLOOD, f"the server stopped reading a peer that reads ({sent} bytes sent)"
    assert cpu < CPU_PER_MIB * sent / MiB + 1.0, f"{cpu:.1f} s of CPU for {sent / MiB:.0f} MiB"
    assert growth < 16 * MiB, f"server RSS grew {growth / MiB:.1f} MiB"
    assert slowest < 5.0
    if kind == "pong":
        # Unsolicited pongs get no answer at all (§5.5.3).
        assert drain.received < 1024, f"{drain.received} bytes in answer to pongs"
    attacker.close()
    server.finish()
