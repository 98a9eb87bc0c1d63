"""Issue #7: the Obeya room and one service's metrics over 90 days, at the size of a busy
installation: 50 services, 100,000 deployments and 1,000,000 events over a year.
Target: p50 200 ms or less for the room page, /api/room and /api/services/<slug>/metrics,
on SQLite and on PostgreSQL.

The year is written straight into the tables, as a year of live recording would have left
them (bulk inserts, ids in time order). Each service's main branch runs about four times a
day; a green run deploys to staging (six runs in ten) and then, after an approval, to
production; 5 % of deployments are rolled back by their health gate, 2 % fail before the
switch, about 1 % of production ones are rolled back by hand after an incident, a few
cause an incident later. Every event carries the data the real code records (deployer's
``event_data``, the ``commits`` of ``deployment.succeeded``, ``run.created``'s landed
commits ...), and the incidents the reactor opens for rolled-back deployments and pulled
andons exist with their events. Jobs besides the tests (lint, build, package ...) fill
each service up to 20,000 events; they have no Job rows.

Measured in process: ``metrics.services.report(slug, 90)`` computed (``fresh=True``) and as
kept, and ``room()`` cold (after ``forget_cache()``) and warm, with the queries they send,
what reading the event rows costs (the database and driver, then decoding their JSON),
what Python's garbage collector takes, and cProfile's view of where the time goes. Over
HTTP, on a real ``obeya serve`` (as many processes as it starts by default): 30 requests
one after the other of the room page, /api/room and the 90-day metrics of three services,
the first (cold) apart; the room after a change in one service; both once what the
server keeps is a minute old. The commit measured, and what src/ held beyond it, are
recorded with the figures.

Each database keeps its own figures in results/metrics_room.json: a run on one replaces
only its own (``OBEYA_DATABASE_URL`` picks PostgreSQL).
"""

from __future__ import annotations

import cProfile
import gc
import hashlib
import inspect
import json
import os
import pstats
import random
import statistics
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management.color import no_style
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, connections, transaction
from django.utils import timezone

from bench.board_load import _signed_in, _with_token
from bench.database import migrated
from bench.serving import child_env, serve
from bench.timing import summary_ms
from obeya.backlog.models import Story
from obeya.board import services as board
from obeya.board.models import Card
from obeya.catalog.models import Membership, Service
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.models import Event, User
from obeya.deploy.logic import release_name
from obeya.deploy.models import Deployment, Environment, Release
from obeya.deploy.targets import hash_tree
from obeya.metrics import services as metrics
from obeya.ops.models import Incident, IncidentCause
from obeya.pipelines.models import Andon, Pipeline, Run

SERVICES = 50
DEPLOYMENTS_EACH = 2_000
EVENTS = 1_000_000
DAYS = 365
WINDOW = "90d"
REQUESTS = 30
TARGET_P50_MS = 200
USERNAME = "bench"
PASSWORD = "a long enough bench password"  # noqa: S105 (a throwaway user in a temp dir)
PEOPLE = ("ana", "bram", "chen", "dita", "emil", "fay", "goran", "hana")
EXTRA_JOBS = ("lint", "build", "package", "scan", "docs", "e2e")
STORIES_EACH = 60
SPEC = "stages: [test, deploy]\njobs:\n  test:\n    script: make test\n"


# ---- the year, planned before any id is known ------------------------------------------------


@dataclass(eq=False)
class _Run:
    number: int
    branch: str
    created: datetime
    sha: str
    commits: list[dict[str, str]]  # landed on main: sha, author, committed_at
    author: str
    committed: datetime
    red: bool
    tested: datetime = field(init=False)
    finished: datetime = field(init=False)
    failed: bool = False
    deployments: list[_Deployment] = field(default_factory=list)
    pk: int = 0


@dataclass(eq=False)
class _Deployment:
    tier: str
    kind: str  # deploy | rollback
    status: str  # succeeded | failed | rolled_back
    run: _Run | None
    sha: str
    committed_at: datetime | None
    requested: datetime
    approved: datetime | None
    started: datetime
    switched: datetime | None
    failed: datetime | None  # the health gate failed: rolled back next
    finished: datetime
    reason: str
    previous: _Deployment | None  # whose release was current before it
    target: _Deployment | None = None  # a rollback: whose release it makes current again
    commits: list[dict[str, str]] = field(default_factory=list)
    failed_event: _Event | None = None
    pk: int = 0

    @property
    def release(self) -> str:
        if self.target is not None:
            return self.target.release
        return release_name(self.started, self.pk)


@dataclass(eq=False)
class _Incident:
    title: str
    severity: str
    source: str  # deployment | andon | manual
    opened: datetime
    acknowledged: datetime
    mitigated: datetime | None
    resolved: datetime
    cause: _Deployment | None = None
    automatic: bool = False
    opener: Callable[[], _Event | None] = lambda: None  # the event the reactor opened it for
    number: int = 0
    pk: int = 0


@dataclass(eq=False)
class _Cord:
    """The andon pulled by a red run of main, or released by a green build."""

    at: datetime
    pulled: bool
    run: _Run
    event: _Event | None = None


@dataclass(eq=False, slots=True)
class _Event:
    at: datetime
    kind: str
    subject: str
    data: dict[str, Any]
    service: str
    actor: str = "system"
    channel: str = "system"
    pk: int = 0


def _sha(rng: random.Random) -> str:
    return f"{rng.getrandbits(160):040x}"


def _later(at: datetime, rng: random.Random, low: float, high: float) -> datetime:
    return at + timedelta(seconds=rng.uniform(low, high))


