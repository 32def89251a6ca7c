"""rfc6455.sync.broadcast and send_nowait over real sockets: written without the caller
waiting, shared frames, slow members, members closing, threads broadcasting at once."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rfc6455._fanout as fanout
from rfc6455 import State
from rfc6455.sync import BroadcastResult, Connection, ConnectionClosed, broadcast
from tests.broadcast_peers import stuck_peer
from tests.conftest import Transport
from tests.helpers import BINARY, TEXT, Frame, parse_frames
from tests.sync.test_sync import connecting, running

MIXED: list[dict[str, Any]] = [
    {"compression": None},
    {},
    {"compression_options": {"server_no_context_takeover": True}},
    {"compression_options": {"server_no_context_takeover": True}},
    {"compression_options": {"server_no_context_takeover": True, "server_max_window_bits": 10}},
]


class Members:
    """The server side of every connection, in the order the clients connected."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.changed = threading.Condition()

    def handler(self, ws: Connection) -> None:
        with self.changed:
            self.connections.append(ws)
            self.changed.notify_all()
        for _ in ws:
            pass

    def wait_for(self, count: int) -> list[Connection]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.connections) >= count, 10)
            return list(self.connections)


@contextlib.contextmanager
def clients(transport: Transport, server: Any, options: list[dict[str, Any]],
            members: Members | None = None) -> Iterator[list[Connection]]:
    """Clients with these options; with ``members``, each connects once the previous one's
    handler has run, so that ``members.connections[i]`` is the server side of client i."""
    with contextlib.ExitStack() as stack:
        peers = []
        for each in options:
            peers.append(stack.enter_context(connecting(transport, server, **each)))
            if members is not None:
                members.wait_for(len(peers))
        yield peers


