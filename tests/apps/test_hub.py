"""The broadcast hub against in-memory engine pairs: one serialization, bounded clients."""

from __future__ import annotations

import pytest

from rfc6455 import ClientConnection, ConnectionClosed, ServerConnection, Text
from rfc6455.apps.hub import Hub
from rfc6455.events import Binary
from rfc6455.extensions.permessage_deflate import (
    ClientPerMessageDeflate,
    ServerPerMessageDeflate,
)

from ..helpers import Pair


class EngineMember:
    """A hub member over an engine pair; bytes wait in ``queued`` until ``deliver()``."""

    def __init__(self) -> None:
        self.pair = Pair()
        self.frames: list[bytes] = []
        self.closed_with: int | None = None

    def pending(self) -> int:
        return sum(len(f) for f in self.frames)

    def write_frame(self, frame: bytes) -> bool:
        self.pair.server.send_frame_bytes(frame)
        self.frames.append(frame)
        return True

    def write_message(self, message: str | bytes) -> bool:
        self.pair.server.send(message)
        self.frames.append(b"x" * len(message))
        return True

    def close_slow(self, code: int, reason: str) -> None:
        self.closed_with = code
        self.pair.server.close(code, reason)

    def deliver(self) -> list[object]:
        self.frames.clear()
        return list(self.pair.to_client())


def test_every_member_gets_every_message_in_order_rfc6455_s5_1() -> None:
    """§5.1: server frames are unmasked, so one serialization is valid for every client."""
    hub = Hub()
    members = [EngineMember() for _ in range(5)]
    for m in members:
        hub.join(m)
    for i in range(20):
        assert hub.broadcast(f"message {i}") == 5
    hub.broadcast(b"\x00\xff")
    expected = [Text(f"message {i}") for i in range(20)] + [Binary(b"\x00\xff")]
    for m in members:
        assert m.deliver() == expected
    assert hub.messages == 21 and hub.delivered == 105


def test_frame_is_serialized_once_for_all_members() -> None:
    hub = Hub()
    members = [EngineMember() for _ in range(3)]
    for m in members:
        hub.join(m)
    hub.broadcast("same bytes")
    first = members[0].frames[0]
    assert all(m.frames[0] is first for m in members)


def test_drop_policy_skips_only_the_slow_member() -> None:
    hub = Hub(buffer_limit=1000, policy="drop")
    slow, fast = EngineMember(), EngineMember()
    hub.join(slow)
    hub.join(fast)
    for i in range(50):
        hub.broadcast(f"{i:0100d}")  # 100-byte payload, 102-byte frame
        assert [e for e in fast.deliver()] == [Text(f"{i:0100d}")]
    # The slow member held at most the limit: 9 frames (918 bytes), then drops.
    assert len(slow.frames) == 9
    assert hub.dropped == 41
    assert [e.data for e in slow.deliver() if isinstance(e, Text)] == \
        [f"{i:0100d}" for i in range(9)]
    # Once it has caught up it receives again.
    hub.broadcast("again")
    assert slow.deliver() == [Text("again")]


@pytest.mark.parametrize("code", [1008, 1013])
def test_close_policy_closes_slow_member_rfc6455_s7_4_1(code: int) -> None:
    """§7.4.1: 1008 (policy) or 1013 (try again later) for a client that does not read."""
    hub = Hub(buffer_limit=500, policy="close", close_code=code)
    slow, fast = EngineMember(), EngineMember()
    hub.join(slow)
    hub.join(fast)
    received = 0
    for _ in range(10):
        hub.broadcast("y" * 100)
        received += len([e for e in fast.deliver() if isinstance(e, Text)])
    assert slow.closed_with == code
    assert len(hub) == 1
    assert hub.closed_slow == 1
    events = slow.deliver()
    assert events[-1] == ConnectionClosed(code, "client too slow for broadcast")
    assert received == 10


def test_message_larger_than_limit_reaches_idle_member() -> None:
    hub = Hub(buffer_limit=100)
    member = EngineMember()
    hub.join(member)
    assert hub.broadcast(b"z" * 1000) == 1
    assert member.deliver() == [Binary(b"z" * 1000)]


def test_leave_stops_delivery() -> None:
    hub = Hub()
    a, b = EngineMember(), EngineMember()
    hub.join(a)
    hub.join(b)
    hub.leave(a)
    assert hub.broadcast("only b") == 1
    assert a.deliver() == [] and b.deliver() == [Text("only b")]


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        Hub(policy="ignore")


def _deflate_member(server_no_context_takeover: bool, bits: int | None = None) -> EngineMember:
    member = EngineMember.__new__(EngineMember)
    member.pair = Pair(
        server=ServerConnection(extensions=[ServerPerMessageDeflate(
            server_no_context_takeover=server_no_context_takeover,
            server_max_window_bits=bits)]),
        client=ClientConnection("ws://example.com/", extensions=[ClientPerMessageDeflate()]))
    member.frames = []
    member.closed_with = None
    return member


def test_no_context_takeover_members_share_one_compressed_frame_rfc7692_s7_1_1() -> None:
    """RFC 7692 §7.1.1.1: without server context takeover each message compresses from a
    fresh state, so one compressed frame serves every such client."""
    hub = Hub()
    sharing = [_deflate_member(True) for _ in range(3)]
    narrow = _deflate_member(True, bits=9)
    plain = EngineMember()
    for m in [*sharing, narrow, plain]:
        hub.join(m, m.pair.server.extension)
    message = "compressible " * 100
    for _ in range(3):
        hub.broadcast(message)
    frames = [m.frames[0] for m in sharing]
    assert frames[0][0] & 0x40  # RSV1: compressed (§6)
    assert all(f is frames[0] for f in frames)
    assert len(frames[0]) < len(message) // 4
    assert narrow.frames[0] is not frames[0]  # another window size: its own frame
    assert not plain.frames[0][0] & 0x40
    for m in [*sharing, narrow, plain]:
        assert m.deliver() == [Text(message)] * 3


def test_context_takeover_members_compress_their_own_rfc7692_s7_1_1() -> None:
    """With context takeover each client's compressor state differs: per-connection frames,
    while small messages (below the threshold) still share the plain frame."""
    hub = Hub()
    members = [_deflate_member(False) for _ in range(2)]
    for m in members:
        hub.join(m, m.pair.server.extension)
    message = b"\x01\x02\x03" * 1000
    for _ in range(3):
        hub.broadcast(message)
    hub.broadcast(b"tiny")
    for m in members:
        assert m.frames[-1] == b"\x82\x04tiny"
        assert m.deliver() == [Binary(message)] * 3 + [Binary(b"tiny")]
    assert members[0].frames == [] and hub.delivered == 8
