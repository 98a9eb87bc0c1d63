"""The maturity model: where a service stands, level 1 to 5, in five areas, and the next
step up. Pure: the caller passes what the other formulas found.

Every criterion is read from evidence (a check's verdict, a DORA number, the value stream
map, what the service has set up), never from how much a feature is used alone. A level is
reached when all its criteria and those of every lower level are met; level 1 is where
every service starts, with nothing measured yet. A check that was not computed counts as
not met: what is not shown is not claimed. ``now`` is the end of the value stream's
window: backups and drills are judged against it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from obeya.metrics.dora import Dora, Number
from obeya.metrics.model import Check, Facts
from obeya.metrics.valuestream import ValueStream

DRILL_MAX_AGE = timedelta(days=90)
FLOW_EFFICIENCY = 0.15
# The 2024 DORA report's elite cluster fails 5 % of changes, its "high" one 20 %; the top
# level asks for at most 10 % (the 2023 report's high cluster), not the 20 % "high" band.
CHANGE_FAIL_RATE = 0.10
FAST = {"elite", "high"}


@dataclass(frozen=True)
class Criterion:
    """One thing a level asks for: what to do, whether it is done, and what shows it."""

    level: int
    text: str
    met: bool
    evidence: str


@dataclass(frozen=True)
class Area:
    """One area of the model: the level reached and the step that leads to the next."""

    id: str
    name: str
    level: int  # 1..5
    criteria: tuple[Criterion, ...]
    next_step: str | None  # the first unmet criterion above the level; None at level 5


@dataclass(frozen=True)
class Evidence:
    """Everything the criteria read, in one place."""

    dora: Dora
    checks: Mapping[str, Check]
    stream: ValueStream
    facts: Facts
    now: datetime | None

    def check(self, level: int, check_id: str, text: str) -> Criterion:
        found = self.checks.get(check_id)
        if found is None:
            return Criterion(level, text, False, f'not measured: no "{check_id}" check yet')
        return Criterion(
            level, text, found.result == "pass", f"{found.title} {found.result}: {found.summary}"
        )


def duration(seconds: float) -> str:
    """A duration as a person says it: 45 s, 12 min, 3 h 20 min, 2 d 4 h."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _start() -> Criterion:
    return Criterion(1, "Starting point: nothing measured yet", True, "every service starts here")


def _dora(number: Number, what: str) -> str:
    if number.value is None:
        return f"{what}: no data in the window"
    return f"{what}: band {number.band}"


def _recovers_fast(level: int, ev: Evidence) -> Criterion:
    text = "Recover from a failed deployment within an hour (DORA recovery time elite)"
    recovery = ev.dora.recovery_time
    if recovery.value is not None:
        return Criterion(
            level,
            text,
            recovery.band == "elite",
            f"median recovery {duration(recovery.value)} ({recovery.band}) "
            f"over {len(recovery.evidence)} failure(s)",
        )
    fail_rate = ev.dora.change_fail_rate
    if fail_rate.value == 0:
        deployments = fail_rate.detail.get("deployments", 0)
        return Criterion(
            level,
            text,
            True,
            f"no production deployment failed in the window ({deployments} deployed): "
            "nothing to recover from",
        )
    return Criterion(level, text, False, "not measured: no recovery from a failure in the window")


def _flow(ev: Evidence) -> list[Criterion]:
    stream = ev.stream
    efficiency = stream.flow_efficiency
    if efficiency is None or stream.lead_s is None:
        shown = "no value stream measured in the window"
    else:
        shown = (
            f"flow efficiency {efficiency:.0%}: {duration(stream.process_s or 0.0)} of work "
            f"in a lead time of {duration(stream.lead_s)}; biggest wait: {stream.biggest_wait}"
        )
    return [
        _start(),
        ev.check(
            2,
            "done_defined",
            "Define done on the board: each working column gets a definition of done "
            "(a checklist or a gate)",
        ),
        ev.check(3, "wip", "Keep work in progress within the limits: finish before you start"),
        ev.check(
            3, "multitasking", "Work on one thing at a time: nobody holds several cards at once"
        ),
        Criterion(
            4,
            f"Cut waiting: flow efficiency of at least {FLOW_EFFICIENCY:.0%} on the value "
            "stream map; shorten its biggest wait first",
            efficiency is not None and efficiency >= FLOW_EFFICIENCY,
            shown,
        ),
        ev.check(
            5,
            "defect_escaped",
            "Build quality in: no defect passes to a later stage unnoticed",
        ),
        ev.check(
            5, "rhythm", "Keep a steady rhythm: production deployments come at regular intervals"
        ),
    ]


