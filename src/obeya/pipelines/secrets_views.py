"""The Secrets page of a service: names, scopes and protection (never values), setting and
deleting a secret, and the protected refs. Every rule lives in ``secrets_store`` and
``runs.set_pipeline``; a refusal shows its message beside what was typed (except the value).
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
from obeya.core.errors import ObeyaError
from obeya.core.roles import Permission
from obeya.pipelines import runs, secrets_store


def _patterns(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


@login_required
def secret_list(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        service = catalog.get_service(slug)
    except ObeyaError as error:
        return render(request, "catalog/not_found.html", {"message": error.message}, status=404)
    actor = actor_for_request(request)
    typed: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        typed = {
            "name": request.POST.get("name", "").strip(),
            "environment": request.POST.get("environment", "").strip(),
            "protected": request.POST.get("protected") == "on",
        }
        try:
            secrets_store.set_secret(
                actor,
                slug,
                typed["name"],
                request.POST.get("value", ""),
                protected=typed["protected"],
                environment=typed["environment"],
            )
        except ObeyaError as error:
            messages.error(request, error.message)
            status = error.status
        else:
            messages.success(request, f"Secret {typed['name']} set.")
            return redirect(f"/services/{slug}/secrets/")
    pipeline = runs.pipeline_of(service)
    return render(
        request,
        "pipelines/secrets.html",
        {
            "service": service,
            "secrets": secrets_store.secret_names(slug),
            "typed": typed,
            "pipeline": pipeline,
            "can_manage": catalog.can(actor, service, Permission.MANAGE_SECRETS),
        },
        status=status,
    )


@login_required
@require_POST
def secret_delete(request: HttpRequest, slug: str) -> HttpResponse:
    name = request.POST.get("name", "")
    environment = request.POST.get("environment", "")
    try:
        secrets_store.delete_secret(actor_for_request(request), slug, name, environment)
    except ObeyaError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Secret {name} deleted.")
    return redirect(f"/services/{slug}/secrets/")


@login_required
@require_POST
def protected_refs(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        runs.set_pipeline(
            actor_for_request(request),
            slug,
            protected_branches=_patterns(request.POST.get("protected_branches", "")),
            protected_tags=_patterns(request.POST.get("protected_tags", "")),
        )
    except ObeyaError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Protected branches and tags saved.")
    return redirect(f"/services/{slug}/secrets/")
