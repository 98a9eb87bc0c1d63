"""Deployments API: environments and their state, deploy and rollback requests, approvals,
cancel, and each deployment's log. Every rule lives in ``deploy/services.py``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router, Status
from ninja.pagination import LimitOffsetPagination, paginate

from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput
from obeya.core.paging import Mapped
from obeya.deploy import services
from obeya.deploy.schemas import (
    DecisionIn,
    DeployIn,
    DeploymentOut,
    EnvironmentDetail,
    EnvironmentIn,
    EnvironmentOut,
    EnvironmentSettings,
    LogOut,
    RollbackIn,
)

router = Router(tags=["deployments"])
LOG_PAGE = 1000


# ---- bodies ------------------------------------------------------------------------------


def _running(state: services.EnvironmentState) -> dict[str, Any] | None:
    serving = state.serving
    if serving is None:
        return None
    return {
        "deployment": serving.pk,
        "kind": serving.kind,
        "release_id": serving.release_id,
        "artifact_sha256": serving.artifact_sha256,
        "sha": serving.sha,
        "version": serving.version,
        "run": serving.run.number if serving.run_id and serving.run else None,
        "since": serving.switched_at or serving.finished_at,
        "deployed_by": serving.requested_by.username if serving.requested_by else None,
        "approved_by": state.approved_by,
    }


def _drift(state: services.EnvironmentState) -> dict[str, Any] | None:
    found = state.drift
    if found is None:
        return None
    return {
        "found": found.found,
        "summary": found.summary(),
        "changed": list(found.changed),
        "added": list(found.added),
        "missing": list(found.missing),
    }


def _environment(environment: Any) -> dict[str, Any]:
    return {
        "name": environment.name,
        "service": environment.service.slug,
        **{key: getattr(environment, key) for key in services.EDITABLE},
        "approved_origins": list(environment.approved_origins),
        "created_at": environment.created_at,
        "updated_at": environment.updated_at,
    }


def _detail(state: services.EnvironmentState) -> dict[str, Any]:
    environment = state.environment
    body = _environment(environment)
    body.update(
        current_release=state.current_release,
        running=_running(state),
        health_state=state.health,
        drift=_drift(state),
        last=state.last,
        waiting=state.waiting,
        next_environment=state.next_environment,
        not_yet_in_next=[
            {
                "sha": c.sha,
                "author_name": c.author_name,
                "committed_at": c.committed_at,
                "message": c.message,
            }
            for c in state.not_yet_in_next
        ],
        kept_releases=[
            {
                "release_id": r.release_id,
                "version": r.version,
                "sha": r.sha,
                "artifact_sha256": r.artifact_sha256,
                "created_at": r.created_at,
                "current": r.release_id == state.current_release,
            }
            for r in services.kept_releases(environment)
        ],
    )
    return body


def _settings_sent(payload: EnvironmentSettings) -> dict[str, Any]:
    """The settings the request names; null is refused (leave a setting out to keep it)."""
    fields = payload.model_dump(exclude_unset=True)
    for key, value in fields.items():
        if value is None:
            raise InvalidInput(f"{key} cannot be null: leave it out to keep it", field=key)
    return fields


def _deployment(deployment_id: int) -> Any:
    return services.get_deployment(deployment_id)


# ---- environments ------------------------------------------------------------------------


@router.get(
    "/services/{slug}/environments",
    response=list[EnvironmentOut],
    summary="A service's environments, in promotion order",
)
@paginate(LimitOffsetPagination)
def list_environments(request: HttpRequest, slug: str) -> Any:
    return Mapped(services.list_environments(slug).select_related("service"), _environment)


@router.post(
    "/services/{slug}/environments",
    response={201: EnvironmentDetail},
    summary="Define an environment (devops_engineer or service_master)",
)
def create_environment(request: HttpRequest, slug: str, payload: EnvironmentIn) -> Status[Any]:
    fields = _settings_sent(payload)
    environment = services.create_environment(
        actor_for_request(request, "api"), slug, fields.pop("name"), **fields
    )
    return Status(201, _detail(services.environment_state(environment)))


@router.get(
    "/services/{slug}/environments-overview",
    response=list[EnvironmentDetail],
    summary="Every environment side by side: what runs there and what waits",
)
def environments_overview(request: HttpRequest, slug: str) -> list[dict[str, Any]]:
    return [_detail(state) for state in services.overview(slug)]


@router.get(
    "/services/{slug}/environments/{name}",
    response=EnvironmentDetail,
    summary="One environment: its settings, what runs there, drift, what waits and what is next",
)
def get_environment(request: HttpRequest, slug: str, name: str) -> dict[str, Any]:
    return _detail(services.environment_state(services.get_environment(slug, name)))


@router.patch(
    "/services/{slug}/environments/{name}",
    response=EnvironmentDetail,
    summary="Change an environment's settings (only the fields sent)",
)
def update_environment(
    request: HttpRequest, slug: str, name: str, payload: EnvironmentSettings
) -> dict[str, Any]:
    environment = services.update_environment(
        actor_for_request(request, "api"), slug, name, **_settings_sent(payload)
    )
    return _detail(services.environment_state(environment))


# ---- deployments -------------------------------------------------------------------------


@router.get(
    "/services/{slug}/deployments",
    response=list[DeploymentOut],
    summary="A service's deployments, newest first",
)
@paginate(LimitOffsetPagination)
def list_deployments(
    request: HttpRequest, slug: str, environment: str = "", status: str = ""
) -> Any:
    found = services.list_deployments(slug, environment, status)
    return found.select_related("service").prefetch_related("approvals__user")


@router.post(
    "/services/{slug}/environments/{name}/deploy",
    response={201: DeploymentOut},
    summary="Deploy a run's build (default: the newest deployable run of the default branch)",
)
def deploy(request: HttpRequest, slug: str, name: str, payload: DeployIn) -> Status[Any]:
    made = services.deploy(actor_for_request(request, "api"), slug, name, payload.run)
    return Status(201, _deployment(made.pk))


@router.post(
    "/services/{slug}/environments/{name}/rollback",
    response={201: DeploymentOut},
    summary="Go back to a kept release (default: the one before current); approvals apply",
)
def rollback(request: HttpRequest, slug: str, name: str, payload: RollbackIn) -> Status[Any]:
    made = services.rollback(actor_for_request(request, "api"), slug, name, payload.to)
    return Status(201, _deployment(made.pk))


@router.get("/deployments/{deployment_id}", response=DeploymentOut, summary="One deployment")
def get_deployment(request: HttpRequest, deployment_id: int) -> Any:
    return _deployment(deployment_id)


@router.get(
    "/deployments/{deployment_id}/log",
    response=LogOut,
    summary="A deployment's log lines after the line ?after= (up to 1000 at a time)",
)
def deployment_log(request: HttpRequest, deployment_id: int, after: int = 0) -> dict[str, Any]:
    deployment = services.get_deployment(deployment_id)
    lines = list(services.log_of(deployment, max(0, after))[:LOG_PAGE])
    return {
        "deployment": deployment.pk,
        "status": deployment.status,
        "step": deployment.step,
        "lines": [{"id": x.pk, "at": x.at, "step": x.step, "line": x.line} for x in lines],
        "after": lines[-1].pk if lines else max(0, after),
    }


@router.post(
    "/deployments/{deployment_id}/approve",
    response=DeploymentOut,
    summary="Approve a deployment waiting for approval (its approval role; not its requester)",
)
def approve(request: HttpRequest, deployment_id: int, payload: DecisionIn) -> Any:
    services.decide(actor_for_request(request, "api"), deployment_id, payload.comment)
    return _deployment(deployment_id)


@router.post(
    "/deployments/{deployment_id}/reject",
    response=DeploymentOut,
    summary="Reject a deployment waiting for approval; it ends rejected",
)
def reject(request: HttpRequest, deployment_id: int, payload: DecisionIn) -> Any:
    services.decide(actor_for_request(request, "api"), deployment_id, payload.comment, reject=True)
    return _deployment(deployment_id)


@router.post(
    "/deployments/{deployment_id}/cancel",
    response=DeploymentOut,
    summary="Withdraw a deployment that has not started",
)
def cancel(request: HttpRequest, deployment_id: int) -> Any:
    services.cancel(actor_for_request(request, "api"), deployment_id)
    return _deployment(deployment_id)
