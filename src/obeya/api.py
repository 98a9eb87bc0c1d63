"""The JSON API under /api/: one NinjaAPI with each capability's router and one error format."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import DataError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from pydantic import BaseModel

import obeya
from obeya.backlog.api import router as backlog_router
from obeya.board.api import router as board_router
from obeya.board.flow_api import router as flow_router
from obeya.catalog.api import router as catalog_router
from obeya.core import storable
from obeya.core.api import router as core_router
from obeya.core.apiauth import SessionAuth, TokenAuth
from obeya.core.errors import ObeyaError, Unprocessable
from obeya.deploy.api import router as deploy_router
from obeya.metrics.api import router as metrics_router
from obeya.ops.api import router as ops_router
from obeya.ops.continuity_api import router as continuity_router
from obeya.ops.notify_api import router as notify_router
from obeya.ops.reviews_api import router as reviews_router
from obeya.pipelines.api import router as pipelines_router
from obeya.pipelines.hooks_api import router as hooks_router
from obeya.pipelines.runner_api import router as runner_router

log = logging.getLogger(__name__)


def _error(
    api: NinjaAPI,
    request: HttpRequest,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
) -> HttpResponse:
    body = {"error": {"code": code, "message": message, "field": field}}
    return api.create_response(request, body, status=status)


def _field_of(error: dict[str, Any]) -> str | None:
    location = [str(part) for part in error.get("loc", ()) if part not in {"body", "payload"}]
    return ".".join(location[-1:]) or None


def refuse_unstorable(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an operation so that values no database can hold are refused with 422.

    It sees the parameters as validated (path, query, headers and body alike), before the
    view runs, so a refused request writes nothing.
    """

    @functools.wraps(view)
    def checked(request: HttpRequest, **values: Any) -> Any:
        for name, value in values.items():
            # A body or the pagination's input: its fields are the names the client sent.
            where = "" if isinstance(value, BaseModel | dict) else name
            found = storable.refusal(value, where)
            if found is not None:
                field, message = found
                raise Unprocessable(message, field=field.rsplit(".", 1)[-1] or None)
        return view(request, **values)

    return checked


def build_api() -> NinjaAPI:
    api = NinjaAPI(
        title="Obeya API",
        version=obeya.__version__,
        description="Every capability of Obeya. Authenticate with `Authorization: Bearer "
        "<token>` (create one with `obeya token create`) or the browser session.",
        auth=[TokenAuth(), SessionAuth()],
        urls_namespace="api",
    )
    # The runner protocol first: URLs are tried in order, and runners call the most often.
    api.add_router("/", runner_router)
    api.add_router("/", core_router)
    api.add_router("/", catalog_router)
    api.add_router("/", backlog_router)
    api.add_router("/", board_router)
    api.add_router("/", pipelines_router)
    api.add_router("/", hooks_router)
    api.add_router("/", flow_router)
    api.add_router("/", deploy_router)
    api.add_router("/", ops_router)
    api.add_router("/", reviews_router)
    api.add_router("/", notify_router)
    api.add_router("/", continuity_router)
    api.add_router("/", metrics_router)
    api.add_decorator(refuse_unstorable, mode="operation")

    @api.exception_handler(ObeyaError)
    def obeya_error(request: HttpRequest, exc: ObeyaError) -> HttpResponse:
        return _error(api, request, exc.status, exc.code, exc.message, exc.field)

    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        first = exc.errors[0] if exc.errors else {}
        field = _field_of(first)
        message = str(first.get("msg", "invalid request"))
        text = f"{field}: {message}" if field else message
        return _error(api, request, 400, "invalid", text, field)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return _error(
            api,
            request,
            401,
            "unauthenticated",
            "sign in, or send Authorization: Bearer <token> (create one with `obeya token create`)",
        )

    @api.exception_handler(AuthorizationError)
    def forbidden(request: HttpRequest, exc: AuthorizationError) -> HttpResponse:
        return _error(api, request, 403, "forbidden", str(exc) or "forbidden")

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return _error(api, request, 404, "not_found", str(exc) or "not found")

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return _error(api, request, exc.status_code, "error", str(exc))

    @api.exception_handler(RequestDataTooBig)
    def too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        return _error(
            api,
            request,
            413,
            "too_large",
            f"the request body is over {limit:,} bytes, the most this route takes",
        )

    @api.exception_handler(TooManyFieldsSent)
    def too_many_fields(request: HttpRequest, exc: TooManyFieldsSent) -> HttpResponse:
        return _error(api, request, 400, "invalid", "too many query or form fields")

    # What the checks before a view let through and the database still refused: a number
    # past a column's range (PostgreSQL's integer is 32 bits), text longer than its column.
    # The statement failed, so its transaction is rolled back: nothing was written.
    @api.exception_handler(DataError)
    @api.exception_handler(OverflowError)
    def out_of_range(request: HttpRequest, exc: Exception) -> HttpResponse:
        log.warning("refused %s %s: %s", request.method, request.path, exc)
        return _error(
            api,
            request,
            422,
            "unprocessable",
            "a value is out of range or too long for what it is stored in",
        )

    @api.exception_handler(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(api, request, 500, "internal", "unexpected error; it has been logged")

    return api
