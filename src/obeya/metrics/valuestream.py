"""The value stream map of one service: how long work typically spends in each stage from
idea to production, and how much of that time is work and how much is waiting.

Pure: the caller passes the service's event records (one service only) and a window
``[start, end)``; a sample counts when it *ends* in the window. Each stage is measured on
its own samples and shows their medians, so the map is the typical time per stage, not
one item's journey: stories are not linked to the runs and deployments that carried them.
Stages, in order (process = someone or something is working, wait = the item waits):

- **backlog** (a story): created → its first move into a ``starts_work`` column. Wait.
- **in progress** (a story done in the window): from its start to its (last) done time,
  except time in review columns. Time in a ``starts_work`` column is process; time in any
  other column it was moved back to (Ready, Blocked …) is wait.
- **review** (a story done in the window that passed a column whose name contains
  "review"): all its time in such columns, counted as wait. The events do not say when a
  reviewer picked the card up, so Obeya cannot split review into queue and work; the
  reviewing itself is usually the small part.
- **commit stage** (a default-branch run that succeeded or asked for a deployment): wait
  from the commit (``committed_at`` of the run's head) to ``run.created``; process from
  ``run.created`` to the end of its build and test jobs. A run's deploy jobs are part of
  the run, so ``run.finished`` can come after production; the commit stage therefore ends
  at the run's first ``deployment.requested`` if that is earlier, and at the last
  ``job.finished`` of the run before that moment when there is one (the time a manual
  deploy job waits for a person is not the commit stage's work).
- **acceptance** (a staging deployment of kind ``deploy`` that succeeded): wait from its
  run's commit-stage end (or, without a known run, from its request) to
  ``deployment.started``; process from started to ``deployment.succeeded``. When the same
  run later asks for production, the time from staging to that request belongs here too:
  the run's jobs busy in that gap (tests against staging) are process, the rest is wait,
  and the sample ends at that request.
- **approval wait** (a production deployment of kind ``deploy``): ``deployment.requested``
  → ``deployment.queued`` (approved). A request that needed no approval (requested with
  status ``queued``) waits 0 here. Approvals carry no deployment number, so they are not
  read; the queued event that follows the last approval is.
- **deployment** (a production deployment of kind ``deploy`` that reached users:
  ``succeeded`` or ``rolled_back``): wait from approval (or request) to
  ``deployment.started``, the queue for the environment; process from started to its end.

Every time is clipped at zero (clocks of different machines disagree). ``lead_s`` is the
sum of the stages' medians; ``flow_efficiency`` = process ÷ (process + wait).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, NamedTuple

from obeya.metrics.dora import Record

STAGES = (
    "backlog",
    "in progress",
    "review",
    "commit stage",
    "acceptance",
    "approval wait",
    "deployment",
)
REACHED_USERS = {"deployment.succeeded", "deployment.rolled_back"}


@dataclass(frozen=True)
class Stage:
    """One stage of the map: median process and wait time of its samples (None: none)."""

    name: str
    process_s: float | None
    wait_s: float | None
    samples: int
    # each: {"what": "story"|"run"|"deployment", "id", "seconds", "process_s", "wait_s", "at"}
    evidence: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class ValueStream:
    """The map: its stages in order and their totals. ``window`` is the one measured."""

    stages: tuple[Stage, ...]
    process_s: float | None
    wait_s: float | None
    lead_s: float | None
    flow_efficiency: float | None  # process ÷ (process + wait), 0..1
    biggest_wait: str | None  # the name of the stage with the longest wait
    window: tuple[datetime, datetime] | None = None


class Sample(NamedTuple):
    """One item's time in one stage."""

    what: str
    id: Any
    end: datetime
    process: float | None
    wait: float | None


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


# ---- stories ------------------------------------------------------------------------------


class _Move(NamedTuple):
    at: datetime
    to: str
    starts_work: bool
    done: bool


def story_samples(records: Iterable[Record]) -> dict[str, list[Sample]]:
    """Backlog, in-progress and review samples of every story, from its events."""
    created: dict[str, datetime] = {}
    moves: dict[str, list[_Move]] = {}
    for record in records:
        key = record.data.get("key")
        if not isinstance(key, str):
            continue
        if record.kind == "story.created":
            created.setdefault(key, record.at)
        elif record.kind == "story.moved":
            data = record.data
            move = _Move(
                record.at,
                str(data.get("to") or ""),
                bool(data.get("starts_work")),
                bool(data.get("done")),
            )
            moves.setdefault(key, []).append(move)
    found: dict[str, list[Sample]] = {"backlog": [], "in progress": [], "review": []}
    for key, story in moves.items():
        start = next((m.at for m in story if m.starts_work), None)
        if start is None:
            continue
        if key in created:
            found["backlog"].append(
                Sample("story", key, start, None, _seconds(created[key], start))
            )
        done_at = _done_at(story)
        if done_at is None:
            continue
        work = waiting = review = 0.0
        reviewed = False
        for move, after in pairwise(story):
            if move.at < start or after.at > done_at or move.done:
                continue
            seconds = _seconds(move.at, after.at)
            if "review" in move.to.casefold():
                review, reviewed = review + seconds, True
            elif move.starts_work:
                work += seconds
            else:
                waiting += seconds
        found["in progress"].append(Sample("story", key, done_at, work, waiting))
        if reviewed:
            found["review"].append(Sample("story", key, done_at, None, review))
    return found


