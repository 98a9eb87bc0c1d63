"""What the metric formulas take in besides the event log, and the shape of their checks.

Pure data: the services layer (``metrics.services``) reads the database into these, the
formulas (``dora``, ``flow``, ``ci``, ``valuestream``, ``maturity``) never touch it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Result = Literal["pass", "warn", "fail", "no data"]


@dataclass(frozen=True)
class Check:
    """A yes/no question about the way a team works, answered from evidence.

    ``value`` is the measured number (or None), ``summary`` one sentence a person can read
    on the wall, ``evidence`` what it was computed from: each item a mapping with at least
    ``what`` (e.g. "deployment", "run", "story", "incident") and ``id`` (its number or key),
    plus whatever else explains it (``at``, ``why`` ...).
    """

    id: str  # stable, e.g. "defect_escaped", "ci.red_share"
    title: str  # the question, e.g. "Did a defect pass to a later stage?"
    result: Result
    value: float | None
    summary: str
    evidence: tuple[Mapping[str, Any], ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BoardColumn:
    """A column of the board now: its WIP limit and its definition of done."""

    name: str
    wip_limit: int | None
    checklist: tuple[str, ...]
    gates: tuple[str, ...]
    starts_work: bool
    is_done: bool


@dataclass(frozen=True)
class BoardCard:
    """A card on the board now."""

    key: str
    title: str
    column: str
    assignees: tuple[str, ...]
    entered_at: datetime


@dataclass(frozen=True)
class Board:
    columns: tuple[BoardColumn, ...]
    cards: tuple[BoardCard, ...]


@dataclass(frozen=True)
class Facts:
    """What a service has set up, read from its tables (not from the event log): the
    maturity model's configuration and continuity evidence. Times are aware datetimes."""

    has_repository: bool = False
    pipeline_as_code: bool = False  # obeya.yml read without errors on the latest run
    default_branch: str = "main"
    environments: tuple[str, ...] = ()  # tiers in promotion order, e.g. ("staging", "production")
    protected_production: bool = False  # a production environment needing approval
    health_checked: tuple[str, ...] = ()  # tiers whose environment has a health check
    drifted: tuple[str, ...] = ()  # environments whose running release differs from its manifest
    secrets: int = 0  # secrets kept on the server (never in the repository)
    monitors: int = 0
    slos: int = 0
    slo_budget_left: float | None = None  # the lowest error budget share left, 0..1
    rpo_s: float | None = None
    rto_s: float | None = None
    last_backup_at: datetime | None = None
    last_drill_at: datetime | None = None
    last_drill_passed: bool | None = None
    last_drill_s: float | None = None
    operation_stories: int = 0  # service-level requirements written down
    test_stories: int = 0  # Given/When/Then scenarios
    user_stories: int = 0
