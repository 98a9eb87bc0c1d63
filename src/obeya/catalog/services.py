"""Use cases of the service catalog. Each runs in one transaction and records its event.

Permissions are checked here, so the web UI, the API and the CLI give the same answer.
Other capabilities read services and check roles only through this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from obeya.catalog.logic import (
    STAGE_DESCRIPTIONS,
    TRANSITIONS,
    Stage,
    parse_stage,
    repository_problem,
    slug_problem,
    transition_problem,
)
from obeya.catalog.models import Membership, Service
from obeya.core import events, rows
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from obeya.core.models import ApiToken, User
from obeya.core.roles import Permission, Role, allows, parse_role, roles_for

CHARTER_FIELDS = ("vision", "goals", "business_value", "customers")
EDITABLE_FIELDS = ("name", "description", "repository_url", "owner_team", *CHARTER_FIELDS)
_MAX_LENGTHS = {"name": 120, "repository_url": 500, "owner_team": 120}

# Checks that must pass before a service may retire; each returns the reason it may not, or
# None. The backlog capability registers "an end-of-life story is done with every item
# checked" here. With no check registered, retirement is refused: nothing proves readiness.
RetirementCheck = Callable[[Service], "str | None"]
_retirement_checks: list[RetirementCheck] = []


def register_retirement_check(check: RetirementCheck) -> None:
    if check not in _retirement_checks:
        _retirement_checks.append(check)


def retirement_problem(service: Service) -> str | None:
    """Why ``service`` may not retire yet, or None when every registered check passes."""
    if not _retirement_checks:
        return (
            f'"{service.slug}" cannot retire: no end-of-life story is done. Write one '
            "(reason, data and tool disposition, replacement ready, shutdown order) and "
            "check every item first."
        )
    for check in _retirement_checks:
        problem = check(service)
        if problem:
            return problem
    return None


# ---- reading ---------------------------------------------------------------------------


def list_services(search: str = "", stage: str = "") -> QuerySet[Service]:
    services = Service.objects.all()
    if search:
        services = services.filter(
            Q(slug__icontains=search) | Q(name__icontains=search) | Q(owner_team__icontains=search)
        )
    if stage:
        services = services.filter(stage=_stage(stage))
    return services


def get_service(slug: str) -> Service:
    try:
        return Service.objects.get(slug=slug)
    except Service.DoesNotExist:
        raise NotFound(f'no service "{slug}": see `obeya service list`', field="slug") from None


def members(service: Service) -> QuerySet[Membership]:
    return Membership.objects.filter(service=service).select_related("user")


def roles_of(user: User | None, service: Service) -> frozenset[Role]:
    """The roles ``user`` holds on ``service``: read on every permission check, so in one
    plain statement (the ORM's ordering would join the users, and building the query
    cost more than running it)."""
    if user is None:
        return frozenset()
    table = rows.quote(Membership._meta.db_table)
    found = rows.fetch(
        f"SELECT role FROM {table} WHERE service_id = %s AND user_id = %s",  # noqa: S608 (the model's table)
        [service.pk, user.pk],
    )
    return frozenset(Role(value) for (value,) in found)


def _read_only(actor: Actor) -> bool:
    return actor.token is not None and actor.token.scope == ApiToken.Scope.READ


def _require_write(actor: Actor) -> None:
    if _read_only(actor):
        raise PermissionDenied("this token has the read scope: use a write-scope token to change")


def can(actor: Actor, service: Service, permission: Permission) -> bool:
    """Whether ``actor`` may use ``permission`` on ``service``.

    Administrators may do anything, and so may Obeya itself and the local admin CLI
    (no user); a read-scope token may change nothing.
    """
    if _read_only(actor):
        return False
    if actor.user is None:
        return actor.channel in {"system", "cli"}
    return actor.is_admin or allows(roles_of(actor.user, service), permission)


def require(actor: Actor, service: Service, permission: Permission) -> None:
    """Raise PermissionDenied naming the roles that would allow ``permission``."""
    if can(actor, service, permission):
        return
    _require_write(actor)
    needed = " or ".join(role.value for role in roles_for(permission))
    raise PermissionDenied(
        f'{actor.name} may not {permission.value} on "{service.slug}": it needs the role '
        f"{needed} on this service"
    )


@dataclass(frozen=True)
class StageOption:
    stage: Stage
    description: str
    problem: str | None


def stage_options(service: Service) -> list[StageOption]:
    """The stages ``service`` can move to next, each with why it is blocked (if it is)."""
    options = []
    for target in TRANSITIONS[Stage(service.stage)]:
        problem = retirement_problem(service) if target == Stage.RETIRED else None
        options.append(StageOption(target, STAGE_DESCRIPTIONS[target], problem))
    return options


# ---- changing --------------------------------------------------------------------------


def _stage(value: str) -> Stage:
    try:
        return parse_stage(value)
    except ValueError as error:
        raise InvalidInput(str(error), field="stage") from None


def _clean_fields(fields: dict[str, Any]) -> dict[str, str]:
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown service field {unknown[0]!r}", field=unknown[0])
    cleaned: dict[str, str] = {}
    for key, value in fields.items():
        text = "" if value is None else str(value).strip()
        limit = _MAX_LENGTHS.get(key)
        if limit and len(text) > limit:
            raise InvalidInput(f"{key} is longer than {limit} characters", field=key)
        cleaned[key] = text
    if "name" in cleaned and not cleaned["name"]:
        raise InvalidInput("a service needs a name", field="name")
    problem = repository_problem(cleaned.get("repository_url", ""))
    if problem:
        raise InvalidInput(problem, field="repository_url")
    return cleaned


def create_service(actor: Actor, slug: str, name: str, **fields: Any) -> Service:
    """Register a service; its creator becomes its first Service Master."""
    _require_write(actor)
    slug = (slug or "").strip()
    problem = slug_problem(slug)
    if problem:
        raise InvalidInput(problem, field="slug")
    stage = _stage(fields.pop("stage", None) or Stage.STRATEGY)
    if stage == Stage.RETIRED:
        raise InvalidInput("a new service cannot start retired", field="stage")
    cleaned = _clean_fields({"name": name, **fields})
    now = actor.now()
    try:
        with transaction.atomic():
            service = Service.objects.create(
                slug=slug,
                stage=stage,
                stage_changed_at=now,
                created_at=now,
                updated_at=now,
                **cleaned,
            )
            events.record(
                actor,
                "service.created",
                f"service:{slug}",
                {"name": service.name, "stage": stage.value},
                service=slug,
            )
            if actor.user is not None:
                _add_membership(actor, service, actor.user, Role.SERVICE_MASTER)
    except IntegrityError:
        raise Conflict(f'a service with slug "{slug}" already exists', field="slug") from None
    return service


def update_service(actor: Actor, slug: str, **fields: Any) -> Service:
    """Change name, description, repository, owner team or charter; records what changed."""
    cleaned = _clean_fields(fields)
    with transaction.atomic():
        service = _locked(slug)
        require(actor, service, Permission.EDIT_CHARTER)
        changes = {
            key: {"from": getattr(service, key), "to": value}
            for key, value in cleaned.items()
            if getattr(service, key) != value
        }
        if not changes:
            return service
        for key, change in changes.items():
            setattr(service, key, change["to"])
        service.updated_at = actor.now()
        service.save()
        kind = (
            "service.charter_changed" if set(changes) & set(CHARTER_FIELDS) else "service.updated"
        )
        events.record(actor, kind, f"service:{slug}", {"changes": changes}, service=slug)
    return service


def move_stage(actor: Actor, slug: str, target: str, *, reason: str = "") -> Service:
    """Move the service along its lifecycle, along an allowed transition only."""
    to_stage = _stage(target)
    with transaction.atomic():
        service = _locked(slug)
        require(actor, service, Permission.MOVE_STAGE)
        from_stage = Stage(service.stage)
        problem = transition_problem(from_stage, to_stage)
        if problem is None and to_stage == Stage.RETIRED:
            problem = retirement_problem(service)
        if problem:
            raise Conflict(problem, field="stage")
        service.stage = to_stage
        service.stage_changed_at = service.updated_at = actor.now()
        service.save()
        events.record(
            actor,
            "service.stage_changed",
            f"service:{slug}",
            {"from": from_stage.value, "to": to_stage.value, "reason": reason.strip()},
            service=slug,
        )
    return service


def _locked(slug: str) -> Service:
    try:
        return Service.objects.select_for_update().get(slug=slug)
    except Service.DoesNotExist:
        raise NotFound(f'no service "{slug}": see `obeya service list`', field="slug") from None


def _role(value: str) -> Role:
    try:
        return parse_role(value)
    except ValueError as error:
        raise InvalidInput(str(error), field="role") from None


def _add_membership(actor: Actor, service: Service, user: User, role: Role) -> Membership:
    membership = Membership.objects.create(service=service, user=user, role=role, since=actor.now())
    events.record(
        actor,
        "member.added",
        f"user:{user.username}",
        {"username": user.username, "role": role.value},
        service=service.slug,
    )
    return membership


def add_member(actor: Actor, slug: str, username: str, role: str) -> Membership:
    """Give ``username`` a role on the service's team."""
    parsed_role = _role(role)
    try:
        user = User.objects.get(username=username, is_active=True)
    except User.DoesNotExist:
        raise NotFound(f'no user named "{username}"', field="username") from None
    try:
        with transaction.atomic():
            service = _locked(slug)
            require(actor, service, Permission.MANAGE_TEAM)
            return _add_membership(actor, service, user, parsed_role)
    except IntegrityError:
        raise Conflict(
            f'{username} already holds the role {parsed_role.value} on "{slug}"', field="role"
        ) from None


def remove_member(actor: Actor, slug: str, username: str, role: str) -> None:
    """Take a role away; the last Service Master cannot be removed (someone must own it)."""
    parsed_role = _role(role)
    with transaction.atomic():
        service = _locked(slug)
        require(actor, service, Permission.MANAGE_TEAM)
        membership = Membership.objects.filter(
            service=service, user__username=username, role=parsed_role
        ).first()
        if membership is None:
            raise NotFound(
                f'{username} does not hold the role {parsed_role.value} on "{slug}"', field="role"
            )
        if parsed_role == Role.SERVICE_MASTER:
            masters = Membership.objects.filter(service=service, role=Role.SERVICE_MASTER).count()
            if masters == 1:
                raise Conflict(
                    f'{username} is the last service_master of "{slug}": add another first',
                    field="role",
                )
        membership.delete()
        events.record(
            actor,
            "member.removed",
            f"user:{username}",
            {"username": username, "role": parsed_role.value},
            service=slug,
        )
