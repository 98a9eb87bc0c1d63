"""Metrics read from the database: the event log into ``Record``s, a service's set-up into
``Facts``, then the pure formulas (``dora``, ``flow``, ``ci``, ``valuestream``,
``maturity``). The web pages, the API, the CLI and ``/metrics`` all call these.

Reading is bounded: one service's events of the kinds the formulas use, from the window's
start minus a look-back (an incident opened before the window and restored in it still
counts) to its end, through the ``(service, at)`` index of the event log. The room and the
Prometheus gauges keep each service's figures in a cache that holds while the service's
newest event stays the same and for at most ``ROOM_TTL_S`` (the windows slide and error
budgets move with monitor checks, which are not events).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count

from obeya.backlog.models import Story
from obeya.board.models import Card, Column
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core.actors import system_actor
from obeya.core.clock import SYSTEM_CLOCK, ManualClock
from obeya.core.errors import InvalidInput
from obeya.core.models import Event
from obeya.metrics import ci, dora, flow, maturity, valuestream
from obeya.metrics.dora import Dora, Record
from obeya.metrics.maturity import Area
from obeya.metrics.model import Board, BoardCard, BoardColumn, Check, Facts
from obeya.metrics.valuestream import ValueStream

# The kinds the formulas read; every other event stays in the database.
KINDS = (
    "deployment.requested",
    "deployment.queued",
    "deployment.started",
    "deployment.switched",
    "deployment.succeeded",
    "deployment.failed",
    "deployment.rolled_back",
    "incident.opened",
    "incident.caused_by",
    "incident.mitigated",
    "incident.resolved",
    "run.created",
    "run.finished",
    "job.finished",  # the value stream splits a run's time between its jobs and waits
    "andon.pulled",
    "andon.released",
    "story.created",
    "story.moved",
)
# What the DORA formulas read (the room's tiles read only these).
DORA_KINDS = tuple(k for k in KINDS if k.startswith(("deployment.", "incident.")))
LOOKBACK = timedelta(days=30)
MAX_DAYS = 365
ROOM_WINDOW_DAYS = 30
ROOM_TTL_S = 60.0
log = logging.getLogger(__name__)
_WINDOW = re.compile(r"^\s*(\d+)\s*([dw]?)\s*$")


def parse_window(text: str | int | None, default: int = 30) -> int:
    """``"30d"``, ``"12w"`` or ``"90"`` → days (1 to 365)."""
    if text is None or text == "":
        return default
    if isinstance(text, int):
        days = text
    else:
        found = _WINDOW.match(text.lower())
        if found is None:
            raise InvalidInput(
                f"window {text!r} is not a number of days or weeks: write e.g. 30d, 12w or 90",
                field="window",
            )
        days = int(found.group(1)) * (7 if found.group(2) == "w" else 1)
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(
            f"window of {days} days is out of range: choose 1 to {MAX_DAYS} days", field="window"
        )
    return days


def window_of(days: int, now: datetime | None = None) -> tuple[datetime, datetime]:
    end = now or SYSTEM_CLOCK.now()
    return (end - timedelta(days=days), end)


def records(
    slug: str, since: datetime, until: datetime, kinds: tuple[str, ...] = KINDS
) -> list[Record]:
    """The service's events the formulas read, in [since, until), oldest first.

    Read with one plain query rather than the ORM: a 90-day report reads ~10,000 rows, and
    turning each into a model value (time zone, JSON field) cost more than the query."""
    ops = connection.ops
    # Built from constants only (the table name and a placeholder per kind): no input.
    sql = (
        f"SELECT id, at, kind, data FROM {Event._meta.db_table}"  # noqa: S608
        " WHERE service = %s AND at >= %s AND at < %s"
        f" AND kind IN ({', '.join(['%s'] * len(kinds))}) ORDER BY at, id"
    )
    bounds = [ops.adapt_datetimefield_value(since), ops.adapt_datetimefield_value(until)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [slug, *bounds, *kinds])
        rows = cursor.fetchall()
    return [Record(pk, _aware(at), kind, slug, _loaded(data)) for pk, at, kind, data in rows]


def _aware(value: datetime | str) -> datetime:
    """A time as the database gives it: SQLite a UTC text, PostgreSQL a datetime."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def board_of(service: Service) -> Board:
    columns = list(Column.objects.filter(service=service).order_by("position"))
    names = {column.pk: column.name for column in columns}
    cards = (
        Card.objects.filter(column__service=service)
        .select_related("story")
        .prefetch_related("story__assignees")
        .order_by("column__position", "position")
    )
    return Board(
        tuple(
            BoardColumn(
                c.name,
                c.wip_limit,
                tuple(str(item) for item in c.done_checklist or ()),
                tuple(str(gate) for gate in c.gates or ()),
                c.starts_work,
                c.is_done,
            )
            for c in columns
        ),
        tuple(
            BoardCard(
                card.story.key,
                card.story.title,
                names.get(card.column_id, ""),
                tuple(sorted(u.username for u in card.story.assignees.all())),
                card.entered_at,
            )
            for card in cards
        ),
    )


