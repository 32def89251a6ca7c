"""A hypothesis state machine: a client and a server engine joined by an in-memory pipe.

Rules interleave sends (whole, in parts, compressed or not), pings, closes from
either side and deliveries of any number of bytes in flight (so frames arrive
re-chunked at every boundary). Every step checks the engines' contract:

* messages arrive intact and in order (§5.4, §6.2); a close never overtakes them;
* pongs answer pings the peer saw while open, in order, and the latest of them is
  answered before the close (§5.5.2; §5.5.3 lets a pong still unsent give way to
  a later ping's);
* once both closes crossed, both engines are CLOSED and each reports the code
  the other sent (§7.1.5), the server closes TCP first (§7.1.1);
* nothing raises except :class:`LocalProtocolError` for a send after the close.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from rfc6455 import (
    EOF,
    Accepted,
    Binary,
    ClientConnection,
    ConnectionClosed,
    Limits,
    LocalProtocolError,
    Ping,
    Pong,
    Request,
    ServerConnection,
    State,
    Text,
)
from rfc6455.extensions.permessage_deflate import (
    ClientPerMessageDeflate,
    ServerPerMessageDeflate,
)

from .common import check_wire

__all__ = ["COUNTS", "EnginePair"]

COUNTS: dict[str, int] = {"runs": 0, "steps": 0}

CLIENT, SERVER = 0, 1
NO_STATUS = 1005  # §7.1.5: a close without a code is reported as 1005

_payload = st.text(max_size=60) | st.binary(max_size=200)
_close_code = st.sampled_from([None, 1000, 1001, 1003, 1008, 1011, 3000, 4999])
_window = st.sampled_from([None, 8, 9, 12, 15])


class EnginePair(RuleBasedStateMachine):
    """Client (side 0) and server (side 1), each with its own options."""

    def __init__(self) -> None:
        super().__init__()
        COUNTS["runs"] += 1
        self.conn: list[ClientConnection | ServerConnection] = []
        self.wire = [bytearray(), bytearray()]  # bytes from side i in flight
        self.eof_out = [False, False]  # side i shut its write side
        self.eof_in = [False, False]  # side i received the peer's EOF
        self.sent: list[list[str | bytes]] = [[], []]
        self.ongoing: list[list[str | bytes] | None] = [None, None]
        self.received: list[list[str | bytes]] = [[], []]
        self.incoming: list[list[str | bytes]] = [[], []]
        self.pings: list[list[bytes]] = [[], []]  # pings sent by side i
        self.seen_pings: list[list[bytes]] = [[], []]  # pings side i received
        self.answered: list[list[bytes]] = [[], []]  # pings side i answered
        self.ponged = [0, 0]  # pings of the peer's answered that side i saw pongs for
        self.pongs: list[list[bytes]] = [[], []]
        self.close_code: list[int | None] = [None, None]  # what side i put on the wire
        self.closed: list[ConnectionClosed | None] = [None, None]

    # ---------------------------------------------------------------- setup

    @initialize(deflate=st.booleans(), streaming=st.tuples(st.booleans(), st.booleans()),
                fragment=st.tuples(*[st.sampled_from([None, 1, 7, 64, 1000])] * 2),
                windows=st.tuples(_window, _window, st.booleans(), st.booleans()),
                threshold=st.sampled_from([0, 16, 128]))
    def handshake(self, deflate: bool, streaming: tuple[bool, bool],
                  fragment: tuple[int | None, int | None],
                  windows: tuple[int | None, int | None, bool, bool], threshold: int) -> None:
        server_bits, client_bits, server_reset, client_reset = windows
        limits = Limits(max_fragments=None)
        client = ClientConnection(
            "ws://example.com/", streaming=streaming[CLIENT], fragment_size=fragment[CLIENT],
            limits=limits, extensions=[ClientPerMessageDeflate(
                server_no_context_takeover=server_reset, client_max_window_bits=True,
                threshold=threshold)] if deflate else [])
        server = ServerConnection(
            streaming=streaming[SERVER], fragment_size=fragment[SERVER], limits=limits,
            extensions=[ServerPerMessageDeflate(
                server_max_window_bits=server_bits, client_max_window_bits=client_bits,
                client_no_context_takeover=client_reset, threshold=threshold)]
            if deflate else [])
        request = client.data_to_send()
        assert isinstance(request, bytes)
        server.receive_data(request)
        event = server.next_event()
        assert isinstance(event, Request), event
        server.accept()
        response = server.data_to_send()
        assert isinstance(response, bytes)
        client.receive_data(response)
        event = client.next_event()
        assert isinstance(event, Accepted), event
        assert client.state is State.OPEN and server.state is State.OPEN
        assert (client.extension is None) == (server.extension is None) == (not deflate)
        self.conn = [client, server]

    # ---------------------------------------------------------------- helpers

    def _flush(self, side: int) -> None:
        """Move what ``side`` wants to send onto its half of the pipe."""
        conn = self.conn[side]
        while (out := conn.data_to_send()):
            if out is EOF:
                assert not self.eof_out[side]
                # §7.1.1: the server closes TCP first; a client only after the
                # server's EOF (or a failure, which this machine never causes).
                assert side == SERVER or self.eof_in[CLIENT], "client closed TCP first"
                self.eof_out[side] = True
                break
            assert isinstance(out, bytes)
            assert not self.eof_out[side], "bytes after EOF"
            check_wire(out, client=side == CLIENT)  # whole frames, sendable close codes
            self.wire[side] += out

    def _receive(self, side: int) -> None:
        """Handle every event ``side`` has, checking each against what the peer did."""
        peer = 1 - side
        conn = self.conn[side]
        for event in conn.events():
            if isinstance(event, (Text, Binary)):
                self.incoming[side].append(event.data)
                if event.final:
                    parts = self.incoming[side]
                    message: str | bytes = (
                        "".join(parts) if isinstance(event, Text)  # type: ignore[arg-type]
                        else b"".join(parts))  # type: ignore[arg-type]
                    self.incoming[side] = []
                    self.received[side].append(message)
                    index = len(self.received[side]) - 1
                    assert index < len(self.sent[peer]), "a message nobody sent"
                    assert self.sent[peer][index] == message, "message altered or reordered"
            elif isinstance(event, Ping):
                expected = self.pings[peer][len(self.seen_pings[side])]
                assert event.payload == expected
                self.seen_pings[side].append(event.payload)
                if self.close_code[side] is None:
                    # §5.5.2: the engine queued the pong while parsing; §5.5.3: in
                    # place of one still unsent.
                    self.answered[side].append(event.payload)
            elif isinstance(event, Pong):
                self.pongs[side].append(event.payload)
                # A pong answers one of the pings not answered yet, in order.
                answered = self.answered[peer]
                start = self.ponged[side]
                assert event.payload in answered[start:], "a pong for no pending ping"
                self.ponged[side] = answered.index(event.payload, start) + 1
            elif isinstance(event, ConnectionClosed):
                assert self.closed[side] is None
                self.closed[side] = event
                assert event.error is None, event.error
                assert conn.state is State.CLOSED
                # §7.1.5: the code is the one the peer's close carried.
                assert self.close_code[peer] is not None, "close reported, none sent"
                assert event.code == self.close_code[peer], (event.code, self.close_code)
                if self.close_code[side] is None:
                    # §5.5.1: the reply echoes the code received.
                    self.close_code[side] = event.code
                # Nothing the peer sent before its close is lost.
                assert self.received[side] == self.sent[peer]
                assert self.pongs[side][-1:] == self.answered[peer][-1:]
            else:
                raise AssertionError(f"unexpected event {event!r}")
        self._flush(side)

    # ---------------------------------------------------------------- rules

    @rule(side=st.sampled_from([CLIENT, SERVER]), data=_payload, final=st.booleans(),
          compress=st.sampled_from([None, None, True, False]))
    def send(self, side: int, data: str | bytes, final: bool, compress: bool | None) -> None:
        COUNTS["steps"] += 1
        conn = self.conn[side]
        ongoing = self.ongoing[side]
        if ongoing and isinstance(data, str) != isinstance(ongoing[0], str):
            data = data.encode("utf-8") if isinstance(data, str) else data.hex()
        if self.close_code[side] is not None:
            # §5.5.1: no data frame after a close frame.
            try:
                conn.send(data, final=final, compress=compress)
            except LocalProtocolError:
                return
            raise AssertionError("send() after close() did not raise")
        conn.send(data, final=final, compress=compress)
        parts = (ongoing or []) + [data]
        if final:
            self.sent[side].append("".join(parts) if isinstance(data, str)  # type: ignore[arg-type]
                                   else b"".join(parts))  # type: ignore[arg-type]
            self.ongoing[side] = None
        else:
            self.ongoing[side] = parts
        self._flush(side)

    @rule(side=st.sampled_from([CLIENT, SERVER]), payload=st.binary(max_size=125))
    def ping(self, side: int, payload: bytes) -> None:
        COUNTS["steps"] += 1
        conn = self.conn[side]
        if self.close_code[side] is not None:
            try:
                conn.ping(payload)
            except LocalProtocolError:
                return
            raise AssertionError("ping() after close() did not raise")
        conn.ping(payload)
        self.pings[side].append(payload)
        self._flush(side)

    @rule(side=st.sampled_from([CLIENT, SERVER]), code=_close_code,
          reason=st.text(max_size=20))
    def close(self, side: int, code: int | None, reason: str) -> None:
        COUNTS["steps"] += 1
        conn = self.conn[side]
        if code is None:
            reason = ""
        already = self.close_code[side] is not None
        conn.close(code, reason)  # §7.1.2; a second close does nothing
        if not already:
            self.close_code[side] = NO_STATUS if code is None else code
            assert conn.state is State.CLOSING
        self._flush(side)

    @precondition(lambda self: any(self.wire) or self.eof_out != self.eof_in[::-1])
    @rule(direction=st.sampled_from([CLIENT, SERVER]), size=st.integers(1, 600))
    def deliver(self, direction: int, size: int) -> None:
        """Move up to ``size`` bytes from side ``direction`` to its peer."""
        COUNTS["steps"] += 1
        self._deliver(direction, size)

    def _deliver(self, direction: int, size: int) -> bool:
        peer = 1 - direction
        wire = self.wire[direction]
        if wire:
            piece = bytes(wire[:size])
            del wire[:size]
            self.conn[peer].receive_data(piece)
        elif self.eof_out[direction] and not self.eof_in[peer]:
            self.eof_in[peer] = True
            self.conn[peer].receive_eof()
        else:
            return False
        self._receive(peer)
        return True

    def teardown(self) -> None:
        if not self.conn:
            return
        # Both sides close (if not yet), then the pipe drains both ways.
        for side in (CLIENT, SERVER):
            if self.conn[side].state is State.OPEN:
                self.close(side, 1000, "bye")
        for _ in range(10_000):
            if not (self._deliver(CLIENT, 4096) | self._deliver(SERVER, 4096)):
                break
        for side in (CLIENT, SERVER):
            peer = 1 - side
            conn = self.conn[side]
            assert conn.state is State.CLOSED, (side, conn.state)
            closed = self.closed[side]
            assert closed is not None
            assert closed.code == self.close_code[peer] == conn.close_code
            assert self.received[side] == self.sent[peer]
            assert self.seen_pings[side] == self.pings[peer]
            assert self.eof_out[side] and self.eof_in[side]


EnginePair.TestCase.settings = settings(
    max_examples=50, stateful_step_count=40, deadline=None, database=None,
    suppress_health_check=list(HealthCheck))