class _Year:
    """One service's year: its runs, deployments, incidents, andon pulls and stories."""

    def __init__(self, index: int, now: datetime, span_s: float) -> None:
        self.slug = f"svc-{index:02d}"
        self.rng = random.Random(7_000 + index)  # noqa: S311 - the same year on every run
        self.now = now
        self.start = now - timedelta(days=DAYS)
        self.runs: list[_Run] = []
        self.deployments: list[_Deployment] = []
        self.incidents: list[_Incident] = []
        self.andon: list[_Cord] = []
        self._free: dict[str, datetime] = {}  # when each environment is free again
        self._current: dict[str, _Deployment | None] = {"staging": None, "production": None}
        self._pending: dict[str, list[dict[str, str]]] = {"staging": [], "production": []}
        self._plan_runs(span_s)
        self._plan_andon()

    def last(self) -> datetime:
        return max(d.finished for d in self.deployments)

    def current(self) -> dict[str, _Deployment | None]:
        """What each environment runs at the end of the year."""
        return dict(self._current)

    # -- runs and deployments

    def _shapes(self) -> list[list[tuple[str, str]] | str]:
        """Each run's fate, decided first so that the service has exactly 2,000 deployments."""
        rng, shapes, total, serving = self.rng, [], 0, False
        outcomes = ("succeeded",) * 93 + ("rolled_back",) * 5 + ("failed",) * 2
        while total < DEPLOYMENTS_EACH:
            roll = rng.random()
            if roll < 0.04:
                shapes.append("red")
                continue
            if roll < 0.07:
                shapes.append("feature")
                continue
            chain = [("staging", rng.choice(outcomes))] if rng.random() < 0.6 else []
            if not chain or chain[0][1] == "succeeded":
                chain.append(("production", rng.choice(outcomes)))
                # a rollback by hand needs an earlier release to go back to
                if chain[-1][1] == "succeeded" and serving and rng.random() < 0.012:
                    chain.append(("production", "rollback"))
                serving = serving or chain[-1][1] == "succeeded"
            chain = chain[: DEPLOYMENTS_EACH - total]
            total += len(chain)
            shapes.append(chain)
        return shapes

    def _plan_runs(self, span_s: float) -> None:
        rng = self.rng
        shapes = self._shapes()
        moments = sorted(rng.uniform(0, span_s) for _ in shapes)
        for number, (shape, offset) in enumerate(zip(shapes, moments, strict=True), start=1):
            created = self.start + timedelta(seconds=offset)
            main = shape != "feature"
            commits = []
            if main:
                for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
                    when = created - timedelta(seconds=rng.uniform(600, 30 * 3600))
                    commits.append(
                        {
                            "sha": _sha(rng),
                            "author": f"{rng.choice(PEOPLE)}@example.com",
                            "committed_at": when.isoformat(),
                        }
                    )
                commits.sort(key=lambda c: c["committed_at"])
                for tier in self._pending:
                    self._pending[tier].extend(commits)
            branch = "main" if main else f"feature/s-{rng.randint(1, STORIES_EACH)}"
            head = (
                commits[-1]
                if commits
                else {
                    "sha": _sha(rng),
                    "author": f"{rng.choice(PEOPLE)}@example.com",
                    "committed_at": (
                        created - timedelta(seconds=rng.uniform(60, 3600))
                    ).isoformat(),
                }
            )
            run = _Run(
                number,
                branch,
                created,
                head["sha"],
                commits,
                head["author"],
                datetime.fromisoformat(head["committed_at"]),
                red=shape == "red",
            )
            run.tested = _later(created, rng, 70, 420)
            run.finished = run.tested + timedelta(seconds=1)
            run.failed = run.red
            ready = run.tested
            for tier, outcome in shape if isinstance(shape, list) else []:
                if outcome == "rollback":
                    self._roll_back_by_hand(run.deployments[-1])
                    continue
                deployment = self._deploy(run, tier, outcome, ready)
                run.deployments.append(deployment)
                ready = deployment.finished
                run.failed = run.failed or outcome != "succeeded"
                run.finished = max(run.finished, deployment.finished + timedelta(seconds=1))
            self.runs.append(run)

    def _deploy(self, run: _Run, tier: str, outcome: str, ready: datetime) -> _Deployment:
        rng = self.rng
        requested = ready + timedelta(seconds=1)
        approved = None
        if tier == "production":
            approved = requested + timedelta(seconds=min(3 * 3600, rng.expovariate(1 / 2400)))
        started = max(
            (approved or requested) + timedelta(seconds=1), self._free.get(tier, requested)
        )
        switched = failed = None
        reason = ""
        if outcome == "failed":
            finished = _later(started, rng, 10, 90)
            reason = "hook before_switch exited 1 on local; nothing was switched"
        else:
            switched = _later(started, rng, 15, 60)
            finished = _later(switched, rng, 20, 60)
            if outcome == "rolled_back":
                failed = _later(switched, rng, 30, 120)
                finished = _later(failed, rng, 3, 15)
                reason = "health check failed on local in batch 1: HTTP 503 (3 tries)"
        deployment = _Deployment(
            tier,
            "deploy",
            outcome,
            run,
            run.sha,
            run.committed,
            requested,
            approved,
            started,
            switched,
            failed,
            finished,
            reason,
            self._current[tier],
        )
        if outcome == "succeeded":
            pending = self._pending[tier]
            first = self._current[tier] is None
            deployment.commits = pending[-1:] if first else pending[-200:]
            self._pending[tier] = []
            self._current[tier] = deployment
        self._free[tier] = finished
        self.deployments.append(deployment)
        return deployment

    def _roll_back_by_hand(self, bad: _Deployment) -> None:
        """An incident found the deployment bad; a person rolls production back, approved."""
        rng = self.rng
        opened = _later(bad.finished, rng, 600, 7200)
        caused = _later(opened, rng, 120, 900)
        requested = _later(caused, rng, 60, 600)
        approved = _later(requested, rng, 60, 300)
        started = max(approved + timedelta(seconds=1), self._free["production"])
        switched = _later(started, rng, 5, 20)
        finished = _later(switched, rng, 20, 60)
        target = bad.previous
        rollback = _Deployment(
            "production",
            "rollback",
            "succeeded",
            None,
            target.sha if target else "",
            None,
            requested,
            approved,
            started,
            switched,
            None,
            finished,
            "",
            bad,
            target=target,
        )
        self._free["production"] = finished
        self._current["production"] = target
        self._pending["production"] = bad.commits + self._pending["production"]
        self.deployments.append(rollback)
        self.incidents.append(
            _Incident(
                f"Errors after deployment {bad.started:%b %d}: checkout fails for some users",
                "sev2",
                "manual",
                opened,
                _later(opened, rng, 60, 300),
                _later(finished, rng, 30, 300),
                _later(finished, rng, 3600, 86400),
                cause=bad,
            )
        )

    def _plan_andon(self) -> None:
        """A red main run pulls the cord; the next green build of main releases it."""
        moments: list[tuple[datetime, bool, _Run]] = []
        for run in self.runs:
            if run.branch != "main":
                continue
            if not run.red:
                moments.append((run.tested, False, run))
            if run.failed:
                moments.append((run.finished, True, run))
        moments.sort(key=lambda m: m[0])
        pulled: _Run | None = None
        for at, red, run in moments:
            if red and pulled is None:
                pulled = run
                self.andon.append(_Cord(at, True, run))
            elif not red and pulled is not None and pulled.number <= run.number:
                pulled = None
                self.andon.append(_Cord(at, False, run))

    # -- incidents the reactor opens

    def plan_incidents(self) -> None:
        rng = self.rng
        for deployment in self.deployments:
            if deployment.status == "rolled_back" and deployment.failed is not None:
                opened = _later(deployment.failed, rng, 0.2, 2)
                acknowledged = _later(opened, rng, 120, 1200)
                self.incidents.append(
                    _Incident(
                        f"Deployment to {deployment.tier} rolled back: {deployment.reason}",
                        "sev2" if deployment.tier == "production" else "sev4",
                        "deployment",
                        opened,
                        acknowledged,
                        _later(acknowledged, rng, 60, 600),
                        _later(acknowledged, rng, 1800, 6 * 3600),
                        cause=deployment,
                        automatic=True,
                        opener=lambda d=deployment: d.failed_event,
                    )
                )
            elif (
                deployment.kind == "deploy"
                and deployment.tier == "production"
                and deployment.status == "succeeded"
                and rng.random() < 0.006
            ):  # found later, fixed forward
                opened = _later(deployment.finished, rng, 3600, 36 * 3600)
                acknowledged = _later(opened, rng, 60, 900)
                mitigated = _later(acknowledged, rng, 1800, 4 * 3600)
                self.incidents.append(
                    _Incident(
                        "Latency up after a release",
                        "sev3",
                        "manual",
                        opened,
                        acknowledged,
                        mitigated,
                        _later(mitigated, rng, 3600, 86400),
                        cause=deployment,
                    )
                )
        for position, cord in enumerate(self.andon):
            if not cord.pulled:
                continue
            opened = _later(cord.at, rng, 0.2, 2)
            released = next(
                (c.at for c in self.andon[position + 1 :] if not c.pulled), self.now + timedelta(1)
            )
            self.incidents.append(
                _Incident(
                    f"Andon pulled: run #{cord.run.number} failed on main",
                    "sev3",
                    "andon",
                    opened,
                    _later(opened, rng, 60, 600),
                    None,
                    _later(released, rng, 60, 600),
                    opener=lambda c=cord: c.event,
                )
            )
        self.incidents.sort(key=lambda i: i.opened)
        for number, incident in enumerate(self.incidents, start=1):
            incident.number = number