def facts_of(service: Service, now: datetime) -> Facts:
    """What the service has set up, for the maturity model."""
    from obeya.deploy import services as deploy
    from obeya.ops import continuity, reviews
    from obeya.ops.continuity_models import RestoreDrill
    from obeya.ops.models import Monitor
    from obeya.pipelines.models import Pipeline, Run, Secret

    pipeline = Pipeline.objects.filter(service=service).first()
    default_branch = pipeline.default_branch if pipeline else "main"
    latest = (
        Run.objects.filter(service=service, branch=default_branch)
        .order_by("-pk")
        .values_list("errors", "spec_text")
        .first()
    )
    environments = list(deploy.list_environments(service.slug))
    drifted = []
    for environment in environments:
        differs = deploy.drift(environment)
        if differs is not None and differs.found:
            drifted.append(environment.name)
    budgets = [
        view.status.budget_remaining_percent / 100
        for view in (reviews.slo_view(slo, now) for slo in reviews.list_slos(service.slug))
        if view.status.budget_remaining_percent is not None
    ]
    objectives = continuity.objectives(service)
    backup = continuity.last_good_backup(service)
    drills = RestoreDrill.objects.filter(service=service).exclude(status="running")
    drill = drills.order_by("-started_at").first()
    kinds = dict(
        Story.objects.filter(service=service)
        .values_list("kind")
        .annotate(n=Count("id"))
        .values_list("kind", "n")
    )
    return Facts(
        has_repository=bool(service.repository_url),
        pipeline_as_code=latest is not None and not latest[0] and bool(latest[1]),
        default_branch=default_branch,
        environments=tuple(e.tier for e in environments),
        protected_production=any(
            e.tier == "production" and e.protected and e.required_approvals > 0
            for e in environments
        ),
        health_checked=tuple(e.tier for e in environments if e.health),
        drifted=tuple(drifted),
        secrets=Secret.objects.filter(service=service).count(),
        monitors=Monitor.objects.filter(service=service).count(),
        slos=len(budgets),
        slo_budget_left=min(budgets) if budgets else None,
        rpo_s=objectives.rpo_s,
        rto_s=objectives.rto_s,
        last_backup_at=backup.finished_at if backup else None,
        last_drill_at=drill.finished_at or drill.started_at if drill else None,
        last_drill_passed=drill.status == "passed" if drill else None,
        last_drill_s=drill.duration_s if drill else None,
        operation_stories=kinds.get("operation", 0),
        test_stories=kinds.get("test", 0),
        user_stories=kinds.get("user", 0),
    )


@dataclass(frozen=True)
class Week:
    """One ISO week of a service's production deployments, for the charts."""

    week: str  # 2026-W03
    start: datetime
    deployments: int
    failed: int
    lead_time_s: float | None  # median over the week's commits
    recovery_s: float | None


