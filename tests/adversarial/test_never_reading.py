"""Peers that write and never read: what they make the server hold, and whether it drops them.

A client that never reads fills its own receive window first, then the
server's send buffer; from then on every answer the server owes it (pongs,
echoes) can only pile up in the server's memory, unless the server stops
reading from that client while it cannot write to it (backpressure), and
keepalive (RFC 6455 §5.5.2: a ping unanswered within ``ping_timeout``) plus
``close_timeout`` (§7.1.1) finally drop it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .harness import (
    PING,
    TEXT,
    MiB,
    ServerProcess,
    client_frame,
    connect_raw,
    echo_round_trip,
    flood,
    ping_chunk,
    report,
    settle_rss,
    warm_up,
)

pytestmark = pytest.mark.adversarial

Launch = Callable[..., ServerProcess]


def test_ping_flood_without_reading_holds_little(launch: Launch, backend: str,
                                                  transport: str) -> None:
    # 64 MiB of 125-byte pings is half a million pongs owed (§5.5.2 "SHOULD respond
    # ... as soon as is practical"): 64 MiB if the server queues them all.
    server = launch(backend, tls=transport == "tls", options={"close_timeout": 2})
    warm_up(server)
    baseline = server.rss()
    attacker = connect_raw(server)
    result = flood(attacker.sock, ping_chunk(), total=64 * MiB, seconds=10.0)
    growth = settle_rss(server) - baseline
    report(f"{server.label} ping flood, never reading", sent_mib=result.sent / MiB,
           seconds=result.seconds, rss_growth_mib=growth / MiB, dropped=result.dropped)
    assert growth < 16 * MiB, f"server RSS grew {growth / MiB:.1f} MiB for a ping flooder"
    # Others are served while the flooder is still connected.
    assert echo_round_trip(server) < 5.0
    attacker.close()
    server.finish()


def test_echo_never_read_holds_at_most_the_queue(launch: Launch, backend: str,
                                                 transport: str) -> None:
    # max_queue messages of max_size each may wait for the handler; the handler's
    # own send waits for the transport, so that is all a non-reader can pin.
    max_queue, max_size = 4, MiB
    server = launch(backend, tls=transport == "tls",
                    options={"max_queue": max_queue, "max_size": max_size,
                             "close_timeout": 2})
    warm_up(server)
    baseline = server.rss()
    attacker = connect_raw(server)
    # Twice max_queue messages, each with a ping behind it, then pings alone: the
    # pongs must not queue up behind an echo that cannot be written.
    messages = (client_frame(TEXT, b"m" * max_size) + client_frame(PING, b"p" * 125)) * 8
    first = flood(attacker.sock, messages, total=len(messages), seconds=5.0)
    then = flood(attacker.sock, ping_chunk(), total=64 * MiB, seconds=5.0)
    growth = settle_rss(server) - baseline
    # A TLS transport holds the echo being written twice: plaintext and records.
    bound = max_queue * max_size + (12 if transport == "tls" else 8) * MiB
    report(f"{server.label} 1 MiB echoes + pings, never reading",
           sent_mib=(first.sent + then.sent) / MiB, seconds=first.seconds + then.seconds,
           rss_growth_mib=growth / MiB, bound_mib=bound / MiB)
    assert growth < bound, f"server RSS grew {growth / MiB:.1f} MiB, bound {bound / MiB} MiB"
    assert echo_round_trip(server) < 5.0
    attacker.close()
    server.finish()


def test_ping_flooder_that_never_reads_is_dropped(launch: Launch, backend: str,
                                                  transport: str) -> None:
    # Its pongs never reach it and it never answers our pings: keepalive gives it
    # ping_interval + ping_timeout, the closing handshake close_timeout, then the
    # TCP connection is dropped (§7.1.1) -- even while the server cannot write.
    server = launch(backend, tls=transport == "tls",
                    options={"ping_interval": 1, "ping_timeout": 1, "close_timeout": 1})
    warm_up(server)
    attacker = connect_raw(server)
    result = flood(attacker.sock, ping_chunk(), total=0, seconds=10.0, until_dropped=True)
    report(f"{server.label} ping flooder with keepalive 1 s", sent_mib=result.sent / MiB,
           dropped=result.dropped, dropped_after_s=result.dropped_after or -1.0)
    attacker.close()
    assert result.dropped, "the server never dropped a peer that does not read"
    server.finish()


@pytest.mark.parametrize("cli_backend", ["asyncio", "sync"])
def test_reference_server_ping_flood_without_reading(launch: Launch, cli_backend: str) -> None:
    # The shipped server, ``python -m rfc6455 echo``, with its default options.
    server = launch(cli_backend, cli=True)
    warm_up(server)
    baseline = server.rss()
    attacker = connect_raw(server)
    result = flood(attacker.sock, ping_chunk(), total=64 * MiB, seconds=10.0)
    growth = settle_rss(server) - baseline
    report(f"{server.label} ping flood, never reading", sent_mib=result.sent / MiB,
           rss_growth_mib=growth / MiB)
    assert growth < 16 * MiB, f"server RSS grew {growth / MiB:.1f} MiB for a ping flooder"
    assert echo_round_trip(server) < 5.0
    attacker.close()
    # SIGTERM waits for the closing handshakes up to --close-timeout (10 s).
    server.finish(stop_within=25.0)
