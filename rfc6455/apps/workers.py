"""``--workers N``: several server processes on one port, supervised by a parent.

Each worker is a whole broadcast server (``python -m rfc6455 broadcast ...``)
listening with ``SO_REUSEPORT``, so the kernel spreads new connections over
them. The parent only supervises: it restarts a worker that dies, forwards
SIGINT/SIGTERM for a graceful shutdown of all (each closes its clients with
1001), and -- without ``--redis`` -- runs the embedded relay that carries
broadcast messages between its workers (:class:`~rfc6455.apps.backplane.Relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence

from .backplane import Relay

__all__ = ["supervise"]

logger = logging.getLogger("rfc6455.server")

#: A worker that dies sooner than this after its start is restarted after a pause.
_FLAP_SECONDS = 2.0


def _reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) with SO_REUSEPORT: holds the port the workers will share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def _run_worker(index: int, argv: list[str], stopping: asyncio.Event,
                      procs: dict[int, asyncio.subprocess.Process]) -> None:
    loop = asyncio.get_running_loop()
    while not stopping.is_set():
        started = loop.time()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "rfc6455", *argv)
        procs[index] = proc
        code = await proc.wait()
        if stopping.is_set():
            return
        logger.warning("worker %d (pid %d) exited with %s; restarting it", index, proc.pid,
                       code)
        if loop.time() - started < _FLAP_SECONDS:
            await asyncio.sleep(_FLAP_SECONDS)


async def _wait_listening(host: str, port: int, timeout: float = 30.0) -> None:
    """Return once a worker accepts connections, so the start line tells the truth."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return


async def supervise(argv: Sequence[str], *, workers: int, host: str, port: int,
                    redis: str | None, close_timeout: float | None) -> int:
    """Run ``workers`` copies of the server command ``argv`` on one port until signalled."""
    reserved = _reserve_port(host, port)
    port = reserved.getsockname()[1]
    worker_argv = [*argv, "--workers", "1", "--port", str(port), "--reuse-port"]
    relay: Relay | None = None
    tmpdir: tempfile.TemporaryDirectory[str] | None = None
    if redis is None:
        tmpdir = tempfile.TemporaryDirectory(prefix="rfc6455-relay-")
        relay = Relay(os.path.join(tmpdir.name, "relay.sock"))
        await relay.start()
        worker_argv += ["--relay", relay.path]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    procs: dict[int, asyncio.subprocess.Process] = {}
    tasks = [asyncio.create_task(_run_worker(i, worker_argv, stopping, procs))
             for i in range(workers)]
    await _wait_listening(host, port)
    shown = f"[{host}]" if ":" in host else host
    logger.info("broadcast server: %d workers listening on ws://%s:%d/ws (%s)", workers, shown,
                port, f"Redis {redis}" if redis else "embedded relay")
    try:
        await stopping.wait()
        logger.info("shutting down %d workers", workers)
        for proc in procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = (close_timeout or 10.0) + 5.0
        waits = [proc.wait() for proc in procs.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), deadline)
        except asyncio.TimeoutError:
            for proc in procs.values():
                if proc.returncode is None:
                    proc.kill()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if relay is not None:
            await relay.close()
        if tmpdir is not None:
            tmpdir.cleanup()
        reserved.close()
    return 0