def _ci(ev: Evidence) -> list[Criterion]:
    facts = ev.facts
    return [
        _start(),
        Criterion(
            2,
            "Keep the pipeline as code: an obeya.yml in the repository, read without errors",
            facts.has_repository and facts.pipeline_as_code,
            "obeya.yml read without errors on the latest run"
            if facts.pipeline_as_code
            else "no obeya.yml read without errors on the latest run",
        ),
        ev.check(
            3,
            "ci.commit_stage",
            "Get feedback within 10 minutes: the commit stage takes at most 10 minutes "
            "for 9 runs in 10",
        ),
        ev.check(4, "ci.red_share", "Keep the default branch green: red at most 5 % of the time"),
        ev.check(
            4,
            "ci.time_to_fix",
            "Fix a broken build within 10 minutes: whoever breaks it fixes or reverts it first",
        ),
        ev.check(
            5,
            "ci.commits_per_developer",
            "Integrate often: every developer commits to the default branch twice a day or more",
        ),
    ]


def _cd(ev: Evidence) -> list[Criterion]:
    facts, dora = ev.facts, ev.dora
    tiers = facts.environments
    has_production = "production" in tiers
    before = has_production and tiers.index("production") > 0
    promoted = len(dora.deployment_frequency.evidence)
    fail_rate = dora.change_fail_rate
    return [
        _start(),
        Criterion(
            2,
            "Define the environments on the server, production among them",
            has_production,
            f"environments: {', '.join(tiers)}" if tiers else "no environment defined",
        ),
        Criterion(
            3,
            "Protect production: deploying there needs an approval",
            has_production and facts.protected_production,
            "production needs approval" if facts.protected_production else "not protected",
        ),
        Criterion(
            3,
            "Health-check production: a failed check rolls the deployment back",
            "production" in facts.health_checked,
            "health-checked tiers: " + (", ".join(facts.health_checked) or "none"),
        ),
        Criterion(
            3,
            "Build once, promote: an environment before production, and a build promoted "
            "through it to production in the window",
            before and promoted > 0,
            f"{promoted} production deployment(s) succeeded; "
            + ("an environment comes before production" if before else "none before production"),
        ),
        Criterion(
            4,
            "Deploy to production at least once a week (DORA deployment frequency high or elite)",
            dora.deployment_frequency.band in FAST,
            _dora(dora.deployment_frequency, "deployment frequency"),
        ),
        Criterion(
            4,
            "Bring a commit to production within a week (DORA change lead time high or elite)",
            dora.change_lead_time.band in FAST,
            _dora(dora.change_lead_time, "change lead time"),
        ),
        Criterion(
            5,
            f"Changes rarely fail: at most {CHANGE_FAIL_RATE:.0%} of production deployments fail",
            fail_rate.value is not None and fail_rate.value <= CHANGE_FAIL_RATE,
            "no production deployment in the window"
            if fail_rate.value is None
            else f"change fail rate {fail_rate.value:.0%} ({fail_rate.band})",
        ),
        _recovers_fast(5, ev),
    ]


def _backup_fresh(level: int, ev: Evidence) -> Criterion:
    facts = ev.facts
    text = "Back up within the recovery point objective: set an RPO, keep backups younger"
    if facts.rpo_s is None or facts.last_backup_at is None or ev.now is None:
        missing = "no RPO set" if facts.rpo_s is None else "no backup yet"
        return Criterion(level, text, False, missing if ev.now else "no time to judge by")
    age = (ev.now - facts.last_backup_at).total_seconds()
    return Criterion(
        level,
        text,
        age <= facts.rpo_s,
        f"last backup {duration(age)} old, RPO {duration(facts.rpo_s)}",
    )


def _drill_passed(level: int, ev: Evidence, text: str) -> Criterion:
    facts = ev.facts
    if facts.last_drill_at is None or ev.now is None:
        return Criterion(level, text, False, "no drill yet" if ev.now else "no time to judge by")
    age = ev.now - facts.last_drill_at
    verdict = "passed" if facts.last_drill_passed else "failed"
    return Criterion(
        level,
        text,
        bool(facts.last_drill_passed) and age <= DRILL_MAX_AGE,
        f"last drill {verdict}, {duration(age.total_seconds())} ago",
    )


