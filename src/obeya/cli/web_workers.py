"""The processes of `obeya serve` that answer HTTP: the main one and its web workers.

A Python process runs its requests on one CPU at a time (the interpreter lock), however
many CPUs the machine has. The main process binds the listening socket, runs the
background work (runners, deployers, schedulers) and answers HTTP; it also starts
``count - 1`` web workers that answer HTTP on the same socket and do nothing else. Each new
connection goes to a process holding no more connections than the others (see
FairListener and ConnectionCounts).

A web worker is a fresh interpreter (`python -m obeya serve --http-only --fd N`), not a
fork, so no thread or lock of the main process is copied into it. Its standard input is a
pipe from the main process: end of file there, when the main process stops or dies (even
by SIGKILL), makes it finish its requests and exit, so no worker outlives its server. A
worker that dies on its own is started again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import mmap
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn
from django.urls import get_resolver

from obeya.pipelines import wakeup

log = logging.getLogger("obeya.serve")
BACKLOG = 2048
GRACEFUL_S = 10  # requests in flight at shutdown get this long to finish
RESTART_DELAY_S = 0.5  # a worker that dies is started again after this ...
RESTART_DELAY_MAX_S = 30.0  # ... doubled, up to this, while it keeps dying young
YOUNG_S = 10.0  # a worker that died younger than this counts as dying young
# A process holding more connections than another leaves a new one to it for this long at
# most (if the other does not take it by then, it may be stuck: this one takes it).
LEAVE_S = 0.02
# Asked to accept again within this, a process is asked about the same waiting connection
# (the event loop asks at once while the socket stays readable); later, about a new one.
LEAVE_EPISODE_S = 0.005
GONE = 1 << 40  # the count of a process not (or no longer) serving: nothing is left to it
COUNTS_ENV = "OBEYA_WEB_WORKER_COUNTS"  # "fd:slots:slot", from the main process to a worker


class ConnectionCounts:
    """How many connections each process of the server holds open, in memory they share.

    Each process writes only its own slot (0 is the main process) and reads the others'.
    A count read while another process changes it is at most one connection off, which
    only makes one connection go to the other process than it would have.

    One more number after the slots is the processes' wake-up counter for runners waiting
    for a job (obeya.pipelines.wakeup.share).
    """

    def __init__(self, fd: int, slots: int) -> None:
        self.fd = fd
        self.slots = slots
        self._memory = mmap.mmap(fd, (slots + 1) * 8)
        self._counts = memoryview(self._memory).cast("q")

    def wake_counter(self) -> memoryview:
        """The processes' shared wake-up counter for waiting runners."""
        return self._counts[self.slots : self.slots + 1]

    @classmethod
    def create(cls, slots: int) -> ConnectionCounts | None:
        """Counts for ``slots`` processes, zero; None where the OS has no memfd (not Linux)."""
        if not hasattr(os, "memfd_create"):
            return None
        fd = os.memfd_create("obeya-connections")
        os.ftruncate(fd, (slots + 1) * 8)
        return cls(fd, slots)

    def held(self, slot: int) -> int:
        return self._counts[slot]

    def set(self, slot: int, count: int) -> None:
        self._counts[slot] = count

    def add(self, slot: int, change: int) -> None:
        self._counts[slot] += change

    def fewest_elsewhere(self, slot: int) -> int:
        """The fewest connections another process holds (GONE if there is none)."""
        return min((self._counts[n] for n in range(self.slots) if n != slot), default=GONE)