def _done_at(story: Sequence[_Move]) -> datetime | None:
    """The last time the story became done, if it is done after its last move."""
    if not story or not story[-1].done:
        return None
    done_at = story[-1].at
    for move in reversed(story):
        if not move.done:
            break
        done_at = move.at
    return done_at


# ---- runs and deployments -----------------------------------------------------------------


@dataclass
class _Run:
    created: datetime
    committed: datetime | None
    finished: datetime | None = None
    status: str = ""
    jobs: list[tuple[datetime, datetime]] = field(default_factory=list)


@dataclass
class _Deployment:
    number: int
    tier: str = ""
    kind: str = "deploy"
    run: Any = None
    requested: datetime | None = None
    needs_approval: bool | None = None
    queued: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    outcome: str = ""

    @property
    def approved(self) -> datetime | None:
        """When it was free to go: queued after approval, at once when none was needed."""
        if self.queued is not None:
            return self.queued
        if self.needs_approval is False:
            return self.requested
        return self.started


def _runs_and_deployments(
    records: Iterable[Record],
) -> tuple[dict[Any, _Run], dict[int, _Deployment]]:
    runs: dict[Any, _Run] = {}
    jobs: dict[Any, list[tuple[datetime, datetime]]] = {}
    deployments: dict[int, _Deployment] = {}
    for record in records:
        data = record.data
        if record.kind == "run.created" and data.get("default_branch"):
            runs.setdefault(data.get("number"), _Run(record.at, _when(data.get("committed_at"))))
        elif record.kind == "run.finished" and data.get("number") in runs:
            run = runs[data.get("number")]
            run.finished, run.status = record.at, str(data.get("status") or "")
        elif record.kind == "job.finished":
            duration = data.get("duration_s")
            seconds = float(duration) if isinstance(duration, int | float) else 0.0
            jobs.setdefault(data.get("run"), []).append(
                (record.at - timedelta(seconds=max(0.0, seconds)), record.at)
            )
        elif record.kind.startswith("deployment.") and isinstance(data.get("deployment"), int):
            _fold_deployment(deployments, record)
    for number, run in runs.items():
        run.jobs = [job for job in jobs.get(number, []) if job[1] >= run.created]
    return runs, deployments


def _fold_deployment(deployments: dict[int, _Deployment], record: Record) -> None:
    data = record.data
    number = int(data["deployment"])
    deployment = deployments.setdefault(number, _Deployment(number))
    deployment.tier = str(data.get("tier") or deployment.tier)
    deployment.kind = str(data.get("kind") or deployment.kind)
    deployment.run = data.get("run", deployment.run)
    if record.kind == "deployment.requested" and deployment.requested is None:
        deployment.requested = record.at
        status = data.get("status")
        if status in {"waiting_approval", "queued"}:
            deployment.needs_approval = status == "waiting_approval"
    elif record.kind == "deployment.queued" and deployment.queued is None:
        deployment.queued = record.at
    elif record.kind == "deployment.started" and deployment.started is None:
        deployment.started = record.at
    elif deployment.outcome or record.kind not in REACHED_USERS | {"deployment.failed"}:
        return
    elif record.kind != "deployment.failed" or not data.get("rolled_back"):
        # a failure that is rolled back ends at the rollback, not at the failure
        deployment.ended, deployment.outcome = record.at, record.kind.split(".", 1)[1]


def _commit_end(run: _Run, first_request: datetime | None) -> datetime | None:
    """When the run's build and test work was done (see the module's docstring)."""
    if first_request is None and run.status != "succeeded":
        return None  # red, canceled or still running: this change did not pass the stage
    limit = min(t for t in (run.finished, first_request) if t is not None)
    return max((end for _, end in run.jobs if end <= limit), default=limit)


