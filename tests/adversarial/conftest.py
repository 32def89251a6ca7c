"""Fixtures of the attack suite: TLS files, and servers that are always stopped."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .harness import (
    ServerProcess,
    TLSFiles,
    make_tls_files,
    raise_fd_limit,
    start_cli,
    start_server,
)

BACKENDS = ("asyncio", "listener", "sync")


@pytest.fixture(scope="session", autouse=True)
def _fd_limit() -> None:
    raise_fd_limit()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["tcp", "tls"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def launch(tls_files: TLSFiles) -> Iterator[Callable[..., ServerProcess]]:
    """``launch(backend, tls=bool, **kw)``: a server child, killed at teardown if still up."""
    started: list[ServerProcess] = []

    def start(backend: str, *, tls: bool = False, cli: bool = False, **kwargs: Any
              ) -> ServerProcess:
        files = tls_files if tls else None
        server = start_cli(backend, tls=files) if cli else \
            start_server(backend, tls=files, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()
        server.stderr_path.unlink(missing_ok=True)
