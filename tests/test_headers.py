"""HTTP header helpers and the WebSocket header grammars (RFC 7230 §3.2, RFC 6455 §9.1)."""

from __future__ import annotations

import pytest

from rfc6455.headers import (
    Headers,
    build_extensions_header,
    parse_extensions_header,
    parse_token_list,
)


def test_headers_are_case_insensitive_and_ordered() -> None:
    headers = Headers([("Host", "h"), (b"X-A", b"1"), ("x-a", "2")])  # type: ignore[arg-type]
    assert headers.get("HOST") == "h"
    assert headers.get_all("X-a") == ["1", "2"]
    assert headers.get("x-a") == "1, 2"  # RFC 7230 §3.2.2: repeated fields join with commas
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert "X-A" in headers and "nope" not in headers and 3 not in headers
    assert list(headers) == [("host", "h"), ("x-a", "1"), ("x-a", "2")]
    assert len(headers) == 3
    assert headers == Headers([("host", "h"), ("X-A", "1"), ("X-A", "2")])
    assert hash(headers) == hash(Headers(list(headers)))
    assert headers.raw()[0] == (b"host", b"h")


def test_headers_keep_latin1_bytes() -> None:
    headers = Headers([(b"x", b"\xe9t\xe9")])
    assert headers.get("x") == "été"
    assert headers.raw() == [(b"x", b"\xe9t\xe9")]


@pytest.mark.parametrize(("value", "tokens"), [
    ("Upgrade", ["Upgrade"]),
    ("keep-alive, Upgrade", ["keep-alive", "Upgrade"]),
    ("a,,b, ", ["a", "b"]),  # RFC 7230 §7: empty list elements are skipped
    ("\ta\t,b", ["a", "b"]),
    ("", []),
])
def test_4_2_1_token_lists(value: str, tokens: list[str]) -> None:
    assert parse_token_list(value) == tokens


@pytest.mark.parametrize("value", ["a b", "a;b", "a/b", '"a"', "a,b c"])
def test_4_2_1_token_list_rejects_non_tokens(value: str) -> None:
    with pytest.raises(ValueError):
        parse_token_list(value)


@pytest.mark.parametrize(("value", "parsed"), [
    ("permessage-deflate", [("permessage-deflate", ())]),
    ("permessage-deflate; client_max_window_bits",
     [("permessage-deflate", (("client_max_window_bits", None),))]),
    ("permessage-deflate;server_max_window_bits=10; client_no_context_takeover, x-y",
     [("permessage-deflate", (("server_max_window_bits", "10"),
                              ("client_no_context_takeover", None))), ("x-y", ())]),
    ('a; b="12"', [("a", (("b", "12"),))]),  # §9.1: a quoted value is a token once unquoted
    ("a ,, b", [("a", ()), ("b", ())]),
    ("a, a; p", [("a", ()), ("a", (("p", None),))]),
    ("", []),
])
def test_9_1_extension_header_grammar(value: str, parsed: object) -> None:
    assert parse_extensions_header(value) == parsed


@pytest.mark.parametrize("value", ["a;", "a; b=", "a b", 'a; b="c d"', "a; =1", ";a", "a; b=c=d",
                                   'a; b="unterminated'])
def test_9_1_extension_header_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_extensions_header(value)


def test_9_1_extension_header_round_trip() -> None:
    extensions = [("permessage-deflate", (("client_max_window_bits", None),
                                          ("server_max_window_bits", "12"))),
                  ("x-other", ())]
    value = build_extensions_header(extensions)
    assert value == ("permessage-deflate; client_max_window_bits; server_max_window_bits=12, "
                     "x-other")
    assert parse_extensions_header(value) == extensions
