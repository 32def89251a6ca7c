"""The adapters' shared driver (rfc6455/_driver.py), tested without sockets or timers.

The driver holds what both adapters decide alike: keepalive (with the clock
passed in), the handler's outcome, the server's answer, closing, the send-parts
loop, the client's handshake outcome and redirects. Here it drives real engines
joined by hand, and every instant is an argument: no test sleeps.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

import pytest

from rfc6455._core import State
from rfc6455._driver import (
    IDLE_TIMEOUT,
    KEEP,
    PING,
    PING_TIMEOUT,
    WANT_MESSAGE,
    WANT_NOTHING,
    ClientOptions,
    ConnectionClosedError,
    ConnectionClosedOK,
    Driver,
    Fragments,
    InvalidRedirect,
    InvalidStatus,
    ProxyAnswer,
    Redirects,
    ServerOptions,
    answer_request,
    client_tls,
    handler_close_code,
    handshake_failure,
    proxy_address,
    tick_interval,
)
from rfc6455.connection import ClientConnection, ServerConnection
from rfc6455.errors import CloseCode, RemoteProtocolError
from rfc6455.events import (
    Accepted,
    Binary,
    HTTPRequest,
    Ping,
    Rejected,
    Request,
    Text,
)
from rfc6455.events import ConnectionClosed as ClosedEvent
from rfc6455.frames import Opcode
from rfc6455.headers import Headers

from .helpers import client_key, client_request, drain, parse_frames, server_response

PING_EVERY = 10.0
PONG_WITHIN = 5.0


def _server(options: ServerOptions) -> ServerConnection:
    """A server engine as the adapters make it (options.new_engine), past its handshake."""
    engine = options.new_engine()
    engine.receive_data(client_request())
    event = engine.next_event()
    assert isinstance(event, Request), event
    engine.accept()
    out = engine.data_to_send()
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 101 ")
    return engine


def _client() -> ClientConnection:
    client = ClientConnection("ws://example.com/")
    client.data_to_send()
    client.receive_data(server_response(client_key(client)))
    assert isinstance(client.next_event(), Accepted)
    return client


def _driver(now: float = 0.0, **options: Any) -> Driver[str]:
    settings = ServerOptions(compression=None, **options)
    return Driver(_server(settings), settings, now)


def _sent(driver: Driver[Any]) -> list[Any]:
    """The frames the driver's engine wrote (and drained)."""
    data, _ = drain(driver.conn)
    return parse_frames(data)


def _from_client(driver: Driver[Any], client: ClientConnection) -> None:
    data, _ = drain(client)
    driver.conn.receive_data(data)


# ---------------------------------------------------------------- keepalive


def test_ping_is_due_every_interval_section_5_5_2() -> None:
    driver = _driver(now=100.0, ping_interval=PING_EVERY, ping_timeout=None)
    assert driver.next_deadline() == 100.0 + PING_EVERY
    log = logging.getLogger("test_driver")
    assert driver.keepalive_step(100.0 + PING_EVERY - 0.001, log) == KEEP
    assert _sent(driver) == []
    assert driver.keepalive_step(100.0 + PING_EVERY, log) == PING
    frames = _sent(driver)
    assert [f.opcode for f in frames] == [Opcode.PING] and len(frames[0].payload) == 4
    # The next one is an interval after the ping, not after the start.
    assert driver.next_deadline() == 100.0 + 2 * PING_EVERY
    assert driver.keepalive_step(100.0 + 2 * PING_EVERY - 0.001, log) == KEEP


