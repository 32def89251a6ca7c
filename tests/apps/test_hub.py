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


class FakeTransport:
    """What the hub's direct path uses of an asyncio transport; bytes wait in ``buffer``."""

    def __init__(self) -> None:
        self.buffer: list[bytes] = []
        self.closing = False
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.buffer.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.buffer))


class DirectMember:
    """A member as the asyncio adapter makes one: frames go through the engine's queue,
    flushed to the transport later (``flush``), unless the hub writes them directly."""

    def __init__(self) -> None:
        self.pair = Pair()
        self.transport = FakeTransport()
        self.closed_with: int | None = None

    def pending(self) -> int:
        return self.transport.get_write_buffer_size()

    def write_frame(self, frame: bytes) -> bool:
        if self.pair.server.state.name != "OPEN":
            return False
        self.pair.server.send_frame_bytes(frame)
        return True

    def write_message(self, message: str | bytes) -> bool:  # pragma: no cover - no extension
        raise AssertionError("a member without extension takes frames")

    def close_slow(self, code: int, reason: str) -> None:
        self.closed_with = code
        self.pair.server.close(code, reason)

    def flush(self) -> None:
        out = self.pair.server.data_to_send()
        assert isinstance(out, bytes)
        self.transport.buffer.append(out)

    def deliver(self) -> list[object]:
        self.flush()
        wire = b"".join(self.transport.buffer)
        self.transport.buffer.clear()
        self.pair.client.receive_data(wire)
        return list(iter(self.pair.client.next_event, None))


def _join_direct(hub: Hub, member: DirectMember) -> None:
    hub.join(member, member.pair.server.extension,
             direct=(member.pair.server, member.transport))


def test_direct_members_get_the_frame_written_to_their_transport() -> None:
    hub = Hub()
    direct = [DirectMember() for _ in range(3)]
    general = EngineMember()
    for m in direct:
        _join_direct(hub, m)
    hub.join(general)
    assert len(hub) == 4
    assert hub.broadcast("one") == 4
    assert [m.transport.buffer for m in direct] == [[b"\x81\x03one"]] * 3
    assert all(m.transport.buffer[0] is direct[0].transport.buffer[0] for m in direct)
    assert all(m.pair.server.data_to_send() == b"" for m in direct)  # not queued in the engine
    assert general.deliver() == [Text("one")]
    for m in direct:
        assert m.deliver() == [Text("one")]


def test_direct_path_keeps_order_behind_queued_output_rfc6455_s5_4() -> None:
    """§5.4 (control frames between messages): a ping already queued in the engine goes
    before the broadcast frame, so the frame goes through the engine's queue."""
    hub = Hub()
    member = DirectMember()
    _join_direct(hub, member)
    member.pair.server.ping(b"first")
    assert hub.broadcast(b"then") == 1
    assert member.transport.writes == 0
    events = member.deliver()
    assert [type(e).__name__ for e in events] == ["Ping", "Binary"]
    assert events[1] == Binary(b"then")


def test_direct_path_skips_closing_and_closed_members() -> None:
    hub = Hub()
    closing, closed = DirectMember(), DirectMember()
    closing.transport.closing = True
    closed.pair.server.close(1001, "going away")
    for m in (closing, closed):
        _join_direct(hub, m)
    assert hub.broadcast("x") == 1  # the one with a closing transport takes it in its engine
    assert closing.transport.writes == 0 and closed.transport.writes == 0
    assert closing.pair.server.data_to_send() == b"\x81\x01x"
    assert hub.delivered == 1


def test_direct_path_bounds_slow_members() -> None:
    hub = Hub(buffer_limit=1000, policy="drop")
    slow, fast = DirectMember(), DirectMember()
    _join_direct(hub, slow)
    _join_direct(hub, fast)
    for i in range(50):
        hub.broadcast(f"{i:0100d}")
        assert fast.deliver() == [Text(f"{i:0100d}")]
    assert len(slow.transport.buffer) == 9 and hub.dropped == 41
    hub.leave(fast)
    assert len(hub) == 1
    assert hub.broadcast("a" * 100) == 0  # still behind: 918 + 102 bytes > 1000
    assert hub.broadcast("after") == 1  # 918 + 7 bytes fit
    slow.transport.buffer.clear()
    assert hub.broadcast("a" * 100) == 1


def test_direct_path_close_policy_removes_member() -> None:
    hub = Hub(buffer_limit=300, policy="close", close_code=1013)
    slow, fast = DirectMember(), DirectMember()
    _join_direct(hub, slow)
    _join_direct(hub, fast)
    for _ in range(5):
        hub.broadcast("y" * 100)
        fast.deliver()
    assert slow.closed_with == 1013 and hub.closed_slow == 1 and len(hub) == 1
    assert hub.broadcast("z") == 1


def test_member_with_extension_takes_the_general_path_rfc7692_s7_1_1() -> None:
    """A compressed frame is not the plain frame: ``direct`` is ignored for such members."""
    hub = Hub()
    member = _deflate_member(True)
    transport = FakeTransport()
    hub.join(member, member.pair.server.extension, direct=(member.pair.server, transport))
    message = "compressible " * 100
    hub.broadcast(message)
    assert transport.writes == 0
    assert member.frames[0][0] & 0x40
    assert member.deliver() == [Text(message)]


def test_joining_again_without_direct_drops_the_direct_path() -> None:
    hub = Hub()
    member = DirectMember()
    _join_direct(hub, member)
    hub.join(member)
    assert len(hub) == 1
    assert hub.broadcast("x") == 1
    assert member.transport.writes == 0  # through write_frame, the engine's queue
    assert member.deliver() == [Text("x")]