def _plan(index: int, now: datetime) -> _Year:
    """The year of service ``index``, squeezed until its last deployment ended a minute ago."""
    span = DAYS * 86400 - 8 * 3600.0
    while True:
        year = _Year(index, now, span)
        overflow = (year.last() - (now - timedelta(minutes=1))).total_seconds()
        if overflow <= 0:
            year.plan_incidents()
            return year
        span -= overflow + 60


# ---- the year's events, once every row has its id ------------------------------------------


class _Log:
    """The events of one service's year, each with the data the real code records."""

    def __init__(self, year: _Year, stories: list[_Story]) -> None:
        self.year = year
        self.slug = year.slug
        self.rng = random.Random(f"log-{year.slug}")  # noqa: S311
        self.events: list[_Event] = []
        self._add(
            year.start,
            "service.created",
            f"service:{self.slug}",
            {"name": f"Service {self.slug[-2:]}", "stage": "operation"},
            USERNAME,
            "web",
        )
        self._add(
            year.start,
            "member.added",
            f"user:{USERNAME}",
            {"username": USERNAME, "role": "service_master"},
            USERNAME,
            "web",
        )
        for run in year.runs:
            self._run(run)
        for deployment in year.deployments:
            self._deployment(deployment)
        for cord in year.andon:
            self._cord(cord)
        for incident in year.incidents:
            self._incident(incident)
        for story in stories:
            self._story(story)

    def _add(
        self,
        at: datetime,
        kind: str,
        subject: str,
        data: dict[str, Any],
        actor: str = "system",
        channel: str = "system",
    ) -> _Event:
        event = _Event(at, kind, subject, data, self.slug, actor, channel)
        self.events.append(event)
        return event

    def _run(self, run: _Run) -> None:
        subject, default = f"run:{run.pk}", run.branch == "main"
        self._add(
            run.created,
            "run.created",
            subject,
            {
                "number": run.number,
                "sha": run.sha,
                "branch": run.branch,
                "trigger": "push",
                "default_branch": default,
                "author": run.author,
                "committed_at": run.committed.isoformat(),
                "commits": run.commits,
            },
        )
        began = run.created + timedelta(seconds=5)
        self._add(
            began,
            "job.started",
            f"job:{run.pk * 10}",
            {"name": "test", "attempt": 1, "runner": "runner-1", "run": run.number},
        )
        self._add(
            run.tested,
            "job.finished",
            f"job:{run.pk * 10}",
            {
                "name": "test",
                "stage": "test",
                "status": "failed" if run.red else "succeeded",
                "attempt": 1,
                "run": run.number,
                "exit_code": 1 if run.red else 0,
                "duration_s": round((run.tested - began).total_seconds(), 3),
                "reason": "script exited with code 1" if run.red else "",
            },
        )
        self._add(
            run.finished,
            "run.finished",
            subject,
            {
                "number": run.number,
                "status": "failed" if run.failed else "succeeded",
                "sha": run.sha,
                "branch": run.branch,
                "default_branch": default,
                "duration_s": round((run.finished - run.created).total_seconds(), 3),
            },
        )

    def _deployment(self, d: _Deployment) -> None:
        subject = f"deployment:{d.pk}"
        person = self.rng.choice(PEOPLE)
        previous = d.previous.release if d.previous else ""

        def data(
            status: str, *, started: bool, prepared: bool, switched: bool = False, **extra: Any
        ) -> dict[str, Any]:
            return {
                "deployment": d.pk,
                "environment": d.tier,
                "tier": d.tier,
                "kind": d.kind,
                "status": status,
                "sha": d.sha,
                "run": d.run.number if d.run else None,
                "version": "",
                "artifact_sha256": _artifact(d),
                "release": d.release if started or d.target else "",
                "previous_release": previous if prepared else "",
                "switched": switched,
                **extra,
            }

        production = d.tier == "production"
        by = ("system", "system") if d.run else (person, "web")
        self._add(
            d.requested,
            "deployment.requested",
            subject,
            data(
                "waiting_approval" if production else "queued",
                started=False,
                prepared=False,
                required_approvals=1 if production else 0,
            ),
            *by,
        )
        if d.approved is not None:
            self._add(
                d.approved,
                "deployment.approved",
                subject,
                {"environment": d.tier, "comment": "go"},
                person,
                "web",
            )
            self._add(
                d.approved,
                "deployment.queued",
                subject,
                data("queued", started=False, prepared=False, reason=""),
                person,
                "web",
            )
        self._add(
            d.started,
            "deployment.started",
            subject,
            data("running", started=True, prepared=False, reason=""),
        )
        if d.switched is not None:
            self._add(
                d.switched,
                "deployment.switched",
                subject,
                data("running", started=True, prepared=True),
            )
        if d.status == "succeeded":
            self._add(
                d.finished,
                "deployment.succeeded",
                subject,
                data(
                    "succeeded",
                    started=True,
                    prepared=True,
                    switched=True,
                    reason="",
                    commits=d.commits,
                ),
            )
        elif d.status == "failed":
            self._add(
                d.finished,
                "deployment.failed",
                subject,
                data("failed", started=True, prepared=True, reason=d.reason),
            )
        else:
            d.failed_event = self._add(
                d.failed or d.finished,
                "deployment.failed",
                subject,
                data(
                    "failed",
                    started=True,
                    prepared=True,
                    switched=True,
                    reason=d.reason,
                    rolled_back=True,
                ),
            )
            self._add(
                d.finished,
                "deployment.rolled_back",
                subject,
                data("rolled_back", started=True, prepared=True, switched=True, reason=d.reason),
            )
        if d.run is not None:
            job = d.run.pk * 10 + (1 if d.tier == "staging" else 2)
            self._add(
                d.finished,
                "job.finished",
                f"job:{job}",
                {
                    "name": f"deploy-{d.tier}",
                    "stage": "deploy",
                    "status": "succeeded" if d.status == "succeeded" else "failed",
                    "attempt": 1,
                    "run": d.run.number,
                    "exit_code": None,
                    "duration_s": round((d.finished - d.requested).total_seconds(), 3),
                    "reason": d.reason,
                },
            )

    def _cord(self, cord: _Cord) -> None:
        number = cord.run.number
        reason = (
            f"run #{number} failed on main"
            if cord.pulled
            else f"run #{number}: build and tests green on main"
        )
        cord.event = self._add(
            cord.at,
            "andon.pulled" if cord.pulled else "andon.released",
            f"service:{self.slug}",
            {"reason": reason, "run": number},
        )

    def _incident(self, incident: _Incident) -> None:
        now, subject = self.year.now, f"incident:{incident.pk}"
        by = (
            ("system", "system")
            if incident.source != "manual"
            else (self.rng.choice(PEOPLE), "web")
        )
        number = incident.number
        self._add(
            incident.opened,
            "incident.opened",
            subject,
            {
                "number": number,
                "title": incident.title,
                "severity": incident.severity,
                "source": incident.source,
                "monitor": None,
            },
            *by,
        )
        if incident.cause is not None:
            linked = incident.opened if incident.automatic else incident.acknowledged
            self._add(
                linked,
                "incident.caused_by",
                subject,
                {
                    "number": number,
                    "deployment": incident.cause.pk,
                    "environment": incident.cause.tier,
                    "tier": incident.cause.tier,
                    "automatic": incident.automatic,
                },
                *by,
            )
        person = self.rng.choice(PEOPLE)
        acknowledge_s = (incident.acknowledged - incident.opened).total_seconds()
        previous = "open"
        for status, at in (
            ("acknowledged", incident.acknowledged),
            ("mitigated", incident.mitigated),
            ("resolved", incident.resolved),
        ):
            if at is None or at > now:
                continue
            restored = incident.mitigated or (incident.resolved if status == "resolved" else None)
            self._add(
                at,
                f"incident.{status}",
                subject,
                {
                    "number": number,
                    "from": previous,
                    "note": "",
                    "time_to_acknowledge_s": acknowledge_s,
                    "time_to_restore_s": (restored - incident.opened).total_seconds()
                    if restored is not None and restored <= at
                    else None,
                },
                person,
                "web",
            )
            previous = status

    def _story(self, story: _Story) -> None:
        subject = f"story:{self.slug}/S-{story.number}"
        base = {"key": f"S-{story.number}", "kind": story.kind, "title": story.title}
        self._add(story.created, "story.created", subject, dict(base), story.person, "web")
        for at, source, target, wip in story.moves:
            self._add(
                at,
                "story.moved",
                subject,
                {
                    **base,
                    "from": COLUMNS[source][0],
                    "to": COLUMNS[target][0],
                    "wip": wip,
                    "override_reason": "",
                    "starts_work": COLUMNS[target][2],
                    "done": COLUMNS[target][3],
                },
                story.person,
                "web",
            )

    def fill(self, count: int) -> None:
        """``count`` events more: jobs besides the tests, started and finished."""
        runs = self.year.runs
        for index in range(count):
            run = runs[(index // 2) % len(runs)]
            position = index // (2 * len(runs))
            if position >= len(EXTRA_JOBS):
                raise RuntimeError(f"{self.slug}: more filler than {len(EXTRA_JOBS)} jobs a run")
            job = f"job:{run.pk * 10 + 3 + position}"
            began = run.created + timedelta(seconds=6 + position)
            if index % 2 == 0:
                self._add(
                    began,
                    "job.started",
                    job,
                    {
                        "name": EXTRA_JOBS[position],
                        "attempt": 1,
                        "runner": "runner-2",
                        "run": run.number,
                    },
                )
                continue
            ended = min(run.tested, began + timedelta(seconds=40))
            self._add(
                ended,
                "job.finished",
                job,
                {
                    "name": EXTRA_JOBS[position],
                    "stage": "test",
                    "status": "succeeded",
                    "attempt": 1,
                    "run": run.number,
                    "exit_code": 0,
                    "duration_s": round((ended - began).total_seconds(), 3),
                    "reason": "",
                },
            )


def _artifact(d: _Deployment) -> str:
    return hashlib.sha256(d.sha.encode()).hexdigest() if d.kind == "deploy" else ""


# ---- stories on each board ----------------------------------------------------------------

# name, WIP limit, starts work, is done (board.logic.DEFAULT_COLUMNS)
COLUMNS = (
    ("Backlog", None, False, False),
    ("Ready", 5, False, False),
    ("In progress", 3, True, False),
    ("Review", 2, False, False),
    ("Done", None, False, True),
)


@dataclass(eq=False)
class _Story:
    number: int
    kind: str
    title: str
    person: str
    created: datetime
    moves: list[tuple[datetime, int, int, str]]  # at, from, to, wip text

    @property
    def column(self) -> int:
        return self.moves[-1][2] if self.moves else 0

    @property
    def entered(self) -> datetime:
        return self.moves[-1][0] if self.moves else self.created


def _stories(year: _Year) -> list[_Story]:
    """Stories created over the year, moving right (now and then back) towards Done."""
    rng = random.Random(f"stories-{year.slug}")  # noqa: S311
    kinds = ("user",) * 6 + ("test", "test", "operation", "change_request")
    found = []
    for number in range(1, STORIES_EACH + 1):
        created = year.start + timedelta(seconds=rng.uniform(0, DAYS * 86400 - 3600))
        at, column, moves = created, 0, []
        while column < len(COLUMNS) - 1:
            at += timedelta(seconds=rng.expovariate(1 / (4 * 86400)))
            if at >= year.now:
                break
            target = column - 1 if column > 1 and rng.random() < 0.1 else column + 1
            limit = COLUMNS[target][1]
            count = rng.randint(1, limit) if limit else rng.randint(1, 30)
            moves.append((at, column, target, f"{count}/{limit}" if limit else f"{count}"))
            column = target
        found.append(
            _Story(
                number,
                rng.choice(kinds),
                f"story {number} of {year.slug}",
                rng.choice(PEOPLE),
                created,
                moves,
            )
        )
    return found


# ---- the rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    slugs: list[str]
    token: str  # a read token of the owner (an administrator, service master everywhere)
    figures: dict[str, Any]


def _numbered(things: list[Any], model: type[Any], when: Callable[[Any], datetime]) -> None:
    """Ids in time order after the table's last, as live recording would have given them."""
    last = model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    things.sort(key=when)
    for offset, thing in enumerate(things, start=1):
        thing.pk = last + offset


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for begin in range(0, len(items), size):
        yield items[begin : begin + size]


def seed(now: datetime) -> Seeded:
    """The year of every service, written into the configured (fresh) database."""
    system = Actor(user=None, channel="system")
    owner = core.create_user(
        system, USERNAME, PASSWORD, is_admin=True, check_password_strength=False
    )
    began = time.perf_counter()
    years = [_plan(index, now) for index in range(SERVICES)]
    stories = {year.slug: _stories(year) for year in years}
    runs = [run for year in years for run in year.runs]
    deployments = [d for year in years for d in year.deployments]
    incidents = [incident for year in years for incident in year.incidents]
    _numbered(runs, Run, lambda r: r.created)
    _numbered(deployments, Deployment, lambda d: d.requested)
    _numbered(incidents, Incident, lambda i: i.opened)
    logs = [_Log(year, stories[year.slug]) for year in years]
    short = EVENTS - sum(len(log.events) for log in logs)
    for index, log in enumerate(logs):
        log.fill(short // SERVICES + (1 if index < short % SERVICES else 0))
    planned = time.perf_counter()
    with transaction.atomic():
        services = _services(years, owner)
        environments = _environments(years, services)
        _write_runs(years, services)
        _write_deployments(years, services, environments, owner)
        _write_boards(years, stories, services)
    rows = time.perf_counter()
    with transaction.atomic():
        count = _write_events(logs)
        _write_incidents(years, services)
        _write_andons(years, services)
        with connection.cursor() as cursor:
            for statement in connection.ops.sequence_reset_sql(
                no_style(), [Run, Deployment, Incident, Event]
            ):
                cursor.execute(statement)
    written = time.perf_counter()
    _write_releases(years, environments)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have, over a year
    _, token = core.create_token(system, owner, name="bench", scope="read", days=1)
    return Seeded(
        [year.slug for year in years],
        token,
        {
            "services": len(years),
            "deployments": len(deployments),
            "runs": len(runs),
            "incidents": len(incidents),
            "stories": sum(len(found) for found in stories.values()),
            "events_written": count,
            "events_in_the_log": Event.objects.count(),
            "seed_s": {
                "plan": round(planned - began, 1),
                "rows": round(rows - planned, 1),
                "events": round(written - rows, 1),
                "total": round(time.perf_counter() - began, 1),
            },
        },
    )


def _services(years: list[_Year], owner: User) -> dict[str, Service]:
    start = years[0].start
    Service.objects.bulk_create(
        Service(
            slug=year.slug,
            name=f"Service {year.slug[-2:]}",
            repository_url=f"https://git.example.com/shop/{year.slug}.git",
            owner_team=f"team-{index % 8}",
            stage="operation",
            stage_changed_at=start,
            created_at=start,
            updated_at=start,
        )
        for index, year in enumerate(years)
    )
    services = {s.slug: s for s in Service.objects.filter(slug__in=[y.slug for y in years])}
    Membership.objects.bulk_create(
        Membership(service=s, user=owner, role="service_master", since=start)
        for s in services.values()
    )
    Pipeline.objects.bulk_create(Pipeline(service=s) for s in services.values())
    return services


def _environments(
    years: list[_Year], services: dict[str, Service]
) -> dict[tuple[str, str], Environment]:
    start, root = years[0].start, Path(settings.DATA_DIR) / "targets"
    Environment.objects.bulk_create(
        Environment(
            service=services[year.slug],
            name=tier,
            tier=tier,
            position=position,
            protected=tier == "production",
            required_approvals=1 if tier == "production" else 0,
            target={"kind": "local", "root": str(root / year.slug / tier)},
            health={"kind": "http", "url": f"http://127.0.0.1:9/{year.slug}/health"},
            created_at=start,
            updated_at=start,
        )
        for year in years
        for position, tier in enumerate(("staging", "production"))
    )
    return {
        (e.service.slug, e.name): e
        for e in Environment.objects.select_related("service").filter(service__in=services.values())
    }


def _write_runs(years: list[_Year], services: dict[str, Service]) -> None:
    rows = [
        Run(
            pk=run.pk,
            service=services[year.slug],
            number=run.number,
            status="failed" if run.failed else "succeeded",
            trigger="push",
            ref=run.branch,
            branch=run.branch,
            sha=run.sha,
            author_name=run.author.split("@")[0],
            author_email=run.author,
            authored_at=run.committed,
            committed_at=run.committed,
            message=f"change {run.number} of {year.slug}",
            spec_text=SPEC,
            created_at=run.created,
            started_at=run.created + timedelta(seconds=5),
            finished_at=run.finished,
        )
        for year in years
        for run in year.runs
    ]
    rows.sort(key=lambda row: row.pk)
    Run.objects.bulk_create(rows, batch_size=2000)


def _write_deployments(
    years: list[_Year],
    services: dict[str, Service],
    environments: dict[tuple[str, str], Environment],
    owner: User,
) -> None:
    rows = [
        Deployment(
            pk=d.pk,
            environment=environments[(year.slug, d.tier)],
            service=services[year.slug],
            kind=d.kind,
            status=d.status,
            run_id=d.run.pk if d.run else None,
            sha=d.sha,
            branch="main" if d.run else "",
            committed_at=d.committed_at,
            artifact_job="build" if d.kind == "deploy" else "",
            artifact_sha256=_artifact(d),
            release_id=d.release,
            previous_release_id=d.previous.release if d.previous else "",
            requested_by=None if d.run else owner,
            requested_at=d.requested,
            started_at=d.started,
            switched_at=d.switched,
            finished_at=d.finished,
            reason=d.reason,
        )
        for year in years
        for d in year.deployments
    ]
    rows.sort(key=lambda row: row.pk)
    Deployment.objects.bulk_create(rows, batch_size=2000)


def _write_boards(
    years: list[_Year], stories: dict[str, list[_Story]], services: dict[str, Service]
) -> None:
    for year in years:
        service = services[year.slug]
        columns = board.ensure_columns(service)
        rows = Story.objects.bulk_create(
            Story(
                service=service,
                number=story.number,
                kind=story.kind,
                title=story.title,
                rank=story.number * 1024,
                created_at=story.created,
                updated_at=story.entered,
                done_at=story.entered if COLUMNS[story.column][3] else None,
            )
            for story in stories[year.slug]
        )
        Card.objects.bulk_create(
            Card(
                story=row,
                column=columns[story.column],
                position=story.number,
                entered_at=story.entered,
            )
            for row, story in zip(rows, stories[year.slug], strict=True)
        )


def _write_events(logs: list[_Log]) -> int:
    events = [event for log in logs for event in log.events]
    _numbered(events, Event, lambda e: e.at)
    for chunk in _chunks(events, 5000):
        Event.objects.bulk_create(
            Event(
                pk=e.pk,
                at=e.at,
                actor_name=e.actor,
                channel=e.channel,
                kind=e.kind,
                subject=e.subject,
                service=e.service,
                data=e.data,
            )
            for e in chunk
        )
    return len(events)


def _write_incidents(years: list[_Year], services: dict[str, Service]) -> None:
    rows, causes = [], []
    for year in years:
        now = year.now
        for incident in year.incidents:

            def past(at: datetime | None) -> datetime | None:
                return at if at is not None and at <= now else None  # noqa: B023

            status = next(
                (
                    name
                    for name, at in (
                        ("resolved", incident.resolved),
                        ("mitigated", incident.mitigated),
                        ("acknowledged", incident.acknowledged),
                    )
                    if past(at)
                ),
                "open",
            )
            opener = incident.opener()
            rows.append(
                Incident(
                    pk=incident.pk,
                    service=services[year.slug],
                    number=incident.number,
                    title=incident.title[:200],
                    severity=incident.severity,
                    status=status,
                    source=incident.source,
                    source_event=opener.pk if opener else None,
                    opened_at=incident.opened,
                    acknowledged_at=past(incident.acknowledged),
                    mitigated_at=past(incident.mitigated),
                    resolved_at=past(incident.resolved),
                )
            )
            if incident.cause is not None:
                causes.append(
                    IncidentCause(
                        incident_id=incident.pk,
                        deployment_id=incident.cause.pk,
                        automatic=incident.automatic,
                        linked_at=incident.opened,
                        linked_by="system" if incident.automatic else PEOPLE[0],
                    )
                )
    rows.sort(key=lambda row: row.pk)
    Incident.objects.bulk_create(rows, batch_size=2000)
    IncidentCause.objects.bulk_create(causes, batch_size=2000)


def _write_andons(years: list[_Year], services: dict[str, Service]) -> None:
    rows = []
    for year in years:
        last = year.andon[-1] if year.andon else None
        if last is not None and last.pulled:
            rows.append(
                Andon(
                    service=services[year.slug],
                    pulled=True,
                    reason=f"run #{last.run.number} failed on main",
                    pulled_by="system",
                    pulled_at=last.at,
                    run_id=last.run.pk,
                )
            )
        else:
            rows.append(Andon(service=services[year.slug]))
    Andon.objects.bulk_create(rows)


def _write_releases(years: list[_Year], environments: dict[tuple[str, str], Environment]) -> None:
    """Each environment's current release on its local target, as the deployer left it."""
    for year in years:
        for tier, deployment in year.current().items():
            if deployment is None:
                continue
            environment = environments[(year.slug, tier)]
            root = Path(environment.target["root"])
            release = root / "releases" / deployment.release
            release.mkdir(parents=True)
            (release / "app.txt").write_text(f"{year.slug} {deployment.sha}\n")
            for sub in ("shared", "archive"):
                (root / sub).mkdir()
            os.symlink(f"releases/{deployment.release}", root / "current")
            Release.objects.create(
                environment=environment,
                release_id=deployment.release,
                deployment_id=deployment.pk,
                sha=deployment.sha,
                artifact_sha256=_artifact(deployment),
                manifest=hash_tree(release),
                created_at=deployment.started,
            )


# ---- in process --------------------------------------------------------------------------------


@dataclass
class _Cost:
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time: the machine is shared, this is not
    gc_s: float = 0.0  # the cyclic garbage collector's pauses
    gc_runs: int = 0


@contextmanager
def _costing() -> Iterator[_Cost]:
    cost, began = _Cost(), [0.0]

    def collected(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            cost.gc_s += time.perf_counter() - began[0]
            cost.gc_runs += 1

    gc.callbacks.append(collected)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield cost
    finally:
        cost.wall_s, cost.cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        gc.callbacks.remove(collected)


def _measured(call: Callable[[], Any], times: int) -> dict[str, Any]:
    """The first call apart, then ``times`` more: wall time, and medians of CPU and GC."""
    costs = []
    for _ in range(times + 1):
        with _costing() as cost:
            call()
        costs.append(cost)
    first, rest = costs[0], costs[1:]
    return {
        "first_ms": round(first.wall_s * 1000, 1),
        **summary_ms([c.wall_s for c in rest]),
        "cpu_p50_ms": round(statistics.median(c.cpu_s for c in rest) * 1000, 1),
        "gc_p50_ms": round(statistics.median(c.gc_s for c in rest) * 1000, 1),
        "gc_runs_p50": statistics.median(c.gc_runs for c in rest),
    }


@contextmanager
def _queries() -> Iterator[list[tuple[str, float]]]:
    sent: list[tuple[str, float]] = []

    def timed(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        begin = time.perf_counter()
        try:
            return execute(sql, *args)
        finally:
            sent.append((sql, time.perf_counter() - begin))

    with connection.execute_wrapper(timed):
        yield sent


def _query_figures(sent: list[tuple[str, float]]) -> dict[str, Any]:
    """Queries by table. Execution only: PostgreSQL's rows are in by then, SQLite's are read
    later, as they are fetched, so SQLite's figure leaves reading them out."""
    by_table: dict[str, list[float]] = defaultdict(list)
    for sql, seconds in sent:
        table = sql.split(" FROM ", 1)[1].split()[0].strip('"') if " FROM " in sql else sql[:20]
        by_table[table].append(seconds)
    ranked = sorted(by_table.items(), key=lambda item: -sum(item[1]))
    return {
        "queries": len(sent),
        "execute_ms": round(sum(seconds for _, seconds in sent) * 1000, 1),
        "by_table": {t: [len(s), round(sum(s) * 1000, 1)] for t, s in ranked[:6]},
    }


def _median_ms(call: Callable[[], Any], times: int = 5) -> tuple[float, Any]:
    found, value = [], None
    for _ in range(times):
        begin = time.perf_counter()
        value = call()
        found.append(time.perf_counter() - begin)
    return round(statistics.median(found) * 1000, 1), value


def _reading(slug: str, since: datetime, until: datetime) -> dict[str, Any]:
    """What reading a service's events costs: the database and its driver, decoding the
    JSON alone, Django's values (JSON decoded, dates converted), then the Records."""
    rows = (
        Event.objects.filter(service=slug, at__gte=since, at__lt=until, kind__in=metrics.KINDS)
        .order_by("at", "id")
        .values_list("id", "at", "kind", "data")
    )
    sql, params = rows.query.sql_with_params()

    def fetch() -> list[Any]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    database_ms, raw = _median_ms(fetch)
    texts = [row[3] if isinstance(row[3], str) else json.dumps(row[3]) for row in raw]
    decode_ms, decoded = _median_ms(lambda: [json.loads(text) for text in texts])
    kinds: dict[str, int] = defaultdict(int)
    for row in raw:
        kinds[row[2]] += 1
    dora_kinds = {"deployment.started", "deployment.succeeded", "deployment.rolled_back",
                  "deployment.failed", "incident.opened", "incident.caused_by",
                  "incident.mitigated", "incident.resolved"}  # fmt: skip
    return {
        "days": (until - since).days,
        "rows": len(raw),
        "rows_the_dora_formulas_read": sum(n for k, n in kinds.items() if k in dora_kinds),
        "json_mb": round(sum(len(t) for t in texts) / 1e6, 2),
        "commits_listed": sum(len(d.get("commits") or ()) for d in decoded),
        "database_and_driver_ms": database_ms,
        "json_loads_alone_ms": decode_ms,
        "django_values_ms": _median_ms(lambda: list(rows.all()))[0],
        "records_ms": _median_ms(lambda: metrics.records(slug, since, until))[0],
    }


def _profile(call: Callable[[], Any], parent: str, top: int = 10) -> dict[str, Any]:
    """Where ``call`` spends its time under cProfile (whose overhead inflates Python calls):
    what ``parent`` (a function of metrics.services) calls, and the most costly functions
    by their own time."""
    profiler = cProfile.Profile()
    profiler.runcall(call)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def name(key: tuple[str, int, str]) -> str:
        filename, line, function = key
        where = filename.split("/src/")[-1].split("site-packages/")[-1].split("/lib/python3")[-1]
        return f"{where}:{line} {function}"

    def ours(key: tuple[str, int, str]) -> bool:
        return key[2] == parent and key[0].endswith("metrics/services.py")

    total = sum(row[3] for key, row in stats.items() if ours(key))
    parts = []
    for key, (_, _, _, _, callers) in stats.items():
        for caller, (_, calls, _, cumulative) in callers.items():
            if ours(caller):
                parts.append((cumulative, calls, name(key)))
    parts.sort(reverse=True)
    own = sorted(((row[2], row[1], name(key)) for key, row in stats.items()), reverse=True)
    return {
        f"{parent}_ms": round(total * 1000),
        f"what {parent} calls": [
            f"{ms * 1000:.0f} ms ({ms / total:.0%}), {n} calls: {what}"
            for ms, n, what in parts[:top]
        ],
        "most own time": [f"{ms * 1000:.0f} ms, {n} calls: {what}" for ms, n, what in own[:top]],
    }


def in_process(slugs: list[str]) -> dict[str, Any]:
    slug, days = slugs[0], metrics.parse_window(WINDOW)
    window = metrics.window_of(days)
    # report() keeps reports for a while (since ccff750): fresh=True computes one.
    fresh = {"fresh": True} if "fresh" in inspect.signature(metrics.report).parameters else {}

    def computed() -> Any:
        return metrics.report(slug, days, **fresh)

    figures: dict[str, Any] = {}
    figures[f"report({slug!r}, {days}) computed"] = _measured(computed, 10)
    if fresh:
        figures[f"report({slug!r}, {days}) as kept"] = _measured(
            lambda: metrics.report(slug, days), REQUESTS
        )
    with _queries() as sent:
        computed()
    figures["report: queries"] = _query_figures(sent)
    since = window[0] - timedelta(days=days) - metrics.LOOKBACK
    figures["report: its events read"] = _reading(slug, since, window[1])
    parent = "_measure" if hasattr(metrics, "_measure") else "report"
    figures["report: profile"] = _profile(computed, parent)
    found = computed()
    figures["report_dict and json.dumps of a report_ms"] = _median_ms(
        lambda: json.dumps(metrics.report_dict(found), cls=DjangoJSONEncoder)
    )[0]

    def cold() -> None:
        metrics.forget_cache()
        metrics.room()

    figures["room() cold (after forget_cache)"] = _measured(cold, 2)
    figures["room() warm"] = _measured(metrics.room, REQUESTS)
    metrics.forget_cache()
    with _queries() as sent:
        metrics.room()
    figures["room() cold: queries"] = _query_figures(sent)
    with _queries() as sent:
        metrics.room()
    figures["room() warm: queries"] = _query_figures(sent)
    room_since = window[1] - timedelta(days=2 * metrics.ROOM_WINDOW_DAYS) - metrics.LOOKBACK
    figures["room: one service's events over the span a tile reads (all KINDS)"] = _reading(
        slug, room_since, window[1]
    )
    metrics.forget_cache()
    figures["room() cold: profile"] = _profile(metrics.room, "tile")
    # What Python's cyclic collector costs: the same calls with the objects made until now
    # (Django, the apps, the caches) frozen out of its way, as a server could after start-up.
    gc.collect()
    gc.freeze()
    try:
        figures["experiment, gc.freeze() first: report computed"] = _measured(computed, 10)
        figures["experiment, gc.freeze() first: room() cold"] = _measured(cold, 1)
    finally:
        gc.unfreeze()
    return figures


# ---- over HTTP ---------------------------------------------------------------------------------


def _request(http: httpx.Client, path: str) -> tuple[float, int, str]:
    begin = time.perf_counter()
    response = http.get(path)
    elapsed = time.perf_counter() - begin
    failed = "" if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"
    return elapsed, len(response.content), failed


def _requests(http: httpx.Client, path: str) -> dict[str, Any]:
    first, _, problem = _request(http, path)
    durations, failures, size = [], [problem] if problem else [], 0
    for _ in range(REQUESTS):
        elapsed, size, failed = _request(http, path)
        if failed:
            failures.append(failed)
        else:
            durations.append(elapsed)
    summary: dict[str, Any] = summary_ms(durations) if durations else {"n": 0}
    return {
        "first_ms": round(first * 1000, 1),
        **summary,
        "response_kb": round(size / 1024, 1),
        "failures": len(failures),
        "first_failure": failures[0][:200] if failures else "",
        "target_p50_met": bool(durations) and summary["p50_ms"] <= TARGET_P50_MS,
    }


def over_http(seeded: Seeded) -> dict[str, Any]:
    """Requests one after the other to a real `obeya serve` on the benchmark's database."""
    owner = User.objects.get(username=USERNAME)
    connections.close_all()  # the server has the database to itself from here
    passed = {
        name: os.environ[name]
        for name in ("OBEYA_DATABASE_URL", "OBEYA_TIME_ZONE", "OBEYA_SECRET_KEY")
        if os.environ.get(name)
    }
    env = child_env(Path(settings.DATA_DIR), **passed)
    log = Path(settings.DATA_DIR) / "serve-metrics-room.log"
    chosen = [seeded.slugs[0], seeded.slugs[len(seeded.slugs) // 2], seeded.slugs[-1]]
    figures: dict[str, Any] = {}
    with serve(env, log, "--no-runners") as (url, _):
        page, api = _signed_in(url, USERNAME, PASSWORD), _with_token(url, seeded.token)
        try:
            figures["GET /room/ (its first request: every tile cold)"] = _requests(page, "/room/")
            figures["GET /room/ after a change in one service_ms"] = _after_a_change(
                page, chosen[1], owner
            )
            figures["GET /api/room"] = _requests(api, "/api/room")
            for slug in chosen:
                path = f"/api/services/{slug}/metrics?window={WINDOW}"
                figures[f"GET {path}"] = _requests(api, path)
            time.sleep(metrics.ROOM_TTL_S + 1)
            old = f"once what it keeps is {metrics.ROOM_TTL_S:.0f} s old_ms"
            figures[f"GET /room/ {old}"] = round(_request(page, "/room/")[0] * 1000, 1)
            path = f"/api/services/{chosen[0]}/metrics?window={WINDOW}"
            figures[f"GET {path} {old}"] = round(_request(api, path)[0] * 1000, 1)
        finally:
            page.close()
            api.close()
    banner = next((line for line in log.read_text().splitlines() if "serving" in line), "")
    figures["server"] = banner.split("/ ", 1)[-1].split("  (")[0]  # "from 2 process(es) ..."
    return figures


def _after_a_change(page: httpx.Client, slug: str, owner: User) -> float:
    """The room page (tiles a few seconds old, the same connection and so the same server
    process) after a change in one service: its andon pulled (``slug``'s, or the first
    still released), and the incident the reactor opens for it. That service's tile is
    computed again; the others are kept."""
    from obeya.pipelines import andon

    slugs = [slug, *(service.slug for service in metrics.room_services())]
    slug = next(s for s in slugs if not andon.andon_is_pulled(s))
    andon.pull_andon(Actor(user=owner, channel="api"), slug, "bench: stop the line")
    connections.close_all()
    time.sleep(2)
    return round(_request(page, "/room/")[0] * 1000, 1)


# ---- the run -----------------------------------------------------------------------------------

RESULT = Path(__file__).resolve().parent / "results" / "metrics_room.json"


def run() -> dict[str, object]:
    vendor = migrated()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    seeded = seed(timezone.now())
    print(f"metrics_room: {vendor} seeded: {json.dumps(seeded.figures)}", flush=True)
    url = " with OBEYA_DATABASE_URL=postgresql://127.0.0.1:5432/<a fresh database>"
    figures: dict[str, Any] = {
        "when": started,
        "command": "python -m bench metrics_room" + (url if vendor == "postgresql" else ""),
        "target": f"p50 <= {TARGET_P50_MS} ms: room page, /api/room, a service's metrics "
        f"over {WINDOW}",
        "source": _source(),
        "seed": seeded.figures,
        "load_average_1m_before": round(os.getloadavg()[0], 1),
        "in process": in_process(seeded.slugs),
        "over HTTP": over_http(seeded),
        "load_average_1m_after": round(os.getloadavg()[0], 1),
    }
    return {**_kept(), vendor: figures}


def _source() -> dict[str, Any]:
    """The commit measured, and what src/ held beyond it (others work in the same tree)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=False, cwd=RESULT.parent
        )
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "src").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted in src/": changed}


def _kept() -> dict[str, Any]:
    """The other database's figures from an earlier run (each run measures one database)."""
    try:
        return dict(json.loads(RESULT.read_text())["figures"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}