def test_pong_answers_the_ping_and_gives_the_latency_section_5_5_3() -> None:
    client = _client()
    driver = _driver(ping_interval=PING_EVERY, ping_timeout=PONG_WITHIN)
    log = logging.getLogger("test_driver")
    assert driver.keepalive_step(PING_EVERY, log) == PING
    data, _ = drain(driver.conn)
    client.receive_data(data)
    assert isinstance(client.next_event(), Ping)  # the client's engine queues the pong
    _from_client(driver, client)
    driver.pull(WANT_NOTHING, PING_EVERY + 1.5)
    assert driver.latency == 1.5
    # Answered: no timeout past the ping's deadline, the next ping instead.
    assert driver.next_deadline() == 2 * PING_EVERY
    assert driver.keepalive_step(PING_EVERY + PONG_WITHIN, log) == KEEP
    assert driver.keepalive_step(2 * PING_EVERY, log) == PING


def test_unanswered_ping_closes_with_1011_section_7_4_1(
        caplog: pytest.LogCaptureFixture) -> None:
    driver = _driver(ping_interval=PING_EVERY, ping_timeout=PONG_WITHIN)
    log = logging.getLogger("test_driver")
    assert driver.keepalive_step(PING_EVERY, log) == PING
    _sent(driver)
    assert driver.next_deadline() == PING_EVERY + PONG_WITHIN
    assert driver.keepalive_step(PING_EVERY + PONG_WITHIN - 0.001, log) == KEEP
    with caplog.at_level(logging.INFO, logger="test_driver"):
        assert driver.keepalive_step(PING_EVERY + PONG_WITHIN, log) == PING_TIMEOUT
    assert "keepalive ping timeout: closing with 1011" in caplog.text
    # The close is started in the engine: written next, and nothing more is queued.
    assert driver.conn.state is State.CLOSING
    (close,) = _sent(driver)
    assert close.opcode == Opcode.CLOSE and close.close_code == CloseCode.INTERNAL_ERROR
    assert close.payload[2:] == b"keepalive ping timeout"
    assert driver.discard and driver.sent_code == CloseCode.INTERNAL_ERROR
    # Once closing, keepalive has nothing more to do.
    assert driver.keepalive_step(PING_EVERY + 100 * PONG_WITHIN, log) == KEEP


def test_idle_connection_closes_with_1001(caplog: pytest.LogCaptureFixture) -> None:
    client = _client()
    driver = _driver(ping_interval=None, ping_timeout=None, idle_timeout=30.0)
    log = logging.getLogger("test_driver")
    assert driver.next_deadline() == 30.0
    # Anything received restarts the idle clock.
    client.send("still here")
    _from_client(driver, client)
    assert driver.pull(WANT_MESSAGE, 20.0)
    assert driver.take_message() == "still here"
    assert driver.next_deadline() == 50.0
    assert driver.keepalive_step(49.999, log) == KEEP
    with caplog.at_level(logging.INFO, logger="test_driver"):
        assert driver.keepalive_step(50.0, log) == IDLE_TIMEOUT
    assert "idle timeout: closing with 1001" in caplog.text
    (close,) = _sent(driver)
    assert close.close_code == CloseCode.GOING_AWAY and close.payload[2:] == b"idle timeout"


def test_timeouts_come_before_a_ping_ping_timeout_first() -> None:
    log = logging.getLogger("test_driver")
    driver = _driver(ping_interval=1.0, ping_timeout=1.0, idle_timeout=1.5)
    assert driver.keepalive_step(1.0, log) == PING
    # Both timeouts are due at 2.0 (nothing was received since 0): the peer's silence
    # to a ping is the one reported.
    assert driver.keepalive_step(2.0, log) == PING_TIMEOUT
    idle = _driver(ping_interval=1.0, ping_timeout=1.0, idle_timeout=1.0)
    assert idle.keepalive_step(1.0, log) == IDLE_TIMEOUT  # no ping to an idle peer


def test_no_keepalive_without_periods() -> None:
    driver = _driver(ping_interval=None, ping_timeout=None, idle_timeout=None)
    assert driver.next_deadline() is None
    assert driver.keepalive_step(1e9, logging.getLogger("test_driver")) == KEEP
    assert _sent(driver) == []


