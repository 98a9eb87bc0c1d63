"""Rules of the service catalog: slugs and the §2.1.1 lifecycle. Pure: no Django, no I/O."""

from __future__ import annotations

import re
from enum import StrEnum


class Stage(StrEnum):
    """The lifecycle stages of a service (§2.1.1), in their usual order."""

    STRATEGY = "strategy"
    MARKETING = "marketing"
    PLANNING = "planning"
    REQUIREMENTS = "requirements"
    DEVELOPMENT = "development"
    DEPLOYMENT = "deployment"
    OPERATION = "operation"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


STAGE_DESCRIPTIONS: dict[Stage, str] = {
    Stage.STRATEGY: "Business strategy and planning: why the service should exist.",
    Stage.MARKETING: "Customers, valuable requirements and the time frame.",
    Stage.PLANNING: "Vision, goals, value, team, infrastructure and the value stream map.",
    Stage.REQUIREMENTS: "Backlog of user, test and operation stories; SLA/OLA; release plan.",
    Stage.DEVELOPMENT: "Iterations fitted to the business need.",
    Stage.DEPLOYMENT: "One-piece flow through a single automated deployment path.",
    Stage.OPERATION: "Lightweight ITSM: monitoring, incidents, RPO/RTO.",
    Stage.MAINTENANCE: "Approved items and feedback become change requests in the backlog.",
    Stage.RETIRED: "End of life: data, documents, tools and components disposed of.",
}

# Forward to the next stage, back one step to rework, and the loops of a living service:
# operation <-> maintenance, maintenance -> development for change requests.
TRANSITIONS: dict[Stage, tuple[Stage, ...]] = {
    Stage.STRATEGY: (Stage.MARKETING,),
    Stage.MARKETING: (Stage.PLANNING, Stage.STRATEGY),
    Stage.PLANNING: (Stage.REQUIREMENTS, Stage.MARKETING),
    Stage.REQUIREMENTS: (Stage.DEVELOPMENT, Stage.PLANNING),
    Stage.DEVELOPMENT: (Stage.DEPLOYMENT, Stage.REQUIREMENTS),
    Stage.DEPLOYMENT: (Stage.OPERATION, Stage.DEVELOPMENT),
    Stage.OPERATION: (Stage.MAINTENANCE, Stage.RETIRED),
    Stage.MAINTENANCE: (Stage.OPERATION, Stage.DEVELOPMENT, Stage.RETIRED),
    Stage.RETIRED: (),
}

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,48}[a-z0-9]$")
RESERVED_SLUGS = frozenset({"new", "api", "static", "admin", "login", "logout"})


def slug_problem(slug: str) -> str | None:
    """Why ``slug`` cannot name a service, or None when it can."""
    if not SLUG_PATTERN.match(slug) or "--" in slug:
        return (
            f'slug "{slug}" is not valid: use 2-50 lower-case letters, digits and single '
            "hyphens, starting with a letter (e.g. payments-api)"
        )
    if slug in RESERVED_SLUGS:
        return f'slug "{slug}" is reserved: choose another name'
    return None


_REPOSITORY = re.compile(r"^(https?|ssh|git|file)://\S+$|^[\w.-]+@[\w.-]+:\S+$|^/\S*$")


def repository_problem(url: str) -> str | None:
    """Why ``url`` cannot be a service's git repository, or None (empty means none yet)."""
    if not url:
        return None
    if url.startswith("-") or any(ord(c) < 32 for c in url) or not _REPOSITORY.match(url):
        return (
            f"repository {url!r} is not a git URL: use https://host/path.git, "
            "ssh://host/path, user@host:path or an absolute path on the server"
        )
    return None


def parse_stage(value: str) -> Stage:
    try:
        return Stage(value)
    except ValueError:
        known = ", ".join(stage.value for stage in Stage)
        raise ValueError(f'unknown stage "{value}": use one of {known}') from None


def transition_problem(current: Stage, target: Stage) -> str | None:
    """Why a service cannot move from ``current`` to ``target``, or None when it can."""
    allowed = TRANSITIONS[current]
    if target == current:
        return f'the service is already in stage "{current}"'
    if target not in allowed:
        if not allowed:
            return f'a service in stage "{current}" cannot move any more'
        choices = ", ".join(stage.value for stage in allowed)
        return f'cannot move from "{current}" to "{target}": from "{current}" go to {choices}'
    return None
