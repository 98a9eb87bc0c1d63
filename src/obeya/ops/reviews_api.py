"""SLOs and problems over the API: error budgets with their daily series, and problems
grouping incidents. Every rule lives in ``ops/reviews.py``; postmortems are with the
incidents in ``ops/api.py``."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from django.http import HttpRequest
from ninja import Router, Status
from ninja.pagination import LimitOffsetPagination, paginate

from obeya.core.actors import actor_for_request
from obeya.ops import reviews
from obeya.ops.api import Shaped, sent_fields
from obeya.ops.schemas import (
    ProblemIn,
    ProblemOut,
    ProblemPatch,
    SloDetail,
    SloIn,
    SloOut,
    SlosFromStoriesIn,
)

router = Router(tags=["operations"])


# ---- bodies ------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) or math.isnan(value) else value


def _slo(request: HttpRequest, slo: Any, *, daily: bool = False) -> dict[str, Any]:
    view = reviews.slo_view(slo, actor_for_request(request, "api").now())
    status = {
        key: _finite(value) if isinstance(value, float) else value
        for key, value in asdict(view.status).items()
    }
    body = {
        "name": slo.name,
        "service": slo.service.slug,
        "kind": slo.kind,
        "objective_percent": slo.objective_percent,
        "window_days": slo.window_days,
        "latency_threshold_ms": slo.latency_threshold_ms,
        "monitor": slo.monitor.name,
        "story": slo.story,
        "created_at": slo.created_at,
        "status": status,
    }
    if daily:
        body["daily"] = [{"day": day, "achieved_percent": value} for day, value in view.daily]
    return body


def _problem(problem: Any) -> dict[str, Any]:
    return {
        "number": problem.number,
        "key": problem.key,
        "service": problem.service.slug,
        "title": problem.title,
        "status": problem.status,
        "known_error": problem.known_error,
        "workaround": problem.workaround,
        "analysis": problem.analysis,
        "incidents": sorted(incident.number for incident in problem.incidents.all()),
        "change_requests": list(problem.change_requests),
        "created_at": problem.created_at,
        "updated_at": problem.updated_at,
    }


# ---- SLOs --------------------------------------------------------------------------------


@router.get(
    "/services/{slug}/slos",
    response=list[SloOut],
    summary="A service's SLOs with their error budgets and burn rates (not paginated)",
)
def list_slos(request: HttpRequest, slug: str) -> list[dict[str, Any]]:
    return [_slo(request, slo) for slo in reviews.list_slos(slug).select_related("service")]


@router.post(
    "/services/{slug}/slos",
    response={201: SloDetail},
    summary="Set an SLO measured by one of the service's monitors",
)
def create_slo(request: HttpRequest, slug: str, payload: SloIn) -> Status[Any]:
    fields = payload.model_dump()
    slo = reviews.create_slo(actor_for_request(request, "api"), slug, fields.pop("name"), **fields)
    return Status(201, _slo(request, reviews.get_slo(slug, slo.name), daily=True))


@router.post(
    "/services/{slug}/slos-from-stories",
    response={201: list[SloOut]},
    summary="SLOs for the operation stories' targets not yet set",
)
def slos_from_stories(request: HttpRequest, slug: str, payload: SlosFromStoriesIn) -> Status[Any]:
    made = reviews.slos_from_stories(actor_for_request(request, "api"), slug, payload.monitor)
    return Status(201, [_slo(request, reviews.get_slo(slug, slo.name)) for slo in made])


@router.get(
    "/services/{slug}/slos/{name}",
    response=SloDetail,
    summary="One SLO: its status and the achieved percentage per day",
)
def get_slo(request: HttpRequest, slug: str, name: str) -> dict[str, Any]:
    return _slo(request, reviews.get_slo(slug, name), daily=True)


@router.delete("/services/{slug}/slos/{name}", response={204: None}, summary="Remove an SLO")
def delete_slo(request: HttpRequest, slug: str, name: str) -> Status[None]:
    reviews.delete_slo(actor_for_request(request, "api"), slug, name)
    return Status(204, None)


# ---- problems ----------------------------------------------------------------------------


@router.get(
    "/services/{slug}/problems",
    response=list[ProblemOut],
    summary="A service's problems, newest first",
)
@paginate(LimitOffsetPagination)
def list_problems(request: HttpRequest, slug: str) -> Any:
    return Shaped(reviews.list_problems(slug).select_related("service"), _problem)


@router.post(
    "/services/{slug}/problems",
    response={201: ProblemOut},
    summary="Open a problem grouping incidents with a common cause",
)
def open_problem(request: HttpRequest, slug: str, payload: ProblemIn) -> Status[Any]:
    problem = reviews.open_problem(
        actor_for_request(request, "api"), slug, payload.title, payload.incidents
    )
    return Status(201, _problem(reviews.get_problem(slug, problem.number)))


@router.get("/services/{slug}/problems/{number}", response=ProblemOut, summary="One problem")
def get_problem(request: HttpRequest, slug: str, number: int) -> dict[str, Any]:
    return _problem(reviews.get_problem(slug, number))


@router.patch(
    "/services/{slug}/problems/{number}",
    response=ProblemOut,
    summary="Change a problem (only the fields sent)",
)
def update_problem(
    request: HttpRequest, slug: str, number: int, payload: ProblemPatch
) -> dict[str, Any]:
    reviews.update_problem(actor_for_request(request, "api"), slug, number, **sent_fields(payload))
    return _problem(reviews.get_problem(slug, number))
