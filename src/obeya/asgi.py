"""ASGI entry point for uvicorn (``obeya serve``), and the handler that answers requests."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, SimpleQueue
from typing import Any, ParamSpec, TypeVar

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import connections
from django.http import FileResponse, HttpRequest, HttpResponseBase

# Threads kept for requests once they are done (more are made while more requests run at
# once, and let go afterwards): each keeps its database connection for the next request.
KEPT_THREADS = 16
P = ParamSpec("P")
R = TypeVar("R")


class RequestHandler(ASGIHandler):
    """Django's ASGI handler, without its two costs that outweighed most requests.

    Stock Django runs each request's sync code on a new thread (so on a new database
    connection: for SQLite, opening the file and running its pragmas) and crosses between
    the event loop and that thread for each middleware's every hook. Together that cost
    ~2.5 ms of CPU per request, where /api/health itself costs 0.2 ms and a cached board 1 ms.

    Here a request borrows one of a few kept threads (through asgiref's own executor
    context, so every thread-sensitive call of the request, the request_started and
    request_finished signals included, runs on it, as on Django's thread of the request),
    and the middleware run in sync mode: the middleware and the view are one call on that
    thread. Async views (the live streams) still work: Django calls them from the sync
    chain through async_to_sync, on the event loop, and streams their answers there.
    """

    def __init__(self) -> None:
        BaseHandler.__init__(self)  # not ASGIHandler's: it builds the async middleware chain
        self.load_middleware(is_async=False)
        self._idle: SimpleQueue[RequestThread] = SimpleQueue()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Obeya answers HTTP only, not {scope['type']}")
        thread = self._borrow()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            self._give_back(thread)

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        return response

    def close(self) -> None:
        """Close the kept threads' database connections and let the threads go."""
        while True:
            try:
                thread = self._idle.get_nowait()
            except Empty:
                return
            thread.submit(connections.close_all).result()
            thread.shutdown(wait=True)

    def _borrow(self) -> RequestThread:
        try:
            return self._idle.get_nowait()
        except Empty:
            return RequestThread()

    def _give_back(self, thread: RequestThread) -> None:
        """Keep ``thread`` for another request once it is idle, or let it go.

        Once idle, not at once: a view whose client went away may still run on it.
        """
        if self._idle.qsize() >= KEPT_THREADS:
            thread.submit(connections.close_all)
            thread.shutdown(wait=False)
        elif thread.idle:
            self._idle.put(thread)
        else:
            thread.submit(lambda: None).add_done_callback(lambda _: self._idle.put(thread))


class RequestThread(ThreadPoolExecutor):
    """One thread that runs the sync work of one request at a time, and says when it is idle."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._pending = 0
        self._counting = threading.Lock()

    @property
    def idle(self) -> bool:
        return self._pending == 0

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        with self._counting:
            self._pending += 1

        def run() -> R:
            try:
                return fn(*args, **kwargs)
            finally:  # before the caller is told the result: idle by the time it knows
                with self._counting:
                    self._pending -= 1

        return super().submit(run)


def _application() -> RequestHandler:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obeya.settings")
    django.setup(set_prefix=False)
    return RequestHandler()


# WhiteNoise streams static files through a sync iterator; under ASGI Django warns on every
# file. The files are small and cached by browsers, so the warning is noise in the log.
warnings.filterwarnings(
    "ignore",
    message="StreamingHttpResponse must consume synchronous iterators",
    module="django.core.handlers.asgi",
)

application = _application()