def _busy(spans: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> float:
    """Seconds of [start, end) covered by at least one of the spans."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        if b > reach:
            total += (b - max(a, reach)).total_seconds()
            reach = b
    return total


def delivery_samples(records: Iterable[Record]) -> dict[str, list[Sample]]:
    """Commit-stage, acceptance, approval and deployment samples, from runs and deployments."""
    runs, deployments = _runs_and_deployments(records)
    requests: dict[Any, list[_Deployment]] = {}
    asked = [d for d in deployments.values() if d.requested is not None and d.run is not None]
    for deployment in sorted(asked, key=lambda d: (d.requested, d.number)):
        requests.setdefault(deployment.run, []).append(deployment)
    by_run: dict[Any, list[_Deployment]] = {}  # every deployment of a run, asked or not
    for deployment in deployments.values():
        if deployment.run is not None:
            by_run.setdefault(deployment.run, []).append(deployment)
    found: dict[str, list[Sample]] = {name: [] for name in STAGES[3:]}
    commit_ends: dict[Any, datetime] = {}
    for number, run in runs.items():
        first = requests[number][0].requested if number in requests else None
        end = _commit_end(run, first)
        if end is None:
            continue
        commit_ends[number] = end
        wait = _seconds(run.committed, run.created) if run.committed else None
        found["commit stage"].append(Sample("run", number, end, _seconds(run.created, end), wait))
    for deployment in deployments.values():
        if deployment.kind != "deploy":
            continue
        started, ended = deployment.started, deployment.ended
        if deployment.tier == "staging" and deployment.outcome == "succeeded" and started and ended:
            gap = _to_production(deployment, ended, requests, by_run)
            busy = _busy(runs[deployment.run].jobs, *gap) if gap and deployment.run in runs else 0.0
            since = commit_ends.get(deployment.run, deployment.requested) or started
            found["acceptance"].append(
                Sample(
                    "deployment",
                    deployment.number,
                    gap[1] if gap else ended,
                    _seconds(started, ended) + busy,
                    _seconds(since, started) + (_seconds(*gap) - busy if gap else 0.0),
                )
            )
        if deployment.tier != "production":
            continue
        approved = deployment.approved
        if deployment.requested is not None and approved is not None:
            wait = _seconds(deployment.requested, approved)
            found["approval wait"].append(
                Sample("deployment", deployment.number, approved, None, wait)
            )
        if started and ended and deployment.outcome in {"succeeded", "rolled_back"}:
            queue = _seconds(approved, started) if approved is not None else None
            found["deployment"].append(
                Sample("deployment", deployment.number, ended, _seconds(started, ended), queue)
            )
    return found


def _to_production(
    staging: _Deployment,
    ended: datetime,
    requests: Mapping[Any, list[_Deployment]],
    by_run: Mapping[Any, list[_Deployment]],
) -> tuple[datetime, datetime] | None:
    """From a staging deployment's end to its run's next production request, unless the
    run deployed to staging again in between (then that later one owns the gap)."""
    production = next(
        (
            d.requested
            for d in requests.get(staging.run, [])
            if d.tier == "production" and d.kind == "deploy"
            if d.requested is not None and d.requested >= ended
        ),
        None,
    )
    if production is None:
        return None
    again = any(
        d.tier == "staging"
        and d.kind == "deploy"
        and d.run == staging.run
        and d.outcome == "succeeded"
        and d.ended is not None
        and (ended, staging.number) < (d.ended, d.number)
        and d.ended <= production
        for d in by_run.get(staging.run, [])
    )
    return None if again else (ended, production)


# ---- the map ------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def stage(name: str, samples: Sequence[Sample], window: tuple[datetime, datetime]) -> Stage:
    """One stage from the samples that end in the window."""
    chosen = sorted(
        (s for s in samples if window[0] <= s.end < window[1]), key=lambda s: (s.end, str(s.id))
    )
    evidence = tuple(
        {
            "what": s.what,
            "id": s.id,
            "seconds": (s.process or 0.0) + (s.wait or 0.0),
            "process_s": s.process,
            "wait_s": s.wait,
            "at": s.end.isoformat(),
        }
        for s in chosen
    )
    return Stage(
        name,
        _median([s.process for s in chosen if s.process is not None]),
        _median([s.wait for s in chosen if s.wait is not None]),
        len(chosen),
        evidence,
    )


def _total(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def value_stream(records: Sequence[Record], window: tuple[datetime, datetime]) -> ValueStream:
    """The value stream map of one service's records (the caller filters) over ``window``."""
    ordered = sorted(records, key=lambda r: (r.at, r.id))
    samples = {**story_samples(ordered), **delivery_samples(ordered)}
    stages = tuple(stage(name, samples[name], window) for name in STAGES)
    process = _total(s.process_s for s in stages)
    wait = _total(s.wait_s for s in stages)
    lead = _total((process, wait))
    efficiency = process / lead if process is not None and wait is not None and lead else None
    waits = [s for s in stages if s.wait_s]
    biggest = max(waits, key=lambda s: s.wait_s or 0.0).name if waits else None
    return ValueStream(stages, process, wait, lead, efficiency, biggest, window)