class FairListener(socket.socket):
    """The listening socket shared by the server's processes: each takes one connection a
    turn, and leaves it to another process that holds fewer.

    asyncio accepts every connection waiting (up to the backlog) each time the socket is
    readable, so a burst of new connections went to whichever process woke first, and
    kept-alive connections stay where they were accepted: 17 of 20 benchmark clients were
    on one process and 3 on the other. One a turn of the event loop, a burst is shared.
    But connections opened one after another (people signing in one by one) still went
    mostly to one process, the one that wakes first when both are idle: 17 to 20 of 20 in
    the board benchmark. So with ConnectionCounts, a process holding more connections than
    another leaves a new one to that one (every process is woken for each), for LEAVE_S
    at most.
    """

    _took_one = False
    _counts: ConnectionCounts | None = None
    _slot = 0
    _leaving_since = 0.0
    _left_last = 0.0

    def share(self, counts: ConnectionCounts, slot: int) -> None:
        """Count this process's connections in ``slot`` of ``counts``, and balance by them."""
        self._counts, self._slot = counts, slot
        counts.set(slot, 0)

    def accept(self) -> tuple[socket.socket, Any]:
        if self._took_one:
            self._took_one = False
            raise BlockingIOError  # asyncio stops accepting until the socket is ready again
        if self._counts is None:
            accepted = super().accept()
        elif self._leave_to_another(self._counts):
            raise BlockingIOError  # woken again until someone takes it
        else:
            connection, address = super().accept()
            accepted = HeldConnection.adopt(connection, self._counts, self._slot), address
        self._took_one = True
        return accepted

    def _leave_to_another(self, counts: ConnectionCounts) -> bool:
        if counts.held(self._slot) <= counts.fewest_elsewhere(self._slot):
            return False
        now = time.monotonic()
        if now - self._left_last > LEAVE_EPISODE_S:  # not asked again at once: a new one
            self._leaving_since = now
        self._left_last = now
        return now - self._leaving_since < LEAVE_S


class HeldConnection(socket.socket):
    """An accepted connection, counted in its process's slot until it is closed."""

    _counts: ConnectionCounts
    _slot: int
    _open = False

    @classmethod
    def adopt(
        cls, connection: socket.socket, counts: ConnectionCounts, slot: int
    ) -> HeldConnection:
        held = cls(connection.family, connection.type, connection.proto, connection.detach())
        held._counts, held._slot, held._open = counts, slot, True
        counts.add(slot, 1)
        return held

    def close(self) -> None:
        if self._open:
            self._open = False
            self._counts.add(self._slot, -1)
        super().close()


def listen(host: str, port: int) -> FairListener:
    """The listening socket every process of the server accepts connections on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio sets TCP_NODELAY on the connections of a TCP
    # socket only, and without it every answer on a kept-alive connection waited 40 ms
    # for the client's delayed acknowledgement.
    sock = FairListener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def _config() -> uvicorn.Config:
    """uvicorn's settings, with the app loaded and left out of garbage collection.

    Python's full collections walk every object, and Django, the models, the API's schemas
    and the URLs are ~120,000 of them, alive as long as the process: each collection
    stopped a process for 70-140 ms, the slowest answers under load. Frozen after loading
    (gc.freeze), they are not walked again.
    """
    config = uvicorn.Config(
        "obeya.asgi:application",
        log_level="warning",
        lifespan="off",
        proxy_headers=True,
        timeout_graceful_shutdown=GRACEFUL_S,
    )
    config.load()
    get_resolver().url_patterns  # noqa: B018  (imports the URLs and the API, on first use)
    gc.collect()
    gc.freeze()
    return config


class WebWorkers:
    """The web worker processes beside the main one: started, watched, restarted, stopped."""

    def __init__(self, sock: socket.socket, count: int, counts: ConnectionCounts | None) -> None:
        self._fd = sock.fileno()
        self._count = count
        self._counts = counts
        # Only the workers get the read end; the write end stays here, and nothing else
        # inherits it (os.pipe is close-on-exec), so its end of file means "stop".
        self._stop_read, self._stop_write = os.pipe()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._processes: list[subprocess.Popen[bytes]] = []
        self._watcher = threading.Thread(target=self._watch, name="web-workers", daemon=True)

    def start(self) -> None:
        with self._lock:
            self._processes = [self._spawn(slot) for slot in range(self._count)]
        if self._count:
            self._watcher.start()

    def stop(self) -> None:
        """Tell every worker to finish its requests and exit (safe in a signal handler)."""
        if not self._stopping.is_set():
            self._stopping.set()
            os.close(self._stop_write)

    def wait(self, timeout_s: float) -> None:
        """Wait for the workers to exit after `stop`; kill those still there at the end."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("web worker %s did not stop in time: killed", process.pid)
                process.kill()
                process.wait()
        os.close(self._stop_read)

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        env, fds = dict(os.environ), [self._fd]
        if self._counts is not None:
            env[COUNTS_ENV] = f"{self._counts.fd}:{self._counts.slots}:{slot + 1}"
            fds.append(self._counts.fd)
        return subprocess.Popen(
            [sys.executable, "-m", "obeya", "serve", "--http-only", "--fd", str(self._fd)],
            stdin=self._stop_read,
            pass_fds=fds,
            env=env,
        )

    def _watch(self) -> None:
        delays = [RESTART_DELAY_S] * self._count
        born = [time.monotonic()] * self._count
        while not self._stopping.wait(0.2):
            for slot in range(self._count):
                code = self._processes[slot].poll()
                if code is None:
                    continue
                if self._counts is not None:
                    self._counts.set(slot + 1, GONE)  # until its successor counts again
                young = time.monotonic() - born[slot] < YOUNG_S
                delay = delays[slot] if young else RESTART_DELAY_S
                delays[slot] = min(delay * 2, RESTART_DELAY_MAX_S)
                log.warning(
                    "web worker %s exited with %s; starting another in %.1f s",
                    self._processes[slot].pid,
                    _exit_status(code),
                    delay,
                )
                # A worker stopped by a signal to the whole group (systemd's SIGTERM) ends
                # together with this process: the wait lets `stop` come first.
                if self._stopping.wait(delay):
                    return
                with self._lock:
                    if self._stopping.is_set():
                        return
                    self._processes[slot] = self._spawn(slot)
                born[slot] = time.monotonic()