@dataclass(frozen=True)
class Report:
    service: str
    name: str
    days: int
    start: datetime
    end: datetime
    dora: Dora
    previous: Dora  # the window before, for the trend
    flow: list[Check]
    ci: list[Check]
    value_stream: ValueStream
    maturity: list[Area]
    weeks: list[Week] = field(default_factory=list)


def _weeks(history: dora.History, window: tuple[datetime, datetime]) -> list[Week]:
    start = window[0] - timedelta(days=window[0].weekday())
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    found: list[Week] = []
    while start < window[1]:
        week = (max(start, window[0]), min(start + timedelta(days=7), window[1]))
        year, number, _ = start.isocalendar()
        fail = dora.change_fail_rate(history.deployments, (), week, history.failed)
        found.append(
            Week(
                f"{year}-W{number:02d}",
                week[0],
                int(fail.detail.get("deployments", 0)),
                int(fail.detail.get("failed", 0)),
                dora.change_lead_time(history.deployments, week).value,
                dora.recovery_of(history.recoveries, week).value,
            )
        )
        start += timedelta(days=7)
    return found


_reports: OrderedDict[tuple[str, int], tuple[int, float, Report]] = OrderedDict()
REPORTS_KEPT = 64


def report(
    slug: str, days: int = 30, now: datetime | None = None, *, fresh: bool = False
) -> Report:
    """Everything measured about one service over the ``days`` before ``now``.

    Without ``now`` (the pages, the API, the CLI), a report is reused while the service
    records no new event, for at most ``ROOM_TTL_S``; the latest ``REPORTS_KEPT`` are kept.
    """
    service = catalog.get_service(slug)
    if now is not None or fresh:
        return _measure(service, days, now)
    key, latest = (slug, days), _latest_event(slug)
    with _cache_lock:
        kept = _reports.get(key)
    if kept is not None and kept[0] == latest and time.monotonic() - kept[1] <= ROOM_TTL_S:
        return kept[2]
    found = _measure(service, days, None)
    with _cache_lock:
        _reports[key] = (latest, time.monotonic(), found)
        _reports.move_to_end(key)
        while len(_reports) > REPORTS_KEPT:
            _reports.popitem(last=False)
    return found


def _measure(service: Service, days: int, now: datetime | None) -> Report:
    slug = service.slug
    window = window_of(days, now)
    previous = (window[0] - timedelta(days=days), window[0])
    chosen = records(slug, previous[0] - LOOKBACK, window[1])
    checks = flow.checks(chosen, board_of(service), window)
    health = ci.health(chosen, window)
    stream = valuestream.value_stream(chosen, window)
    history = dora.History(chosen)
    measured = history.dora(window)
    return Report(
        service=slug,
        name=service.name,
        days=days,
        start=window[0],
        end=window[1],
        dora=measured,
        previous=history.dora(previous),
        flow=checks,
        ci=health,
        value_stream=stream,
        maturity=maturity.assess(
            measured, [*checks, *health], stream, facts_of(service, window[1])
        ),
        weeks=_weeks(history, window),
    )


# ---- trends --------------------------------------------------------------------------------

# For each metric, whether a higher value is better.
HIGHER_IS_BETTER = {
    "deployment_frequency": True,
    "change_lead_time": False,
    "change_fail_rate": False,
    "recovery_time": False,
    "rework_rate": False,
}


@dataclass(frozen=True)
class Trend:
    direction: str  # up | down | flat | new | none
    better: bool | None  # None when there is nothing to compare
    words: str  # "up from 0.4/day", never only an arrow


def trend(metric: str, now: float | None, before: float | None) -> Trend:
    if now is None:
        return Trend("none", None, "no data")
    if before is None:
        return Trend("new", None, "no earlier data")
    if abs(now - before) <= 0.05 * max(abs(before), 1e-9):
        return Trend("flat", None, "steady")
    up = now > before
    better = up == HIGHER_IS_BETTER[metric]
    return Trend("up" if up else "down", better, "better" if better else "worse")


