"""Catalog pages: the services list, a new-service form and the service page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from obeya.catalog import services
from obeya.catalog.forms import CHARTER_FIELDS, SERVICE_FIELDS, submitted
from obeya.catalog.logic import STAGE_DESCRIPTIONS, Stage
from obeya.core import events
from obeya.core import services as core_services
from obeya.core.actors import actor_for_request
from obeya.core.errors import ObeyaError
from obeya.core.roles import ROLE_DESCRIPTIONS, Permission, Role

TIMELINE_PAGE = 50


@login_required
def service_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    stage = request.GET.get("stage", "")
    try:
        found = list(services.list_services(search=search, stage=stage))
    except ObeyaError as error:
        messages.error(request, error.message)
        found, stage = list(services.list_services(search=search)), ""
    return render(
        request,
        "catalog/service_list.html",
        {"services": found, "q": search, "stage": stage, "stages": list(Stage)},
    )


@login_required
def service_new(request: HttpRequest) -> HttpResponse:
    names = ("slug", *(f[0] for f in SERVICE_FIELDS), *(f[0] for f in CHARTER_FIELDS))
    values = {"stage": Stage.STRATEGY.value}
    status = 200
    if request.method == "POST":
        values = submitted(request.POST, (*names, "stage"))
        fields = dict(values)
        try:
            service = services.create_service(
                actor_for_request(request), fields.pop("slug"), fields.pop("name"), **fields
            )
        except ObeyaError as error:
            messages.error(request, error.message)
            status = error.status
        else:
            messages.success(
                request, f"Service “{service.name}” registered. You are its service master."
            )
            return redirect(f"/services/{service.slug}/")
    return render(
        request,
        "catalog/service_new.html",
        {
            "values": values,
            "service_fields": SERVICE_FIELDS,
            "charter_fields": CHARTER_FIELDS,
            "stages": [s for s in Stage if s != Stage.RETIRED],
        },
        status=status,
    )


def _page_context(request: HttpRequest, service: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    timeline = events.timeline(service=service.slug).order_by("-id")
    page = Paginator(timeline, TIMELINE_PAGE).get_page(request.GET.get("page"))
    current = list(Stage).index(Stage(service.stage))
    return {
        "service": service,
        "members": list(services.members(service)),
        "stage_track": [
            {
                "stage": s,
                "state": "done" if i < current else "current" if i == current else "todo",
                "description": STAGE_DESCRIPTIONS[s],
            }
            for i, s in enumerate(Stage)
        ],
        "stage_options": services.stage_options(service),
        "timeline": page,
        "roles": [(role.value, ROLE_DESCRIPTIONS[role]) for role in Role],
        "users": list(core_services.list_users().values_list("username", flat=True)),
        "service_fields": SERVICE_FIELDS,
        "charter_fields": CHARTER_FIELDS,
        "charter": [(label, getattr(service, name)) for name, label, *_ in CHARTER_FIELDS],
        "values": {name: getattr(service, name) for name in services.EDITABLE_FIELDS},
        "can_edit": services.can(actor, service, Permission.EDIT_CHARTER),
        "can_move": services.can(actor, service, Permission.MOVE_STAGE),
        "can_manage_team": services.can(actor, service, Permission.MANAGE_TEAM),
        "my_roles": sorted(services.roles_of(actor.user, service)),
    }


@login_required
def service_detail(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        service = services.get_service(slug)
    except ObeyaError as error:
        return render(request, "catalog/not_found.html", {"message": error.message}, status=404)
    context = _page_context(request, service)
    context["edit"] = request.GET.get("edit") == "1"
    return render(request, "catalog/service_detail.html", context)


def _after_change(
    request: HttpRequest,
    slug: str,
    error: ObeyaError | None,
    values: dict[str, str] | None = None,
    section: str = "",
) -> HttpResponse:
    """Redirect on success; on refusal show the page again with the message and the input."""
    if error is None:
        return redirect(f"/services/{slug}/{section}")
    try:
        service = services.get_service(slug)
    except ObeyaError as missing:
        return render(request, "catalog/not_found.html", {"message": missing.message}, status=404)
    context = _page_context(request, service)
    context["edit"] = section == "#charter"
    context["values"] = {**context["values"], **(values or {})}
    # Shown beside the refused form, not only at the top of a long page.
    context["refused"] = {"section": section.lstrip("#"), "message": error.message}
    return render(request, "catalog/service_detail.html", context, status=error.status)


@login_required
@require_POST
def service_edit(request: HttpRequest, slug: str) -> HttpResponse:
    names = tuple(f[0] for f in (*SERVICE_FIELDS, *CHARTER_FIELDS))
    values = submitted(request.POST, names)
    try:
        services.update_service(actor_for_request(request), slug, **values)
    except ObeyaError as error:
        return _after_change(request, slug, error, values, "#charter")
    messages.success(request, "Charter saved.")
    return _after_change(request, slug, None, section="#charter")


@login_required
@require_POST
def service_stage(request: HttpRequest, slug: str) -> HttpResponse:
    values = submitted(request.POST, ("to", "reason"))
    try:
        service = services.move_stage(
            actor_for_request(request), slug, values["to"], reason=values["reason"]
        )
    except ObeyaError as error:
        return _after_change(request, slug, error, values, "#lifecycle")
    messages.success(request, f"Moved to stage “{service.stage}”.")
    return _after_change(request, slug, None, section="#lifecycle")


@login_required
@require_POST
def member_add(request: HttpRequest, slug: str) -> HttpResponse:
    values = submitted(request.POST, ("username", "role"))
    try:
        services.add_member(actor_for_request(request), slug, values["username"], values["role"])
    except ObeyaError as error:
        return _after_change(request, slug, error, values, "#team")
    messages.success(request, f"{values['username']} is now {values['role']}.")
    return _after_change(request, slug, None, section="#team")


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str) -> HttpResponse:
    values = submitted(request.POST, ("username", "role"))
    try:
        services.remove_member(actor_for_request(request), slug, values["username"], values["role"])
    except ObeyaError as error:
        return _after_change(request, slug, error, values, "#team")
    messages.success(request, f"{values['username']} no longer holds {values['role']}.")
    return _after_change(request, slug, None, section="#team")
