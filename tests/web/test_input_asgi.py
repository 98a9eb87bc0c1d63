"""What `obeya serve` answers to bad input, through its own ASGI handler (as uvicorn hands
requests to it): the same 413 and 422 as through Django's test client, with the API's
error body on the API, a page elsewhere, and the security headers on both."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from obeya.asgi import RequestHandler
from obeya.core.models import Event, User
from obeya.core.services import create_token
from tests.conftest import SYSTEM


@pytest.fixture
def handler() -> Iterator[RequestHandler]:
    made = RequestHandler()
    yield made
    made.close()  # its kept threads' connections: PostgreSQL drops the test database after


@pytest.fixture
def token(alice: User) -> str:
    return create_token(SYSTEM, alice, name="asgi", days=30)[1]


def _call(
    handler: RequestHandler,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request through ``handler``, its body in 64 KiB messages as uvicorn sends it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-length", str(len(body)).encode()),
            *(headers or []),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.Event().wait()  # the client stays until the answer is sent
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(handler(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.lower(): v for k, v in start["headers"]}, content


@pytest.mark.django_db(transaction=True)
def test_a_body_over_the_limit_gets_413_with_the_api_error(
    handler: RequestHandler, token: str, settings: Any
) -> None:
    events = Event.objects.count()
    body = json.dumps({"slug": "pay", "name": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    status, headers, content = _call(
        handler,
        "POST",
        "/api/services",
        body=body.encode(),
        headers=[
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ],
    )
    assert status == 413
    assert json.loads(content)["error"]["code"] == "too_large"
    assert b"frame-ancestors 'none'" in headers[b"content-security-policy"]
    assert Event.objects.count() == events


@pytest.mark.django_db(transaction=True)
def test_numbers_and_text_no_database_holds_get_422(handler: RequestHandler, token: str) -> None:
    auth = [(b"authorization", f"Bearer {token}".encode())]
    status, _, content = _call(
        handler, "GET", "/api/events", query=b"offset=9223372036854775808", headers=auth
    )
    assert status == 422
    assert json.loads(content)["error"]["field"] == "offset"
    status, _, content = _call(handler, "GET", "/api/services", query=b"search=%00", headers=auth)
    assert status == 422
    assert json.loads(content)["error"]["field"] == "search"
    status, headers, content = _call(handler, "GET", "/login/", query=b"next=%00")
    assert status == 422
    assert b"NUL character" in content
    assert b"frame-ancestors 'none'" in headers[b"content-security-policy"]
