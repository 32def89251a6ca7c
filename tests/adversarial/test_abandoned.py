"""Connections abandoned right after the handshake: no close frame, FIN or RST.

RFC 6455 §7.1.1 lets the server drop a connection whose TCP side is gone; a
FIN read as EOF or an RST read as an error must free everything the connection
held (descriptor, thread or task, buffers), so that thousands of abandoned
connections leave the server as it was and able to serve the next client.

Memory is judged by how it grows after the first batch, not by an absolute
figure alone. A batch of BATCH concurrent connections costs what the platform
needs for them at once, and the allocator keeps those pages for the next batch
(over TLS, asyncio's 256 KiB read buffer per connection: a bare asyncio TLS
protocol answering 101 grows by 27 MiB after 300 such connections and stays
there after 1500). Later batches must reuse that memory: growth that goes on
batch after batch means abandoned connections are still held (as when a
reference cycle left them to the cycle collector: +53 MiB after 300 TLS
connections, +124 MiB after 1500).
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import pytest

from .harness import (
    MiB,
    ServerProcess,
    echo_round_trip,
    open_socket,
    read_head,
    report,
    status_of,
    upgrade_request,
    warm_up,
)

pytestmark = pytest.mark.adversarial

Launch = Callable[..., ServerProcess]

BATCH = 100


def abandon(sock: socket.socket, reset: bool) -> None:
    raw = sock
    if reset:
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        raw.shutdown(socket.SHUT_WR)
    raw.close()


def wait_for_fds(server: ServerProcess, limit: int, timeout: float) -> int:
    """The server's open descriptors, once at most ``limit`` or after ``timeout``."""
    deadline = time.monotonic() + timeout
    fds = server.fds()
    while fds > limit and time.monotonic() < deadline:
        time.sleep(0.1)
        fds = server.fds()
    return fds


@pytest.mark.parametrize(("transport", "count"), [("tcp", 2000), ("tls", 300)])
def test_abandoned_connections_are_freed(launch: Launch, backend: str, transport: str,
                                         count: int) -> None:
    server = launch(backend, tls=transport == "tls", options={"close_timeout": 2})
    warm_up(server)
    baseline_fds, baseline_rss = server.fds(), server.rss()
    start = time.monotonic()
    opened = 0
    peak_fds = baseline_fds
    first_batch_rss: int | None = None
    while opened < count and time.monotonic() - start < 30:
        batch = []
        try:
            for _ in range(BATCH):
                sock = open_socket(server, timeout=10)
                batch.append(sock)
                sock.sendall(upgrade_request(server.port))
            deadline = time.monotonic() + 10
            for sock in batch:
                head, _ = read_head(sock, deadline)
                assert status_of(head) == 101, head[:100]
            peak_fds = max(peak_fds, server.fds())
        finally:
            for index, sock in enumerate(batch):
                abandon(sock, reset=index % 2 == 1)
        opened += len(batch)
        if first_batch_rss is None:
            # What one batch costs the platform: the plateau later batches must stay on.
            wait_for_fds(server, baseline_fds + 8, timeout=5)
            first_batch_rss = server.rss()
    attack_seconds = time.monotonic() - start
    # A new client is served at once, while the server is still cleaning up.
    try:
        first_round_trip: float | str = echo_round_trip(server, timeout=5.0)
    except (OSError, TimeoutError, ConnectionError) as exc:
        first_round_trip = repr(exc)
    # Everything the abandoned connections held is released.
    fds = wait_for_fds(server, baseline_fds + 8, timeout=10)
    final_rss = server.rss()
    growth = final_rss - baseline_rss
    later_growth = final_rss - (first_batch_rss or baseline_rss)
    report(f"{server.label} {opened} abandoned connections", attack_s=attack_seconds,
           fds_baseline=baseline_fds, fds_peak=peak_fds, fds_after=fds,
           fresh_client=first_round_trip, rss_growth_mib=growth / MiB,
           rss_growth_after_first_batch_mib=later_growth / MiB)
    assert opened == count, f"only {opened} handshakes in 30 s"
    assert isinstance(first_round_trip, float), f"a new client was not served: {first_round_trip}"
    assert fds <= baseline_fds + 8, f"{fds} fds open, {baseline_fds} before the attack"
    assert growth < 32 * MiB, f"server RSS grew {growth / MiB:.1f} MiB"
    assert later_growth < 8 * MiB, (
        f"server RSS grew {later_growth / MiB:.1f} MiB after the first batch of {BATCH}: "
        "abandoned connections are still held")
    server.finish()
