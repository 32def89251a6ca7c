"""RFC 7692 §7.2.3.4: a message compressed with a final (BFINAL) DEFLATE block.

The RFC's own example, ``f3 48 cd c9 c9 07 00 00``, is "Hello" in a final block of
fixed Huffman codes (7 octets) followed by one octet starting an empty stored block;
with the ``00 00 ff ff`` the receiver appends (§7.2.2) that block is complete. It
inflates to "Hello", again and again on one connection with context takeover (a
final block ends the LZ77 context: each such message starts afresh). Anything
after the final block other than empty stored blocks fails the connection with
1007, as soon as it arrives.

Every check runs in this interpreter and again in a fresh one with the C
accelerator on and off (``RFC6455_NO_EXTENSIONS``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from rfc6455 import Binary, ConnectionClosed, Event, Request, ServerConnection, Text
from rfc6455.errors import CloseCode
from rfc6455.extensions import ServerPerMessageDeflate

from .helpers import BINARY, CONT, PING, TEXT, cframe, client_request, drain, feed, parse_frames

RFC_EXAMPLE = bytes.fromhex("f348cdc9c9070000")
FINAL_BLOCK = RFC_EXAMPLE[:7]  # BFINAL=1, BTYPE=01, "Hello"
RSV1 = 0x40


def deflate_server(**factory: object) -> ServerConnection:
    """A server that negotiated permessage-deflate with a scripted client."""
    server = ServerConnection(extensions=[ServerPerMessageDeflate(**factory)])  # type: ignore[arg-type]
    server.receive_data(client_request(extra=[("Sec-WebSocket-Extensions",
                                               "permessage-deflate")]))
    assert isinstance(server.next_event(), Request)
    server.accept()
    assert b"permessage-deflate" in drain(server)[0]
    return server


def close_code(events: list[Event], server: ServerConnection) -> int | None:
    closed = [e for e in events if isinstance(e, ConnectionClosed)]
    assert closed, events
    sent = parse_frames(drain(server)[0])
    assert sent and sent[-1].close_code == closed[0].code
    return closed[0].code


def test_rfc_example_inflates_to_hello() -> None:
    server = deflate_server()
    assert feed(server, cframe(TEXT, RFC_EXAMPLE, rsv=RSV1)) == [Text("Hello")]


@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_rfc_example_twice_with_context_takeover(chunk: int | None) -> None:
    server = deflate_server()  # no *_no_context_takeover: the window would be kept
    wire = cframe(TEXT, RFC_EXAMPLE, rsv=RSV1) * 2
    assert feed(server, wire, chunk) == [Text("Hello"), Text("Hello")]
    # An ordinary message (sync-flushed, §7.2.1) still inflates after them.
    deflater = zlib.compressobj(6, zlib.DEFLATED, -12)
    body = deflater.compress(b"Hello, again") + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert feed(server, cframe(BINARY, body[:-4], rsv=RSV1)) == [Binary(b"Hello, again")]
    # Then the example once more.
    assert feed(server, cframe(TEXT, RFC_EXAMPLE, rsv=RSV1)) == [Text("Hello")]


@pytest.mark.parametrize("cut", range(1, len(RFC_EXAMPLE)))
def test_rfc_example_split_over_frames(cut: int) -> None:
    """Cut anywhere, with a ping between: the octet after the final block may arrive
    in a non-final frame, or alone in the last one."""
    server = deflate_server()
    wire = (cframe(TEXT, RFC_EXAMPLE[:cut], fin=False, rsv=RSV1) + cframe(PING, b"p")
            + cframe(CONT, RFC_EXAMPLE[cut:]))
    got = [e for e in feed(server, wire) if not isinstance(e, ConnectionClosed)]
    assert [e for e in got if isinstance(e, Text)] == [Text("Hello")], got


def test_rfc_example_whole_then_an_empty_last_frame() -> None:
    server = deflate_server()
    wire = cframe(TEXT, RFC_EXAMPLE, fin=False, rsv=RSV1) + cframe(CONT, b"")
    assert feed(server, wire) == [Text("Hello")]


def test_rfc_example_in_streaming_mode() -> None:
    server = deflate_server()
    server.streaming = True
    wire = cframe(TEXT, RFC_EXAMPLE, fin=False, rsv=RSV1) + cframe(CONT, b"\x00\x00\xff\xff")
    got = feed(server, wire, chunk=3)
    assert "".join(e.data for e in got if isinstance(e, Text)) == "Hello"
    assert [e.final for e in got if isinstance(e, Text)][-1] is True


def test_final_block_without_the_extra_octet_still_inflates() -> None:
    """A sender that ended the message with the final block alone (our tail is then
    appended after the end of the DEFLATE data, and ignored)."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflater.compress(b"Hello") + deflater.flush(zlib.Z_FINISH)
    server = deflate_server()
    assert feed(server, cframe(TEXT, body, rsv=RSV1) * 2) == [Text("Hello"), Text("Hello")]


