"""Bad input on the pages is refused with a page that says why, before it reaches a view.

The JSON API does the same for its own routes (`obeya.api.refuse_unstorable` and its error
handlers), in the API's error format; these are the web pages' side of it:

- a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB): 413;
- text no database can hold (a NUL character, a lone surrogate) in the path, the query or
  the form, and whole numbers past 64 bits in the path: 422;
- what the database refuses all the same (a number past its column's range): 422, with
  nothing written, as the statement's transaction rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import DataError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from obeya.core import storable

log = logging.getLogger(__name__)
API_PREFIX = "/api/"


def refused_page(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """The page that tells why a request was refused, with the status that says so."""
    return render(request, "web/refused.html", {"message": message}, status=status)


class InputGuardMiddleware:
    """Refuse, on the pages, input that would otherwise end in a 500 (see the module)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            return self.get_response(request)  # the API answers these in its own format
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = request.META.get("CONTENT_LENGTH") or ""
        if limit is not None and declared.isdigit() and int(declared) > limit:
            return refused_page(request, 413, f"The form is over {limit:,} bytes: send less.")
        try:
            found = storable.refusal(request.path_info, "the address") or storable.refusal(
                dict(request.GET.lists())
            )
        except TooManyFieldsSent:
            return refused_page(request, 400, "The address has too many fields.")
        if found is not None:
            return refused_page(request, 422, _sentence(found))
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        if request.path_info.startswith(API_PREFIX):
            return None
        try:
            # Read here, before the CSRF check reads it, so an oversized or overfull form
            # gets its own answer rather than a bare 400.
            form = dict(request.POST.lists())
        except RequestDataTooBig:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
            return refused_page(request, 413, f"The form is over {limit:,} bytes: send less.")
        except TooManyFieldsSent:
            return refused_page(request, 400, "The form has too many fields.")
        found = storable.refusal(kwargs) or storable.refusal(form)
        if found is not None:
            return refused_page(request, 422, _sentence(found))
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if request.path_info.startswith(API_PREFIX):
            return None
        if isinstance(exception, DataError | OverflowError):
            log.warning("refused %s %s: %s", request.method, request.path, exception)
            return refused_page(
                request, 422, "A value is out of range or too long: correct it and send again."
            )
        return None


def _sentence(found: tuple[str, str]) -> str:
    _, message = found
    return message[0].upper() + message[1:] + "."
