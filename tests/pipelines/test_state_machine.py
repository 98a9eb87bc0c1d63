"""A model of the job lifecycle (RELIABILITY E): two runners, time, the reaper and a person
act at random on the runs of a three-job pipeline; after every step the invariants hold.

All examples run inside the one database transaction of the test, each on fresh runs of
the same service; ``teardown`` closes what an example left open, so that the next
example's runners only ever find their own jobs. Stories the machine once found broken are
replayed step by step at the end, so they stay fixed whatever the random draw.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import hypothesis
import pytest
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from obeya.catalog import services as catalog
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import Conflict
from obeya.core.models import User
from obeya.pipelines import leases, logic, runners, runs
from obeya.pipelines.models import Job, JobAttempt, Run
from tests.conftest import SYSTEM, actor
from tests.pipelines.conftest import Repo

LEASE_S = 8
ACK_S = 5  # leases.offers.ACK_SECONDS: an offer's lease, until the runner first calls
# build -> test -> deploy (implicit needs by stage). A script failure fails build at once;
# test retries a script failure once; deploy asks for 3 retries, more than the 2
# infrastructure retries every job gets.
SPEC = """\
stages: [build, test, deploy]
jobs:
  build:
    stage: build
    script: [make]
  test:
    stage: test
    script: [make test]
    retry: {max: 1, when: always}
  deploy:
    stage: deploy
    script: [make deploy]
    retry: 3
