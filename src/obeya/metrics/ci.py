"""Continuous integration health (syllabus §3.1.4 to 3.1.6) as pure functions over one
service's event records: how often developers commit to the default branch, how long the
commit stage takes against its 10-minute limit, how much of the time the default branch
is red, and how fast a red build is fixed.

No I/O here: the caller reads the events and passes them in as ``Record``s, all of them
up to the window's end (the andon's state at the window's start comes from earlier ones).
Definitions:

- a **commit** counts once per sha, from the ``commits`` a default-branch ``run.created``
  lists (a run without that list counts its head commit), when its ``committed_at`` lies in
  the window; **working days** are the window's Monday-to-Friday time in days, in the
  window's time zone (a part day counts in part);
- the **commit stage** of a default-branch run lasts from ``run.created`` to whichever
  comes first: its ``run.finished`` or the first ``deployment.requested`` it makes (deploy
  jobs wait for the build and tests, so that request marks them green). Canceled runs are
  left out, as are runs whose commit stage has not ended;
- the branch is **red** from ``andon.pulled`` to the next ``andon.released``. The window's
  end stands for now: a cord still pulled then has been red until the window's end, and
  counts as a fix taking at least that long.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from obeya.metrics.dora import DAY, Record, percentile
from obeya.metrics.flow import in_words
from obeya.metrics.model import Check, Result

COMMITS_PER_DAY = 2.0  # §3.1.6: commit at least twice a day
COMMIT_STAGE_LIMIT_S = 600.0  # §3.1.6: build and tests under 10 minutes


def health(records: Sequence[Record], window: tuple[datetime, datetime]) -> list[Check]:
    """The four CI checks for one service over ``window`` = [start, end), in order:
    ci.commits_per_developer, ci.commit_stage, ci.red_share, ci.time_to_fix."""
    ordered = sorted(records, key=lambda r: (r.at, r.id))
    spans = _red_spans(ordered, window)
    return [
        _commits_per_developer(ordered, window),
        _commit_stage(ordered, window),
        _red_share(ordered, spans, window),
        _time_to_fix(spans, window),
    ]


def _within(window: tuple[datetime, datetime], at: datetime) -> bool:
    return window[0] <= at < window[1]


def _graded(value: float, good: float, fair: float, *, higher_is_better: bool = False) -> Result:
    if higher_is_better:
        return "pass" if value >= good else "warn" if value >= fair else "fail"
    return "pass" if value <= good else "warn" if value <= fair else "fail"


# ---- commits per developer per day ----------------------------------------------------------


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # git always writes an offset; a bare time can only have come from UTC
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def working_days(window: tuple[datetime, datetime]) -> float:
    """The window's Monday-to-Friday time, in days, in the time zone of its start."""
    start = window[0]
    end = window[1].astimezone(start.tzinfo)
    total = 0.0
    day = start.date()
    while day <= end.date():
        if day.weekday() < 5:
            midnight = datetime.combine(day, time(), tzinfo=start.tzinfo)
            overlap = min(end, midnight + timedelta(days=1)) - max(start, midnight)
            total += max(0.0, overlap.total_seconds()) / DAY
        day += timedelta(days=1)
    return total


def _commits_in(ordered: Sequence[Record], window: tuple[datetime, datetime]) -> dict[str, int]:
    """Commits landed on the default branch in the window, per author, each sha once."""
    seen: set[str] = set()
    per_author: dict[str, int] = {}
    for record in ordered:
        if record.kind != "run.created" or not record.data.get("default_branch"):
            continue
        listed = record.data.get("commits")
        commits = listed if isinstance(listed, list) else [record.data]  # before lists existed
        for commit in commits:
            if not isinstance(commit, Mapping):
                continue
            sha, when = str(commit.get("sha") or ""), _moment(commit.get("committed_at"))
            if not sha or sha in seen or when is None:
                continue
            seen.add(sha)
            if _within(window, when):
                author = str(commit.get("author") or "unknown")
                per_author[author] = per_author.get(author, 0) + 1
    return per_author


def _commits_per_developer(ordered: Sequence[Record], window: tuple[datetime, datetime]) -> Check:
    title = "Does every developer commit to the default branch at least twice a day?"
    per_author = _commits_in(ordered, window)
    days = working_days(window)
    detail: dict[str, Any] = {"working_days": days, "commits": sum(per_author.values())}
    if not per_author or days <= 0:
        missing = "working day" if days <= 0 else "commit to the default branch"
        return Check(
            "ci.commits_per_developer",
            title,
            "no data",
            None,
            f"No {missing} in this window.",
            detail=detail,
        )
    rates = {author: n / days for author, n in per_author.items()}
    median = statistics.median(rates.values())
    result = _graded(median, COMMITS_PER_DAY, 1.0, higher_is_better=True)
    return Check(
        "ci.commits_per_developer",
        title,
        result,
        median,
        f"The median developer commits to the default branch {median:.1f} times a working "
        f"day ({len(rates)} developers, {round(days, 1):g} working days; at least 2 is the aim).",
        tuple(
            {"what": "person", "id": author, "commits": per_author[author], "per_day": rate}
            for author, rate in sorted(rates.items())
        ),
        {**detail, "developers": len(rates)},
    )


# ---- commit stage duration --------------------------------------------------------------


