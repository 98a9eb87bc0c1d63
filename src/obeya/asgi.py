"""ASGI entry point for uvicorn (``obeya serve``), and the handler that answers requests."""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from queue import Empty, SimpleQueue
from typing import Any, ParamSpec, TypeVar

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.db import connections
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

from obeya.core import hangup

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

    And one crossing to that thread per request, where Django made three (request_started,
    the response, and closing it: request_finished), each with its futures, context copies
    and wake-ups of the event loop: ~0.5 ms of CPU a request under load (bench/board_load).
    An answer that is not streamed is closed on the thread before it is sent (its body is
    already made); a streamed one is sent while listening for the client going away, as
    Django does, and closed afterwards.
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

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            respond = sync_to_async(self._respond, thread_sensitive=True)
            gone = hangup.watch(scope)
            if gone is None:
                response = await respond(scope, body_file)
            else:
                response = await self._respond_watching(respond(scope, body_file), receive, gone)
            if response.streaming:
                await self._stream(response, receive, send)
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()

    async def _respond_watching(
        self, answer: Awaitable[HttpResponseBase], receive: Any, gone: threading.Event
    ) -> HttpResponseBase:
        """``answer``, while listening for the client hanging up: a long-poll's view looks
        at ``gone`` between its waits (obeya.core.hangup)."""

        async def listen() -> None:
            with suppress(RequestAborted):
                await self.listen_for_disconnect(receive)
            gone.set()

        listener = asyncio.create_task(listen())
        try:
            return await answer
        finally:
            listener.cancel()
            with suppress(asyncio.CancelledError):
                await listener

    def _respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """On the request's thread: the response, closed unless it is streamed."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, refused = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        else:
            assert refused is not None  # a request Django could not read: 400 or 413
            response = refused
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if not response.streaming:
            response.close()  # request_finished
        return response

    async def _stream(self, response: HttpResponseBase, receive: Any, send: Any) -> None:
        """Send a streamed response until it ends or the client goes away, then close it."""
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(self.send_response(response, send)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if not task.done():
                    task.cancel()
                with suppress(RequestAborted, asyncio.CancelledError):
                    await task
        finally:
            await sync_to_async(response.close, thread_sensitive=True)()

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