# ---- JSON ------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Dataclasses, tuples, mappings and datetimes as JSON-ready values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def report_dict(found: Report) -> dict[str, Any]:
    body = plain(found)
    body["trends"] = {
        name: plain(
            trend(
                name,
                getattr(found.dora, name).value,
                getattr(found.previous, name).value,
            )
        )
        for name in HIGHER_IS_BETTER
    }
    return body


# ---- the room --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvironmentTile:
    name: str
    tier: str
    release: str
    version: str
    sha: str
    health: str  # healthy | deploying | rolled back | failed | unknown
    waiting: int  # deployments waiting (approval or queue)


@dataclass(frozen=True)
class ColumnTile:
    name: str
    cards: int
    limit: int | None

    @property
    def over(self) -> bool:
        return self.limit is not None and self.cards > self.limit


@dataclass(frozen=True)
class IncidentTile:
    number: int
    title: str
    severity: str
    status: str
    opened_at: datetime


@dataclass(frozen=True)
class ServiceTile:
    slug: str
    name: str
    stage: str
    andon_pulled: bool
    andon_reason: str
    environments: list[EnvironmentTile]
    columns: list[ColumnTile]
    dora: dict[str, dict[str, Any]]  # metric -> value, band, previous, trend
    incidents: list[IncidentTile]
    error_budget_left: float | None  # the lowest share left over the service's SLOs, 0..1
    budget_alert: str
    continuity_warnings: list[str]
    computed_at: datetime
    latest_event: int


_cache: dict[str, ServiceTile] = {}
_cache_lock = threading.Lock()
_cache_times: dict[str, float] = {}


def _latest_event(slug: str) -> int:
    found = Event.objects.filter(service=slug).order_by("-id").values_list("id", flat=True)[:1]
    return found[0] if found else 0


def _dora_tiles(slug: str, now: datetime) -> dict[str, dict[str, Any]]:
    window = window_of(ROOM_WINDOW_DAYS, now)
    previous = (window[0] - timedelta(days=ROOM_WINDOW_DAYS), window[0])
    history = dora.History(records(slug, previous[0] - LOOKBACK, window[1], DORA_KINDS))
    measured, before = history.dora(window), history.dora(previous)
    tiles: dict[str, dict[str, Any]] = {}
    for name in HIGHER_IS_BETTER:
        number, earlier = getattr(measured, name), getattr(before, name)
        tiles[name] = {
            "value": number.value,
            "band": number.band,
            "previous": earlier.value,
            "trend": plain(trend(name, number.value, earlier.value)),
            "count": len(number.evidence),
        }
    return tiles


def tile(service: Service, now: datetime | None = None) -> ServiceTile:
    """What the room shows of one service, computed now."""
    from obeya.deploy import services as deploy
    from obeya.ops import continuity_status, reviews
    from obeya.ops.models import Incident
    from obeya.pipelines import andon

    moment = now or SYSTEM_CLOCK.now()
    slug = service.slug
    cord = andon.state(service)
    environments = []
    for environment in deploy.list_environments(slug):
        state = deploy.environment_state(environment, with_commits=False, with_drift=False)
        serving = state.serving
        environments.append(
            EnvironmentTile(
                environment.name,
                environment.tier,
                state.current_release,
                serving.version if serving else "",
                serving.sha if serving else "",
                state.health,
                len(state.waiting),
            )
        )
    counts = dict(
        Card.objects.filter(column__service=service)
        .values_list("column_id")
        .annotate(n=Count("id"))
        .values_list("column_id", "n")
    )
    columns = [
        ColumnTile(c.name, counts.get(c.pk, 0), c.wip_limit)
        for c in Column.objects.filter(service=service).order_by("position")
    ]
    incidents = [
        IncidentTile(i.number, i.title, i.severity, i.status, i.opened_at)
        for i in Incident.objects.filter(service=service)
        .exclude(status="resolved")
        .order_by("-opened_at")
    ]
    budgets: list[tuple[float, str]] = []
    for slo in reviews.list_slos(slug):
        status = reviews.slo_view(slo, moment).status
        if status.budget_remaining_percent is not None:
            budgets.append((status.budget_remaining_percent / 100, status.alert))
    lowest = min(budgets) if budgets else None
    warnings = continuity_status.status(system_actor(ManualClock(moment)), slug).warnings
    return ServiceTile(
        slug=slug,
        name=service.name,
        stage=service.stage,
        andon_pulled=cord.pulled,
        andon_reason=cord.reason,
        environments=environments,
        columns=columns,
        dora=_dora_tiles(slug, moment),
        incidents=incidents,
        error_budget_left=lowest[0] if lowest else None,
        budget_alert=next((alert for _, alert in budgets if alert), ""),
        continuity_warnings=list(warnings),
        computed_at=moment,
        latest_event=_latest_event(slug),
    )


