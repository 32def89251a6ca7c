"""The closing handshake and connection failure (RFC 6455 §5.5.1, §7)."""

from __future__ import annotations

import pytest

from rfc6455 import (
    EOF,
    Binary,
    ConnectionClosed,
    LocalProtocolError,
    Ping,
    State,
    Text,
)

from .helpers import (
    BINARY,
    CLOSE,
    PING,
    TEXT,
    Pair,
    cframe,
    close_payload,
    closed_event,
    drain,
    feed,
    open_client,
    open_server,
    parse_frames,
    sent_close_code,
    sframe,
    written_frames,
)

# ---------------------------------------------------------------- close payloads received


def test_5_5_1_one_byte_close_payload_fails_1002() -> None:
    server = open_server()
    closed = closed_event(feed(server, cframe(CLOSE, b"\x03")))
    assert closed.code == 1002 and closed.error is not None
    assert sent_close_code(server) == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
                                  65535])
def test_7_4_1_invalid_close_code_received_fails_1002(code: int) -> None:
    client = open_client()
    closed = closed_event(feed(client, sframe(CLOSE, close_payload(code))))
    assert closed.code == 1002
    assert sent_close_code(client) == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                  1013, 1014, 3000, 3999, 4000, 4999])
def test_7_4_2_valid_close_code_is_echoed(code: int) -> None:
    server = open_server()
    evs = feed(server, cframe(CLOSE, close_payload(code, b"bye")))
    assert evs == [ConnectionClosed(code, "bye")]
    (reply,) = written_frames(server)
    assert reply.opcode == CLOSE and reply.close_code == code


def test_5_5_1_invalid_utf8_close_reason_fails_1007() -> None:
    server = open_server()
    closed = closed_event(feed(server, cframe(CLOSE, close_payload(1000, b"\xc3\x28"))))
    assert closed.code == 1007
    assert sent_close_code(server) == 1007


def test_5_5_1_utf8_close_reason_of_123_bytes() -> None:
    reason = "é" * 61 + "x"
    client = open_client()
    evs = feed(client, sframe(CLOSE, close_payload(4001, reason.encode())))
    assert evs == [ConnectionClosed(4001, reason)]


def test_7_1_5_empty_close_reports_1005_and_replies_empty() -> None:
    server = open_server()
    assert feed(server, cframe(CLOSE)) == [ConnectionClosed(1005, "")]
    (reply,) = written_frames(server)
    assert reply.opcode == CLOSE and reply.payload == b""


# ---------------------------------------------------------------- states and handshake


def test_7_1_2_client_initiated_close_states_and_tcp_order() -> None:
    pair = Pair()
    client, server = pair.client, pair.server
    assert client.state is State.OPEN and not client.close_expected()
    client.close(1001, "going")
    assert client.state is State.CLOSING
    assert client.close_expected()  # arm the timer: waiting for the reply and the EOF
    with pytest.raises(LocalProtocolError):
        client.send("late")
    assert pair.to_server() == [ConnectionClosed(1001, "going")]
    assert server.state is State.CLOSED
    data, eof = drain(server)
    (reply,) = parse_frames(data)
    assert reply.close_code == 1001
    assert eof  # §7.1.1: the server closes TCP first, right after its reply
    client.receive_data(data)
    assert list(client.events()) == [ConnectionClosed(1001, "")]
    assert client.state is State.CLOSED
    assert client.close_expected()
    assert drain(client) == (b"", False)  # the client waits for the server's EOF
    client.receive_eof()
    assert not client.close_expected()
    assert drain(client) == (b"", True)
    assert list(client.events()) == []


def test_7_1_2_server_initiated_close_states() -> None:
    pair = Pair()
    pair.server.close(4000, "done")
    assert pair.server.state is State.CLOSING
    assert pair.server.close_expected()
    assert pair.to_client() == [ConnectionClosed(4000, "done")]
    assert pair.client.state is State.CLOSED
    assert pair.client.close_expected()
    assert pair.to_server() == [ConnectionClosed(4000, "")]
    assert pair.server.state is State.CLOSED
    assert pair.server_eof is False
    pair.to_client()
    assert pair.server_eof  # the server shut down after the handshake completed
    assert not pair.client.close_expected()
    assert drain(pair.client) == (b"", True)


def test_7_1_3_simultaneous_close() -> None:
    pair = Pair()
    pair.client.close(1000)
    pair.server.close(1001)
    assert pair.to_server() == [ConnectionClosed(1000, "")]
    assert pair.to_client() == [ConnectionClosed(1001, "")]
    # Neither side replied: each had already sent its close.
    assert pair.server_eof
    assert drain(pair.client) == (b"", True)


def test_7_1_2_close_is_idempotent_and_code_none_sends_empty_payload() -> None:
    client = open_client()
    client.close(None)
    client.close(1000)
    (sent,) = written_frames(client)
    assert sent.opcode == CLOSE and sent.payload == b""


@pytest.mark.parametrize(("code", "reason"), [(1005, ""), (1006, ""), (999, ""), (5000, ""),
                                              (1000, "x" * 124), (None, "reason")])
def test_7_4_1_close_with_unsendable_code_is_a_local_error(code: int | None, reason: str) -> None:
    server = open_server()
    with pytest.raises(LocalProtocolError):
        server.close(code, reason)
    assert server.state is State.OPEN
    assert drain(server) == (b"", False)


