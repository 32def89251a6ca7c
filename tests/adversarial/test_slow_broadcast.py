"""Broadcast with members that never read: the fast member gets everything, the slow meet
the policy, the server's memory stays within members x buffer limit.

The hub (rfc6455/apps/hub.py) bounds what waits for each member at
``buffer_limit``; past it the member's messages are dropped (``drop``) or the
member is closed with 1008 (``close``, RFC 6455 §7.4.1). Either way a member
that reads at full speed must not lose a single message because others are
slow.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Callable

import pytest

from .harness import (
    CLOSE,
    TEXT,
    MiB,
    RawClient,
    ServerProcess,
    client_frame,
    close_code,
    connect_raw,
    report,
    settle_rss,
    warm_up,
)

pytestmark = pytest.mark.adversarial

Launch = Callable[..., ServerProcess]

SLOW_MEMBERS = 50
MESSAGES = 2000
# 16 MiB for each member: more than the kernel buffers for a member that does not
# read (up to 4 MiB in the server's send buffer, tcp_wmem), so the hub sees it slow.
SIZE = 8 * 1024
BUFFER_LIMIT = 64 * 1024


class Counter(threading.Thread):
    """Reads a member's messages at full speed and counts the broadcast ones."""

    def __init__(self, client: RawClient, seconds: float) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.deadline = time.monotonic() + seconds
        self.probes = 0
        self.messages = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while self.messages < MESSAGES:
                opcode, payload = self.client.recv_message(self.deadline)
                if opcode == TEXT and payload.startswith(b"probe"):
                    self.probes += 1
                elif opcode == TEXT and len(payload) == SIZE:
                    self.messages += 1
        except BaseException as exc:  # reported by the test
            self.error = exc


def drain_all(members: list[RawClient], seconds: float, quiet: float
              ) -> list[tuple[int, str]]:
    """Read every slow member at once: (broadcast messages it got, how it ended) each.

    A member ends with a close frame, EOF or a reset; the others are "open" once
    none of them received anything for ``quiet`` seconds, or at the deadline.
    """
    deadline = time.monotonic() + seconds
    counts = [0] * len(members)
    ends = ["open"] * len(members)
    live = {member.sock.fileno(): index for index, member in enumerate(members)}
    last_data = time.monotonic()
    while live and time.monotonic() < deadline and time.monotonic() - last_data < quiet:
        ready, _, _ = select.select(list(live), [], [], 0.05)
        for fd in ready:
            index = live[fd]
            member = members[index]
            try:
                data = member.sock.recv(1 << 20)
            except OSError as exc:
                ends[index] = f"dropped ({type(exc).__name__})"
                del live[fd]
                continue
            if not data:
                ends[index] = "dropped (EOF)"
                del live[fd]
                continue
            last_data = time.monotonic()
            member.reader.feed(data)
            while (frame := member.reader.next()) is not None:
                opcode, _fin, payload = frame
                if opcode == TEXT and len(payload) == SIZE:
                    counts[index] += 1
                elif opcode == CLOSE:
                    ends[index] = f"close {close_code(payload)}"
                    del live[fd]
                    break
    return list(zip(counts, ends, strict=True))


@pytest.mark.parametrize(("policy", "transport"),
                         [("drop", "tcp"), ("close", "tcp"), ("drop", "tls")])
def test_slow_members_do_not_cost_the_fast_one(launch: Launch, backend: str, policy: str,
                                               transport: str) -> None:
    server = launch(backend, app="broadcast", options={"close_timeout": 2},
                    tls=transport == "tls",
                    hub={"buffer_limit": BUFFER_LIMIT, "policy": policy, "close_code": 1008})
    warm_up(server)
    # A small receive buffer, so that a member that does not read is slow at once.
    # A small receive window: a member that does not read is slow at once.
    slow = [connect_raw(server, rcvbuf=4096) for _ in range(SLOW_MEMBERS)]
    fast = connect_raw(server)
    sender = connect_raw(server)
    try:
        # Generous for a loaded machine (the CI runs Autobahn on the other core); a
        # server that waited on its slow members in turn would not get the 2000 through.
        fast_counter = Counter(fast, 15.0)
        sender_counter = Counter(sender, 15.0)  # the sender is a member too: it reads
        fast_counter.start()
        sender_counter.start()
        # Everyone has joined once a probe reaches the last to connect.
        deadline = time.monotonic() + 5.0
        while fast_counter.probes == 0 and time.monotonic() < deadline:
            sender.send(client_frame(TEXT, b"probe"))
            time.sleep(0.2)
        assert fast_counter.probes, "the broadcast server never delivered a probe"
        # What the connections cost by themselves (TLS: far more) is not the question.
        baseline = server.rss()
        start = time.monotonic()
        frames = b"".join(client_frame(TEXT, b"%06d" % index + b"x" * (SIZE - 6))
                          for index in range(MESSAGES))
        sender.send(frames)
        fast_counter.join(17.0)
        seconds = time.monotonic() - start
        growth = settle_rss(server, 0.3) - baseline
        outcomes = drain_all(slow, 10.0, quiet=1.0 if policy == "drop" else 6.0)
        ends = sorted({end for _, end in outcomes})
        got = [count for count, _ in outcomes]
        report(f"{server.label} broadcast {policy}, {SLOW_MEMBERS} slow members",
               fast_received=f"{fast_counter.messages}/{MESSAGES}", seconds=seconds,
               slow_received_max=max(got), slow_ends=",".join(ends),
               rss_growth_mib=growth / MiB)
        assert fast_counter.messages == MESSAGES, \
            f"the fast member got {fast_counter.messages} of {MESSAGES} " \
            f"({fast_counter.error!r})"
        bound = SLOW_MEMBERS * BUFFER_LIMIT + 16 * MiB
        assert growth < bound, f"server RSS grew {growth / MiB:.1f} MiB"
        assert max(got) < MESSAGES, "no member was slow: the test proves nothing"
        if policy == "close":
            assert all(end in ("close 1008",) or end.startswith("dropped")
                       for _, end in outcomes), ends
    finally:
        for client in [*slow, fast, sender]:
            with contextlib.suppress(OSError):
                client.close()
    server.finish()
