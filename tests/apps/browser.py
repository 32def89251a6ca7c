"""A tiny headless-Chromium driver over the Chrome DevTools protocol (CDP).

Chromium is started with ``--remote-debugging-port=0``; the port it picked is
read from the "DevTools listening on ws://..." line it writes to stderr, and
the protocol is spoken with the ``websockets`` library (an implementation
independent of ours, so the driver cannot share a bug with the code it tests).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

CHROMIUM = "/usr/bin/chromium"
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


def require_chromium() -> None:
    """Skip outside CI when Chromium is absent; in CI (``CI`` set) that is a failure."""
    if os.access(CHROMIUM, os.X_OK):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing; .ci/run installs the Debian 'chromium' package")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); required in CI")


class Browser:
    """One headless Chromium with a fresh profile; use as a context manager."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="rfc6455-chromium-")
        self._stderr_path = Path(self._profile + ".stderr")
        self._stderr = self._stderr_path.open("wb")
        self._process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
             f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        self._ids = itertools.count(1)
        try:
            self._ws = connect(self._devtools_url(), max_size=None, open_timeout=timeout)
            self._ws.__enter__()
        except BaseException:
            self.close()
            raise

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            match = _LISTENING.search(self._stderr_path.read_text("utf-8", "replace"))
            if match:
                return match.group(1)
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("Chromium did not start its DevTools endpoint:\n"
                           + self._stderr_path.read_text("utf-8", "replace")[-3000:])

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send one CDP command and wait for its result (events in between are ignored)."""
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while True:
            reply = json.loads(self._ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result

    def open(self, url: str) -> str:
        """Open ``url`` in a new tab and wait for it to load; returns the CDP session."""
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        session = str(self.call("Target.attachToTarget",
                                {"targetId": target, "flatten": True})["sessionId"])
        self.wait_for(session, f"location.href === {json.dumps(url)} && "
                               "document.readyState === 'complete'")
        return session

    def evaluate(self, session: str, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.call("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True,
        }, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, timeout: float = 15.0) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(session, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression!r} (last: {value!r})")
            time.sleep(0.05)

    def close(self) -> None:
        ws = getattr(self, "_ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):  # the browser may be gone already
                ws.send(json.dumps({"id": next(self._ids), "method": "Browser.close"}))
            ws.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)
        self._stderr_path.unlink(missing_ok=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
