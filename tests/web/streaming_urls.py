"""URLs for tests/web/test_asgi.py: Obeya's own, and a streamed answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path

from obeya.urls import urlpatterns as obeya_urls


async def _parts() -> AsyncIterator[bytes]:
    yield b"one "
    await asyncio.sleep(0.01)
    yield b"two"


def streamed(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_parts())


urlpatterns = [path("test-streamed/", streamed), *obeya_urls]