def room_services() -> list[Service]:
    return list(Service.objects.exclude(stage="retired").order_by("name"))


def room(now: datetime | None = None, *, fresh: bool = False) -> list[ServiceTile]:
    """Every live service's tile. A tile is computed again at once when its service recorded
    an event since; one older than ``ROOM_TTL_S`` is shown as it is while a background
    thread computes it again (so no request waits for every service at once). ``fresh``
    computes them all now."""
    tiles, stale = [], []
    for service in room_services():
        latest = _latest_event(service.slug)
        with _cache_lock:
            kept = _cache.get(service.slug)
            born = _cache_times.get(service.slug, 0.0)
        if fresh or now is not None or kept is None or kept.latest_event != latest:
            kept = _keep(tile(service, now))
        elif time.monotonic() - born > ROOM_TTL_S:
            stale.append(service)
        tiles.append(kept)
    if stale:
        _refresh_in_background(stale)
    return tiles


def _keep(found: ServiceTile) -> ServiceTile:
    with _cache_lock:
        _cache[found.slug] = found
        _cache_times[found.slug] = time.monotonic()
    return found


_refreshing = threading.Lock()


def _refresh_in_background(services: list[Service]) -> None:
    """Compute ``services``' tiles again in one daemon thread (none if one is at work)."""
    if not _refreshing.acquire(blocking=False):
        return

    def work() -> None:
        try:
            for service in services:
                _keep(tile(service))
        except Exception:  # a tile that cannot be computed now stays as it was
            log.exception("the room could not refresh its tiles")
        finally:
            connection.close()
            _refreshing.release()

    threading.Thread(target=work, name="room-refresh", daemon=True).start()


def forget_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _cache_times.clear()
        _reports.clear()


def room_version() -> int:
    """Changes whenever any event is recorded: the room's live stream polls it."""
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def tiles_dict(tiles: Iterable[ServiceTile]) -> list[dict[str, Any]]:
    found = []
    for one in tiles:
        body = plain(one)
        for column, data in zip(one.columns, body["columns"], strict=True):
            data["over"] = column.over
        found.append(body)
    return found


def dora_across(
    days: int = 30, now: datetime | None = None
) -> tuple[tuple[datetime, datetime], Dora]:
    """The five DORA metrics over every live service together (each number's evidence
    still names its deployments and incidents)."""
    window = window_of(days, now)
    rows = (
        Event.objects.filter(
            service__in=[s.slug for s in room_services()],
            at__gte=window[0] - LOOKBACK,
            at__lt=window[1],
            kind__in=KINDS,
        )
        .order_by("at", "id")
        .values_list("id", "at", "kind", "service", "data")
    )
    chosen = [Record(pk, at, kind, slug, data) for pk, at, kind, slug, data in rows]
    return window, dora.dora(chosen, window)
