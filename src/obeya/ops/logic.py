"""Rules of operations: incident states and timings, when a monitor opens an incident,
and hourly roll-ups of check results. Pure: no Django, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

STATUSES = ("open", "acknowledged", "mitigated", "resolved")
SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
MONITOR_KINDS = ("http", "command")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
RAW_DAYS = 7


def can_move(current: str, target: str) -> bool:
    """Incidents only move forward (open → acknowledged → mitigated → resolved); a step
    may be skipped, and the times of skipped steps are filled in (see ``moved``)."""
    return target in STATUSES and STATUSES.index(target) > STATUSES.index(current)


def moved(
    current: str, target: str, now: datetime, times: Mapping[str, datetime | None]
) -> dict[str, datetime]:
    """The timestamps to set when an incident moves from ``current`` to ``target``."""
    stamps: dict[str, datetime] = {}
    for status in STATUSES[STATUSES.index(current) + 1 : STATUSES.index(target) + 1]:
        field = f"{status}_at"
        if times.get(field) is None:
            stamps[field] = now
    return stamps


@dataclass(frozen=True)
class Timings:
    time_to_acknowledge_s: float | None
    time_to_restore_s: float | None


def timings(
    opened: datetime,
    acknowledged: datetime | None,
    mitigated: datetime | None,
    resolved: datetime | None,
) -> Timings:
    """Time to acknowledge (opened → acknowledged) and to restore (opened → service
    restored: mitigated, or resolved when it was never mitigated first)."""
    restored = mitigated or resolved
    return Timings(
        (acknowledged - opened).total_seconds() if acknowledged else None,
        (restored - opened).total_seconds() if restored else None,
    )


@dataclass(frozen=True)
class MonitorVerdict:
    """What one check result means for the monitor and its incidents."""

    consecutive_failures: int
    open_incident: bool  # the threshold was just reached and no incident is open
    recovered: bool  # it passed after failing


def judge(
    ok: bool, consecutive_failures: int, threshold: int, incident_open: bool
) -> MonitorVerdict:
    if ok:
        return MonitorVerdict(0, False, consecutive_failures > 0)
    failures = consecutive_failures + 1
    return MonitorVerdict(failures, failures >= threshold and not incident_open, False)


@dataclass(frozen=True)
class Rollup:
    hour: datetime
    checks: int
    failures: int
    latency_sum_ms: float
    latency_max_ms: float


def roll_up(results: Iterable[tuple[datetime, bool, float]]) -> list[Rollup]:
    """Hourly totals of (at, ok, latency_ms) results."""
    hours: dict[datetime, list[tuple[bool, float]]] = {}
    for at, ok, latency in results:
        hour = at.replace(minute=0, second=0, microsecond=0)
        hours.setdefault(hour, []).append((ok, latency))
    return [
        Rollup(
            hour,
            len(items),
            sum(1 for ok, _ in items if not ok),
            sum(latency for _, latency in items),
            max(latency for _, latency in items),
        )
        for hour, items in sorted(hours.items())
    ]


def raw_cutoff(now: datetime) -> datetime:
    """Raw results older than this are rolled up and removed (whole hours only)."""
    return (now - timedelta(days=RAW_DAYS)).replace(minute=0, second=0, microsecond=0)


def check_monitor(fields: Mapping[str, object]) -> list[tuple[str, str]]:
    """Problems with a monitor's settings, as (field, message with the way out)."""
    problems: list[tuple[str, str]] = []
    kind = fields.get("kind")
    if kind not in MONITOR_KINDS:
        problems.append(("kind", f"monitor kind: {' or '.join(MONITOR_KINDS)}"))
    if kind == "http":
        url = fields.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            problems.append(("url", "url: an http:// or https:// address"))
    if kind == "command" and not str(fields.get("command") or "").strip():
        problems.append(("command", "command: a shell command that exits 0 when healthy"))
    for field, low, high in (
        ("interval_s", 5, 86400),
        ("failure_threshold", 1, 100),
        ("expect_status", 100, 599),
    ):
        value = fields.get(field)
        if value is not None and not (isinstance(value, int) and low <= value <= high):
            problems.append((field, f"{field}: a whole number from {low} to {high}"))
    timeout = fields.get("timeout_s")
    interval = fields.get("interval_s")
    if timeout is not None and not (isinstance(timeout, int | float) and 0 < timeout <= 60):
        problems.append(("timeout_s", "timeout_s: more than 0 and at most 60 seconds"))
    elif isinstance(timeout, int | float) and isinstance(interval, int) and timeout > interval:
        problems.append(("timeout_s", "timeout_s: at most the interval"))
    return problems
