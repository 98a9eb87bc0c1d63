"""The five DORA metrics as pure functions over event records, with the evidence behind
every number and the 2024 performance band each falls in.

No I/O here: callers read the events (``core.events.timeline``) and pass them in as
``Record``s. Definitions (docs/metrics.md pins them down with a worked example):

- a **production deployment** is a deployment of kind ``deploy`` to an environment of tier
  ``production`` that reached users: it ended ``succeeded`` or ``rolled_back``;
- **deployment frequency** counts the successful ones per day and per week, and the share
  of weeks with at least three deployment days;
- **change lead time** is, for every commit a successful production deployment brought
  (``commits`` of its ``deployment.succeeded`` event), the time from the commit to the
  deployment's end; median and p90 over all those commits;
- a production deployment **failed** when it was rolled back (automatically or later by
  hand: a ``rollback`` deployment went back past its release) or when an incident names it
  as its cause (``incident.caused_by``); **change fail rate** = failed ÷ production
  deployments;
- **failed deployment recovery time** runs from the failure reaching users (or being
  detected) to the service being restored: an automatic rollback from the failed release's
  switch (``deployment.switched``; ``deployment.failed`` when it never switched) to
  ``deployment.rolled_back``; an incident from ``incident.opened`` to
  ``incident.mitigated`` (or ``incident.resolved`` when never mitigated);
- **deployment rework rate** = production deployments (either kind) started while an
  incident caused by a production deployment of the same service was open ÷ production
  deployments (either kind).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

DAY = 86400.0


@dataclass(frozen=True)
class Record:
    """An event as the formulas see it."""

    id: int
    at: datetime
    kind: str
    service: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    id: int
    service: str
    kind: str  # deploy | rollback
    status: str  # succeeded | rolled_back
    started: datetime
    ended: datetime
    sha: str
    release: str
    previous_release: str
    commits: tuple[tuple[str, datetime], ...] = ()


@dataclass(frozen=True)
class Number:
    """A value, its band, and what it was computed from (ids to list behind it)."""

    value: float | None
    band: str
    evidence: tuple[Any, ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


# The 2024 DORA report's clusters (Accelerate State of DevOps 2024, p. 13). The report's
# own oddity is kept: its medium cluster has a lower change fail rate than its high one.
BANDS: dict[str, list[tuple[str, float]]] = {
    # deployments per day at least
    "deployment_frequency": [("elite", 1.0), ("high", 1 / 7), ("medium", 1 / 30), ("low", 0.0)],
    # lead time in seconds at most
    "change_lead_time": [("elite", DAY), ("high", 7 * DAY), ("medium", 30 * DAY), ("low", 1e18)],
    # fail rate at most
    "change_fail_rate": [("elite", 0.05), ("medium", 0.10), ("high", 0.20), ("low", 1.0)],
    # recovery in seconds at most
    "recovery_time": [("elite", 3600.0), ("high", DAY), ("low", 1e18)],
}


def band(metric: str, value: float | None) -> str:
    if value is None:
        return "no data"
    for name, limit in BANDS[metric]:
        if (metric == "deployment_frequency" and value >= limit) or (
            metric != "deployment_frequency" and value <= limit
        ):
            return name
    return "low"


def _ordered(records: Iterable[Record], service: str | None) -> list[Record]:
    chosen = [r for r in records if service is None or r.service == service]
    return sorted(chosen, key=lambda r: (r.at, r.id))


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def production_deployments(
    records: Iterable[Record], service: str | None = None
) -> list[Deployment]:
    """Production deployments that reached users, in the order they ended."""
    started: dict[int, datetime] = {}
    found: list[Deployment] = []
    for record in _ordered(records, service):
        data = record.data
        number = data.get("deployment")
        if not isinstance(number, int) or data.get("tier") != "production":
            continue
        if record.kind == "deployment.started":
            started[number] = record.at
        elif record.kind in {"deployment.succeeded", "deployment.rolled_back"}:
            commits = tuple(
                (str(c.get("sha", "")), when)
                for c in data.get("commits") or []
                if isinstance(c, Mapping) and (when := _parse(c.get("committed_at"))) is not None
            )
            found.append(
                Deployment(
                    id=number,
                    service=record.service,
                    kind=str(data.get("kind") or "deploy"),
                    status="succeeded" if record.kind.endswith("succeeded") else "rolled_back",
                    started=started.get(number, record.at),
                    ended=record.at,
                    sha=str(data.get("sha") or ""),
                    release=str(data.get("release") or ""),
                    previous_release=str(data.get("previous_release") or ""),
                    commits=commits,
                )
            )
    return found


def _in(window: tuple[datetime, datetime], at: datetime) -> bool:
    return window[0] <= at < window[1]


def deployment_frequency(
    deployments: Sequence[Deployment], window: tuple[datetime, datetime]
) -> Number:
    done = [d for d in deployments if d.kind == "deploy" and d.status == "succeeded"]
    done = [d for d in done if _in(window, d.ended)]
    days = max((window[1] - window[0]).total_seconds() / DAY, 1e-9)
    per_day = len(done) / days
    deploy_days = {d.ended.date() for d in done}
    weeks = _weeks(window)
    busy = [week for week in weeks if sum(1 for day in deploy_days if _week_of(day) == week) >= 3]
    return Number(
        per_day,
        band("deployment_frequency", per_day) if done else "no data",
        tuple(d.id for d in done),
        {
            "per_week": per_day * 7,
            "deployments": len(done),
            "deployment_days": len(deploy_days),
            "weeks": len(weeks),
            "share_of_weeks_with_3_deployment_days": len(busy) / len(weeks) if weeks else 0.0,
        },
    )


def _week_of(day: date) -> tuple[int, int]:
    year, week, _ = day.isocalendar()
    return (year, week)


def _weeks(window: tuple[datetime, datetime]) -> list[tuple[int, int]]:
    """The ISO weeks the window covers whole (a partial week would look idle)."""
    weeks: list[tuple[int, int]] = []
    day = window[0].date()
    while day < window[1].date():
        monday = day - timedelta(days=day.weekday())
        whole = monday >= window[0].date() and monday + timedelta(days=7) <= window[1].date()
        if whole and _week_of(day) not in weeks:
            weeks.append(_week_of(day))
        day += timedelta(days=1)
    return weeks


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (p90: share 0.9); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def change_lead_time(
    deployments: Sequence[Deployment], window: tuple[datetime, datetime]
) -> Number:
    """Commit → running in production, for every commit of every successful deployment."""
    samples: list[tuple[str, int, float]] = []
    for deployment in deployments:
        if deployment.status != "succeeded" or deployment.kind != "deploy":
            continue
        if not _in(window, deployment.ended):
            continue
        for sha, committed in deployment.commits:
            seconds = max(0.0, (deployment.ended - committed).total_seconds())
            samples.append((sha, deployment.id, seconds))
    values = [seconds for _, _, seconds in samples]
    median = statistics.median(values) if values else None
    return Number(
        median,
        band("change_lead_time", median),
        tuple((sha, deployment) for sha, deployment, _ in samples),
        {"p90_s": percentile(values, 0.9), "commits": len(values)},
    )


def failed_deployments(
    deployments: Sequence[Deployment], records: Iterable[Record]
) -> dict[int, str]:
    """Production deployments that failed, each with why."""
    failed: dict[int, str] = {}
    by_release = {d.release: d for d in deployments if d.kind == "deploy" and d.release}
    for deployment in deployments:
        if deployment.kind == "deploy" and deployment.status == "rolled_back":
            failed[deployment.id] = "rolled back automatically"
        if deployment.kind == "rollback" and deployment.status == "succeeded":
            replaced = by_release.get(deployment.previous_release)
            if replaced is not None and replaced.id not in failed:
                failed[replaced.id] = f"rolled back by hand (deployment {deployment.id})"
    ids = {d.id for d in deployments if d.kind == "deploy"}
    for record in records:
        number = record.data.get("deployment")
        if record.kind == "incident.caused_by" and number in ids and number not in failed:
            failed[int(number)] = f"caused incident {record.data.get('number')}"
    return failed


def change_fail_rate(
    deployments: Sequence[Deployment],
    records: Iterable[Record],
    window: tuple[datetime, datetime],
    failed: Mapping[int, str] | None = None,
) -> Number:
    """Failed ÷ production deployments (``failed``: ``failed_deployments``, when known)."""
    counted = [d for d in deployments if d.kind == "deploy" and _in(window, d.ended)]
    if failed is None:
        failed = failed_deployments(deployments, records)
    bad = [d.id for d in counted if d.id in failed]
    rate = len(bad) / len(counted) if counted else None
    return Number(
        rate,
        band("change_fail_rate", rate),
        tuple(bad),
        {"deployments": len(counted), "failed": len(bad), "why": {i: failed[i] for i in bad}},
    )


def recovery_samples(
    records: Iterable[Record], deployments: Sequence[Deployment]
) -> list[tuple[str, datetime, float]]:
    """Every recovery from a failed production deployment: (what, restored at, seconds)."""
    ordered = sorted(records, key=lambda r: (r.at, r.id))
    production = {d.id for d in deployments}
    detected: dict[int, datetime] = {}
    switched: dict[int, datetime] = {}
    samples: list[tuple[str, datetime, float]] = []
    opened: dict[tuple[str, Any], datetime] = {}
    caused: set[tuple[str, Any]] = set()
    for record in ordered:
        data = record.data
        number = data.get("deployment")
        if record.kind == "deployment.switched" and number in production:
            switched[int(number)] = record.at  # the failed release reached users here
        elif record.kind == "deployment.failed" and number in production:
            detected[int(number)] = switched.pop(int(number), record.at)
        elif record.kind == "deployment.rolled_back" and number in detected:
            seconds = (record.at - detected.pop(number)).total_seconds()
            samples.append((f"deployment {number}", record.at, seconds))
        incident = (record.service, data.get("number"))
        if record.kind == "incident.opened":
            opened[incident] = record.at
        elif record.kind == "incident.caused_by" and number in production:
            caused.add(incident)
        elif record.kind in {"incident.mitigated", "incident.resolved"} and incident in opened:
            start = opened.pop(incident)
            if incident in caused:
                seconds = (record.at - start).total_seconds()
                samples.append((f"incident {incident[1]}", record.at, seconds))
    return samples


def recovery_of(
    samples: Sequence[tuple[str, datetime, float]], window: tuple[datetime, datetime]
) -> Number:
    """The recovery time of the samples restored inside ``window``."""
    chosen = [(what, seconds) for what, at, seconds in samples if _in(window, at)]
    values = [seconds for _, seconds in chosen]
    median = statistics.median(values) if values else None
    return Number(
        median,
        band("recovery_time", median),
        tuple(what for what, _ in chosen),
        {"p90_s": percentile(values, 0.9), "failures": len(values)},
    )


def recovery_time(
    records: Iterable[Record], deployments: Sequence[Deployment], window: tuple[datetime, datetime]
) -> Number:
    """Failure detected → service restored, for rollbacks and deployment-caused incidents."""
    return recovery_of(recovery_samples(records, deployments), window)


def rework_rate(
    records: Iterable[Record], deployments: Sequence[Deployment], window: tuple[datetime, datetime]
) -> Number:
    """Deployments made because of a production incident ÷ production deployments."""
    ordered = sorted(records, key=lambda r: (r.at, r.id))
    production = {d.id for d in deployments}
    spans: list[tuple[str, datetime, datetime]] = []
    opened: dict[tuple[str, Any], datetime] = {}
    caused: set[tuple[str, Any]] = set()
    far = datetime.max.replace(tzinfo=window[1].tzinfo)
    for record in ordered:
        incident = (record.service, record.data.get("number"))
        if record.kind == "incident.opened":
            opened[incident] = record.at
        elif record.kind == "incident.caused_by" and record.data.get("deployment") in production:
            caused.add(incident)
        elif record.kind == "incident.resolved" and incident in opened:
            start = opened.pop(incident)
            if incident in caused:
                spans.append((incident[0], start, record.at))
    spans += [(i[0], start, far) for i, start in opened.items() if i in caused]
    counted = [d for d in deployments if _in(window, d.started)]
    rework = [
        d.id
        for d in counted
        if any(svc == d.service and start <= d.started < end for svc, start, end in spans)
    ]
    rate = len(rework) / len(counted) if counted else None
    return Number(rate, "no band (new in 2024)", tuple(rework), {"deployments": len(counted)})


@dataclass(frozen=True)
class Dora:
    deployment_frequency: Number
    change_lead_time: Number
    change_fail_rate: Number
    recovery_time: Number
    rework_rate: Number


def dora(
    records: Iterable[Record], window: tuple[datetime, datetime], service: str | None = None
) -> Dora:
    """The five metrics for one service (or all) over ``window`` = [start, end)."""
    return History(_ordered(records, service)).dora(window)


class History:
    """One service's (or all) records, with what every window's metrics share worked out
    once: its production deployments, the failed ones, the recoveries. For computing many
    windows (the one before, week by week) without reading the records again each time."""

    def __init__(self, ordered: Sequence[Record]) -> None:
        self.records = ordered  # sorted by (at, id)
        self.deployments = production_deployments(ordered)
        self.failed = failed_deployments(self.deployments, ordered)
        self.recoveries = recovery_samples(ordered, self.deployments)

    def dora(self, window: tuple[datetime, datetime]) -> Dora:
        return Dora(
            deployment_frequency(self.deployments, window),
            change_lead_time(self.deployments, window),
            change_fail_rate(self.deployments, self.records, window, self.failed),
            recovery_of(self.recoveries, window),
            rework_rate(self.records, self.deployments, window),
        )
