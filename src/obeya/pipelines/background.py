"""What `obeya serve` runs beside the web: the lease reaper, the sweep, the poller, and
the embedded runners.

Embedded runners are the same runner code a remote machine runs (`obeya.runner`), making
the same HTTP requests to the same routes, so there is one protocol to trust, not two.
Their requests go straight to this process's Django request handler (`InProcessTransport`)
rather than through a socket and the ASGI server: the same URLs, authentication and views,
without a loopback connection, an event-loop hop and a thread hop per call, and without the
site's middleware, which is all for browsers (sessions, CSRF, static files, frame and
transport headers): the runner protocol authenticates each call by its runner token.
"""

from __future__ import annotations

import io
import logging
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connections
from django.db.backends.signals import connection_created
from django.utils import timezone

from obeya.pipelines import leases, polling, retention, runners, wakeup
from obeya.runner.client import ServerClient
from obeya.runner.main import RunnerLoop

log = logging.getLogger("obeya.pipelines")
REAP_INTERVAL_S = 5.0
SWEEP_TICKS = 120  # the sweep (old bundles, pins, expired artifacts) every 10 minutes
POLL_CHECK_INTERVAL_S = 5.0  # how often to look for due pipelines, not how often to poll
EMBEDDED_LABELS = ["embedded"]
# Between two 512 KB log chunks of a job printing fast, an embedded runner (which holds
# the interpreter's lock while the server stores a chunk) lets the web requests through.
EMBEDDED_CHUNK_PAUSE_S = 0.003
# On shutdown, how long the embedded runners' running jobs may take to finish before they
# are killed and handed back (a second signal kills them at once). Under the 90 s that
# systemd waits before it kills a service.
DRAIN_S = 30.0


@dataclass
class Background:
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    runners: RunnerLoop | None = None
    runner_threads: list[threading.Thread] = field(default_factory=list)
    wal_keeper: sqlite3.Connection | None = None
    signals: int = 0

    def on_signal(self) -> None:
        """The server was told to stop (called from its signal handler, so it must not
        wait): the first time, the embedded runners stop claiming and drain; the next
        time, they kill their jobs and hand them back."""
        self.signals += 1
        if self.runners is None:
            return
        if self.signals == 1:
            self.runners.stop.set()
            log.warning(
                "shutting down: the embedded runners take no new job; running ones have "
                "%.0f s to finish (signal again to stop them now)",
                DRAIN_S,
            )
        else:
            self.runners.hard_stop()
            log.warning("stopping the embedded runners' jobs now: they will run again")

    def drain(self, timeout_s: float = DRAIN_S) -> None:
        """Let the embedded runners' running jobs finish and be reported (RELIABILITY A7),
        up to ``timeout_s``; then kill what still runs and hand it back. The server waits
        for this while it shuts down; the runners' calls need no HTTP server."""
        if self.runners is None:
            return
        if not self.runners.drain(self.runner_threads, timeout_s):
            log.warning("shutdown: jobs still running after %.0f s are stopped", timeout_s)
            self.runners.abort()

    def shutdown(self) -> None:
        self.stop.set()
        if self.runners is not None:
            self.runners.abort()
        if self.wal_keeper is not None:
            connection_created.disconnect(dispatch_uid="obeya-checkpointer")
            self.wal_keeper.close()


def _keep_wal_open() -> sqlite3.Connection | None:
    """An idle connection to the embedded SQLite database, held while the server runs.

    Requests close their connections when they end. When the last connection to a WAL
    database closes, SQLite checkpoints the log into the database, syncs both and deletes
    the log, and the next request builds it again: at several requests per job, that
    was a large part of a short job's cost. This connection never writes and holds no
    transaction; the checkpointer thread checkpoints through it.
    """
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return None
    keeper = sqlite3.connect(str(database["NAME"]), isolation_level=None, check_same_thread=False)
    keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # opens the WAL index
    return keeper


CHECKPOINT_INTERVAL_S = 0.5


def _no_checkpoint_on_commit(connection: Any, **_: Any) -> None:
    """This process's SQLite connections leave checkpoints to the checkpointer thread."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint=0")


def checkpoint(keeper: sqlite3.Connection) -> tuple[int, int, int]:
    """Copy what the log holds into the database, without waiting for or blocking anyone
    (PASSIVE); the next commit then writes the log from its start again. Returns SQLite's
    (busy, frames in the log, frames checkpointed)."""
    row = keeper.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def _checkpointer(stop: threading.Event, keeper: sqlite3.Connection) -> None:
    """Checkpoints off the request path: a commit that crosses SQLite's threshold (1000
    pages) otherwise copies the whole log into the database and syncs it before it
    answers, the job or request that made it waiting. Web worker processes keep
    SQLite's own checkpoints, so the log stays bounded if this thread falls behind."""
    while not stop.wait(CHECKPOINT_INTERVAL_S):
        try:
            checkpoint(keeper)
        except sqlite3.Error:
            if not stop.is_set():  # at shutdown the keeper closes under it
                log.exception("WAL checkpoint failed")


def _tick(what: str, work: Callable[[], None]) -> None:
    """One round of a background task; a failing round is logged, never fatal."""
    try:
        close_old_connections()
        work()
    except Exception:
        log.exception("%s failed", what)
    finally:
        close_old_connections()


