"""The service's server: uvicorn worker processes, each on a socket of its own, each answer in one write.

**Processes.** One event loop spends all its time in Python (parsing, validating, scoring, answering),
so a single process uses one core. `serve` starts `workers` uvicorn servers, each a spawned process
on its own listening socket, all bound to the same port with `SO_REUSEPORT`: the kernel spreads new
connections over the sockets by a hash of their addresses. (uvicorn's own `--workers` shares one
socket among the processes, and whichever wakes first takes every pending connection: here eight
connections opened together went all to one process in three tries of five.) Each process loads the
model and follows the champion alias on its own. The parent holds the sockets, so a worker that dies
is started again on its socket, and the connections waiting there are answered by its successor.

**One write per answer.** uvicorn writes an answer's status line and headers, then its body: two
sends, and on loopback two wake-ups of the client. `OneWriteHttpTools` gives uvicorn a transport that
gathers what is written in one turn of the event loop and sends it as one write.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import socket
import sys
import threading
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class _Gathered:
    """A transport whose writes within one turn of the event loop go out as one."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the socket's transport
        return getattr(self._transport, name)


class OneWriteHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol on a transport that sends each answer in one write."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_Gathered(transport, self.loop))  # type: ignore[arg-type]


def serve(config: uvicorn.Config, workers: int) -> None:
    """Run the app of `config` in `workers` processes, each on its own `SO_REUSEPORT` socket, until
    SIGINT or SIGTERM. A worker that exits after it served is started again; one that exits before
    (its app could not start: a setting, the registry) stops the service, as one process would."""
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    port = _free(config.host, config.port)
    sockets = [_listening(config.host, port) for _ in range(workers)]
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def start(sock: socket.socket) -> tuple[multiprocessing.process.BaseProcess, Any]:
        served = spawn.Event()
        process = spawn.Process(target=_worker, args=(config, sock, served), name="scoring-worker")
        process.start()
        return process, served

    running = [start(sock) for sock in sockets]
    log.info("serving on %s:%d with %d worker processes", config.host, port, workers)
    failed = None
    while failed is None and not stop.wait(0.5):
        for n, (process, served) in enumerate(running):
            if process.is_alive():
                continue
            if not served.is_set():
                log.error("worker %d exited before it served; stopping the service", process.pid)
                failed = process.exitcode or 1
                break
            log.error("worker %d exited with %s; starting it again", process.pid, process.exitcode)
            running[n] = start(sockets[n])
    for process, _ in running:
        process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
    for process, _ in running:
        process.join()
    if failed is not None:
        sys.exit(failed)


def _free(host: str, port: int) -> int:
    """`port` (or, for 0, one the kernel chooses) once no other socket listens on it: `SO_REUSEPORT`
    would share it with that one (another service started on the same port) instead of failing.

    Raises:
        OSError: when the port is in use.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return probe.getsockname()[1]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _listening(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(config: uvicorn.Config, sock: socket.socket, served: Any) -> None:
    configure_logging(str(config.log_level or "info"))

    async def serving() -> None:  # uvicorn calls it from its main loop, once it serves
        served.set()

    config.callback_notify = serving
    uvicorn.Server(config).run(sockets=[sock])


def configure_logging(level: str) -> None:
    """The service's log lines (the parent's and each worker's), at `level`."""
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
