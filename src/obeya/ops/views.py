"""The Operations tab of a service: monitors, SLOs, open incidents, problems, continuity;
and the pages of one monitor and one problem. Incident and postmortem pages are in
``ops/incident_views.py``.

Every action goes through ``obeya.ops.services`` or ``obeya.ops.reviews``; a refusal shows
the page again with the message beside the refused form, what was typed still in it, and
the refusal's own HTTP status.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from obeya.backlog import services as backlog
from obeya.catalog import services as catalog
from obeya.core.actors import Actor, actor_for_request
from obeya.core.errors import ObeyaError
from obeya.core.roles import Permission
from obeya.deploy import services as deploy
from obeya.ops import forms, logic, reviews, services

SPARK_RESULTS = 40  # the last checks drawn in a monitor's sparkline
DETAIL_RESULTS = 100  # the last checks listed on a monitor's page
RECENT_INCIDENTS = 30
CAUSE_TIERS = ("production", "staging")

# Other parts of operations add panels to the tab: each takes the actor and the service and
# returns extra context. Continuity adds ``continuity``, drawn by ``ops/_continuity.html``.
PANELS: list[Callable[[Actor, Any], dict[str, Any]]] = []


def not_found(request: HttpRequest, error: ObeyaError) -> HttpResponse:
    return render(request, "catalog/not_found.html", {"message": error.message}, status=404)


def recent_deployments(slug: str, exclude: frozenset[int] = frozenset()) -> list[Any]:
    """Recent production and staging deployments: the usual suspects of an incident."""
    found = []
    for deployment in deploy.list_deployments(slug)[:60]:
        if deployment.environment.tier in CAUSE_TIERS and deployment.pk not in exclude:
            found.append(deployment)
    return found[:20]


# ---- monitors: status and sparkline ------------------------------------------------------


def monitor_status(monitor: Any) -> tuple[str, str]:
    """(css state, words): colour is never the only signal, the words say it too."""
    if not monitor.enabled:
        return "paused", "paused"
    if monitor.last_ok is None:
        return "unknown", "not checked yet"
    if monitor.last_ok:
        return "passing", "passing"
    return "failing", f"failing ({monitor.consecutive_failures}/{monitor.failure_threshold})"


def sparkline(results: list[Any]) -> dict[str, Any]:
    """Bars for the last checks: a passing check's height is its latency, a failure is a
    full-height bar with a cross (so it reads without colour)."""
    slowest = max((r.latency_ms for r in results if r.ok), default=0.0) or 1.0
    bars = []
    for index, result in enumerate(results):
        height = 24 if not result.ok else 4 + round(16 * result.latency_ms / slowest)
        bars.append(
            {
                "x": index * 5,
                "y": 24 - height,
                "height": height,
                "ok": result.ok,
                "title": f"{result.at:%Y-%m-%d %H:%M:%S} "
                f"{'passed' if result.ok else 'FAILED'} {result.latency_ms:.0f} ms"
                + (f": {result.detail}" if result.detail and not result.ok else ""),
            }
        )
    failed = sum(1 for r in results if not r.ok)
    return {
        "bars": bars,
        "width": max(5 * len(results), 5),
        "summary": f"{len(results) - failed} of the last {len(results)} checks passed"
        if results
        else "no checks yet",
        "failed": failed,
    }


def _last_results(monitor: Any, now: datetime, count: int) -> list[Any]:
    recent = services.results_of(monitor, now - timedelta(days=logic.RAW_DAYS))
    return list(reversed(recent.order_by("-at")[:count]))


def _monitor_row(monitor: Any, now: datetime) -> dict[str, Any]:
    state, words = monitor_status(monitor)
    return {
        "monitor": monitor,
        "state": state,
        "words": words,
        "spark": sparkline(_last_results(monitor, now, SPARK_RESULTS)),
    }


# ---- SLOs --------------------------------------------------------------------------------


def _slo_card(view: reviews.SloView) -> dict[str, Any]:
    status = view.status
    return {
        "slo": view.slo,
        "status": status,
        "bad": status.total - status.good,
        "alert_class": status.alert.replace(" ", "-"),
        "objective": f"{view.slo.objective_percent:g}",
        "threshold": f"{view.slo.latency_threshold_ms or 0:g}",
        "chart": {
            "name": view.slo.name,
            "objective": view.slo.objective_percent,
            "days": [day for day, _ in view.daily],
            "achieved": [None if value is None else round(value, 3) for _, value in view.daily],
        },
        "daily": view.daily,
        "fast_threshold": logic.FAST_BURN,
        "slow_threshold": logic.SLOW_BURN,
    }


# ---- the tab -----------------------------------------------------------------------------


def _overview_context(request: HttpRequest, service: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    slug, now = service.slug, actor.now()
    monitors = list(services.list_monitors(slug))
    context: dict[str, Any] = {
        "service": service,
        "monitors": [_monitor_row(monitor, now) for monitor in monitors],
        "monitor_names": [monitor.name for monitor in monitors],
        "slos": [_slo_card(reviews.slo_view(slo, now)) for slo in reviews.list_slos(slug)],
        "open_incidents": list(services.list_incidents(slug, "unresolved")),
        "resolved_incidents": list(services.list_incidents(slug, "resolved")[:5]),
        "problems": list(reviews.list_problems(slug)),
        "recent_incidents": list(services.list_incidents(slug)[:RECENT_INCIDENTS]),
        "deployments": recent_deployments(slug),
        "environments": [e.name for e in deploy.list_environments(slug)],
        "severities": services.severity_choices(),
        "can_configure": catalog.can(actor, service, Permission.CONFIGURE_MONITORING),
        "can_open": catalog.can(actor, service, Permission.EDIT_BACKLOG),
        "can_operate": catalog.can(actor, service, Permission.OPERATE),
        "monitor_values": dict(forms.MONITOR_DEFAULTS),
        "slo_values": dict(forms.SLO_DEFAULTS),
        "incident_values": {"severity": "sev3"},
        "problem_values": {},
        "refused": {},
    }
    for panel in PANELS:
        context.update(panel(actor, service))
    return context


def _service_or_404(request: HttpRequest, slug: str) -> Any:
    try:
        return catalog.get_service(slug)
    except ObeyaError as error:
        return not_found(request, error)


@login_required
def operations(request: HttpRequest, slug: str) -> HttpResponse:
    service = _service_or_404(request, slug)
    if isinstance(service, HttpResponse):
        return service
    return render(request, "ops/operations.html", _overview_context(request, service))


def _tab_refused(
    request: HttpRequest, slug: str, error: ObeyaError, form: str, values: dict[str, Any]
) -> HttpResponse:
    """The tab again, the message beside ``form`` and its typed ``values`` kept."""
    service = _service_or_404(request, slug)
    if isinstance(service, HttpResponse):
        return service
    context = _overview_context(request, service)
    context[f"{form}_values"] = values
    context["refused"] = {"form": form, "message": error.message, "field": error.field}
    return render(request, "ops/operations.html", context, status=error.status)


@login_required
@require_POST
def monitor_new(request: HttpRequest, slug: str) -> HttpResponse:
    name = request.POST.get("name", "")
    try:
        monitor = services.create_monitor(
            actor_for_request(request), slug, name, **forms.monitor_fields(request.POST)
        )
    except ObeyaError as error:
        return _tab_refused(request, slug, error, "monitor", forms.typed_monitor(request.POST))
    messages.success(request, f"Monitor {monitor.name} created: first check within a tick.")
    return redirect(f"/services/{slug}/operations/#monitor-{monitor.name}")


@login_required
@require_POST
def slo_new(request: HttpRequest, slug: str) -> HttpResponse:
    actor = actor_for_request(request)
    try:
        if request.POST.get("from_stories"):
            made = reviews.slos_from_stories(actor, slug, request.POST.get("monitor", ""))
            messages.success(
                request,
                f"{len(made)} SLO(s) made from the operation stories' targets."
                if made
                else "No operation story has an availability or latency target without an SLO.",
            )
            return redirect(f"/services/{slug}/operations/#slos")
        fields = forms.slo_fields(request.POST)
        slo = reviews.create_slo(actor, slug, request.POST.get("name", ""), **fields)
    except ObeyaError as error:
        return _tab_refused(request, slug, error, "slo", forms.typed(request.POST, forms.SLO_TEXT))
    messages.success(
        request, f"SLO {slo.name} set: {slo.objective_percent:g} % over {slo.window_days} days."
    )
    return redirect(f"/services/{slug}/operations/#slo-{slo.name}")


@login_required
@require_POST
def slo_delete(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    try:
        reviews.delete_slo(actor_for_request(request), slug, name)
    except ObeyaError as error:
        return _tab_refused(request, slug, error, "slos", {})
    messages.success(request, f"SLO {name} removed.")
    return redirect(f"/services/{slug}/operations/#slos")


@login_required
@require_POST
def incident_new(request: HttpRequest, slug: str) -> HttpResponse:
    values = forms.typed(request.POST, ("title", "severity", "deployment"))
    try:
        incident = services.open_incident(
            actor_for_request(request),
            slug,
            request.POST.get("title", ""),
            request.POST.get("severity", "sev3"),
            deployment=forms.deployment_id(request.POST),
        )
    except ObeyaError as error:
        return _tab_refused(request, slug, error, "incident", values)
    messages.success(request, f"{incident.key} opened: {incident.title}")
    return redirect(f"/services/{slug}/operations/incidents/{incident.number}/")


@login_required
@require_POST
def problem_new(request: HttpRequest, slug: str) -> HttpResponse:
    values = forms.typed_problem(request.POST)
    try:
        problem = reviews.open_problem(
            actor_for_request(request),
            slug,
            request.POST.get("title", ""),
            forms.numbers(request.POST, "incidents"),
        )
    except ObeyaError as error:
        return _tab_refused(request, slug, error, "problem", values)
    messages.success(request, f"{problem.key} opened: {problem.title}")
    return redirect(f"/services/{slug}/operations/problems/{problem.number}/")


# ---- one monitor -------------------------------------------------------------------------


def _monitor_context(request: HttpRequest, monitor: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    results = _last_results(monitor, actor.now(), DETAIL_RESULTS)
    state, words = monitor_status(monitor)
    return {
        "service": monitor.service,
        "monitor": monitor,
        "state": state,
        "words": words,
        "spark": sparkline(results[-SPARK_RESULTS:]),
        "results": list(reversed(results)),
        "incidents": list(monitor.incidents.order_by("-id")[:10]),
        "environments": [e.name for e in deploy.list_environments(monitor.service.slug)],
        "can_configure": catalog.can(actor, monitor.service, Permission.CONFIGURE_MONITORING),
        "monitor_values": forms.monitor_values(monitor),
        "refused": {},
    }


@login_required
def monitor_detail(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    try:
        monitor = services.get_monitor(slug, name)
    except ObeyaError as error:
        return not_found(request, error)
    if request.method == "POST":
        return _monitor_edit(request, slug, monitor)
    return render(request, "ops/monitor.html", _monitor_context(request, monitor))


def _monitor_edit(request: HttpRequest, slug: str, monitor: Any) -> HttpResponse:
    try:
        services.update_monitor(
            actor_for_request(request), slug, monitor.name, **forms.monitor_fields(request.POST)
        )
    except ObeyaError as error:
        context = _monitor_context(request, services.get_monitor(slug, monitor.name))
        context["monitor_values"] = forms.typed_monitor(request.POST)
        context["refused"] = {"form": "monitor", "message": error.message, "field": error.field}
        return render(request, "ops/monitor.html", context, status=error.status)
    messages.success(request, f"Settings of monitor {monitor.name} saved.")
    return redirect(f"/services/{slug}/operations/monitors/{monitor.name}/")


@login_required
@require_POST
def monitor_delete(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    try:
        monitor = services.get_monitor(slug, name)
    except ObeyaError as error:
        return not_found(request, error)
    try:
        services.delete_monitor(actor_for_request(request), slug, name)
    except ObeyaError as error:
        context = _monitor_context(request, monitor)
        context["refused"] = {"form": "delete", "message": error.message}
        return render(request, "ops/monitor.html", context, status=error.status)
    messages.success(request, f"Monitor {name} deleted, with its results.")
    return redirect(f"/services/{slug}/operations/#monitors")


# ---- one problem -------------------------------------------------------------------------


def _problem_context(request: HttpRequest, problem: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    slug = problem.service.slug
    grouped = list(problem.incidents.order_by("-number"))
    stories = {story.key: story for story in backlog.list_stories(slug, kind="change_request")}
    return {
        "service": problem.service,
        "problem": problem,
        "grouped": grouped,
        "linked": [(key, stories.get(key)) for key in problem.change_requests],
        "incidents": list(services.list_incidents(slug)[:RECENT_INCIDENTS]),
        "change_requests": list(stories.values()),
        "unlisted": [key for key in problem.change_requests if key not in stories],
        "statuses": reviews.PROBLEM_STATUSES,
        "can_operate": catalog.can(actor, problem.service, Permission.OPERATE),
        "values": forms.problem_values(problem),
        "refused": {},
    }


@login_required
def problem_detail(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    try:
        problem = reviews.get_problem(slug, number)
    except ObeyaError as error:
        return not_found(request, error)
    if request.method != "POST":
        return render(request, "ops/problem.html", _problem_context(request, problem))
    # A blank title or status keeps the one the problem has.
    fields = {
        k: v
        for k, v in forms.typed(request.POST, forms.PROBLEM_TEXT).items()
        if v or k not in {"title", "status"}
    }
    try:
        reviews.update_problem(
            actor_for_request(request),
            slug,
            number,
            **fields,
            incidents=forms.numbers(request.POST, "incidents"),
            change_requests=request.POST.getlist("change_requests"),
        )
    except ObeyaError as error:
        context = _problem_context(request, reviews.get_problem(slug, number))
        context["values"] = forms.typed_problem(request.POST)
        context["refused"] = {"form": "problem", "message": error.message, "field": error.field}
        return render(request, "ops/problem.html", context, status=error.status)
    messages.success(request, f"PRB-{number} saved.")
    return redirect(f"/services/{slug}/operations/problems/{number}/")
