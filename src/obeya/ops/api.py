"""Operations API: monitors and their results, incidents with their timelines, causes and
postmortems.

Every rule lives in ``ops/services.py`` and ``ops/reviews.py``; this module only turns
requests into calls and answers into JSON. SLOs and problems are in ``reviews_api.py``,
notification channels in ``notify_api.py``, continuity in ``continuity_api.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from ninja import Router, Status
from ninja.pagination import LimitOffsetPagination, paginate

from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput, ObeyaError
from obeya.deploy import services as deploy
from obeya.ops import logic, reviews, services
from obeya.ops.schemas import (
    CauseIn,
    IncidentDetail,
    IncidentIn,
    IncidentOut,
    MonitorDetail,
    MonitorIn,
    MonitorOut,
    MonitorSettings,
    MoveIn,
    NoteIn,
    NoteOut,
    PostmortemIn,
    PostmortemOut,
)

router = Router(tags=["operations"])
RECENT_RESULTS = 100


class Shaped:
    """A queryset that the paginator slices; only the page's rows become bodies."""

    def __init__(self, rows: Any, shape: Callable[[Any], dict[str, Any]]) -> None:
        self.rows, self.shape = rows, shape

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        return [self.shape(row) for row in self.rows[window]]

    def __len__(self) -> int:
        return int(self.rows.count())


