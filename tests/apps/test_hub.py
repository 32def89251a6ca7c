"""The reference server's broadcast policy (the hub) over a recorded fan-out.

The fan-out itself (shared frames, writes that never wait, the slow-member
rule) is the library's broadcast(), tested over real sockets in
tests/asyncio/test_broadcast.py and tests/sync/test_broadcast.py; the hub only
decides who is a member and what a slow one costs, and counts and logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pytest

from rfc6455.apps.hub import Hub
from rfc6455.sync import BroadcastResult


class Recorder:
    """A fan-out that records its calls and answers what the test says."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], str | bytes, dict[str, Any]]] = []
        self.slow: tuple[str, ...] = ()

    def __call__(self, connections: Iterable[str], message: str | bytes, **options: Any
                 ) -> BroadcastResult[str]:
        members = tuple(connections)
        self.calls.append((members, message, options))
        slow = tuple(m for m in members if m in self.slow)
        sent = len(members) - len(slow)
        if options["slow"] == "close":
            return BroadcastResult(sent, (), slow)
        return BroadcastResult(sent, slow)


def test_every_member_is_handed_to_the_fan_out_with_the_policy() -> None:
    fan_out = Recorder()
    hub: Hub[str] = Hub(fan_out, buffer_limit=1000, policy="drop", close_code=1013)
    for name in "abc":
        hub.join(name, f"client {name}")
    assert len(hub) == 3
    assert hub.broadcast("hello") == 3
    assert fan_out.calls == [(("a", "b", "c"), "hello",
                              {"slow": "skip", "limit": 1000, "close_code": 1013})]
    hub.leave("b")
    assert hub.broadcast(b"\x00") == 2
    assert fan_out.calls[-1][0] == ("a", "c")
    assert (hub.messages, hub.delivered, hub.dropped) == (2, 5, 0)


def test_drop_policy_counts_and_logs_per_client(caplog: pytest.LogCaptureFixture) -> None:
    fan_out = Recorder()
    hub: Hub[str] = Hub(fan_out, policy="drop")
    hub.join("slow", "client slow")
    hub.join("fast", "client fast")
    fan_out.slow = ("slow",)
    with caplog.at_level(logging.INFO, "rfc6455.broadcast"):
        for _ in range(3):
            assert hub.broadcast("x") == 1
        hub.leave("slow")
    assert hub.dropped == 3 and len(hub) == 1
    messages = [r.getMessage() for r in caplog.records]
    # The first drop is logged, then every thousandth; the total when it leaves.
    assert messages == ["client slow is not reading: 1 broadcast messages dropped for it so far",
                        "client slow left; 3 broadcast messages were dropped for it"]


@pytest.mark.parametrize("code", [1008, 1013])
def test_close_policy_removes_the_member_once_rfc6455_s7_4_1(
        code: int, caplog: pytest.LogCaptureFixture) -> None:
    """§7.4.1: 1008 (policy) or 1013 (try again later); the member is gone from the hub."""
    fan_out = Recorder()
    hub: Hub[str] = Hub(fan_out, policy="close", close_code=code)
    hub.join("slow", "client slow")
    hub.join("fast", "client fast")
    fan_out.slow = ("slow",)
    with caplog.at_level(logging.WARNING, "rfc6455.broadcast"):
        assert hub.broadcast("x") == 1
    assert fan_out.calls[0][2]["slow"] == "close" and fan_out.calls[0][2]["close_code"] == code
    assert hub.closed_slow == 1 and len(hub) == 1
    assert f"client slow is not reading: closing it with {code}" in caplog.text
    assert hub.broadcast("y") == 1
    assert fan_out.calls[-1][0] == ("fast",)
    assert hub.closed_slow == 1


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        Hub(Recorder(), policy="ignore")
