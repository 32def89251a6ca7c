"""The sync broadcast (ThreadedMember, broadcast_sync) with slow members and a fast one."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from tests.helpers import TEXT, frame
from tests.sync.test_hardening import Child

SLOW = 50
MESSAGES = 2000
# 8 MiB to each member: more than the kernel takes for a client that does not read
# (tcp_wmem autotunes a send buffer up to 4 MiB), so the slow ones meet the policy.
SIZE = 4096


class FastReader:
    """A member that reads at full speed and counts the broadcast messages it gets."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.messages: list[bytes] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buf = bytearray()
        self.sock.settimeout(60)
        while not self.done.is_set():
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 2:
                length, offset = buf[1] & 0x7F, 2
                if length == 126:
                    if len(buf) < 4:
                        break
                    length, offset = int.from_bytes(buf[2:4], "big"), 4
                if len(buf) < offset + length:
                    break
                payload = bytes(buf[offset:offset + length])
                del buf[:offset + length]
                self.messages.append(payload)
                if payload == b"end":
                    self.done.set()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_fast_member_gets_everything_while_slow_ones_are_dropped(transport: str) -> None:
    """50 members never read; one reads at full speed: it receives every message, the
    slow ones meet the drop policy, and the server holds about their budgets."""
    budget = 256 * 1024  # against 8 MiB to each member
    with Child(transport, app="broadcast", compression=None,
               hub={"buffer_limit": budget, "policy": "drop"}) as child:
        slow = [child.raw() for _ in range(SLOW)]
        fast_sock = child.raw(rcvbuf=None)
        sender = child.raw(rcvbuf=None)
        try:
            fast = FastReader(fast_sock)
            # Members join once their handler runs: probe until the fast one and
            # every slow one got something.
            for _ in range(100):
                sender.sendall(frame(TEXT, b"probe"))
                time.sleep(0.1)
                if fast.messages and all(_readable(s) for s in slow):
                    break
            assert fast.messages and all(_readable(s) for s in slow)
            before = child.rss_kib()
            # The sender is a member too: it drains its copies between its sends (in
            # this thread: an SSLSocket takes one call at a time).
            for i in range(MESSAGES):
                sender.sendall(frame(TEXT, b"m" * (SIZE - 4) + b"%04d" % i))
                _drain(sender)
            for _ in range(30):  # a "end" dropped for a member behind is sent again
                sender.sendall(frame(TEXT, b"end"))
                if fast.done.wait(2):
                    break
                _drain(sender)
            assert fast.done.is_set(), len(fast.messages)
            got = [m for m in fast.messages if m.startswith(b"m")]
            assert len(got) == MESSAGES, f"the fast member got {len(got)} of {MESSAGES}"
            growth = child.rss_kib() - before
            assert growth * 1024 < SLOW * (budget + SIZE + 8) + 16 * 1024 * 1024, growth
            assert "is not reading" in child.log()
            assert "ERROR" not in child.log(), child.log()
        finally:
            for sock in (*slow, fast_sock, sender):
                sock.close()


def _readable(sock: socket.socket) -> bool:
    """Whether some bytes came (one is read: what a slow member got is never parsed)."""
    sock.settimeout(0.01)
    try:
        return bool(sock.recv(1))
    except (TimeoutError, BlockingIOError):
        return False
    finally:
        sock.settimeout(10)


def _drain(sock: socket.socket) -> None:
    """Read what has arrived, without waiting."""
    sock.settimeout(0)
    try:
        while sock.recv(1 << 20):
            pass
    except (BlockingIOError, ssl.SSLWantReadError):
        pass
    finally:
        sock.settimeout(10)