@pytest.mark.parametrize(("periods", "interval"), [
    ((20.0, 20.0, None), 5.0),  # the defaults: a quarter of the shortest period
    ((20.0, None, 2.0), 0.5),
    ((None, None, None), None),  # nothing to run
    ((0.001, None, None), 0.01),  # at most 100 ticks a second
])
def test_tick_interval(periods: tuple[float | None, float | None, float | None],
                       interval: float | None) -> None:
    ping_interval, ping_timeout, idle_timeout = periods
    options = ServerOptions(ping_interval=ping_interval, ping_timeout=ping_timeout,
                            idle_timeout=idle_timeout)
    assert tick_interval(options) == interval


# ---------------------------------------------------------------- closing


def test_begin_close_starts_the_handshake_and_drops_what_is_queued() -> None:
    client = _client()
    driver = _driver(ping_interval=None)
    client.send("unread")
    _from_client(driver, client)
    driver.pull(WANT_NOTHING, 1.0)
    assert driver.has_message
    driver.begin_close(CloseCode.NORMAL_CLOSURE, "bye")
    assert not driver.has_message and driver.discard
    (close,) = _sent(driver)
    assert close.close_code == CloseCode.NORMAL_CLOSURE and close.payload[2:] == b"bye"
    # A second close (the server shutting down, say) sends nothing more.
    driver.begin_close(CloseCode.GOING_AWAY, "")
    assert _sent(driver) == [] and driver.sent_code == CloseCode.NORMAL_CLOSURE


# ---------------------------------------------------------------- handler outcome


def test_handler_that_returns_closes_with_1000(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="test_driver"):
        assert handler_close_code(None, logging.getLogger("test_driver")) == 1000
    assert not caplog.records


def test_handler_that_fails_closes_with_1011_and_logs_it(
        caplog: pytest.LogCaptureFixture) -> None:
    error = ValueError("handler bug")
    with caplog.at_level(logging.DEBUG, logger="test_driver"):
        assert handler_close_code(error, logging.getLogger("test_driver")) == 1011
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[1] is error
    caplog.clear()  # the suite fails a test that leaves an ERROR logged


@pytest.mark.parametrize("error", [ConnectionClosedOK(1000), ConnectionClosedError(1006)])
def test_peer_gone_during_the_handler_is_no_server_fault(
        error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="test_driver"):
        assert handler_close_code(error, logging.getLogger("test_driver")) is None
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG and record.exc_info is None


# ---------------------------------------------------------------- the server's answer


def _request(server: ServerConnection, request: bytes) -> Request | HTTPRequest:
    server.receive_data(request)
    event = server.next_event()
    assert isinstance(event, (Request, HTTPRequest)), event
    return event


def test_upgrade_without_response_is_accepted_section_4_2_2() -> None:
    options = ServerOptions(extra_headers=[("X-Served-By", "test")])
    engine = options.new_engine()
    assert answer_request(engine, _request(engine, client_request()), None, options)
    out = engine.data_to_send()
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 101 ")
    assert b"\r\nx-served-by: test\r\n" in out.lower()


def test_response_is_sent_instead_of_upgrading() -> None:
    options = ServerOptions()
    engine = options.new_engine()
    event = _request(engine, client_request())
    assert not answer_request(engine, event, (403, [("X-Why", "no")], b"go away"), options)
    out = engine.data_to_send()
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 403 ")
    assert b"\r\nx-why: no\r\n" in out.lower() and out.endswith(b"go away")


