"""How API requests authenticate: a Bearer token, or the browser's session plus CSRF."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from ninja.security import APIKeyCookie, HttpBearer

from obeya.core import services
from obeya.core.errors import PermissionDenied
from obeya.core.models import ApiToken

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TokenAuth(HttpBearer):
    """``Authorization: Bearer obeya_…``; a read-scope token may only read."""

    openapi_scheme = "bearer"

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        api_token = services.authenticate_token(token)
        if request.method not in SAFE_METHODS and api_token.scope == ApiToken.Scope.READ:
            raise PermissionDenied(
                f"token {api_token.prefix}… has the read scope and cannot {request.method}: "
                "create a write-scope token"
            )
        request.user = api_token.user
        request.api_token = api_token  # type: ignore[attr-defined]
        return api_token


class SessionAuth(APIKeyCookie):
    """The signed-in browser session; changes also need the CSRF token (403 without it)."""

    param_name = "sessionid"

    def __init__(self) -> None:
        super().__init__(csrf=False)  # checked below, after we know a session exists

    def _get_key(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if request.method not in SAFE_METHODS:
            reason = _csrf_failure(request)
            if reason:
                raise PermissionDenied(f"CSRF check failed ({reason}): reload the page and retry")
        return user


def _csrf_failure(request: HttpRequest) -> str | None:
    def accept(_: HttpRequest) -> HttpResponse:
        return HttpResponse()

    checker = CsrfViewMiddleware(accept)
    checker.process_request(request)
    response = checker.process_view(request, accept, (), {})
    if response is None:
        return None
    return str(getattr(response, "reason_phrase", "refused"))
