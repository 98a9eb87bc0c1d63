"""The page of one incident (status, times, timeline, notes, causal deployments) and its
blameless postmortem.

Every action goes through ``obeya.ops.services`` or ``obeya.ops.reviews``; a refusal shows
the page again with the message beside the refused form, what was typed still in it, and
the refusal's own HTTP status.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from obeya.catalog import services as catalog
from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput, ObeyaError
from obeya.core.roles import Permission
from obeya.deploy import services as deploy
from obeya.ops import forms, logic, reviews, services
from obeya.ops.views import not_found, recent_deployments

MOVES = {"acknowledged": "Acknowledge", "mitigated": "Mitigate", "resolved": "Resolve"}
RESTORED = frozenset({"mitigated", "resolved"})


def _url(incident: Any, rest: str = "") -> str:
    return f"/services/{incident.service.slug}/operations/incidents/{incident.number}/{rest}"


def _cause(deployment_id: int) -> Any:
    """The linked deployment, or None when it no longer exists."""
    try:
        return deploy.get_deployment(deployment_id)
    except ObeyaError:
        return None


def _incident_context(request: HttpRequest, incident: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    service, slug = incident.service, incident.service.slug
    links = list(incident.causes.all())
    after = logic.STATUSES[logic.STATUSES.index(incident.status) + 1 :]
    return {
        "service": service,
        "incident": incident,
        "times": services.timings_of(incident),
        "timeline": services.timeline(incident),
        "causes": [(link, _cause(link.deployment_id)) for link in links],
        "candidates": recent_deployments(slug, frozenset(link.deployment_id for link in links)),
        "moves": [(status, MOVES[status]) for status in after],
        "postmortem": reviews.postmortem_of(incident),
        "restored": incident.status in RESTORED,
        "problems": list(incident.problems.order_by("-number")),
        "can_operate": catalog.can(actor, service, Permission.OPERATE),
        "can_note": catalog.can(actor, service, Permission.EDIT_BACKLOG),
        "refused": {},
    }


def _incident_or_404(request: HttpRequest, slug: str, number: int) -> Any:
    try:
        return services.get_incident(slug, number)
    except ObeyaError as error:
        return not_found(request, error)


@login_required
def incident_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    incident = _incident_or_404(request, slug, number)
    if isinstance(incident, HttpResponse):
        return incident
    return render(request, "ops/incident.html", _incident_context(request, incident))


def _refused(
    request: HttpRequest, slug: str, number: int, error: ObeyaError, refused: dict[str, Any]
) -> HttpResponse:
    """The incident's page again, the message beside the refused form, its text kept."""
    incident = _incident_or_404(request, slug, number)
    if isinstance(incident, HttpResponse):
        return incident
    context = _incident_context(request, incident)
    context["refused"] = {**refused, "message": error.message, "field": error.field}
    return render(request, "ops/incident.html", context, status=error.status)


@login_required
@require_POST
def incident_move(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    status, note = request.POST.get("status", ""), request.POST.get("note", "")
    try:
        incident = services.move_incident(actor_for_request(request), slug, number, status, note)
    except ObeyaError as error:
        return _refused(request, slug, number, error, {"form": "move", "note": note})
    messages.success(request, f"{incident.key} is {incident.status}.")
    return redirect(_url(incident))


@login_required
@require_POST
def incident_note(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    text = request.POST.get("text", "")
    try:
        services.add_note(actor_for_request(request), slug, number, text)
    except ObeyaError as error:
        return _refused(request, slug, number, error, {"form": "note", "text": text})
    messages.success(request, f"Note added to INC-{number}.")
    return redirect(f"/services/{slug}/operations/incidents/{number}/#timeline")


@login_required
@require_POST
def incident_link(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    typed = request.POST.get("deployment", "")
    try:
        deployment = forms.deployment_id(request.POST)
        if deployment is None:
            raise InvalidInput("choose the deployment that caused it", field="deployment")
        services.link_deployment(actor_for_request(request), slug, number, deployment)
    except ObeyaError as error:
        return _refused(request, slug, number, error, {"form": "link", "deployment": typed})
    messages.success(request, f"INC-{number} linked to deployment #{deployment}.")
    return redirect(f"/services/{slug}/operations/incidents/{number}/#causes")


@login_required
@require_POST
def incident_unlink(
    request: HttpRequest, slug: str, number: int, deployment_id: int
) -> HttpResponse:
    try:
        services.unlink_deployment(actor_for_request(request), slug, number, deployment_id)
    except ObeyaError as error:
        return _refused(
            request, slug, number, error, {"form": "unlink", "deployment": str(deployment_id)}
        )
    messages.success(request, f"INC-{number} is no longer linked to deployment #{deployment_id}.")
    return redirect(f"/services/{slug}/operations/incidents/{number}/#causes")


# ---- the postmortem ----------------------------------------------------------------------


def _postmortem_context(request: HttpRequest, incident: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    postmortem = reviews.postmortem_of(incident)
    return {
        "service": incident.service,
        "incident": incident,
        "postmortem": postmortem,
        "actions": list(postmortem.actions.all()) if postmortem else [],
        "restored": incident.status in RESTORED,
        "can_write": catalog.can(actor, incident.service, Permission.EDIT_BACKLOG),
        "values": forms.postmortem_values(postmortem, reviews.timeline_text(incident)),
        "refused": {},
    }


@login_required
def postmortem(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """The postmortem form: pre-filled with the incident's timeline, or with what it says."""
    incident = _incident_or_404(request, slug, number)
    if isinstance(incident, HttpResponse):
        return incident
    if request.method != "POST":
        return render(request, "ops/postmortem.html", _postmortem_context(request, incident))
    typed = forms.typed(request.POST, forms.POSTMORTEM_TEXT)
    try:
        written = reviews.write_postmortem(
            actor_for_request(request),
            slug,
            number,
            summary=typed["summary"],
            impact=typed["impact"],
            factors=forms.lines(typed["factors"]),
            went_well=typed["went_well"],
            timeline=typed["timeline"],
            actions=forms.lines(typed["actions"]),
        )
    except ObeyaError as error:
        context = _postmortem_context(request, incident)
        context["values"] = typed
        context["refused"] = {"form": "postmortem", "message": error.message, "field": error.field}
        return render(request, "ops/postmortem.html", context, status=error.status)
    count = written.actions.count()
    messages.success(
        request,
        f"Postmortem of {incident.key} saved"
        + (f"; {count} follow-up(s) are change requests in the backlog." if count else "."),
    )
    return redirect(_url(incident, "postmortem/"))