def test_plain_http_without_response_gets_426() -> None:
    options = ServerOptions()
    engine = options.new_engine()
    event = _request(engine, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert isinstance(event, HTTPRequest)
    assert not answer_request(engine, event, None, options)
    out = engine.data_to_send()
    assert isinstance(out, bytes) and out.startswith(b"HTTP/1.1 426 ")


# ---------------------------------------------------------------- the send-parts loop


def _send_in_parts(client: ClientConnection, parts: list[Any]) -> None:
    fragments = Fragments()
    for part in parts:
        client.send(fragments.add(part), final=False)
    if fragments.end is not None:
        client.send(fragments.end, final=True)


@pytest.mark.parametrize(("parts", "message"), [
    (["a", "bé", "c"], "abéc"),
    ([b"\x00", b"", b"\xff"], b"\x00\xff"),
])
def test_parts_make_one_fragmented_message_section_5_4(parts: list[Any],
                                                       message: Any) -> None:
    client = _client()
    driver = _driver(ping_interval=None)
    _send_in_parts(client, parts)
    data, _ = drain(client)
    frames = parse_frames(data)
    # A frame per part, then an empty final one: §5.4's fragmentation.
    first = Opcode.TEXT if isinstance(message, str) else Opcode.BINARY
    assert [f.opcode for f in frames] == [first] + [Opcode.CONTINUATION] * len(parts)
    assert [f.fin for f in frames] == [False] * len(parts) + [True]
    assert frames[-1].payload == b""
    driver.conn.receive_data(data)
    assert driver.pull(WANT_MESSAGE, 1.0)
    assert driver.take_message() == message


def test_no_parts_send_nothing() -> None:
    client = _client()
    _send_in_parts(client, [])
    assert drain(client) == (b"", False)
    assert Fragments().end is None


def test_fragments_end_with_the_type_of_the_parts() -> None:
    text, binary = Fragments(), Fragments()
    assert text.add("x") == "x" and text.end == ""
    assert binary.add(b"x") == b"x" and binary.end == b""


# ---------------------------------------------------------------- the client's handshake


def test_handshake_outcome_section_4_1() -> None:
    assert handshake_failure(Accepted(headers=Headers())) is None
    headers = Headers([("Location", "ws://elsewhere/")])
    rejected = handshake_failure(Rejected(status=302, headers=headers, body=b""))
    assert isinstance(rejected, InvalidStatus) and rejected.status == 302
    assert rejected.headers is headers
    error = RemoteProtocolError("bad Sec-WebSocket-Accept")
    assert handshake_failure(ClosedEvent(code=1006, reason="", error=error)) is error
    left = handshake_failure(ClosedEvent(code=1006, reason=""))
    assert type(left) is ConnectionError


def test_tls_context_follows_the_scheme() -> None:
    mine = ssl.create_default_context()
    assert client_tls(True, mine) is mine
    default = client_tls(True, None)
    assert isinstance(default, ssl.SSLContext) and default.check_hostname
    assert client_tls(False, mine) is None


def test_proxy_address() -> None:
    assert proxy_address("http://proxy.example:3128") == ("proxy.example", 3128)
    assert proxy_address("http://proxy.example") == ("proxy.example", 80)
    for proxy in ("https://proxy.example", "socks5://proxy.example:1080", "http://"):
        with pytest.raises(ValueError, match="unsupported proxy"):
            proxy_address(proxy)


def _proxy_answers(head: bytes) -> int:
    """How many bytes ProxyAnswer read of ``head`` before it said the tunnel is open."""
    answer = ProxyAnswer()
    for count in range(1, len(head) + 1):
        if answer.feed(head[count - 1:count]):
            return count
    raise AssertionError("the answer was not complete")


def test_proxy_answer_is_read_up_to_its_end_and_no_further() -> None:
    head = b"HTTP/1.1 200 Connection established\r\nVia: p\r\n\r\n"
    assert _proxy_answers(head + b"\x81\x02hi") == len(head)


@pytest.mark.parametrize(("chunks", "message"), [
    ([b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"], "HTTP 407"),
    ([b"SSH-2.0-OpenSSH\r\n\r\n"], "invalid proxy response"),
    ([b"HTTP/1.1 200 OK\r\n", b""], "closed the connection"),
    ([b"X" * (ProxyAnswer.MAX_HEAD + 2)], "sent too much"),
])
def test_proxy_answer_refusals_are_oserrors(chunks: list[bytes], message: str) -> None:
    answer = ProxyAnswer()
    with pytest.raises(OSError, match=message):
        for chunk in chunks:
            for index in range(max(1, len(chunk))):
                answer.feed(chunk[index:index + 1])


# ---------------------------------------------------------------- redirects


def _status(status: int, *locations: str) -> InvalidStatus:
    return InvalidStatus(status, Headers([("Location", where) for where in locations]), b"")


def test_redirect_moves_the_next_attempt() -> None:
    options = ClientOptions(extra_headers=(("Cookie", "a=1"), ("X-Trace", "7")),
                            max_redirects=2)
    hops = Redirects("wss://a.example/one", options)
    assert hops.follow(_status(307, "/two?x=1"))
    assert hops.uri == "wss://a.example/two?x=1"
    same_origin: tuple[tuple[str, str], ...] = hops.extra_headers
    assert same_origin == (("Cookie", "a=1"), ("X-Trace", "7"))
    assert hops.follow(_status(301, "https://b.example/three#frag"))
    assert hops.uri == "wss://b.example/three"
    assert hops.extra_headers == (("X-Trace", "7"),), "credentials to another origin"
    # max_redirects followed: the next answer is raised as it is.
    assert not hops.follow(_status(302, "wss://c.example/"))
    assert hops.uri == "wss://b.example/three"


@pytest.mark.parametrize("error", [
    _status(403, "ws://elsewhere/"),  # not a redirect
    _status(302),  # no Location
    _status(302, ""),
])
def test_only_a_redirect_with_a_location_is_followed(error: InvalidStatus) -> None:
    hops = Redirects("ws://a.example/", ClientOptions())
    assert not hops.follow(error)
    assert hops.uri == "ws://a.example/"


@pytest.mark.parametrize(("error", "reason"), [
    (_status(302, "ws://a.example/", "ws://b.example/"), "several Location headers"),
    (_status(302, "ws://a.example/"), "it leaves TLS"),
    (_status(302, "ftp://a.example/"), "unsupported scheme"),
])
def test_refused_redirects_are_the_servers_fault(error: InvalidStatus, reason: str) -> None:
    hops = Redirects("wss://a.example/", ClientOptions())
    with pytest.raises(InvalidRedirect, match=reason) as refused:
        hops.follow(error)
    assert refused.value.status == 302


# ---------------------------------------------------------------- pull policy


def test_a_message_handed_to_a_reader_holds_parsing() -> None:
    client = _client()
    driver = _driver(ping_interval=None)
    client.send("first")
    client.send(b"second")
    _from_client(driver, client)
    assert driver.pull(WANT_MESSAGE, 1.0) and driver.hold
    # Held: a pull with no reader parses nothing until the reader is back.
    assert not driver.pull(WANT_NOTHING, 1.0)
    assert driver.take_message() == "first" and not driver.has_message
    assert driver.pull(WANT_MESSAGE, 1.0)
    assert driver.take_message() == b"second"


def test_queue_fills_up_to_max_queue() -> None:
    client = _client()
    driver = _driver(ping_interval=None, max_queue=2)
    for index in range(3):
        client.send(f"m{index}")
    _from_client(driver, client)
    driver.pull(WANT_NOTHING, 1.0)
    assert driver.complete == 2 and driver.queue_full
    assert driver.take_message() == "m0"
    driver.pull(WANT_NOTHING, 1.0)
    assert [driver.take_message(), driver.take_message()] == ["m1", "m2"]


def test_text_and_binary_events_keep_their_types() -> None:
    # (put_back restores a message handed to a cancelled reader with its type.)
    driver = _driver(ping_interval=None)
    driver.put_back("text")
    driver.put_back(b"binary")
    assert driver.take_piece() == Binary(b"binary")
    assert driver.take_piece() == Text("text")