def _commit_stage(ordered: Sequence[Record], window: tuple[datetime, datetime]) -> Check:
    title = "Does the commit stage finish within 10 minutes?"
    created: dict[int, datetime] = {}
    runs: list[dict[str, Any]] = []
    for record in ordered:
        data = record.data
        if record.kind == "run.created" and data.get("default_branch"):
            if isinstance(data.get("number"), int):
                created[data["number"]] = record.at
            continue
        if record.kind == "run.finished":
            number = data.get("number")
        elif record.kind == "deployment.requested":
            number = data.get("run")
        else:
            continue
        if number not in created:
            continue
        began = created.pop(number)  # the first end is the one that counts
        canceled = record.kind == "run.finished" and data.get("status") == "canceled"
        if canceled or not _within(window, record.at):
            continue
        runs.append(
            {
                "what": "run",
                "id": number,
                "seconds": (record.at - began).total_seconds(),
                "ended_by": record.kind,
            }
        )
    if not runs:
        return Check(
            "ci.commit_stage",
            title,
            "no data",
            None,
            "No default-branch run finished its commit stage in this window.",
        )
    seconds = [run["seconds"] for run in runs]
    p90 = percentile(seconds, 0.9) or 0.0
    over = sum(1 for s in seconds if s > COMMIT_STAGE_LIMIT_S)
    return Check(
        "ci.commit_stage",
        title,
        _graded(p90, COMMIT_STAGE_LIMIT_S, 1.5 * COMMIT_STAGE_LIMIT_S),
        p90,
        f"9 in 10 of {len(runs)} default-branch commit stages took {in_words(p90)} or less; "
        f"{over} ran over the 10-minute limit.",
        tuple(sorted(runs, key=lambda run: run["id"])),
        {
            "p90_s": p90,
            "median_s": statistics.median(seconds),
            "runs": len(runs),
            "over_limit": over,
            "limit_s": COMMIT_STAGE_LIMIT_S,
        },
    )


# ---- red default branch and time to fix -----------------------------------------------------


@dataclass(frozen=True)
class _Red:
    """The andon cord pulled from ``pulled_at`` to ``released_at`` (None: still pulled at
    the window's end)."""

    id: int  # the andon.pulled event
    pulled_at: datetime
    released_at: datetime | None
    run: Any

    def until(self, end: datetime) -> datetime:
        return self.released_at or end

    def evidence(self, end: datetime) -> dict[str, Any]:
        return {
            "what": "andon",
            "id": self.id,
            "pulled_at": self.pulled_at.isoformat(),
            "released_at": self.released_at.isoformat() if self.released_at else None,
            "run": self.run,
            "seconds": (self.until(end) - self.pulled_at).total_seconds(),
        }


def _red_spans(ordered: Sequence[Record], window: tuple[datetime, datetime]) -> list[_Red]:
    """Every pull of the cord before the window's end, with its release if one came
    before the window's end."""
    spans: list[_Red] = []
    pulled: Record | None = None
    for record in ordered:
        if record.at >= window[1]:
            break
        if record.kind == "andon.pulled" and pulled is None:
            pulled = record
        elif record.kind == "andon.released" and pulled is not None:
            spans.append(_Red(pulled.id, pulled.at, record.at, pulled.data.get("run")))
            pulled = None
    if pulled is not None:
        spans.append(_Red(pulled.id, pulled.at, None, pulled.data.get("run")))
    return spans


def _red_share(
    ordered: Sequence[Record], spans: Sequence[_Red], window: tuple[datetime, datetime]
) -> Check:
    title = "How much of the time was the default branch red?"
    start, end = window
    length = (end - start).total_seconds()
    touching = [s for s in spans if s.until(end) > start or s.pulled_at >= start]
    runs = any(
        r.kind in {"run.created", "run.finished"}
        and r.data.get("default_branch")
        and _within(window, r.at)
        for r in ordered
    )
    if length <= 0 or not (touching or runs):
        return Check(
            "ci.red_share",
            title,
            "no data",
            None,
            "No default-branch run and no andon pull in this window.",
        )
    red = sum(max(0.0, (s.until(end) - max(start, s.pulled_at)).total_seconds()) for s in touching)
    share = min(1.0, red / length)
    red_now = any(s.released_at is None for s in touching)
    if red == 0:
        summary = "The default branch was never red in this window."
    else:
        now = ", and is red now" if red_now else ""
        summary = (
            f"The default branch was red {_percent(share)} of this window ({in_words(red)}){now}."
        )
    return Check(
        "ci.red_share",
        title,
        _graded(share, 0.05, 0.15),
        share,
        summary,
        tuple(s.evidence(end) for s in touching),
        {"red_s": red, "window_s": length, "pulls": len(touching), "red_now": red_now},
    )


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.1 or share == 0 else f"{share:.1%}"


def _time_to_fix(spans: Sequence[_Red], window: tuple[datetime, datetime]) -> Check:
    title = "How fast is a red build fixed?"
    start, end = window
    fixed = [s for s in spans if s.released_at is not None and start <= s.released_at < end]
    open_now = [s for s in spans if s.released_at is None]
    counted = sorted(fixed + open_now, key=lambda s: (s.pulled_at, s.id))
    if not counted:
        return Check(
            "ci.time_to_fix",
            title,
            "no data",
            None,
            "The default branch was not red in this window: there was nothing to fix.",
        )
    seconds = [(s.until(end) - s.pulled_at).total_seconds() for s in counted]
    median = statistics.median(seconds)
    still = (
        f"; it has been red for {in_words((end - open_now[0].pulled_at).total_seconds())} now"
        if open_now
        else ""
    )
    return Check(
        "ci.time_to_fix",
        title,
        _graded(median, 600.0, 3600.0),
        median,
        f"A red default branch was fixed in {in_words(median)} (median of {len(counted)}){still}.",
        tuple(s.evidence(end) for s in counted),
        {
            "fixes": len(fixed),
            "red_now": bool(open_now),
            "p90_s": percentile(seconds, 0.9),
        },
    )
