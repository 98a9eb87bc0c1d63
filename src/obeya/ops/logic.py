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


def phase(monitor_id: int, interval_s: int) -> float:
    """A monitor's stable offset in its interval, in seconds: spread by a hash of its id."""
    mixed = (monitor_id * 2654435761) % 2**32  # Knuth's multiplicative hash
    return mixed / 2**32 * interval_s


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


# ---- SLOs and error budgets --------------------------------------------------------------

SLO_KINDS = ("availability", "latency")
FAST_BURN = 14.4  # 2 % of a 30-day budget in an hour (Google SRE workbook, ch. 5)
SLOW_BURN = 6.0  # 5 % of it in six hours


def burn_rate(bad: int, total: int, objective_percent: float) -> float:
    """How fast the error budget burns: 1.0 spends exactly the budget over the window."""
    if total == 0:
        return 0.0
    allowed = 1 - objective_percent / 100
    return (bad / total) / allowed if allowed > 0 else float("inf")


@dataclass(frozen=True)
class SloStatus:
    good: int
    total: int
    achieved_percent: float | None
    budget_bad: float  # bad events the objective allows over the window so far
    budget_remaining_percent: float | None
    fast_burn: float
    slow_burn: float
    alert: str  # "" | "fast burn" | "slow burn"


def slo_status(
    objective_percent: float,
    window: tuple[int, int],
    hour: tuple[int, int],
    five_minutes: tuple[int, int],
    six_hours: tuple[int, int],
    thirty_minutes: tuple[int, int],
) -> SloStatus:
    """The SLO over its window from (good, total) counts, with alerts on two windows each:
    fast when the last hour and the last 5 minutes both burn at 14.4 times the budget's
    rate or more; slow when the last 6 hours and the last 30 minutes both burn at 6 times
    or more (a long window to be sure, a short one to stop alerting soon after)."""
    good, total = window
    bad = total - good
    allowed = total * (1 - objective_percent / 100)
    remaining = (
        None
        if total == 0
        else max(0.0, (allowed - bad) / allowed * 100)
        if allowed
        else (100.0 if bad == 0 else 0.0)
    )

    def burn(counts: tuple[int, int]) -> float:
        return burn_rate(counts[1] - counts[0], counts[1], objective_percent)

    fast = min(burn(hour), burn(five_minutes))
    slow = min(burn(six_hours), burn(thirty_minutes))
    alert = "fast burn" if fast >= FAST_BURN else "slow burn" if slow >= SLOW_BURN else ""
    return SloStatus(
        good,
        total,
        None if total == 0 else good / total * 100,
        allowed,
        remaining,
        burn(hour),
        burn(six_hours),
        alert,
    )


def check_slo(fields: Mapping[str, object]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    kind = fields.get("kind")
    if kind not in SLO_KINDS:
        problems.append(("kind", f"SLO kind: {' or '.join(SLO_KINDS)}"))
    objective = fields.get("objective_percent")
    if not isinstance(objective, int | float) or not 0 < objective < 100:
        problems.append(
            ("objective_percent", "objective: a percentage above 0 and below 100, e.g. 99.9")
        )
    window = fields.get("window_days")
    if not isinstance(window, int) or not 1 <= window <= 90:
        problems.append(("window_days", "window_days: a whole number of days from 1 to 90"))
    threshold = fields.get("latency_threshold_ms")
    if kind == "latency" and not (isinstance(threshold, int | float) and threshold > 0):
        problems.append(
            ("latency_threshold_ms", "a latency SLO needs latency_threshold_ms above 0")
        )
    return problems


# ---- postmortems -------------------------------------------------------------------------

BLAME = re.compile(
    r"\b(human|operator|user|engineer|developer|people|person|staff)['\u2019]?s?\s+"
    r"(error|errors|mistake|mistakes|fault|failure)\b|\bpebkac\b|\bhuman factor\b",
    re.IGNORECASE,
)


def factor_problems(factors: Iterable[str]) -> list[str]:
    """Why these contributing factors cannot stand (blameless, more than one)."""
    cleaned = [factor.strip() for factor in factors if factor and factor.strip()]
    problems = []
    for factor in cleaned:
        if BLAME.search(factor):
            problems.append(
                f'"{factor}" names a person, not a cause: blameless postmortems ask what made '
                "the error possible (a missing check, a confusing screen, an unsafe default, "
                "too little time) and name that instead"
            )
    if len(cleaned) < 2:
        problems.append(
            "name more than one contributing factor: incidents rarely have a single cause"
        )
    return problems