def _read_frames(sock: socket.socket, size: int, timeout: float) -> list[Frame]:
    """Read ``size`` bytes of server frames from a raw peer, within ``timeout`` s."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < size:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(data)} of {size} bytes in {timeout} s"
        sock.settimeout(remaining)
        chunk = sock.recv(1 << 20)
        assert chunk, "closed"
        data += chunk
    return parse_frames(bytes(data))


def test_send_nowait_is_written_without_flush(transport: Transport) -> None:
    """Three clients get what send_nowait queued, flush() never called: a small message,
    and one far larger than what the socket takes at once (the clients read only once
    send_nowait returned: the background writer writes the rest as they read)."""
    members = Members()
    big = bytes(range(256)) * (8 * 1024)  # 2 MiB
    with running(members.handler, transport=transport) as server:
        peers = []
        try:
            for _ in range(3):
                peers.append(stuck_peer(transport, server))
            server_side = members.wait_for(3)
            # Past the first-message hold (50 ms): the reader threads wait for input only.
            time.sleep(0.3)
            for ws in server_side:
                # A small kernel buffer (no autotuning): most of it waits in the outbox.
                ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
                assert ws.send_nowait("hello")
                assert ws.send_nowait(big)
                assert ws.pending_bytes > 0  # so some of it is left to write
            for peer in peers:
                frames = _read_frames(peer, 7 + 10 + len(big), 10)
                assert [(f.opcode, f.payload) for f in frames] == [(TEXT, b"hello"), (BINARY, big)]
            # The outbox counts a write once send() returned: a moment after the peer read it.
            deadline = time.monotonic() + 5
            while any(ws.pending_bytes for ws in server_side) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert [ws.pending_bytes for ws in server_side] == [0, 0, 0]
        finally:
            for peer in peers:
                peer.close()


def test_send_nowait_after_close_sends_nothing() -> None:
    members = Members()
    with running(members.handler) as server, \
            clients(Transport("tcp", {}, {}), server, [{}]) as (peer,):
        (ws,) = members.wait_for(1)
        ws.start_close(1001, "going away")  # written at once too
        with pytest.raises(ConnectionClosed):
            peer.recv(timeout=5)
        assert peer.close_code == 1001
        assert not ws.send_nowait("late")


def test_mixed_members_get_every_message(transport: Transport) -> None:
    """Members with and without deflate, sharing frames or compressing their own
    (RFC 7692 §7.1.1.1): every one gets every message, text and binary, in order."""
    members = Members()
    messages: list[str | bytes] = ["compressible text " * 50, b"\x00\x01" * 600, "tiny", b""]
    with running(members.handler, transport=transport) as server, \
            clients(transport, server, MIXED, members) as peers:
        server_side = members.wait_for(len(MIXED))
        assert server_side[0].engine.extension is None
        assert all(ws.engine.extension is not None for ws in server_side[1:])
        for message in messages:
            assert broadcast(server_side, message) == BroadcastResult(len(MIXED))
        for peer in peers:
            assert [peer.recv(timeout=5) for _ in messages] == messages


@pytest.mark.parametrize("policy", ["skip", "close"])
def test_member_that_never_reads_stalls_nobody(
        transport: Transport, policy: fanout.SlowPolicy, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A member that never reads: a reading member gets all of 8 MiB, what waits for the
    stuck one stays within its limit plus one message, and the policy applies (skip: it
    stays open, the drop is logged; close: its closing handshake starts, 1008)."""
    size, count, limit = 32 * 1024, 256, 128 * 1024
    monkeypatch.setattr(fanout, "_report", fanout._SkipReport())  # the first skip is logged
    members = Members()
    with caplog.at_level(logging.WARNING, "rfc6455.broadcast"), \
            running(members.handler, transport=transport, close_timeout=1.0) as server:
        stuck = stuck_peer(transport, server)
        try:
            (stuck_side,) = members.wait_for(1)
            with clients(transport, server, [{"compression": None, "max_size": None}]) \
                    as (reader,):
                reader_side = members.wait_for(2)[1]
                slow_seen = 0
                for i in range(count):
                    message = i.to_bytes(4, "big") * (size // 4)
                    result = broadcast([stuck_side, reader_side], message, slow=policy,
                                       limit=limit)
                    assert stuck_side.pending_bytes <= limit + size + 16
                    if result.skipped or result.closed:
                        slow_seen += 1
                        assert (result.skipped if policy == "skip" else result.closed) \
                            == (stuck_side,)
                    assert reader.recv(timeout=10) == message  # never held up
                assert slow_seen >= 1
                if policy == "close":
                    assert slow_seen == 1  # then it is no longer open
                    assert stuck_side.state is not State.OPEN
                    stuck_side.wait_closed(10)  # the close timeout drops it (§7.1.1)
                    assert stuck_side.state is State.CLOSED
                else:
                    assert stuck_side.state is State.OPEN
                # After the attack another client is served.
                with clients(transport, server, [{}]) as (late,):
                    late_side = members.wait_for(3)[2]
                    assert broadcast([late_side], "still here").sent == 1
                    assert late.recv(timeout=5) == "still here"
        finally:
            stuck.close()
    assert ("closed 1 slow connection(s) with 1008" in caplog.text) if policy == "close" \
        else ("message dropped for 1 connection(s)" in caplog.text)


def test_threads_broadcasting_while_members_close(transport: Transport) -> None:
    """Four threads broadcast at once while members close, by either side or abruptly:
    nothing raises, each thread's messages keep their order, the last member gets all."""
    members = Members()
    threads, per_thread = 4, 50
    errors: list[BaseException] = []
    with running(members.handler, transport=transport) as server, \
            clients(transport, server, [{}] * 4, members) as peers:
        server_side = members.wait_for(4)
        start = threading.Barrier(threads + 1)

        def sender(index: int) -> None:
            try:
                start.wait(10)
                for i in range(per_thread):
                    broadcast(server_side, f"{index} {i}")
                    time.sleep(0.001)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        workers = [threading.Thread(target=sender, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        start.wait(10)
        time.sleep(0.01)
        server_side[0].start_close(1001, "going away")
        peers[1].close()
        server_side[2].abort()
        for worker in workers:
            worker.join(30)
        assert not errors
        received = [peers[3].recv(timeout=5) for _ in range(threads * per_thread)]
        for index in range(threads):
            assert [m for m in received if isinstance(m, str) and m.startswith(f"{index} ")] \
                == [f"{index} {i}" for i in range(per_thread)]
        assert broadcast(server_side, "last").sent == 1


def test_member_sending_in_parts_is_skipped_rfc6455_s5_4() -> None:
    """§5.4: no data frame goes between the fragments of a message."""
    members = Members()
    gate = threading.Event()

    def parts() -> Iterator[str]:
        yield "first "
        assert gate.wait(10)
        yield "last"

    with running(members.handler) as server, \
            clients(Transport("tcp", {}, {}), server, [{}]) as (peer,):
        (ws,) = members.wait_for(1)
        sending = threading.Thread(target=ws.send, args=(parts(),))
        sending.start()
        time.sleep(0.05)
        assert broadcast([ws], "between") == BroadcastResult(0, (ws,))
        gate.set()
        sending.join(10)
        assert broadcast([ws], "after").sent == 1
        assert [peer.recv(timeout=5) for _ in range(2)] == ["first last", "after"]
