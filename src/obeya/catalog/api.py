"""Catalog API: services, their charter, lifecycle transitions, team members and timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate

from obeya.catalog import services
from obeya.core import events
from obeya.core.actors import actor_for_request
from obeya.core.api import EventOut
from obeya.core.paging import Mapped

router = Router(tags=["catalog"])


class MemberOut(Schema):
    username: str
    role: str
    since: datetime


class ServiceOut(Schema):
    slug: str
    name: str
    description: str
    repository_url: str
    owner_team: str
    vision: str
    goals: str
    business_value: str
    customers: str
    stage: str
    stage_changed_at: datetime
    created_at: datetime
    updated_at: datetime


class TransitionOut(Schema):
    to: str
    description: str
    allowed: bool
    problem: str | None


class ServiceDetail(ServiceOut):
    members: list[MemberOut]
    transitions: list[TransitionOut]


class ServiceIn(Schema):
    slug: str = Field(description="2-50 lower-case letters, digits and hyphens; never changes.")
    name: str
    description: str = ""
    repository_url: str = ""
    owner_team: str = ""
    vision: str = ""
    goals: str = ""
    business_value: str = ""
    customers: str = ""
    stage: str = "strategy"


class ServicePatch(Schema):
    name: str | None = None
    description: str | None = None
    repository_url: str | None = None
    owner_team: str | None = None
    vision: str | None = None
    goals: str | None = None
    business_value: str | None = None
    customers: str | None = None


class TransitionIn(Schema):
    to: str = Field(description="The stage to move to.")
    reason: str = ""


class MemberIn(Schema):
    username: str
    role: str


def _transitions(service: Any) -> list[dict[str, Any]]:
    return [
        {
            "to": option.stage.value,
            "description": option.description,
            "allowed": option.problem is None,
            "problem": option.problem,
        }
        for option in services.stage_options(service)
    ]


def _member(membership: Any) -> dict[str, Any]:
    return {
        "username": membership.user.username,
        "role": membership.role,
        "since": membership.since,
    }


def _detail(service: Any) -> dict[str, Any]:
    body = ServiceOut.from_orm(service).model_dump()
    body["members"] = [_member(m) for m in services.members(service)]
    body["transitions"] = _transitions(service)
    return body


@router.get("/services", response=list[ServiceOut], summary="List services")
@paginate(LimitOffsetPagination)
def list_services(request: HttpRequest, search: str = "", stage: str = "") -> Any:
    return services.list_services(search=search, stage=stage)


@router.post("/services", response={201: ServiceDetail}, summary="Register a service")
def create_service(request: HttpRequest, payload: ServiceIn) -> Status[Any]:
    fields = payload.model_dump()
    service = services.create_service(
        actor_for_request(request, "api"), fields.pop("slug"), fields.pop("name"), **fields
    )
    return Status(201, _detail(service))


@router.get("/services/{slug}", response=ServiceDetail, summary="One service in full")
def get_service(request: HttpRequest, slug: str) -> dict[str, Any]:
    return _detail(services.get_service(slug))


@router.patch("/services/{slug}", response=ServiceDetail, summary="Edit a service or its charter")
def update_service(request: HttpRequest, slug: str, payload: ServicePatch) -> dict[str, Any]:
    fields = payload.model_dump(exclude_unset=True)
    service = services.update_service(actor_for_request(request, "api"), slug, **fields)
    return _detail(service)


@router.get(
    "/services/{slug}/transitions",
    response=list[TransitionOut],
    summary="Lifecycle stages the service can move to next",
)
def list_transitions(request: HttpRequest, slug: str) -> list[dict[str, Any]]:
    return _transitions(services.get_service(slug))


@router.post(
    "/services/{slug}/transitions",
    response={201: ServiceDetail},
    summary="Move the service to another lifecycle stage",
)
def move_stage(request: HttpRequest, slug: str, payload: TransitionIn) -> Status[Any]:
    service = services.move_stage(
        actor_for_request(request, "api"), slug, payload.to, reason=payload.reason
    )
    return Status(201, _detail(service))


@router.get("/services/{slug}/members", response=list[MemberOut], summary="The service's team")
@paginate(LimitOffsetPagination)
def list_members(request: HttpRequest, slug: str) -> Any:
    return Mapped(services.members(services.get_service(slug)), _member)


@router.post("/services/{slug}/members", response={201: MemberOut}, summary="Give someone a role")
def add_member(request: HttpRequest, slug: str, payload: MemberIn) -> Status[Any]:
    membership = services.add_member(
        actor_for_request(request, "api"), slug, payload.username, payload.role
    )
    return Status(201, _member(membership))


@router.delete(
    "/services/{slug}/members/{username}/roles/{role}",
    response={204: None},
    summary="Take a role away",
)
def remove_member(request: HttpRequest, slug: str, username: str, role: str) -> Status[Any]:
    services.remove_member(actor_for_request(request, "api"), slug, username, role)
    return Status(204, None)


@router.get("/services/{slug}/events", response=list[EventOut], summary="The service's timeline")
@paginate(LimitOffsetPagination)
def service_events(request: HttpRequest, slug: str, order: str = "desc") -> Any:
    service = services.get_service(slug)
    found = events.timeline(service=service.slug)
    return found.order_by("-id") if order != "asc" else found
