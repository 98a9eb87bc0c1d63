"""Core pages: the audit trail and the account page with API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from obeya.core import events, services
from obeya.core.actors import actor_for_request
from obeya.core.errors import ObeyaError
from obeya.core.models import ApiToken, User

AUDIT_PAGE = 100


@login_required
def audit(request: HttpRequest) -> HttpResponse:
    filters = {key: request.GET.get(key, "").strip() for key in ("service", "kind", "subject")}
    found = events.timeline(
        service=filters["service"] or None,
        kind_prefix=filters["kind"] or None,
        subject=filters["subject"] or None,
    ).order_by("-id")
    page = Paginator(found, AUDIT_PAGE).get_page(request.GET.get("page"))
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    return render(request, "core/audit.html", {"page": page, "filters": filters, "query": query})


def _account(
    request: HttpRequest,
    status: int = 200,
    new_token: str = "",
    values: dict[str, str] | None = None,
) -> HttpResponse:
    assert isinstance(request.user, User)
    return render(
        request,
        "core/account.html",
        {
            "tokens": services.list_tokens(actor_for_request(request), request.user),
            "scopes": ApiToken.Scope.choices,
            "new_token": new_token,
            "values": values or {"name": "", "scope": "write", "days": "90"},
            "max_days": services.MAX_TOKEN_DAYS,
        },
        status=status,
    )


@login_required
def account(request: HttpRequest) -> HttpResponse:
    return _account(request)


@login_required
@require_POST
def token_create(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.user, User)
    values = {key: request.POST.get(key, "") for key in ("name", "scope", "days")}
    try:
        days = int(values["days"] or "90")
    except ValueError:
        messages.error(request, f"days must be a whole number, not “{values['days']}”")
        return _account(request, 400, values=values)
    try:
        token, plaintext = services.create_token(
            actor_for_request(request),
            request.user,
            name=values["name"],
            scope=values["scope"],
            days=days,
        )
    except ObeyaError as error:
        messages.error(request, error.message)
        return _account(request, error.status, values=values)
    messages.success(request, f"Token “{token.name}” created. Copy it now: it is shown only once.")
    return _account(request, new_token=plaintext)


@login_required
@require_POST
def password_change(request: HttpRequest) -> HttpResponse:
    assert isinstance(request.user, User)
    new = request.POST.get("new_password", "")
    if new != request.POST.get("confirm_password", ""):
        messages.error(request, "The new password and its confirmation differ: type them again.")
        return _account(request, 400)
    try:
        services.set_password(
            actor_for_request(request),
            request.user,
            new,
            current_password=request.POST.get("current_password", ""),
        )
    except ObeyaError as error:
        messages.error(request, error.message)
        return _account(request, error.status)
    update_session_auth_hash(request, request.user)
    messages.success(request, "Password changed.")
    return redirect("/account/")


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    try:
        token = services.revoke_token(actor_for_request(request), token_id)
    except ObeyaError as error:
        messages.error(request, error.message)
        return _account(request, error.status)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("/account/")