def _exit_status(code: int) -> str:
    if code >= 0:
        return f"code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


class _MainServer(uvicorn.Server):
    """The main process's server: its shutdown stops the web workers too, and waits for them
    and for ``drain`` (the embedded runners finishing their jobs)."""

    def __init__(
        self,
        config: uvicorn.Config,
        workers: WebWorkers,
        drain: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self._workers = workers
        self._drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        wakeup.close()  # runners' long-polls answer now, so shutdown need not wait
        self._workers.stop()
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # The drain runs beside the requests' graceful end, not after it.
        draining = asyncio.create_task(asyncio.to_thread(self._drain)) if self._drain else None
        await super().shutdown(sockets)
        # Here, not after run(): uvicorn ends the process by raising the signal it caught
        # once run() is over, and a worker (or a job) must not be left behind.
        self._workers.stop()
        await asyncio.to_thread(self._workers.wait, GRACEFUL_S + 5)
        if draining is not None:
            await draining


def serve(sock: socket.socket, count: int, drain: Callable[[], None] | None = None) -> None:
    """Answer HTTP on ``sock`` here and in ``count - 1`` web workers, until a signal; on
    the way out, wait for ``drain`` too."""
    counts = ConnectionCounts.create(count) if count > 1 else None
    if counts is not None and isinstance(sock, FairListener):
        for slot in range(1, count):
            counts.set(slot, GONE)  # until each worker has loaded and serves
        sock.share(counts, 0)
    if counts is not None:
        wakeup.share(counts.wake_counter())
    workers = WebWorkers(sock, count - 1, counts)
    workers.start()
    _MainServer(_config(), workers, drain).run(sockets=[sock])


class _WorkerServer(uvicorn.Server):
    """A web worker's server: it stops when the main process says so or goes away."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGINT:
            return  # Ctrl+C reaches every process of the terminal: the main one decides
        wakeup.close()
        super().handle_exit(sig, frame)

    def stop_gracefully(self) -> None:
        wakeup.close()
        self.should_exit = True


def _until_end_of_file(server: _WorkerServer) -> None:
    try:
        while os.read(0, 512):
            pass
    except OSError:
        pass
    server.stop_gracefully()


def serve_http_only(fd: int) -> None:
    """A web worker: answer HTTP on the inherited socket ``fd`` until standard input ends."""
    server = _WorkerServer(_config())
    threading.Thread(
        target=_until_end_of_file, args=(server,), name="main-process-watch", daemon=True
    ).start()
    sock = FairListener(fileno=fd)
    if os.environ.get(COUNTS_ENV):
        counts_fd, slots, slot = (int(part) for part in os.environ[COUNTS_ENV].split(":"))
        counts = ConnectionCounts(counts_fd, slots)
        sock.share(counts, slot)
        wakeup.share(counts.wake_counter())
    server.run(sockets=[sock])
