"""Deployment pages: a service's environments side by side, one environment, one deployment.

Every action goes through ``obeya.deploy.services``; a refusal shows the page again with
the service's message beside the refused form and what was typed still in it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from obeya.catalog import services as catalog
from obeya.core.actors import Actor, actor_for_request
from obeya.core.errors import InvalidInput, NotFound, ObeyaError
from obeya.core.roles import Permission, Role
from obeya.deploy import forms, services
from obeya.deploy.logic import TIERS, WAITING

HISTORY_PAGE = 30
LIVE = frozenset({*WAITING, "running"})


def _not_found(request: HttpRequest, error: ObeyaError) -> HttpResponse:
    return render(request, "catalog/not_found.html", {"message": error.message}, status=404)


def _may_deploy(actor: Actor, environment: Any) -> bool:
    service = environment.service
    if not catalog.can(actor, service, Permission.DEPLOY):
        return False
    return not environment.protected or catalog.can(actor, service, Permission.DEPLOY_PROTECTED)


def _on_team(actor: Actor, service: Any) -> bool:
    """Whether to offer the approval forms: the service itself judges who may decide."""
    return actor.is_admin or bool(catalog.roles_of(actor.user, service))


def _decided(actor: Actor, approvals: list[Any]) -> bool:
    """Whether ``actor`` has approved or rejected already (each person decides once)."""
    return any(a.user_id == getattr(actor.user, "pk", None) for a in approvals)


def _waiting(actor: Actor, deployment: Any) -> dict[str, Any]:
    approvals = list(deployment.approvals.select_related("user"))
    return {"deployment": deployment, "approvals": approvals, "decided": _decided(actor, approvals)}


def _rollback_choices(environment: Any, current: str) -> list[tuple[Any, bool]]:
    """Kept releases other than the current one; the newest older one is the default."""
    kept = [r for r in services.kept_releases(environment) if r.release_id != current]
    default = next((r.release_id for r in kept if not current or r.release_id < current), "")
    return [(release, release.release_id == default) for release in kept]


# ---- the environments tab ----------------------------------------------------------------


def _overview_context(request: HttpRequest, service: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    on_team = _on_team(actor, service)
    cards = []
    for state in services.overview(service.slug):
        environment = state.environment
        may_deploy = _may_deploy(actor, environment)
        cards.append(
            {
                "state": state,
                "environment": environment,
                "health_class": state.health.replace(" ", "-"),
                "may_deploy": may_deploy,
                "runs": services.deployable_runs(environment) if may_deploy else [],
                "releases": _rollback_choices(environment, state.current_release)
                if may_deploy
                else [],
                "waiting": [_waiting(actor, deployment) for deployment in state.waiting],
            }
        )
    return {
        "service": service,
        "cards": cards,
        "on_team": on_team,
        "can_configure": catalog.can(actor, service, Permission.CONFIGURE_ENVIRONMENTS),
        "tiers": TIERS,
        "roles": [role.value for role in Role],
        "values": {"tier": "development", "target_kind": "local", "health_kind": ""},
    }


@login_required
def environments(request: HttpRequest, slug: str) -> HttpResponse:
    """The service's environments side by side; a POST here defines a new one."""
    try:
        service = catalog.get_service(slug)
    except ObeyaError as error:
        return _not_found(request, error)
    if request.method == "POST":
        return _create_environment(request, service)
    return render(request, "deploy/environments.html", _overview_context(request, service))


# ---- one environment ---------------------------------------------------------------------