def test_5_5_1_sending_after_close_is_a_local_error() -> None:
    server = open_server()
    server.close()
    for action in (lambda: server.send("x"), lambda: server.send(b"x"), lambda: server.ping(),
                   lambda: server.pong(), lambda: server.send_frame_bytes(b"\x81\x00")):
        with pytest.raises(LocalProtocolError):
            action()
    feed(server, cframe(CLOSE, close_payload(1000)))
    assert server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        server.send("x")
    server.close()  # still a no-op


def test_5_5_1_data_received_while_closing_is_delivered() -> None:
    """§7.1.2: after sending a close, keep reading until the peer's close arrives."""
    client = open_client()
    client.close()
    drain(client)
    evs = feed(client, sframe(TEXT, b"in flight") + sframe(PING, b"p") + sframe(CLOSE))
    assert evs == [Text("in flight"), Ping(b"p"), ConnectionClosed(1005, "")]
    assert written_frames(client) == []  # no pong and no second close after our close


def test_5_5_1_data_after_close_frame_is_discarded() -> None:
    server = open_server()
    evs = feed(server, cframe(CLOSE, close_payload(1000)) + cframe(TEXT, b"after"))
    assert evs == [ConnectionClosed(1000, "")]
    feed(server, cframe(BINARY, b"later"))
    assert server.next_event() is None
    assert server.buffered_bytes == 0
    (reply,) = written_frames(server)  # only the close reply
    assert reply.opcode == CLOSE


def test_7_1_5_eof_without_close_reports_1006() -> None:
    for conn, frame in ((open_server(), cframe(TEXT, b"last")),
                        (open_client(), sframe(TEXT, b"last"))):
        conn.receive_data(frame + frame[:3])  # a whole message, then a partial frame
        conn.receive_eof()
        evs = list(conn.events())
        assert evs == [Text("last"), ConnectionClosed(1006, "")]
        assert conn.state is State.CLOSED
        assert not conn.close_expected()
        assert drain(conn) == (b"", True)  # nothing sent, just shut down


def test_7_1_5_receive_data_after_eof_is_a_local_error() -> None:
    server = open_server()
    server.receive_eof()
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"x")


def test_7_1_4_server_eof_after_close_reply_while_client_has_pending_frames() -> None:
    pair = Pair()
    pair.server.send("one")
    pair.server.close()
    assert pair.to_client() == [Text("one"), ConnectionClosed(1000, "")]
    assert isinstance(pair.client_events[-1], ConnectionClosed)


# ---------------------------------------------------------------- failing (§7.1.7)


def test_7_1_7_server_failure_sends_close_then_eof() -> None:
    server = open_server()
    closed = closed_event(feed(server, cframe(7)))
    assert closed.code == 1002 and closed.error is not None and closed.error.code == 1002
    data, eof = drain(server)
    (close,) = parse_frames(data)
    assert close.close_code == 1002
    assert len(close.payload) <= 125
    assert eof
    assert server.state is State.CLOSED


def test_7_1_7_client_failure_drops_without_waiting() -> None:
    client = open_client()
    closed_event(feed(client, sframe(TEXT, b"\xff")))
    data, eof = drain(client)
    (close,) = parse_frames(data)
    assert close.masked and close.close_code == 1007
    assert eof  # a failing client does not wait for the server's EOF


def test_7_1_7_failure_reason_fits_in_a_close_frame() -> None:
    server = open_server()
    closed_event(feed(server, cframe(BINARY, b"x" * 2_000_000)[:20]))
    data, _ = drain(server)
    (close,) = parse_frames(data)
    assert close.close_code == 1009
    assert len(close.payload) <= 125
    close.payload[2:].decode("utf-8")


def test_7_1_7_failure_while_closing_does_not_send_a_second_close() -> None:
    server = open_server()
    server.close(1000)
    drain(server)
    closed = closed_event(feed(server, cframe(TEXT, b"\xff")))
    assert closed.code == 1007
    assert written_frames(server) == []


def test_7_1_7_events_before_the_violation_come_first() -> None:
    """Frames before a bad one are reported before the failure (strict ordering)."""
    server = open_server()
    evs = feed(server, cframe(TEXT, b"good") + cframe(BINARY, b"\x01") + cframe(3))
    assert evs[:2] == [Text("good"), Binary(b"\x01")]
    assert closed_event(evs).code == 1002
    assert server.next_event() is None


def test_7_1_7_nothing_more_after_connection_closed() -> None:
    server = open_server()
    feed(server, cframe(3))
    server.receive_data(cframe(TEXT, b"x"))
    server.receive_eof()
    assert list(server.events()) == []
    drain(server)
    assert server.data_to_send() == b""


def test_eof_sentinel_is_reported_once() -> None:
    server = open_server()
    server.close()
    feed(server, cframe(CLOSE))
    outs = [server.data_to_send() for _ in range(4)]
    assert outs.count(EOF) == 1


def test_5_5_1_after_receiving_a_close_nothing_more_is_sent() -> None:
    client = open_client()
    feed(client, sframe(CLOSE, close_payload(1001)))
    (reply,) = written_frames(client)
    assert reply.close_code == 1001 and reply.masked
    with pytest.raises(LocalProtocolError):
        client.send("x")
    with pytest.raises(LocalProtocolError):
        client.ping()
    client.close(1000)  # a no-op: the close was already sent
    assert written_frames(client) == []


def test_7_1_2_close_while_sending_a_message_in_parts() -> None:
    """A close is a control frame: it may interrupt a message sent in parts (§5.4)."""
    pair = Pair()
    pair.client.send("unfinished", final=False)
    pair.client.close(1000)
    assert pair.to_server() == [ConnectionClosed(1000, "")]
