"""The shapes of the metrics API's answers (``metrics/api.py``); docs/api.md describes them.

Evidence and details stay loose mappings: each formula explains itself with what it has
(ids of deployments and incidents, commits, stories), and docs/metrics.md lists them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema


class NumberOut(Schema):
    value: float | None = Field(
        description="Per day (frequency), seconds (lead and recovery time) or a share 0..1 "
        "(fail and rework rate); null when nothing was measured."
    )
    band: str = Field(description="elite, high, medium, low, or no data (2024 DORA bands).")
    evidence: list[Any] = Field(description="What the number was computed from.")
    detail: dict[str, Any]


class DoraOut(Schema):
    deployment_frequency: NumberOut
    change_lead_time: NumberOut
    change_fail_rate: NumberOut
    recovery_time: NumberOut
    rework_rate: NumberOut


class TrendOut(Schema):
    direction: str = Field(description="up, down, flat, new (nothing before) or none (no data).")
    better: bool | None = Field(description="Whether the move is for the better; null if flat.")
    words: str


class CheckOut(Schema):
    id: str
    title: str = Field(description="The question the check answers.")
    result: str = Field(description="pass, warn, fail or no data.")
    value: float | None
    summary: str
    evidence: list[dict[str, Any]]
    detail: dict[str, Any]


class StageOut(Schema):
    name: str
    process_s: float | None
    wait_s: float | None
    samples: int
    evidence: list[dict[str, Any]]


class ValueStreamOut(Schema):
    stages: list[StageOut]
    process_s: float | None
    wait_s: float | None
    lead_s: float | None
    flow_efficiency: float | None = Field(description="process ÷ (process + wait), 0..1.")
    biggest_wait: str | None
    window: list[datetime] | None


class CriterionOut(Schema):
    level: int
    text: str = Field(description="What the level asks for.")
    met: bool
    evidence: str = Field(description="What shows it is met, or not.")


class AreaOut(Schema):
    id: str
    name: str
    level: int = Field(description="1 to 5: every criterion up to it is met.")
    criteria: list[CriterionOut]
    next_step: str | None = Field(description="The first unmet criterion above the level.")


class WeekOut(Schema):
    week: str = Field(description="ISO week, 2026-W03.")
    start: datetime
    deployments: int
    failed: int
    lead_time_s: float | None
    recovery_s: float | None


class ReportOut(Schema):
    service: str
    name: str
    days: int
    start: datetime
    end: datetime
    dora: DoraOut
    previous: DoraOut = Field(description="The same metrics over the window before.")
    trends: dict[str, TrendOut]
    flow: list[CheckOut]
    ci: list[CheckOut]
    value_stream: ValueStreamOut
    maturity: list[AreaOut]
    weeks: list[WeekOut]


class DoraAcrossOut(Schema):
    days: int
    start: datetime
    end: datetime
    dora: DoraOut


class EnvironmentTileOut(Schema):
    name: str
    tier: str
    release: str
    version: str
    sha: str
    health: str = Field(description="healthy, deploying, rolled back, failed or unknown.")
    waiting: int = Field(description="Deployments waiting for approval or in the queue.")


class ColumnTileOut(Schema):
    name: str
    cards: int
    limit: int | None
    over: bool


class DoraTileOut(Schema):
    value: float | None
    band: str
    previous: float | None = Field(description="The value over the 30 days before.")
    trend: TrendOut
    count: int = Field(description="How many deployments, commits or recoveries it counts.")


class IncidentTileOut(Schema):
    number: int
    title: str
    severity: str
    status: str
    opened_at: datetime


class TileOut(Schema):
    slug: str
    name: str
    stage: str
    andon_pulled: bool
    andon_reason: str
    environments: list[EnvironmentTileOut]
    columns: list[ColumnTileOut]
    dora: dict[str, DoraTileOut]
    incidents: list[IncidentTileOut]
    error_budget_left: float | None = Field(description="The lowest share left over its SLOs.")
    budget_alert: str
    continuity_warnings: list[str]
    computed_at: datetime
    latest_event: int


class RoomOut(Schema):
    services: list[TileOut]
