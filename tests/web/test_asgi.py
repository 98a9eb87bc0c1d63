"""The ASGI handler `obeya serve` answers with: a request's sync work in one call on a kept
thread, whose database connection serves the next request too."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db.backends.signals import connection_created

from obeya.asgi import KEPT_THREADS, RequestHandler


async def _get(handler: RequestHandler, path: str) -> int:
    """One GET through ``handler``, as uvicorn would send it; the status."""
    status, _ = await _exchange(handler, path)
    return status


@pytest.fixture
def threads_seen() -> Iterator[dict[str, list[int]]]:
    """The threads that opened a database connection, and that sent each request signal."""
    seen: dict[str, list[int]] = {"connected": [], "started": [], "finished": []}

    def note(what: str) -> Any:
        return lambda **_: seen[what].append(threading.get_ident())

    receivers = [
        (connection_created, note("connected")),
        (request_started, note("started")),
        (request_finished, note("finished")),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver, weak=False)
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)


@pytest.fixture
def handler() -> Iterator[RequestHandler]:
    """A handler whose kept threads close their connections afterwards (an open one would
    keep PostgreSQL from dropping the test database)."""
    made = RequestHandler()
    yield made
    made.close()


@pytest.mark.django_db(transaction=True)
def test_requests_one_after_another_share_a_thread_and_its_connection(threads_seen, handler):
    async def five() -> list[int]:
        return [await _get(handler, "/api/health") for _ in range(5)]

    assert asyncio.run(five()) == [200] * 5
    assert len(threads_seen["connected"]) == 1  # opened once, used by all five
    (thread,) = set(threads_seen["connected"])
    # The connection is checked before and after each request on the thread that holds it.
    assert threads_seen["started"] == threads_seen["finished"] == [thread] * 5


@pytest.mark.django_db(transaction=True)
def test_requests_at_once_each_have_a_thread(threads_seen, handler):

    async def together() -> list[int]:
        return list(await asyncio.gather(*(_get(handler, "/api/health") for _ in range(4))))

    assert asyncio.run(together()) == [200] * 4
    assert len(set(threads_seen["started"])) >= 2


def test_a_thread_is_kept_for_the_next_request_only_once_idle(handler):
    thread = handler._borrow()
    release = threading.Event()
    thread.submit(release.wait, 5)  # a view still running after its client went away
    handler._give_back(thread)
    assert handler._idle.empty()
    release.set()
    assert handler._idle.get(timeout=5) is thread


def test_threads_beyond_those_kept_are_let_go(handler):
    borrowed = [handler._borrow() for _ in range(KEPT_THREADS + 2)]
    for thread in borrowed[:KEPT_THREADS]:
        handler._give_back(thread)
        thread.submit(lambda: None).result(timeout=5)  # its give-back has run
    assert handler._idle.qsize() == KEPT_THREADS
    for thread in borrowed[KEPT_THREADS:]:
        handler._give_back(thread)
        thread.shutdown(wait=True)  # it was shut down already: this only waits
        with pytest.raises(RuntimeError):
            thread.submit(lambda: None)
    assert handler._idle.qsize() == KEPT_THREADS


async def _exchange(
    handler: RequestHandler, path: str, *, leave: bool = False
) -> tuple[int, bytes]:
    """One GET through ``handler``: the status and the body; with ``leave``, the client
    goes away as soon as the answer starts."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    gone = asyncio.Event()
    asked: list[bool] = []
    status: list[int] = []
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if not asked:
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            if leave:
                gone.set()
                await asyncio.sleep(0.05)  # the handler hears of it before the body
        else:
            body.append(message.get("body", b""))
            if not message.get("more_body"):
                gone.set()

    await handler(scope, receive, send)
    return status[0], b"".join(body)


@pytest.mark.urls("tests.web.streaming_urls")
@pytest.mark.django_db(transaction=True)
def test_an_answer_is_sent_whole_and_the_request_finished_once(threads_seen, handler):
    async def both() -> list[tuple[int, bytes]]:
        return [await _exchange(handler, path) for path in ("/api/health", "/test-streamed/")]

    (health, plain), (streamed, parts) = asyncio.run(both())
    assert health == streamed == 200
    assert b"ok" in plain and parts == b"one two"
    # Each request started and finished once, on its thread, the streamed one after its
    # last part was sent.
    assert len(threads_seen["started"]) == len(threads_seen["finished"]) == 2
    assert threads_seen["started"] == threads_seen["finished"]


@pytest.mark.urls("tests.web.streaming_urls")
@pytest.mark.django_db(transaction=True)
def test_a_stream_whose_client_went_away_is_stopped_and_closed(threads_seen, handler):
    status, parts = asyncio.run(_exchange(handler, "/test-streamed/", leave=True))
    assert status == 200 and parts in {b"", b"one "}  # not the rest
    assert len(threads_seen["finished"]) == 1