@pytest.mark.parametrize("after", [
    b"\xff", b"\x00\x00\xff", b"garbage", b"\x01", b"\x00\x01\x00\xfe\xff",
    FINAL_BLOCK,  # a second stream with data: not an empty stored block
    b"\x00\x00\x00\xff\xff\x02",
])
def test_garbage_after_the_final_block_fails_1007(after: bytes) -> None:
    server = deflate_server()
    events = feed(server, cframe(TEXT, FINAL_BLOCK + after, rsv=RSV1))
    assert not any(isinstance(e, Text) for e in events)
    assert close_code(events, server) == CloseCode.INVALID_FRAME_PAYLOAD_DATA


def test_garbage_after_the_final_block_fails_before_the_message_ends() -> None:
    """In a non-final frame already: nothing after the final block is held for later."""
    server = deflate_server()
    events = feed(server, cframe(TEXT, FINAL_BLOCK + b"\x00\x00\x00\xff\xff" + b"\xff",
                                 fin=False, rsv=RSV1))
    assert close_code(events, server) == CloseCode.INVALID_FRAME_PAYLOAD_DATA


def test_empty_stored_blocks_after_the_final_block_are_accepted() -> None:
    server = deflate_server()
    padding = b"\x00\x00\x00\xff\xff" * 3
    wire = (cframe(TEXT, FINAL_BLOCK + padding, fin=False, rsv=RSV1)
            + cframe(CONT, padding, fin=False) + cframe(CONT, b"\x00"))
    assert feed(server, wire, chunk=2) == [Text("Hello")]


def test_a_final_block_ends_the_lz77_context() -> None:
    """The documented choice: after a final block the next message inflates with an
    empty window, so one referring to the previous message fails with 1007."""
    server = deflate_server()
    assert feed(server, cframe(TEXT, RFC_EXAMPLE, rsv=RSV1)) == [Text("Hello")]
    refers_back = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=b"Hello")
    body = refers_back.compress(b"Hello") + refers_back.flush(zlib.Z_SYNC_FLUSH)
    events = feed(server, cframe(TEXT, body[:-4], rsv=RSV1))
    assert close_code(events, server) == CloseCode.INVALID_FRAME_PAYLOAD_DATA


# ---------------------------------------------------------- with and without the accelerator

_CHECK = """
import sys
from rfc6455._mask import ACCELERATED
import tests.test_deflate_rfc_example as t
assert ACCELERATED is (sys.argv[1] == "on"), ACCELERATED
t.test_rfc_example_twice_with_context_takeover(None)
t.test_rfc_example_twice_with_context_takeover(3)
t.test_rfc_example_whole_then_an_empty_last_frame()
t.test_garbage_after_the_final_block_fails_1007(b"garbage")
print("ok")
"""


@pytest.mark.parametrize("accelerator", ["on", "off"])
def test_rfc_example_with_the_accelerator_on_and_off(accelerator: str) -> None:
    if accelerator == "on" and importlib.util.find_spec("rfc6455._speedups") is None:
        pytest.skip("C accelerator not built")
    env = {k: v for k, v in os.environ.items() if k != "RFC6455_NO_EXTENSIONS"}
    if accelerator == "off":
        env["RFC6455_NO_EXTENSIONS"] = "1"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", _CHECK, accelerator], env=env, cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