def _operations(ev: Evidence) -> list[Criterion]:
    facts = ev.facts
    budget = facts.slo_budget_left
    drill_s, rto_s = facts.last_drill_s, facts.rto_s
    return [
        _start(),
        Criterion(2, "Monitor the service", facts.monitors > 0, f"{facts.monitors} monitor(s)"),
        Criterion(
            3,
            "Set service level objectives and keep within them: error budget left",
            facts.slos > 0 and budget is not None and budget > 0,
            f"{facts.slos} SLO(s)"
            + (f", lowest budget left {budget:.0%}" if budget is not None else ""),
        ),
        _backup_fresh(4, ev),
        _drill_passed(4, ev, "Rehearse recovery: a continuity drill passed in the last 90 days"),
        Criterion(
            5,
            "Recover within the recovery time objective: the last drill took at most the RTO",
            bool(facts.last_drill_passed)
            and drill_s is not None
            and rto_s is not None
            and drill_s <= rto_s,
            f"last drill {duration(drill_s)}, RTO {duration(rto_s)}"
            if drill_s is not None and rto_s is not None
            else ("no RTO set" if rto_s is None else "no drill timed yet"),
        ),
        _recovers_fast(5, ev),
    ]


def _stories(count: int, kind: str) -> str:
    return f"{count} {kind} {'story' if count == 1 else 'stories'} written"


def _data(ev: Evidence) -> list[Criterion]:
    facts = ev.facts
    return [
        _start(),
        Criterion(
            2,
            "Version code and configuration together: a repository with its obeya.yml",
            facts.has_repository and facts.pipeline_as_code,
            ("repository connected" if facts.has_repository else "no repository")
            + ("; obeya.yml read" if facts.pipeline_as_code else "; no obeya.yml read"),
        ),
        # Obeya cannot read the repository for secrets, so a service that keeps none on the
        # server is not held back: it may need none. What it can show, it says.
        Criterion(
            3,
            "Keep secrets on the server, never in the repository",
            True,
            f"{facts.secrets} secret(s) kept on the server"
            if facts.secrets
            else "no secret kept on the server: fine if the service needs none "
            "(Obeya cannot see secrets written into the repository)",
        ),
        Criterion(
            3,
            "Keep environments as their manifest says: no drift",
            bool(facts.environments) and not facts.drifted,
            "no environment defined"
            if not facts.environments
            else ("drifted: " + ", ".join(facts.drifted) if facts.drifted else "no drift"),
        ),
        Criterion(
            4,
            "Write service-level requirements as operation stories",
            facts.operation_stories > 0,
            _stories(facts.operation_stories, "operation"),
        ),
        Criterion(
            4,
            "Write acceptance scenarios as test stories (Given/When/Then)",
            facts.test_stories > 0,
            _stories(facts.test_stories, "test"),
        ),
        _drill_passed(
            5, ev, "Prove the data can be restored: a drill restored it in the last 90 days"
        ),
        _backup_fresh(5, ev),
    ]


AREAS: tuple[tuple[str, str, Callable[[Evidence], list[Criterion]]], ...] = (
    ("flow", "Flow & collaboration", _flow),
    ("ci", "Continuous integration", _ci),
    ("cd", "Continuous delivery", _cd),
    ("operations", "Operations & continuity", _operations),
    ("data", "Data & configuration", _data),
)


def area(area_id: str, name: str, criteria: Sequence[Criterion]) -> Area:
    """An area's level (the highest whose criteria, and all below, are met) and next step."""
    level = 1
    for candidate in range(2, 6):
        asked = [c for c in criteria if c.level == candidate]
        if not asked or not all(c.met for c in asked):
            break
        level = candidate
    step = next((c.text for c in criteria if c.level > level and not c.met), None)
    return Area(area_id, name, level, tuple(criteria), step)


def assess(dora: Dora, checks: Sequence[Check], stream: ValueStream, facts: Facts) -> list[Area]:
    """The five areas of one service, in order: flow, ci, cd, operations, data."""
    now = stream.window[1] if stream.window is not None else None
    evidence = Evidence(dora, {c.id: c for c in checks}, stream, facts, now)
    return [area(area_id, name, build(evidence)) for area_id, name, build in AREAS]