def sent_fields(payload: Any, nullable: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields the request names; null is refused (leave a field out to keep it)."""
    fields: dict[str, Any] = payload.model_dump(exclude_unset=True)
    for key, value in fields.items():
        if value is None and key not in nullable:
            raise InvalidInput(f"{key} cannot be null: leave it out to keep it", field=key)
    return fields


# ---- bodies ------------------------------------------------------------------------------


def _monitor(monitor: Any) -> dict[str, Any]:
    return {
        "name": monitor.name,
        "service": monitor.service.slug,
        **{key: getattr(monitor, key) for key in services.MONITOR_FIELDS},
        "created_at": monitor.created_at,
        "last_ok": monitor.last_ok,
        "last_checked_at": monitor.last_checked_at,
        "last_detail": monitor.last_detail,
        "consecutive_failures": monitor.consecutive_failures,
    }


def _monitor_detail(request: HttpRequest, monitor: Any) -> dict[str, Any]:
    since = actor_for_request(request, "api").now() - timedelta(days=1)
    newest = services.results_of(monitor, since).order_by("-at", "-id")[:RECENT_RESULTS]
    results = [
        {
            "at": r.at,
            "ok": r.ok,
            "latency_ms": r.latency_ms,
            "detail": r.detail,
            "lateness_ms": r.lateness_ms,
        }
        for r in newest
    ]
    return {**_monitor(monitor), "recent_results": results}


def _incident(incident: Any) -> dict[str, Any]:
    times = services.timings_of(incident)
    return {
        "number": incident.number,
        "key": incident.key,
        "service": incident.service.slug,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "commander": incident.commander.username if incident.commander_id else None,
        "source": incident.source,
        "monitor": incident.monitor.name if incident.monitor_id else None,
        "opened_at": incident.opened_at,
        "acknowledged_at": incident.acknowledged_at,
        "mitigated_at": incident.mitigated_at,
        "resolved_at": incident.resolved_at,
        "time_to_acknowledge_s": times.time_to_acknowledge_s,
        "time_to_restore_s": times.time_to_restore_s,
    }


def _cause(link: Any) -> dict[str, Any]:
    try:
        deployment = deploy.get_deployment(link.deployment_id)
        environment, status = deployment.environment.name, deployment.status
    except ObeyaError:  # the deployment is gone; the link stays as history
        environment, status = None, None
    return {
        "deployment": link.deployment_id,
        "environment": environment,
        "status": status,
        "automatic": link.automatic,
        "linked_at": link.linked_at,
        "linked_by": link.linked_by,
    }


def _postmortem(postmortem: Any) -> dict[str, Any] | None:
    if postmortem is None:
        return None
    return {
        "summary": postmortem.summary,
        "impact": postmortem.impact,
        "timeline": postmortem.timeline,
        "factors": list(postmortem.factors),
        "went_well": postmortem.went_well,
        "author": postmortem.author.username if postmortem.author_id else None,
        "created_at": postmortem.created_at,
        "updated_at": postmortem.updated_at,
        "actions": [{"title": a.title, "story_key": a.story_key} for a in postmortem.actions.all()],
    }


def _incident_detail(slug: str, number: int) -> dict[str, Any]:
    incident = services.get_incident(slug, number)
    return {
        **_incident(incident),
        "timeline": [asdict(entry) for entry in services.timeline(incident)],
        "causes": [_cause(link) for link in incident.causes.all()],
        "problems": sorted(incident.problems.values_list("number", flat=True)),
        "postmortem": _postmortem(reviews.postmortem_of(incident)),
    }


# ---- monitors ----------------------------------------------------------------------------


@router.get("/services/{slug}/monitors", response=list[MonitorOut], summary="A service's monitors")
@paginate(LimitOffsetPagination)
def list_monitors(request: HttpRequest, slug: str) -> Any:
    return Shaped(services.list_monitors(slug).select_related("service"), _monitor)


@router.post(
    "/services/{slug}/monitors",
    response={201: MonitorDetail},
    summary="Set up a monitor (reliability_engineer, devops_engineer or service_master)",
)
def create_monitor(request: HttpRequest, slug: str, payload: MonitorIn) -> Status[Any]:
    fields = sent_fields(payload)
    monitor = services.create_monitor(
        actor_for_request(request, "api"), slug, fields.pop("name"), **fields
    )
    return Status(201, _monitor_detail(request, monitor))


@router.get(
    "/services/{slug}/monitors/{name}",
    response=MonitorDetail,
    summary="One monitor, with its newest results",
)
def get_monitor(request: HttpRequest, slug: str, name: str) -> dict[str, Any]:
    return _monitor_detail(request, services.get_monitor(slug, name))


@router.patch(
    "/services/{slug}/monitors/{name}",
    response=MonitorDetail,
    summary="Change a monitor's settings (only the fields sent)",
)
def update_monitor(
    request: HttpRequest, slug: str, name: str, payload: MonitorSettings
) -> dict[str, Any]:
    monitor = services.update_monitor(
        actor_for_request(request, "api"), slug, name, **sent_fields(payload)
    )
    return _monitor_detail(request, monitor)


@router.delete("/services/{slug}/monitors/{name}", response={204: None}, summary="Remove a monitor")
def delete_monitor(request: HttpRequest, slug: str, name: str) -> Status[None]:
    services.delete_monitor(actor_for_request(request, "api"), slug, name)
    return Status(204, None)


# ---- incidents ---------------------------------------------------------------------------


def _incidents(slug: str, status: str) -> Shaped:
    if status and status not in (*logic.STATUSES, "unresolved"):
        raise InvalidInput(
            f"unknown status {status!r}: use {', '.join(logic.STATUSES)} or unresolved",
            field="status",
        )
    found = services.list_incidents(slug, status).select_related("monitor")
    return Shaped(found, _incident)


@router.get(
    "/incidents",
    response=list[IncidentOut],
    summary="Incidents of every service, newest first",
)
@paginate(LimitOffsetPagination)
def list_all_incidents(request: HttpRequest, service: str = "", status: str = "") -> Any:
    return _incidents(service, status)


@router.get(
    "/services/{slug}/incidents",
    response=list[IncidentOut],
    summary="A service's incidents, newest first",
)
@paginate(LimitOffsetPagination)
def list_incidents(request: HttpRequest, slug: str, status: str = "") -> Any:
    return _incidents(slug, status)


@router.post(
    "/services/{slug}/incidents",
    response={201: IncidentDetail},
    summary="Open an incident by hand (anyone on the team)",
)
def open_incident(request: HttpRequest, slug: str, payload: IncidentIn) -> Status[Any]:
    incident = services.open_incident(
        actor_for_request(request, "api"),
        slug,
        payload.title,
        payload.severity,
        deployment=payload.deployment,
    )
    return Status(201, _incident_detail(slug, incident.number))


@router.get(
    "/services/{slug}/incidents/{number}",
    response=IncidentDetail,
    summary="One incident: times, timeline, causes, problems and postmortem",
)
def get_incident(request: HttpRequest, slug: str, number: int) -> dict[str, Any]:
    return _incident_detail(slug, number)


def _moved(request: HttpRequest, slug: str, number: int, status: str, note: str) -> Any:
    services.move_incident(actor_for_request(request, "api"), slug, number, status, note)
    return _incident_detail(slug, number)


@router.post(
    "/services/{slug}/incidents/{number}/acknowledge",
    response=IncidentDetail,
    summary="Acknowledge the incident (operations roles); you become its commander if none",
)
def acknowledge(request: HttpRequest, slug: str, number: int, payload: MoveIn) -> Any:
    return _moved(request, slug, number, "acknowledged", payload.note)


@router.post(
    "/services/{slug}/incidents/{number}/mitigate",
    response=IncidentDetail,
    summary="Say the service is restored for its users (operations roles)",
)
def mitigate(request: HttpRequest, slug: str, number: int, payload: MoveIn) -> Any:
    return _moved(request, slug, number, "mitigated", payload.note)


@router.post(
    "/services/{slug}/incidents/{number}/resolve",
    response=IncidentDetail,
    summary="Resolve the incident (operations roles); skipped steps get the same time",
)
def resolve(request: HttpRequest, slug: str, number: int, payload: MoveIn) -> Any:
    return _moved(request, slug, number, "resolved", payload.note)


@router.post(
    "/services/{slug}/incidents/{number}/notes",
    response={201: NoteOut},
    summary="Add a note to the incident's timeline (anyone on the team)",
)
def add_note(request: HttpRequest, slug: str, number: int, payload: NoteIn) -> Status[Any]:
    note = services.add_note(actor_for_request(request, "api"), slug, number, payload.text)
    author = note.author.username if note.author else None
    return Status(201, {"at": note.at, "author": author, "text": note.text})


@router.post(
    "/services/{slug}/incidents/{number}/causes",
    response={201: IncidentDetail},
    summary="Link the deployment that caused the incident",
)
def link_deployment(request: HttpRequest, slug: str, number: int, payload: CauseIn) -> Status[Any]:
    services.link_deployment(actor_for_request(request, "api"), slug, number, payload.deployment)
    return Status(201, _incident_detail(slug, number))


@router.delete(
    "/services/{slug}/incidents/{number}/causes/{deployment}",
    response=IncidentDetail,
    summary="Remove a causal link to a deployment",
)
def unlink_deployment(
    request: HttpRequest, slug: str, number: int, deployment: int
) -> dict[str, Any]:
    services.unlink_deployment(actor_for_request(request, "api"), slug, number, deployment)
    return _incident_detail(slug, number)


@router.put(
    "/services/{slug}/incidents/{number}/postmortem",
    response=PostmortemOut,
    summary="Write or rewrite the blameless postmortem; new actions become change requests",
)
def write_postmortem(
    request: HttpRequest, slug: str, number: int, payload: PostmortemIn
) -> dict[str, Any]:
    postmortem = reviews.write_postmortem(
        actor_for_request(request, "api"), slug, number, **payload.model_dump()
    )
    return _postmortem(postmortem) or {}
