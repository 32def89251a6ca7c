"""``_MessageWait``, what a waiting reader awaits: a future driven like a generator,
with the message handed over put back if the reader is gone before it takes it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rfc6455.asyncio.connection import _MessageWait


class StubDriver:
    def __init__(self) -> None:
        self.put_back_messages: list[Any] = []

    def put_back(self, message: Any) -> None:
        self.put_back_messages.append(message)


def _wait() -> tuple[_MessageWait, asyncio.Future[Any], StubDriver]:
    loop = asyncio.new_event_loop()
    future: asyncio.Future[Any] = loop.create_future()
    driver = StubDriver()
    wait = _MessageWait(driver, future)  # type: ignore[arg-type]
    loop.close()
    return wait, future, driver


def test_yields_the_future_then_returns_its_result() -> None:
    wait, future, driver = _wait()
    assert wait.__await__() is wait
    assert next(wait) is future and future._asyncio_future_blocking
    future.set_result("message")
    with pytest.raises(StopIteration) as info:
        wait.send(None)
    assert info.value.value == "message" and driver.put_back_messages == []


def test_an_exception_result_is_raised() -> None:
    wait, future, _ = _wait()
    future.set_exception(StopAsyncIteration())
    with pytest.raises(StopAsyncIteration):
        next(wait)


@pytest.mark.parametrize("form", ["instance", "type and value", "close"])
def test_a_message_handed_over_goes_back_when_the_reader_is_gone(form: str) -> None:
    wait, future, driver = _wait()
    next(wait)
    future.set_result(b"kept")
    if form == "close":
        wait.close()
    else:
        with pytest.raises(asyncio.CancelledError):
            if form == "instance":
                wait.throw(asyncio.CancelledError())
            else:
                wait.throw(asyncio.CancelledError, None, None)
    assert driver.put_back_messages == [b"kept"]


def test_a_reader_gone_before_its_message_cancels_the_future() -> None:
    wait, future, driver = _wait()
    next(wait)
    with pytest.raises(ValueError, match="boom"):
        wait.throw(ValueError, "boom")
    assert future.cancelled() and driver.put_back_messages == []
    wait2, future2, driver2 = _wait()
    future2.set_exception(RuntimeError("closed"))
    wait2.close()  # an exception result is not a message: nothing to put back
    assert driver2.put_back_messages == []
    future2.exception()


def test_the_compiled_base_is_used_when_accelerated() -> None:
    """The wait itself is C when the accelerator is in use (the whole suite runs
    again without it, testing the Python one), and as small either way."""
    import sys

    from rfc6455._mask import ACCELERATED
    from rfc6455.asyncio.connection import _PythonFutureWait

    base = _MessageWait.__mro__[1]
    assert (base is not _PythonFutureWait) is ACCELERATED
    assert base.__name__ in ("FutureWait", "_PythonFutureWait")
    wait, _, _ = _wait()
    assert not hasattr(wait, "__dict__")
    assert sys.getsizeof(wait) <= 48  # idle memory: what an idle ``async for`` holds
