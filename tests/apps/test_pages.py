"""The demo pages in headless Chromium: a real browser's WebSocket against our servers."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .browser import Browser, require_chromium
from .servers import BACKENDS, Server

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with Browser() as b:
        yield b


def _items(selector: str) -> str:
    """JavaScript: the texts of the elements matching ``selector``, as JSON."""
    return (f"JSON.stringify(Array.from(document.querySelectorAll({json.dumps(selector)}), "
            "(e) => e.textContent))")


@pytest.mark.parametrize("backend", BACKENDS)
def test_echo_page_round_trip_in_chromium_rfc6455_s4_1(browser: Browser, backend: str) -> None:
    """The page served on GET / opens a WebSocket to its own origin (§4.1, §10.2), sends
    text and binary messages and shows the echoes; the browser negotiates compression."""
    with Server("echo", backend) as server:
        tab = browser.open(server.http_url)
        assert browser.wait_for(tab, "document.getElementById('status').textContent "
                                     "=== 'open'")
        browser.evaluate(tab, "document.getElementById('message').value = 'héllo wörld'; "
                              "document.getElementById('send-text').click()")
        browser.wait_for(tab, "document.querySelectorAll('#log li.received').length >= 1")
        browser.evaluate(tab, "document.getElementById('message').value = 'AB'; "
                              "document.getElementById('send-binary').click()")
        browser.wait_for(tab, "document.querySelectorAll('#log li.received').length >= 2")
        assert json.loads(browser.evaluate(tab, _items("#log li.sent"))) == \
            ["héllo wörld", "[binary] 41 42"]
        assert json.loads(browser.evaluate(tab, _items("#log li.received"))) == \
            ["héllo wörld", "[binary] 41 42"]
        browser.evaluate(tab, "document.getElementById('close').click()")
        assert browser.wait_for(tab, "document.getElementById('status').textContent "
                                     "=== 'closed 1000'")


@pytest.mark.parametrize("backend", BACKENDS)
def test_chat_page_delivers_to_every_tab(browser: Browser, backend: str) -> None:
    """Two tabs on the broadcast server's chat room both see what one of them sends."""
    with Server("broadcast", backend) as server:
        tabs = [browser.open(server.http_url) for _ in range(2)]
        for tab in tabs:
            assert browser.wait_for(tab, "document.getElementById('status').textContent "
                                         "=== 'open'")
        browser.evaluate(tabs[0], "document.getElementById('name').value = 'ann'; "
                                  "document.getElementById('message').value = 'hi all'; "
                                  "document.getElementById('send').click()")
        for tab in tabs:
            browser.wait_for(tab, "document.querySelectorAll('#messages li').length >= 1")
        assert json.loads(browser.evaluate(tabs[0], _items("#messages li.mine"))) == \
            ["ann: hi all"]
        assert json.loads(browser.evaluate(tabs[1], _items("#messages li.other"))) == \
            ["ann: hi all"]
        assert browser.evaluate(tabs[0], "document.getElementById('count').textContent") == "1"
