"""Out of file descriptors: the server waits instead of spinning, says so once, recovers.

With every descriptor the process may have in use, ``accept()`` fails with
EMFILE while connections wait in the listen backlog, so the listening socket
stays readable: a loop that retries at once burns a core for as long as the
attack lasts. The server must back off, log the condition once (not once per
retry) and serve again as soon as descriptors are free.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable

import pytest

from .harness import ServerProcess, report, upgrade_request, warm_up

pytestmark = pytest.mark.adversarial

Launch = Callable[..., ServerProcess]

NOFILE = 64
ATTACKERS = 120  # more than the server's descriptors, fewer than its backlog
FD_LOG = re.compile(r"Too many open files|EMFILE|Errno 24|out of system resource|"
                    r"file descriptors", re.I)


def test_accept_at_the_fd_limit_backs_off(launch: Launch, backend: str) -> None:
    server = launch(backend, nofile=NOFILE, options={"close_timeout": 2})
    warm_up(server)
    attackers: list[socket.socket] = []
    try:
        for _ in range(ATTACKERS):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(upgrade_request(server.port))
            attackers.append(sock)
        time.sleep(1.0)  # the server takes what it can, and hits the limit
        fds = server.fds()
        cpu_before = server.cpu()
        time.sleep(3.0)
        cpu = server.cpu() - cpu_before
        answered = 0
        for sock in attackers:
            sock.settimeout(0.01)
            with contextlib.suppress(OSError):
                if sock.recv(16).startswith(b"HTTP/1.1 101"):
                    answered += 1
        log_lines = [line for line in server.log().splitlines() if FD_LOG.search(line)]
        report(f"{server.label} at RLIMIT_NOFILE={NOFILE}", server_fds=fds,
               answered=answered, cpu_share_over_3s=cpu / 3.0, log_lines=len(log_lines))
        assert answered < ATTACKERS, "the limit was never reached: the test proves nothing"
        assert cpu / 3.0 < 0.30, f"the server used {cpu / 3.0:.0%} of a core at the fd limit"
        assert len(log_lines) == 1, \
            f"the condition was logged {len(log_lines)} times: {log_lines[:3]}"
    finally:
        for sock in attackers:
            sock.close()
    # The attackers are gone: a new client is served (finish) within 5 s.
    server.finish(allow_log=FD_LOG)
