"""The JSON shapes of the operations API: monitors, incidents, postmortems, SLOs, problems,
notification channels and continuity. A channel's secret is write-only: no shape here
carries it."""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema
from pydantic import ConfigDict

# ---- monitors ----------------------------------------------------------------------------


class MonitorSettings(Schema):
    """A monitor's settings (all optional on PATCH; null is refused: leave it out)."""

    model_config = ConfigDict(extra="forbid")

    environment: str | None = Field(None, description="The environment it watches, if any.")
    kind: str | None = Field(None, description="http or command.")
    url: str | None = Field(None, description="http: the address to GET.")
    expect_status: int | None = Field(None, description="http: the status that passes.")
    contains: str | None = Field(None, description="http: text the body must contain.")
    command: str | None = Field(None, description="command: a shell command, 0 = healthy.")
    interval_s: int | None = Field(None, description="Seconds between checks (5-86400).")
    timeout_s: float | None = Field(None, description="Seconds a check may take (at most 60).")
    failure_threshold: int | None = Field(
        None, description="Failures in a row that open an incident (1-100)."
    )
    enabled: bool | None = None


class MonitorIn(MonitorSettings):
    name: str = Field(description="Lower-case letters, digits, - and _; never changes.")


class MonitorOut(Schema):
    name: str
    service: str
    environment: str
    kind: str
    url: str
    expect_status: int
    contains: str
    command: str
    interval_s: int
    timeout_s: float
    failure_threshold: int
    enabled: bool
    created_at: datetime
    last_ok: bool | None = Field(description="The last check's outcome; null before the first.")
    last_checked_at: datetime | None
    last_detail: str
    consecutive_failures: int


class CheckResultOut(Schema):
    at: datetime
    ok: bool
    latency_ms: float
    detail: str
    lateness_ms: float


class MonitorDetail(MonitorOut):
    recent_results: list[CheckResultOut] = Field(
        description="The newest checks of the last 24 hours, newest first (up to 100)."
    )


# ---- incidents ---------------------------------------------------------------------------


class IncidentIn(Schema):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="What hurts, in a few words.")
    severity: str = Field("sev3", description="sev1, sev2, sev3 or sev4.")
    deployment: int | None = Field(None, description="The deployment that caused it, if known.")


class IncidentOut(Schema):
    number: int
    key: str
    service: str
    title: str
    severity: str
    status: str
    commander: str | None
    source: str = Field(description="manual, monitor, deployment or andon.")
    monitor: str | None
    opened_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    time_to_acknowledge_s: float | None
    time_to_restore_s: float | None


class TimelineEntryOut(Schema):
    at: datetime
    who: str
    what: str
    kind: str


class CauseOut(Schema):
    deployment: int
    environment: str | None = Field(description="null when the deployment no longer exists.")
    status: str | None
    automatic: bool
    linked_at: datetime
    linked_by: str


class FollowUpOut(Schema):
    title: str
    story_key: str = Field(description="The change request in the backlog.")


class PostmortemOut(Schema):
    summary: str
    impact: str
    timeline: str
    factors: list[str]
    went_well: str
    author: str | None
    created_at: datetime
    updated_at: datetime
    actions: list[FollowUpOut]


class IncidentDetail(IncidentOut):
    timeline: list[TimelineEntryOut]
    causes: list[CauseOut]
    problems: list[int] = Field(description="Numbers of the problems grouping it.")
    postmortem: PostmortemOut | None


class MoveIn(Schema):
    model_config = ConfigDict(extra="forbid")

    note: str = ""


class NoteIn(Schema):
    model_config = ConfigDict(extra="forbid")

    text: str


class NoteOut(Schema):
    at: datetime
    author: str | None
    text: str


class CauseIn(Schema):
    model_config = ConfigDict(extra="forbid")

    deployment: int = Field(description="The id of a deployment of the same service.")


class PostmortemIn(Schema):
    model_config = ConfigDict(extra="forbid")

    summary: str
    impact: str
    factors: list[str] = Field(
        description="More than one contributing factor; a person is never one."
    )
    went_well: str = ""
    timeline: str | None = Field(None, description="Default: pre-filled from the incident.")
    actions: list[str] = Field(
        default_factory=list, description="Follow-ups: each becomes a change request."
    )


# ---- SLOs --------------------------------------------------------------------------------


class SloIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str = Field(description="availability or latency.")
    objective_percent: float = Field(description="Above 0 and below 100, e.g. 99.9.")
    monitor: str = Field(description="The monitor whose checks measure it.")
    window_days: int = 30
    latency_threshold_ms: float | None = Field(None, description="latency: required.")
    story: str = ""


class SlosFromStoriesIn(Schema):
    model_config = ConfigDict(extra="forbid")

    monitor: str = Field(description="The monitor whose checks measure the new SLOs.")


class SloStatusOut(Schema):
    good: int
    total: int
    achieved_percent: float | None
    budget_bad: float = Field(description="Bad checks the objective allows in the window.")
    budget_remaining_percent: float | None
    fast_burn: float = Field(description="Burn rate over the last hour (1 spends it evenly).")
    slow_burn: float = Field(description="Burn rate over the last 6 hours.")
    alert: str = Field(description='"", "fast burn" or "slow burn".')


class SloOut(Schema):
    name: str
    service: str
    kind: str
    objective_percent: float
    window_days: int
    latency_threshold_ms: float | None
    monitor: str
    story: str
    created_at: datetime
    status: SloStatusOut


class DayOut(Schema):
    day: str
    achieved_percent: float | None


class SloDetail(SloOut):
    daily: list[DayOut] = Field(description="Achieved % per day, oldest first (up to 30).")


# ---- problems ----------------------------------------------------------------------------


class ProblemIn(Schema):
    model_config = ConfigDict(extra="forbid")

    title: str
    incidents: list[int] = Field(default_factory=list, description="Incident numbers.")


class ProblemPatch(Schema):
    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    status: str | None = Field(None, description="open, known_error or resolved.")
    known_error: str | None = None
    workaround: str | None = None
    analysis: str | None = Field(None, description="Root-cause analysis notes.")
    incidents: list[int] | None = Field(None, description="Replaces the grouped incidents.")
    change_requests: list[str] | None = Field(None, description="Story keys.")


class ProblemOut(Schema):
    number: int
    key: str
    service: str
    title: str
    status: str
    known_error: str
    workaround: str
    analysis: str
    incidents: list[int]
    change_requests: list[str]
    created_at: datetime
    updated_at: datetime


# ---- notification channels ---------------------------------------------------------------


class ChannelIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str = Field(description="webhook or email.")
    url: str = Field("", description="webhook: where to POST.")
    secret: str = Field("", description="webhook: signs each body; write-only.")
    recipients: list[str] = Field(default_factory=list, description="email: addresses.")
    kinds: list[str] = Field(default_factory=list, description="Event kinds; empty = all.")


class ChannelOut(Schema):
    id: int
    service: str | None = Field(description="null: the channel hears every service.")
    name: str
    kind: str
    url: str = Field(description="Scheme and host only: the rest may hold a token.")
    has_secret: bool
    recipients: list[str]
    kinds: list[str]
    enabled: bool
    created_at: datetime


class AttemptOut(Schema):
    at: datetime
    ok: bool
    status_code: int | None
    detail: str
    duration_ms: float


class DeliveryOut(Schema):
    id: int
    event: int
    event_kind: str
    event_at: datetime
    status: str = Field(description="pending, delivered or failed.")
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str
    tries: list[AttemptOut]
