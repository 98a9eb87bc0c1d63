"""Core API: health, the event log, the signed-in user, users, roles and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Router, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate

import obeya
from obeya.core import audit, chain, events, services
from obeya.core.actors import actor_for_request
from obeya.core.errors import InvalidInput, Unauthenticated
from obeya.core.models import ApiToken, User
from obeya.core.paging import Mapped
from obeya.core.roles import ROLE_DESCRIPTIONS, ROLE_PERMISSIONS, Role

router = Router(tags=["core"])


class HealthOut(Schema):
    status: str
    version: str
    database: str
    time: datetime


class EventOut(Schema):
    id: int
    at: datetime
    actor: str = Field(alias="actor_name")
    channel: str
    ip: str | None
    kind: str
    subject: str
    service: str
    data: dict[str, Any]
    prev_hash: str = Field(description="The hash of the event before it (64 zeros: none).")
    hash: str = Field(description="SHA-256 of its content and prev_hash (docs/audit.md).")


class AuditProblemOut(Schema):
    event: int
    kind: str = Field(description="changed, unchained, gap, link or anchor.")
    message: str


class AuditReportOut(Schema):
    ok: bool
    summary: str
    events: int
    first: int | None
    last: int | None
    head: str = Field(description="The hash of the newest event: note it as an anchor.")
    problems: list[AuditProblemOut]
    more_problems: int = Field(description="Problems found beyond the ones listed.")


class UserOut(Schema):
    username: str
    email: str
    is_admin: bool = Field(alias="is_superuser")


class UserIn(Schema):
    username: str
    password: str
    email: str = ""
    is_admin: bool = False


class RoleOut(Schema):
    role: str
    description: str
    permissions: list[str]


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    scope: str
    owner: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenIn(Schema):
    name: str = "token"
    scope: str = "write"
    days: int = 90
    username: str | None = Field(None, description="Owner; only an administrator may name another.")


class TokenCreated(TokenOut):
    token: str = Field(description="The secret. Shown once; only its hash is stored.")


def database_kind() -> str:
    return "postgresql" if connection.vendor == "postgresql" else connection.vendor


@router.get("/health", response=HealthOut, auth=None, summary="Liveness and database check")
def health(request: HttpRequest) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {
        "status": "ok",
        "version": obeya.__version__,
        "database": database_kind(),
        "time": timezone.now(),
    }


@router.get("/me", response=UserOut, summary="The signed-in user")
def me(request: HttpRequest) -> Any:
    return request.user


@router.get("/events", response=list[EventOut], summary="The event log (audit trail)")
@paginate(LimitOffsetPagination)
def list_events(
    request: HttpRequest,
    service: str | None = None,
    kind: str | None = None,
    subject: str | None = None,
    order: str = "desc",
) -> Any:
    found = events.timeline(service=service, kind_prefix=kind, subject=subject)
    return found.order_by("-id") if order != "asc" else found


@router.get("/roles", response=list[RoleOut], summary="Per-service roles and what they allow")
def list_roles(request: HttpRequest) -> list[dict[str, Any]]:
    return [
        {
            "role": role.value,
            "description": ROLE_DESCRIPTIONS[role],
            "permissions": [p.value for p, holders in ROLE_PERMISSIONS.items() if role in holders],
        }
        for role in Role
    ]


@router.get("/users", response=list[UserOut], summary="People who can sign in")
@paginate(LimitOffsetPagination)
def list_users(request: HttpRequest) -> Any:
    return services.list_users()


@router.post("/users", response={201: UserOut}, summary="Add a person (administrators only)")
def create_user(request: HttpRequest, payload: UserIn) -> Status[Any]:
    user = services.create_user(
        actor_for_request(request, "api"),
        payload.username,
        payload.password,
        is_admin=payload.is_admin,
        email=payload.email,
    )
    return Status(201, user)


def _me(request: HttpRequest) -> User:
    if not isinstance(request.user, User):
        raise Unauthenticated("sign in first")
    return request.user


def _token(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.pk,
        "name": token.name,
        "prefix": token.prefix,
        "scope": token.scope,
        "owner": token.user.username,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "last_used_at": token.last_used_at,
    }


@router.get("/tokens", response=list[TokenOut], summary="Your API tokens")
@paginate(LimitOffsetPagination)
def list_tokens(request: HttpRequest, username: str | None = None) -> Any:
    owner = services.get_user(username) if username else _me(request)
    return Mapped(services.list_tokens(actor_for_request(request, "api"), owner), _token)


@router.post("/tokens", response={201: TokenCreated}, summary="Create an API token")
def create_token(request: HttpRequest, payload: TokenIn) -> Status[Any]:
    owner = services.get_user(payload.username) if payload.username else _me(request)
    token, plaintext = services.create_token(
        actor_for_request(request, "api"),
        owner,
        name=payload.name,
        scope=payload.scope,
        days=payload.days,
    )
    return Status(201, {**_token(token), "token": plaintext})


@router.delete("/tokens/{token_id}", response=TokenOut, summary="Revoke an API token")
def revoke_token(request: HttpRequest, token_id: int) -> dict[str, Any]:
    return _token(services.revoke_token(actor_for_request(request, "api"), token_id))


@router.get(
    "/audit/verify",
    response=AuditReportOut,
    summary="Walk the event log's hash chain (administrators only)",
)
def verify_audit_log(request: HttpRequest, expect: str = "") -> dict[str, Any]:
    anchors: dict[int, str] = {}
    if expect:
        try:
            event, value = chain.parse_anchor(expect)
        except ValueError as error:
            raise InvalidInput(str(error), field="expect") from None
        anchors[event] = value
    return audit.verify(actor_for_request(request, "api"), expect=anchors).as_dict()