"""
WAITING = {"created", "queued", "manual", "waiting_approval"}
RETRIABLE = {"failed", "canceled"}
ACTIVE_RUN = {"created", "running"}


@dataclass(frozen=True)
class Lease:
    """A lease a runner was given: it may have gone stale since."""

    runner: int
    job_id: int
    attempt: int
    token: str


STORIES = itertools.count()  # runner names must be unique across examples
RUNNERS = st.sampled_from([0, 1])
OUTCOMES = st.sampled_from(["succeeded", "succeeded", "failed", "error", "timed_out", "canceled"])


class JobLifecycle(RuleBasedStateMachine):
    """Two runners, each working on the job it claimed last, and a person, on the runs of
    one service: one run at a time, the next when the last one is green."""

    def __init__(self, person: User, slug: str) -> None:
        super().__init__()
        self.person, self.slug = person, slug

    # ---- set-up and clean-up -------------------------------------------------------------

    @initialize(people_cancel=st.booleans())
    def start(self, people_cancel: bool) -> None:
        # Only some stories have a person cancel: a cancel ends most of a run, and the other
        # stories must get deep enough into the pipeline to retry, skip and reopen jobs.
        self.people_cancel = people_cancel
        self.clock = ManualClock(timezone.now())
        self.system = Actor(user=None, clock=self.clock)
        self.people = Actor(user=self.person, channel="web", clock=self.clock)
        story = next(STORIES)
        self.runners = [runners.register_runner(SYSTEM, f"s{story}-r{n}", [])[0] for n in range(2)]
        # The model: the lease each runner works under, every lease ever given out, who
        # holds each job until when, and the log of each attempt.
        self.working: dict[int, Lease] = {}
        self.given: list[Lease] = []
        self.holder: dict[int, tuple[Lease, datetime]] = {}
        self.acked: set[int] = set()  # jobs whose runner called with its current lease
        self.logs: dict[tuple[int, int], bytes] = {}
        # What the invariants remember between steps, by job id.
        self.frozen: dict[int, str] = {}
        self.person_retries: Counter[int] = Counter()
        self.last_status: dict[int, str] = {}
        self.reopened: set[int] = set()  # skipped jobs a person's retry may reopen this step
        self.run_pks: list[int] = []
        self._start_a_run()

    @precondition(lambda self: self.run_status not in ACTIVE_RUN and not self._retriable())
    @rule()
    def the_next_commit_runs(self) -> None:
        """A green run leaves the rest of the story to the next one (a red one is retried)."""
        self._start_a_run()

    def _start_a_run(self) -> None:
        run = runs.create_run(self.people, self.slug)
        self.run_pk, self.run_status = run.pk, run.status
        self.run_pks.append(run.pk)
        jobs = list(Job.objects.filter(run=run))
        self.jobs = {job.name: job.pk for job in jobs}
        self.by_name = {job.pk: job.name for job in jobs}
        self.needs = {job.pk: list(job.needs) for job in jobs}

    def teardown(self) -> None:
        # The next example's runners must find only the next example's jobs.
        if hasattr(self, "run_pks"):
            Job.objects.filter(run_id__in=self.run_pks).exclude(status__in=logic.FINAL).update(
                status="canceled", lease_token="", lease_expires_at=None
            )

    # ---- what the model expects ----------------------------------------------------------

    def _job(self, job_id: int) -> Job:
        return Job.objects.get(pk=job_id)

    def _holds(self, lease: Lease, runner: int) -> bool:
        held = self.holder.get(lease.job_id)
        return (
            held is not None
            and held[0] == lease
            and runner == lease.runner
            and held[1] >= self.clock.now()
        )

    def _call(self, valid: bool, call: Any) -> Any:
        if valid:
            return call()
        with pytest.raises(leases.StaleLease):
            call()
        return None

    def _retried_automatically(self, job: Job, failure: str) -> bool:
        """docs/pipelines.md, Retries: what ends an attempt decides whether another comes."""
        if job.cancel_requested:
            return False  # "The run was canceled: never" retried.
        if failure == "infrastructure":
            return job.attempt <= max(job.retry_max, logic.INFRASTRUCTURE_RETRIES)
        return job.retry_when == "always" and job.attempt <= job.retry_max

    def _dependents(self, job_id: int) -> set[int]:
        """The jobs that need ``job_id``, directly or through others."""
        found: set[int] = set()
        wanted, grew = {self.by_name[job_id]}, True
        while grew:
            grew = False
            for other, needs in self.needs.items():
                if other not in found and wanted & set(needs):
                    found.add(other)
                    wanted.add(self.by_name[other])
                    grew = True
        return found

    # ---- runners -------------------------------------------------------------------------

    @rule(runner=RUNNERS)
    def claim(self, runner: int) -> None:
        self._claim(runner)

    def _claim(self, runner: int) -> Lease | None:
        queued = list(
            Job.objects.filter(run_id=self.run_pk, status="queued").order_by("queued_at", "id")
        )
        claim = leases.claim(self.runners[runner], clock=self.system)
        if not queued:
            assert claim is None, "a claim found a job although none of the run is queued"
            return None
        assert claim is not None, "a queued job was not handed to an idle runner"
        assert claim.job.pk == queued[0].pk, "the oldest queued job goes first"
        assert claim.attempt.number == claim.job.attempt == queued[0].attempt + 1
        lease = Lease(runner, claim.job.pk, claim.job.attempt, claim.lease_token)
        self.holder[claim.job.pk] = (lease, self.clock.now() + timedelta(seconds=ACK_S))
        self.acked.discard(claim.job.pk)
        self.logs[(claim.job.pk, claim.job.attempt)] = b""
        self.working[runner] = lease
        self.given.append(lease)
        return lease

    @precondition(lambda self: self.working)
    @rule(runner=RUNNERS)
    def heartbeat(self, runner: int) -> None:
        if runner in self.working:
            self._heartbeat(self.working[runner], runner)

    @precondition(lambda self: self.working)
    @rule(runner=RUNNERS, data=st.binary(max_size=12), back=st.integers(0, 6))
    def append_log(self, runner: int, data: bytes, back: int) -> None:
        if runner in self.working:
            self._append_log(self.working[runner], runner, data, back)

    @precondition(lambda self: self.working)
    @rule(runner=RUNNERS, outcome=OUTCOMES, exit_code=st.integers(1, 3))
    def complete(self, runner: int, outcome: str, exit_code: int) -> None:
        if runner in self.working:
            self._complete(self.working.pop(runner), runner, outcome, exit_code)

    @rule(runner=RUNNERS, outcome=OUTCOMES)
    def a_runner_takes_and_finishes_a_job(self, runner: int, outcome: str) -> None:
        """The everyday path in one step, so that examples get deep into the pipeline."""
        if self._claim(runner) is not None:
            self._complete(self.working.pop(runner), runner, outcome, 2)

    @precondition(lambda self: self.working)
    @rule(runner=RUNNERS)
    def a_stopping_runner_gives_its_job_back(self, runner: int) -> None:
        """Handed a job as it stops, a runner gives it back before any other call."""
        if runner not in self.working:
            return
        lease = self.working.pop(runner)
        valid = self._holds(lease, runner)
        before = self._job(lease.job_id)
        if valid and lease.job_id in self.acked:
            with pytest.raises(Conflict):  # acknowledged: it may be running, never given back
                leases.release(self.runners[runner], lease.job_id, lease.token, clock=self.system)
            self.working[runner] = lease
            return
        self._call(
            valid,
            lambda: leases.release(
                self.runners[runner], lease.job_id, lease.token, clock=self.system
            ),
        )
        if valid:
            del self.holder[lease.job_id]
            self._given_back(before)

    def _given_back(self, was: Job) -> None:
        """An offer nobody acknowledged: queued again (or canceled), its attempt not spent."""
        job = self._job(was.pk)
        expected = "canceled" if was.cancel_requested else "queued"
        assert job.status == expected, f"{job.name} given back: {job.status}, not {expected}"
        assert job.attempt == was.attempt - 1, f"{job.name} spent attempt {was.attempt}"
        assert not JobAttempt.objects.filter(job=job, number=was.attempt).exists()
        assert job.queued_at == was.queued_at, "a job given back keeps its place in the queue"

    @precondition(lambda self: self.given)
    @rule(
        pick=st.integers(0, 30),
        as_other=st.booleans(),
        call=st.sampled_from(["heartbeat", "append_log", "complete"]),
    )
    def an_old_lease_is_used(self, pick: int, as_other: bool, call: str) -> None:
        """A runner back from the dead, or another runner with its token: stale or not?"""
        lease = self.given[pick % len(self.given)]
        runner = 1 - lease.runner if as_other else lease.runner
        if call == "heartbeat":
            self._heartbeat(lease, runner)
        elif call == "append_log":
            self._append_log(lease, runner, b"late\n", 0)
        else:
            self._complete(lease, runner, "succeeded", 0)

    @rule(
        runner=RUNNERS,
        job=st.sampled_from(["build", "test", "deploy"]),
        token=st.sampled_from(["forged", ""]),
        call=st.sampled_from(["heartbeat", "append_log", "complete"]),
    )
    def a_forged_token_is_refused(self, runner: int, job: str, token: str, call: str) -> None:
        job_id, who = self.jobs[job], self.runners[runner]
        calls = {
            "heartbeat": lambda: leases.heartbeat(who, job_id, token, clock=self.system),
            "append_log": lambda: leases.append_log(who, job_id, token, 0, b"x", clock=self.system),
            "complete": lambda: leases.complete(
                who, job_id, token, "succeeded", 0, clock=self.system
            ),
        }
        with pytest.raises(leases.StaleLease):
            calls[call]()

    def _heartbeat(self, lease: Lease, runner: int) -> None:
        valid = self._holds(lease, runner)
        answer = self._call(
            valid,
            lambda: leases.heartbeat(
                self.runners[runner], lease.job_id, lease.token, clock=self.system
            ),
        )
        if valid:
            expires, cancel = answer
            assert expires == self.clock.now() + timedelta(seconds=LEASE_S)
            assert cancel == self._job(lease.job_id).cancel_requested
            self.holder[lease.job_id] = (lease, expires)
            self.acked.add(lease.job_id)

    def _append_log(self, lease: Lease, runner: int, data: bytes, back: int) -> None:
        valid = self._holds(lease, runner)
        before = self.logs[(lease.job_id, lease.attempt)]
        offset = max(0, len(before) - back)  # a resend overlaps what is stored: harmless
        size = self._call(
            valid,
            lambda: leases.append_log(
                self.runners[runner], lease.job_id, lease.token, offset, data, clock=self.system
            ),
        )
        if valid:
            expected = before + data[len(before) - offset :]
            assert size == len(expected)
            self.logs[(lease.job_id, lease.attempt)] = expected
            if lease.job_id not in self.acked:  # the first call acknowledges: a full lease
                self.holder[lease.job_id] = (lease, self.clock.now() + timedelta(seconds=LEASE_S))
                self.acked.add(lease.job_id)
        stored = leases.log_bytes(self._job(lease.job_id), attempt=lease.attempt)
        assert stored == self.logs[(lease.job_id, lease.attempt)], "a stored log changed"

    def _complete(self, lease: Lease, runner: int, outcome: str, exit_code: int) -> None:
        valid = self._holds(lease, runner)
        before = self._job(lease.job_id)
        code = {"succeeded": 0, "failed": exit_code}.get(outcome)
        self._call(
            valid,
            lambda: leases.complete(
                self.runners[runner], lease.job_id, lease.token, outcome, code, clock=self.system
            ),
        )
        if not valid:
            return
        del self.holder[lease.job_id]
        self.acked.discard(lease.job_id)
        job = self._job(lease.job_id)
        failure = {"failed": "script", "timed_out": "script", "error": "infrastructure"}
        if outcome in failure and self._retried_automatically(before, failure[outcome]):
            expected = "queued"
        else:
            expected = {"succeeded": "succeeded", "canceled": "canceled"}.get(outcome, "failed")
        assert job.status == expected, (
            f"{job.name} attempt {before.attempt} ended {outcome} "
            f"(cancel requested: {before.cancel_requested}): {job.status}, not {expected}"
        )
        if outcome == "failed" and expected == "failed":
            assert job.failure_reason.startswith(f"script_failure: exit code {exit_code}")
        if outcome == "error" and expected == "failed":
            assert job.failure_reason.startswith(
                f"retry_limit: infrastructure failed {before.attempt} time(s)"
            )
        attempt = JobAttempt.objects.get(job_id=lease.job_id, number=lease.attempt)
        assert (attempt.outcome, attempt.finished_at) == (outcome, self.clock.now())

    # ---- time and the reaper -------------------------------------------------------------

    @rule(
        seconds=st.sampled_from(
            [1, 2, ACK_S - 1, ACK_S, ACK_S + 1, LEASE_S - 1, LEASE_S, LEASE_S + 1, 3 * LEASE_S]
        ),
        then_reap=st.booleans(),
    )
    def let_time_pass(self, seconds: int, then_reap: bool) -> None:
        self.clock.advance(timedelta(seconds=seconds))
        if then_reap:
            self._reap()

    def _reap(self) -> None:
        now = self.clock.now()
        expired = {job_id for job_id, (_, until) in self.holder.items() if until < now}
        before = {job_id: self._job(job_id) for job_id in expired}
        assert leases.reap(clock=self.system) == len(expired)
        for job_id in expired:
            del self.holder[job_id]
            job, was = self._job(job_id), before[job_id]
            if job_id not in self.acked:
                self._given_back(was)
                continue
            self.acked.discard(job_id)
            if was.cancel_requested:
                expected, outcome = "canceled", "canceled"
            elif self._retried_automatically(was, "infrastructure"):
                expected, outcome = "queued", "lost"
            else:
                expected, outcome = "failed", "lost"
                assert job.failure_reason.startswith(
                    f"retry_limit: the runner was lost {was.attempt} time(s)"
                )
            assert job.status == expected, f"{job.name} reaped: {job.status}, not {expected}"
            assert JobAttempt.objects.get(job=job, number=was.attempt).outcome == outcome

    # ---- people --------------------------------------------------------------------------

    # Canceling while a runner holds a job is the interesting case: the runner hears of it
    # at its next heartbeat. Canceling a finished run is refused.
    @precondition(
        lambda self: self.people_cancel and (self.holder or self.run_status not in ACTIVE_RUN)
    )
    @rule(script_ends=st.sampled_from(["", *sorted(leases.OUTCOMES)]))
    def cancel_run(self, script_ends: str) -> None:
        run = Run.objects.get(pk=self.run_pk)
        if run.status not in ACTIVE_RUN:
            with pytest.raises(Conflict):
                runs.cancel_run(self.people, self.slug, run.number)
            return
        before = {job.pk: job.status for job in Job.objects.filter(run=run)}
        runs.cancel_run(self.people, self.slug, run.number)
        for job in Job.objects.filter(run=run):
            if before[job.pk] in WAITING:
                assert job.status == "canceled", f"{job.name} waited and is {job.status}"
            elif before[job.pk] == "running":
                assert job.status == "running" and job.cancel_requested
        if script_ends and self.working:
            # The race: a script ends its own way before its runner hears of the cancel.
            runner = min(self.working)
            self._complete(self.working.pop(runner), runner, script_ends, 1)

    def _retriable(self) -> bool:
        """Whether a job of the run was failed or canceled when the last step ended."""
        return any(self.last_status.get(pk) in RETRIABLE for pk in self.jobs.values())

    @precondition(lambda self: self._retriable())
    @rule(job=st.sampled_from(["build", "test", "deploy"]))
    def retry_job(self, job: str) -> None:
        job_id = self.jobs[job]
        if self._job(job_id).status not in RETRIABLE:
            with pytest.raises(Conflict):
                runs.retry_job(self.people, job_id)
            return
        try:
            runs.retry_job(self.people, job_id)
        except Conflict:
            # Refusing is right only while something the job needs has not succeeded.
            needs = Job.objects.filter(run_id=self.run_pk, name__in=self.needs[job_id])
            assert any(need.status != "succeeded" for need in needs), "a retry was refused"
            return
        self.person_retries[job_id] += 1
        retried = self._job(job_id)
        assert (retried.status, retried.cancel_requested) == ("queued", False)
        # What was skipped because it needs this job waits for it again (docs: Retry a job).
        for dependent in self._dependents(job_id):
            self.reopened.add(dependent)
            if self.frozen.get(dependent) == "skipped":
                del self.frozen[dependent]

    # ---- invariants ----------------------------------------------------------------------

    @invariant()
    def the_lifecycle_holds(self) -> None:
        """One snapshot of the run (three queries), checked against every invariant."""
        run = Run.objects.get(pk=self.run_pk)
        jobs = list(Job.objects.filter(run=run).order_by("position"))
        attempts: dict[int, list[JobAttempt]] = {job.pk: [] for job in jobs}
        for attempt in JobAttempt.objects.filter(job__run=run).order_by("number"):
            attempts[attempt.job_id].append(attempt)
        for job in jobs:
            one_live_attempt_and_it_is_the_current_one(job, attempts[job.pk])
            a_lease_exactly_while_running(job)
            assert job.awaiting_ack == (job.pk in self.holder and job.pk not in self.acked), (
                f"{job.name}: awaiting_ack is {job.awaiting_ack}"
            )
            attempts_are_bounded_and_numbered_once(job, attempts[job.pk], self.person_retries)
            succeeded_and_skipped_never_change(job, self.frozen)
            a_canceled_run_queues_nothing_by_itself(job)
            moves_follow_the_state_table(job, self.last_status, self.reopened)
        self.reopened.clear()
        self.run_status = run.status
        a_job_runs_only_after_what_it_needs_succeeded(jobs)
        the_run_status_follows_its_jobs(run, jobs)


def one_live_attempt_and_it_is_the_current_one(job: Job, attempts: list[JobAttempt]) -> None:
    live = [attempt.number for attempt in attempts if attempt.finished_at is None]
    wanted = [job.attempt] if job.status == "running" else []
    assert live == wanted, f"{job.name} is {job.status} with live attempts {live}"


def moves_follow_the_state_table(job: Job, last: dict[int, str], reopened: set[int]) -> None:
    """A step may move a job along several edges of logic.JOB_TRANSITIONS, never off them."""
    before = last.get(job.pk, "created")
    reachable, frontier = {before}, [before]
    if job.pk in reopened and before == "skipped":
        reachable.add("created")  # docs: a retry makes what was skipped wait again
        frontier.append("created")
    while frontier:
        for target in logic.JOB_TRANSITIONS.get(frontier.pop(), frozenset()):
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert job.status in reachable, f"{job.name} moved from {before} to {job.status}"
    last[job.pk] = job.status


def a_lease_exactly_while_running(job: Job) -> None:
    if job.status == "running":
        assert job.lease_token and job.lease_expires_at is not None, job.name
    else:
        assert (job.lease_token, job.lease_expires_at) == ("", None), (
            f"{job.name} is {job.status} but keeps a lease"
        )


def attempts_are_bounded_and_numbered_once(
    job: Job, attempts: list[JobAttempt], person_retries: Counter[int]
) -> None:
    # A person's retry starts a new attempt; only the automatic ones are bounded.
    limit = max(job.retry_max, logic.INFRASTRUCTURE_RETRIES) + 1 + person_retries[job.pk]
    assert job.attempt <= limit, (
        f"{job.name}: attempt {job.attempt} after {person_retries[job.pk]} retries by a person"
    )
    numbers = [attempt.number for attempt in attempts]
    assert numbers == list(range(1, job.attempt + 1)), f"{job.name}: attempts {numbers}"


def succeeded_and_skipped_never_change(job: Job, frozen: dict[int, str]) -> None:
    if job.pk in frozen:
        assert job.status == frozen[job.pk], (
            f"{job.name} was {frozen[job.pk]} and is now {job.status}"
        )
    elif job.status in {"succeeded", "skipped"}:
        frozen[job.pk] = job.status


def a_canceled_run_queues_nothing_by_itself(job: Job) -> None:
    assert not (job.status == "queued" and job.cancel_requested), (
        f"{job.name} is queued again although its run was canceled"
    )


def a_job_runs_only_after_what_it_needs_succeeded(jobs: list[Job]) -> None:
    by_name = {job.name: job for job in jobs}
    for job in jobs:
        needs = {name: by_name[name].status for name in job.needs}
        if job.status in {"queued", "running", "succeeded"}:
            assert all(status == "succeeded" for status in needs.values()), (
                f"{job.name} is {job.status} while it needs {needs}"
            )
        if job.status == "skipped":
            assert any(status != "succeeded" for status in needs.values()), (
                f"{job.name} stays skipped although it needs {needs}"
            )


def the_run_status_follows_its_jobs(run: Run, jobs: list[Job]) -> None:
    assert run.status == logic.run_status(job.status for job in jobs), (
        f"run is {run.status} with jobs {[(job.name, job.status) for job in jobs]}"
    )
    assert (run.finished_at is None) == (run.status in {"created", "running"}), run.status


@pytest.fixture
def pipeline(settings: Any, alice: User, repo: Repo) -> str:
    """The service "svc" on a repository whose obeya.yml is SPEC; its slug."""
    settings.OBEYA_LEASE_SECONDS = LEASE_S
    repo.commit({"obeya.yml": SPEC}, "three jobs in a row")
    catalog.create_service(actor(alice), "svc", "Svc", repository_url=str(repo.path))
    return "svc"


def test_the_job_lifecycle_keeps_its_invariants(alice: User, pipeline: str) -> None:
    run_state_machine_as_test(
        lambda: JobLifecycle(alice, pipeline),
        settings=hypothesis.settings(
            max_examples=40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def replay(machine: JobLifecycle, *steps: Any) -> None:
    """Run ``steps`` (callables taking the machine) the way Hypothesis would: invariants after
    each, teardown at the end."""
    try:
        machine.the_lifecycle_holds()
        for step in steps:
            step(machine)
            machine.the_lifecycle_holds()
    finally:
        machine.teardown()


def test_a_script_failing_after_its_run_was_canceled_is_not_retried(
    alice: User, pipeline: str
) -> None:
    machine = JobLifecycle(alice, pipeline)
    machine.start(people_cancel=True)
    replay(
        machine,
        lambda m: m.claim(runner=0),
        lambda m: m.cancel_run(script_ends="error"),  # before the runner heard of the cancel
    )


def test_a_retry_waits_for_what_the_job_needs(alice: User, pipeline: str) -> None:
    machine = JobLifecycle(alice, pipeline)
    machine.start(people_cancel=True)
    replay(
        machine,
        lambda m: m.claim(runner=0),
        lambda m: m.cancel_run(script_ends="canceled"),
        lambda m: m.retry_job(job="deploy"),  # build never succeeded: deploy must not run
    )


def test_a_retry_reopens_everything_downstream(alice: User, pipeline: str) -> None:
    machine = JobLifecycle(alice, pipeline)
    machine.start(people_cancel=False)
    replay(
        machine,
        lambda m: m.a_runner_takes_and_finishes_a_job(runner=0, outcome="failed"),
        lambda m: m.retry_job(job="build"),
        lambda m: m.a_runner_takes_and_finishes_a_job(runner=1, outcome="succeeded"),
        lambda m: m.a_runner_takes_and_finishes_a_job(runner=0, outcome="succeeded"),
        lambda m: m.a_runner_takes_and_finishes_a_job(runner=1, outcome="succeeded"),
    )
    assert machine.run_status == "succeeded"