def _reap() -> None:
    reaped = leases.reap()
    if reaped:
        log.warning("reaper: %s job(s) lost their runner", reaped)


def _sweep() -> None:
    swept = retention.sweep()
    if any(swept.values()):
        log.info("sweep: %s", ", ".join(f"{count} {what}" for what, count in swept.items()))


def _poll() -> None:
    polling.poll_due(timezone.now())


def _reaper(stop: threading.Event) -> None:
    ticks = 0
    while not stop.wait(REAP_INTERVAL_S):
        ticks += 1
        _tick("reaper tick", _reap)
        if ticks % SWEEP_TICKS == 1:
            _tick("sweep", _sweep)


def _poller(stop: threading.Event) -> None:
    # A thread of its own: a slow git remote must not hold up reaping of lost jobs.
    while not stop.wait(POLL_CHECK_INTERVAL_S):
        _tick("polling tick", _poll)


class InProcessTransport(httpx.BaseTransport):
    """Hands each request to this process's Django request handler, as a WSGI server would.

    Request bodies are streamed, not read into memory first (an artifact upload can be a
    gigabyte). The response's ``close`` ends the request for Django, as it would for a
    server, and closes the calling thread's database connections.
    """

    def __init__(self) -> None:
        self._handler = _RunnerProtocolHandler()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.url.scheme,
            "wsgi.input": io.BufferedReader(_RequestBody(cast(Iterable[bytes], request.stream))),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": request.url.path,
            "QUERY_STRING": request.url.query.decode("ascii"),
            "SERVER_NAME": request.url.host,
            "SERVER_PORT": str(request.url.port or 80),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
        }
        for raw_name, raw_value in request.headers.raw:
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            if name not in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
                name = "HTTP_" + name
            environ[name] = raw_value.decode("latin-1")
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
            started[:] = [status, headers]
            return lambda _: None

        body = self._handler(environ, start_response)
        status, headers = started
        return httpx.Response(
            int(status.split()[0]),
            headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
            stream=_ResponseBody(body),
        )


class _RunnerProtocolHandler(WSGIHandler):
    """Django's WSGI handler without the middleware of settings.MIDDLEWARE: URL, view and
    the conversion of an uncaught error to a 500 answer, as for any request."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]


class _RequestBody(io.RawIOBase):
    """The request's byte stream as a readable file, pulled chunk by chunk."""

    def __init__(self, stream: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(stream)
        self._left = memoryview(b"")  # a view: taking a piece copies nothing

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._left = memoryview(chunk)
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


class _ResponseBody(httpx.SyncByteStream):
    def __init__(self, body: Any) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        for part in self._body:
            if part:
                yield part

    def close(self) -> None:
        self._body.close()  # Django's request_finished
        # The log shipper and the heartbeat call from helper threads that nothing closes
        # connections on: theirs are closed after each call. A runner worker thread keeps
        # its connection between calls (opening one costs more than recording a short
        # job's result) and closes it when it ends.
        if not getattr(_keeps_connections, "on", False):
            connections.close_all()


_keeps_connections = threading.local()


def _keep_connections() -> None:
    _keeps_connections.on = True


def _close_connections() -> None:
    _keeps_connections.on = False
    connections.close_all()


def _embedded_client(host: str, port: int, token: str) -> ServerClient:
    # The Host header must pass ALLOWED_HOSTS, as it would for a browser.
    allowed = [h for h in settings.ALLOWED_HOSTS if "*" not in h and not h.startswith(".")]
    name = allowed[0] if allowed else ("127.0.0.1" if host in {"0.0.0.0", "", "::"} else host)  # noqa: S104
    return ServerClient(
        f"http://{name}:{port}",
        token,
        transport=InProcessTransport(),
        chunk_pause_s=EMBEDDED_CHUNK_PAUSE_S,
    )


def start(host: str, port: int, runner_count: int) -> Background:
    background = Background(wal_keeper=_keep_wal_open())
    if background.wal_keeper is not None:
        connection_created.connect(_no_checkpoint_on_commit, dispatch_uid="obeya-checkpointer")
        thread = threading.Thread(
            target=_checkpointer,
            args=(background.stop, background.wal_keeper),
            name="wal-checkpointer",
            daemon=True,
        )
        thread.start()
        background.threads.append(thread)
    for target, name in ((_reaper, "reaper"), (_poller, "poller")):
        thread = threading.Thread(target=target, args=(background.stop,), name=name, daemon=True)
        thread.start()
        background.threads.append(thread)
    if runner_count > 0:
        token = runners.rotate_embedded_runner(
            f"embedded-{socket.gethostname()}-{port}", EMBEDDED_LABELS
        )
        background.runners = RunnerLoop(
            _embedded_client(host, port, token),
            Path(settings.DATA_DIR) / "workspaces",
            concurrency=runner_count,
            labels=EMBEDDED_LABELS,
            on_thread_start=_keep_connections,
            on_thread_end=_close_connections,
        )
        background.runner_threads = background.runners.start()
        background.threads += background.runner_threads
        # The embedded runners stop claiming as soon as the server is told to stop; the
        # server then waits for `drain` (their calls do not need the ASGI server).
        wakeup.on_close(background.on_signal)
    return background