def _environment_context(request: HttpRequest, environment: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    service = environment.service
    history = services.list_deployments(service.slug, environment=environment.name)
    page = Paginator(history.prefetch_related("approvals__user"), HISTORY_PAGE).get_page(
        request.GET.get("page")
    )
    state = services.environment_state(environment, with_commits=False)
    may_deploy = _may_deploy(actor, environment)
    return {
        "service": service,
        "environment": environment,
        "state": state,
        "health_class": state.health.replace(" ", "-"),
        "releases": services.kept_releases(environment),
        "page": page,
        "may_deploy": may_deploy,
        "can_configure": catalog.can(actor, service, Permission.CONFIGURE_ENVIRONMENTS),
        "may_protect": services.may_change_protection(actor, environment),
        "tiers": TIERS,
        "roles": [role.value for role in Role],
        "values": forms.settings_values(environment),
        "edit": request.GET.get("edit") == "1",
    }


def _environment_or_404(request: HttpRequest, slug: str, name: str) -> Any:
    try:
        return services.get_environment(slug, name)
    except ObeyaError as error:
        return _not_found(request, error)


@login_required
def environment_detail(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    environment = _environment_or_404(request, slug, name)
    if isinstance(environment, HttpResponse):
        return environment
    return render(request, "deploy/environment.html", _environment_context(request, environment))


def _create_environment(request: HttpRequest, service: Any) -> HttpResponse:
    slug, name = service.slug, request.POST.get("name", "")
    try:
        environment = services.create_environment(
            actor_for_request(request), slug, name, **forms.settings_from(request.POST)
        )
    except ObeyaError as error:
        context = _overview_context(request, service)
        context["values"] = forms.typed(request.POST)
        context["refused"] = {"form": "new", "message": error.message}
        return render(request, "deploy/environments.html", context, status=error.status)
    messages.success(request, f"Environment {environment.name} defined.")
    return redirect(f"/services/{slug}/environments/#env-{environment.name}")


@login_required
@require_POST
def environment_edit(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    environment = _environment_or_404(request, slug, name)
    if isinstance(environment, HttpResponse):
        return environment
    try:
        services.update_environment(
            actor_for_request(request), slug, name, **forms.settings_from(request.POST, environment)
        )
    except ObeyaError as error:
        context = _environment_context(request, services.get_environment(slug, name))
        context["values"] = forms.typed(request.POST)
        context["edit"] = True
        context["refused"] = {"form": "settings", "message": error.message}
        return render(request, "deploy/environment.html", context, status=error.status)
    messages.success(request, f"Settings of {name} saved.")
    return redirect(f"/services/{slug}/environments/{name}/")


@login_required
@require_POST
def environment_protection(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """A gatekeeper's own form: protection only, nothing else of the environment."""
    environment = _environment_or_404(request, slug, name)
    if isinstance(environment, HttpResponse):
        return environment
    try:
        services.update_environment(
            actor_for_request(request), slug, name, **forms.protection_from(request.POST)
        )
    except ObeyaError as error:
        context = _environment_context(request, services.get_environment(slug, name))
        typed = forms.typed(request.POST)
        context["values"].update({key: typed[key] for key in services.PROTECTION})
        context["refused"] = {"form": "protection", "message": error.message}
        return render(request, "deploy/environment.html", context, status=error.status)
    messages.success(request, f"Protection of {name} saved.")
    return redirect(f"/services/{slug}/environments/{name}/#settings")


# ---- asking for a deployment or a rollback -----------------------------------------------


def _refused(
    request: HttpRequest, slug: str, name: str, error: ObeyaError, refused: dict[str, Any]
) -> HttpResponse:
    """The page the refused form was on, again, with the message beside that form."""
    refused["message"] = error.message
    if request.POST.get("back") == "environment":
        environment = _environment_or_404(request, slug, name)
        if isinstance(environment, HttpResponse):
            return environment
        context = _environment_context(request, environment)
        template = "deploy/environment.html"
    else:
        try:
            context = _overview_context(request, catalog.get_service(slug))
        except ObeyaError as missing:
            return _not_found(request, missing)
        template = "deploy/environments.html"
    context["refused"] = refused
    return render(request, template, context, status=error.status)


def _started(request: HttpRequest, slug: str, deployment: Any, what: str) -> HttpResponse:
    if deployment.status == "waiting_approval":
        needed, role = deployment.required_approvals, deployment.approval_role
        messages.success(
            request, f"{what} #{deployment.pk} waits for {needed} approval(s) by a {role}."
        )
    else:
        messages.success(request, f"{what} #{deployment.pk} is {deployment.status}.")
    return redirect(f"/services/{slug}/deployments/{deployment.pk}/")


@login_required
@require_POST
def deploy(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    text = request.POST.get("run", "").strip()
    try:
        if text and not text.isdigit():
            raise InvalidInput(f"run: a run number, not {text!r}", field="run")
        deployment = services.deploy(
            actor_for_request(request), slug, name, int(text) if text else None
        )
    except ObeyaError as error:
        return _refused(
            request, slug, name, error, {"form": "deploy", "environment": name, "run": text}
        )
    return _started(request, slug, deployment, "Deployment")


@login_required
@require_POST
def rollback(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    to = request.POST.get("to", "").strip()
    try:
        deployment = services.rollback(actor_for_request(request), slug, name, to or None)
    except ObeyaError as error:
        return _refused(
            request, slug, name, error, {"form": "rollback", "environment": name, "to": to}
        )
    return _started(request, slug, deployment, "Rollback")


# ---- one deployment ----------------------------------------------------------------------


def _deployment_of(slug: str, deployment_id: int) -> Any:
    deployment = services.get_deployment(deployment_id)
    if deployment.service.slug != slug:
        raise NotFound(f'"{slug}" has no deployment {deployment_id}', field="deployment")
    return deployment


def _live_context(request: HttpRequest, deployment: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    return {
        "service": deployment.service,
        "deployment": deployment,
        "environment": deployment.environment,
        "lines": list(services.log_of(deployment)),
        "approvals": list(deployment.approvals.select_related("user")),
        "live": deployment.status in LIVE,
        # a page waiting for approval polls slowly: a decision may come from elsewhere
        "every": "5s" if deployment.status == "waiting_approval" else "1s",
        "may_cancel": deployment.status in WAITING
        and catalog.can(actor, deployment.service, Permission.DEPLOY),
    }


def _deployment_context(request: HttpRequest, deployment: Any) -> dict[str, Any]:
    actor = actor_for_request(request)
    context = _live_context(request, deployment)
    repository = deployment.service.repository_url or ""
    context.update(
        {
            "on_team": _on_team(actor, deployment.service),
            "decided": _decided(actor, context["approvals"]),
            "commit_url": f"{repository.removesuffix('.git')}/commit/{deployment.sha}"
            if repository.startswith(("http://", "https://")) and deployment.sha
            else "",
        }
    )
    return context


@login_required
def deployment_detail(request: HttpRequest, slug: str, deployment_id: int) -> HttpResponse:
    try:
        deployment = _deployment_of(slug, deployment_id)
    except ObeyaError as error:
        return _not_found(request, error)
    return render(request, "deploy/deployment.html", _deployment_context(request, deployment))


@login_required
def deployment_live(request: HttpRequest, slug: str, deployment_id: int) -> HttpResponse:
    """The part of a deployment's page that changes while it runs (polled by htmx)."""
    try:
        deployment = _deployment_of(slug, deployment_id)
    except ObeyaError as error:
        return HttpResponse(error.message, status=404, content_type="text/plain")
    if request.GET.get("was") == "waiting_approval" and deployment.status != "waiting_approval":
        # The approval forms outside this part are stale now: reload the whole page.
        response = HttpResponse(status=200)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "deploy/_live.html", _live_context(request, deployment))


@login_required
@require_POST
def deployment_decide(request: HttpRequest, slug: str, deployment_id: int) -> HttpResponse:
    comment = request.POST.get("comment", "")
    reject = request.POST.get("decision") == "reject"
    try:
        _deployment_of(slug, deployment_id)
        deployment = services.decide(
            actor_for_request(request), deployment_id, comment, reject=reject
        )
    except ObeyaError as error:
        return _decision_refused(request, slug, deployment_id, error, "decide")
    verb = "Rejected" if reject else "Approved"
    messages.success(request, f"{verb} deployment #{deployment.pk}: it is {deployment.status}.")
    return redirect(f"/services/{slug}/deployments/{deployment.pk}/")


def _decision_refused(
    request: HttpRequest, slug: str, deployment_id: int, error: ObeyaError, form: str
) -> HttpResponse:
    """The refused decision (or cancel) shown beside its form, the comment as typed."""
    refused = {
        "form": form,
        "id": deployment_id,
        "message": error.message,
        "comment": request.POST.get("comment", ""),
    }
    try:
        deployment = _deployment_of(slug, deployment_id)
    except ObeyaError as missing:
        return _not_found(request, missing)
    # Once it waits no more, the environments tab no longer lists it: show its own page.
    if request.POST.get("back") == "environments" and deployment.status == "waiting_approval":
        context = _overview_context(request, deployment.service)
        template = "deploy/environments.html"
    else:
        context = _deployment_context(request, deployment)
        template = "deploy/deployment.html"
    context["refused"] = refused
    return render(request, template, context, status=error.status)


@login_required
@require_POST
def deployment_cancel(request: HttpRequest, slug: str, deployment_id: int) -> HttpResponse:
    try:
        _deployment_of(slug, deployment_id)
        deployment = services.cancel(actor_for_request(request), deployment_id)
    except ObeyaError as error:
        return _decision_refused(request, slug, deployment_id, error, "cancel")
    messages.success(request, f"Deployment #{deployment.pk} canceled.")
    return redirect(f"/services/{slug}/deployments/{deployment.pk}/")
