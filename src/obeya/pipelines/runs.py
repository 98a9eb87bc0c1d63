"""Runs: start one for a commit, move its job graph forward, cancel, retry, play.

Each use case is one transaction that records its events. Git work (fetching, reading
obeya.yml) happens before the transaction, so no lock is held while the network is slow.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, QuerySet

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events, rows
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.core.roles import Permission
from obeya.pipelines import andon, git, logic, spec, wakeup
from obeya.pipelines.models import Job, JobKind, JobStatus, Pipeline, Run, RunStatus

log = logging.getLogger("obeya.pipelines")
SPEC_FILE = "obeya.yml"
AUTOMATIC_TRIGGERS = frozenset({"push", "poll"})

# Other capabilities learn about runs here (the backlog links commits to stories and syncs
# feature files). Each listener gets the run id after the run's transaction commits.
RunListener = Callable[[int], None]
RUN_CREATED: list[RunListener] = []
RUN_FINISHED: list[RunListener] = []


def _notify(listeners: list[RunListener], run_id: int) -> None:
    for listener in listeners:
        transaction.on_commit(functools.partial(_safely, listener, run_id))


def _safely(listener: RunListener, run_id: int) -> None:
    try:
        listener(run_id)
    except Exception:  # a listener's failure must not fail the run or the runner's call
        log.exception("run listener %s failed for run %s", listener, run_id)


# The deployments capability carries out deploy jobs (``deploy:`` in obeya.yml). It
# registers one dispatcher, called inside the run's transaction when a deploy job is ready
# to go; the dispatcher records its deployment and returns the job's new status
# (waiting_approval, queued or failed, with ``job.failure_reason`` set when failed).
DeployDispatcher = Callable[[Actor, Job], str]
DEPLOY_DISPATCHERS: list[DeployDispatcher] = []
# Told, inside the transaction, about deploy jobs a person canceled before they ran.
DeployCanceled = Callable[[Actor, Job], None]
DEPLOY_CANCELED: list[DeployCanceled] = []


class NothingToRun(InvalidInput):
    """The rules of obeya.yml leave no job for this branch."""

    code = "nothing_to_run"


def pipeline_of(service: Service) -> Pipeline:
    found, _ = Pipeline.objects.get_or_create(service=service)
    return found


def mirror_of(service: Service) -> Path:
    return git.mirror_path(Path(settings.DATA_DIR), service.slug)


def _planned_jobs(text: str, branch: str) -> list[dict[str, Any]]:
    """The jobs to create for ``branch``, in order, from the obeya.yml text (may raise)."""
    parsed = spec.parse_spec(text, SPEC_FILE)
    return [
        {
            "name": job.name,
            "stage": job.stage,
            "stage_index": parsed.stages.index(job.stage),
            "needs": list(job.effective_needs),
            "kind": JobKind.DEPLOY if job.deploys else JobKind.SCRIPT,
            "retry_max": job.retry_max,
            "retry_when": job.retry_when,
            "spec": {
                "script": list(job.script),
                "runs_on": list(job.runs_on),
                "variables": dict(job.variables),
                "artifact_paths": list(job.artifact_paths),
                "artifact_expire_seconds": job.artifact_expire_seconds,
                "junit": list(job.junit_globs),
                "timeout_seconds": job.timeout_seconds,
                "when": job.when,
                "environment": job.environment,
                "deploy": {"artifact": job.deploy_artifact} if job.deploys else None,
            },
        }
        for job in spec.jobs_for_branch(parsed, branch)
    ]


def create_run(actor: Actor, slug: str, ref: str | None = None, *, trigger: str = "manual") -> Run:
    """Start a run of ``ref`` (default: the service's default branch) from its obeya.yml."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.RUN_PIPELINE)
    pipeline = pipeline_of(service)
    mirror = mirror_of(service)
    git.sync(service.repository_url, mirror)
    sha, branch = git.resolve(mirror, ref or pipeline.default_branch)
    # A tag's runs may receive protected secrets (see secrets_store): know it was one.
    tag = ref.strip() if ref and not branch and git.is_tag(mirror, ref.strip(), sha) else ""
    head = git.commit(mirror, sha)
    text = git.read_file(mirror, sha, SPEC_FILE)
    problems: list[str] = []
    planned: list[dict[str, Any]] = []
    if text is None:
        problems = [
            f"{SPEC_FILE}: not found at the root of commit {sha[:12]}: add one "
            "(see docs/pipelines.md)"
        ]
    else:
        try:
            planned = _planned_jobs(text, branch)
        except spec.SpecInvalid as invalid:
            problems = [str(error) for error in invalid.errors]
        if not problems and not planned:
            nothing = f"{SPEC_FILE}: no job runs on branch {branch or sha[:12]} (see rules)"
            if trigger in AUTOMATIC_TRIGGERS:  # a push to an excluded branch is no failure
                raise NothingToRun(nothing, field="ref")
            problems = [nothing]
    default = bool(branch) and branch == pipeline.default_branch
    landed = _landed_commits(service, mirror, branch, sha) if default else []
    now = actor.now()
    with transaction.atomic():
        Pipeline.objects.select_for_update().get(pk=pipeline.pk)  # serialise run numbers
        number = (Run.objects.filter(service=service).aggregate(n=Max("number"))["n"] or 0) + 1
        run = Run.objects.create(
            service=service,
            number=number,
            trigger=trigger,
            triggered_by=actor.user,
            ref=ref or pipeline.default_branch,
            branch=branch,
            tag=tag,
            sha=sha,
            author_name=head.author_name,
            author_email=head.author_email,
            authored_at=head.authored_at,
            committed_at=head.committed_at,
            message=head.message,
            spec_text=text or "",
            errors=problems,
            created_at=now,
        )
        Job.objects.bulk_create(
            Job(run=run, position=position, **job) for position, job in enumerate(planned)
        )
        events.record(
            actor,
            "run.created",
            f"run:{run.pk}",
            {
                "number": number,
                "sha": sha,
                "branch": branch,
                "trigger": trigger,
                "default_branch": default,
                "author": head.author_email or head.author_name,
                "committed_at": head.committed_at.isoformat(),
                "commits": landed,
            },
            service=slug,
        )
        # Pinned before the run commits: a runner may claim its first job right after.
        git.pin(mirror, run.pk, sha)
        if problems:
            _notify(RUN_CREATED, run.pk)
            _finish(actor, run, RunStatus.FAILED, pipeline.default_branch)
        else:
            advance(actor, run)  # wakes the runners first: listeners do git work after
            _notify(RUN_CREATED, run.pk)
    return run


def advance(actor: Actor, run: Run) -> None:
    """Queue, hold or skip every job whose needs are settled; finish the run when done.

    Call inside the transaction that changed a job of ``run``. Only the jobs that can
    move now are read whole; the rest of the graph is read as names, kinds, statuses and
    needs (a run's jobs are locked all the same).
    """
    table = rows.quote(Job._meta.db_table)
    # Only a job still waiting (created) needs its needs read: the rest stay as stored.
    graph = [
        (pk, name, kind, state, _needs(needs) if state == JobStatus.CREATED else ())
        for pk, name, kind, state, needs in rows.fetch(
            f"SELECT id, name, kind, status, needs FROM {table} WHERE run_id = %s "  # noqa: S608 (the model's table)
            f"ORDER BY position{rows.lock_clause()}",
            [run.pk],
        )
    ]
    status = {name: state for _, name, _, state, _ in graph}
    now = actor.now()
    changed = True
    while changed:  # a skip can settle the needs of later jobs
        changed = False
        ready = [
            pk
            for pk, name, _, _, needs in graph
            if status[name] == JobStatus.CREATED
            and all(status[need] in logic.FINAL for need in needs)
        ]
        if not ready:
            break
        marks = ", ".join(["%s"] * len(ready))
        for job in rows.select(Job, f"WHERE t.id IN ({marks}) ORDER BY t.position", ready):
            job.run = run  # already read, with its service
            decision = logic.decide(
                job.spec.get("when", "on_success"), [status[name] for name in job.needs]
            )
            if decision == logic.Decision.WAIT:
                continue
            if decision == logic.Decision.QUEUE:
                _start(actor, job)
            else:
                job.status = {
                    logic.Decision.MANUAL: JobStatus.MANUAL,
                    logic.Decision.SKIP: JobStatus.SKIPPED,
                }[decision]
            rows.save(job, ["status", "queued_at", "failure_reason", "finished_at"])
            status[job.name] = job.status
            changed = True
    kinds = [(kind, status[name]) for _, name, kind, _, _ in graph]
    if any(kind == JobKind.DEPLOY and state not in logic.FINAL for kind, state in kinds) and all(
        state == JobStatus.SUCCEEDED for kind, state in kinds if kind == JobKind.SCRIPT
    ):
        andon.on_integration_green(actor, run, pipeline_of(run.service).default_branch)
    new_status = logic.run_status(status.values())
    if new_status == run.status:
        return
    if new_status in {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED}:
        _finish(actor, run, new_status, pipeline_of(run.service).default_branch)
    else:
        if new_status == RunStatus.RUNNING and run.started_at is None:
            run.started_at = now
        run.status = new_status
        rows.save(run, ["status", "started_at"])


def _needs(stored: Any) -> list[str]:
    return json.loads(stored) if isinstance(stored, str) else list(stored)


def _start(actor: Actor, job: Job) -> None:
    """Queue a script job for the runners, or hand a deploy job to the deployer."""
    now = actor.now()
    job.queued_at = now
    if job.kind != JobKind.DEPLOY:
        job.status = JobStatus.QUEUED
        wakeup.job_queued()
        return
    if not DEPLOY_DISPATCHERS:
        job.status, job.finished_at = JobStatus.FAILED, now
        job.failure_reason = "deployments are not available on this server"
        return
    job.failure_reason = ""
    job.status = DEPLOY_DISPATCHERS[0](actor, job)
    if job.status == JobStatus.FAILED:
        job.finished_at = now
        events.record(
            actor,
            "job.finished",
            f"job:{job.pk}",
            {
                "name": job.name,
                "stage": job.stage,
                "status": job.status,
                "attempt": job.attempt,
                "run": job.run.number,
                "exit_code": None,
                "duration_s": 0.0,
                "reason": job.failure_reason,
            },
            service=job.run.service.slug,
        )


def settle_deploy_job(actor: Actor, job_id: int, status: str, reason: str = "") -> None:
    """The deployer's word on a deploy job (queued, running, succeeded, failed, canceled);
    the run moves on.

    Call inside the deployer's transaction.
    """
    job = Job.objects.select_for_update().select_related("run__service").get(pk=job_id)
    if job.kind != JobKind.DEPLOY or job.status in logic.FINAL:
        return
    now = actor.now()
    if status == JobStatus.QUEUED:  # approved: waits for the environment now
        job.status = JobStatus.QUEUED
        job.save(update_fields=["status"])
        return
    if status == JobStatus.RUNNING:
        job.status, job.started_at = JobStatus.RUNNING, job.started_at or now
        job.attempt = max(job.attempt, 1)
        job.save(update_fields=["status", "started_at", "attempt"])
        advance(actor, job.run)
        return
    job.status, job.finished_at, job.failure_reason = status, now, reason
    job.save(update_fields=["status", "finished_at", "failure_reason"])
    events.record(
        actor,
        "job.finished",
        f"job:{job.pk}",
        {
            "name": job.name,
            "stage": job.stage,
            "status": job.status,
            "attempt": job.attempt,
            "run": job.run.number,
            "exit_code": None,
            "duration_s": round((now - (job.started_at or now)).total_seconds(), 3),
            "reason": reason,
        },
        service=job.run.service.slug,
    )
    advance(actor, job.run)


def _finish(actor: Actor, run: Run, status: str, default_branch: str) -> None:
    run.status = status
    run.finished_at = actor.now()
    run.save(update_fields=["status", "finished_at"])
    started = run.started_at or run.created_at
    events.record(
        actor,
        "run.finished",
        f"run:{run.pk}",
        {
            "number": run.number,
            "status": status,
            "sha": run.sha,
            "branch": run.branch,
            "default_branch": bool(run.branch) and run.branch == default_branch,
            "duration_s": round((run.finished_at - started).total_seconds(), 3),
        },
        service=run.service.slug,
    )
    andon.on_run_finished(actor, run, default_branch)
    _notify(RUN_FINISHED, run.pk)


# ---- reading ---------------------------------------------------------------------------


def list_runs(slug: str, branch: str = "") -> QuerySet[Run]:
    runs = Run.objects.filter(service=catalog.get_service(slug)).select_related("service")
    return runs.filter(branch=branch) if branch else runs


def get_run(slug: str, number: int) -> Run:
    try:
        return Run.objects.select_related("service").get(service__slug=slug, number=number)
    except Run.DoesNotExist:
        raise NotFound(f'no run #{number} of "{slug}"', field="number") from None


def get_job(job_id: int) -> Job:
    try:
        return Job.objects.select_related("run__service", "runner").get(pk=job_id)
    except Job.DoesNotExist:
        raise NotFound(f"no job with id {job_id}", field="job") from None


def jobs_of(run: Run) -> QuerySet[Job]:
    return Job.objects.filter(run=run).select_related("run", "runner").order_by("position")


# ---- people acting on runs ---------------------------------------------------------------


def cancel_run(actor: Actor, slug: str, number: int) -> Run:
    """Stop a run: waiting jobs end at once; running ones are told at their next heartbeat."""
    run = get_run(slug, number)
    catalog.require(actor, run.service, Permission.RUN_PIPELINE)
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.status not in {RunStatus.CREATED, RunStatus.RUNNING}:
            raise Conflict(f"run #{number} is already {run.status}")
        for job in Job.objects.select_for_update().filter(run=run):
            if job.status in {
                JobStatus.CREATED,
                JobStatus.QUEUED,
                JobStatus.MANUAL,
                JobStatus.WAITING_APPROVAL,
            }:
                waiting_deploy = job.kind == JobKind.DEPLOY and job.status in {
                    JobStatus.QUEUED,
                    JobStatus.WAITING_APPROVAL,
                }
                job.status, job.failure_reason = JobStatus.CANCELED, "canceled"
                job.finished_at = actor.now()
                job.save(update_fields=["status", "failure_reason", "finished_at"])
                if waiting_deploy:
                    for listener in DEPLOY_CANCELED:
                        listener(actor, job)
            elif job.status == JobStatus.RUNNING:
                job.cancel_requested = True
                job.save(update_fields=["cancel_requested"])
        events.record(
            actor, "run.cancel_requested", f"run:{run.pk}", {"number": number}, service=slug
        )
        advance(actor, run)
    return run


def _person_job(actor: Actor, job_id: int) -> Job:
    job = get_job(job_id)
    # Starting a deploy job is deploying: operators may, and the deployer's dispatcher
    # then checks the environment's protection.
    needed = Permission.DEPLOY if job.kind == JobKind.DEPLOY else Permission.RUN_PIPELINE
    catalog.require(actor, job.run.service, needed)
    return job


def retry_job(actor: Actor, job_id: int) -> Job:
    """Run a failed or canceled job again as a new attempt; its run runs again."""
    job = _person_job(actor, job_id)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in {JobStatus.FAILED, JobStatus.CANCELED}:
            raise Conflict(
                f"job {job.name} is {job.status}: only a failed or canceled job can be retried"
            )
        needs = dict(
            Job.objects.filter(run=job.run, name__in=job.needs).values_list("name", "status")
        )
        if logic.decide(job.spec.get("when", "on_success"), needs.values()) != logic.Decision.QUEUE:
            unmet = ", ".join(
                f"{name} ({status})"
                for name, status in sorted(needs.items())
                if status != JobStatus.SUCCEEDED
            )
            raise Conflict(f"job {job.name} cannot run yet: it needs {unmet}; retry those first")
        job.exit_code, job.failure_reason, job.finished_at = None, "", None
        job.cancel_requested = False
        _start(actor, job)
        _refused(job)
        job.save()
        _reopen(actor, job)
        events.record(
            actor, "job.retried", f"job:{job.pk}", {"name": job.name}, service=job.run.service.slug
        )
    return job


def play_job(actor: Actor, job_id: int) -> Job:
    """Start a manual job."""
    job = _person_job(actor, job_id)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status != JobStatus.MANUAL:
            raise Conflict(f"job {job.name} is {job.status}, not waiting for a manual start")
        _start(actor, job)
        _refused(job)
        job.save(update_fields=["status", "queued_at", "failure_reason", "finished_at"])
        _reopen(actor, job)
        events.record(
            actor, "job.played", f"job:{job.pk}", {"name": job.name}, service=job.run.service.slug
        )
    return job


def _refused(job: Job) -> None:
    """A person's start of a deploy job the deployer refuses changes nothing (rolled back)."""
    if job.status == JobStatus.FAILED:
        raise Conflict(f"job {job.name} cannot start: {job.failure_reason}")


def _reopen(actor: Actor, job: Job) -> None:
    """A finished run with a job queued again is running again; its dependents wait anew."""
    run = Run.objects.select_for_update().get(pk=job.run_id)
    skipped = {j.name: j for j in Job.objects.filter(run=run, status=JobStatus.SKIPPED)}
    reopened, changed = {job.name}, True
    while changed:  # everything downstream of the retried job waits again
        changed = False
        for name, dependent in list(skipped.items()):
            if reopened & set(dependent.needs):
                dependent.status = JobStatus.CREATED
                dependent.save(update_fields=["status"])
                reopened.add(name)
                del skipped[name]
                changed = True
    run.status, run.finished_at = RunStatus.RUNNING, None
    run.save(update_fields=["status", "finished_at"])


def set_pipeline(
    actor: Actor,
    slug: str,
    *,
    default_branch: str | None = None,
    poll_interval_s: int | None = None,
    protected_branches: list[str] | None = None,
    protected_tags: list[str] | None = None,
) -> Pipeline:
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.CONFIGURE_ENVIRONMENTS)
    if protected_branches is not None or protected_tags is not None:
        # Protected refs decide who receives protected secrets: theirs to change.
        catalog.require(actor, service, Permission.MANAGE_SECRETS)
    with transaction.atomic():
        pipeline = Pipeline.objects.select_for_update().get(pk=pipeline_of(service).pk)
        changes: dict[str, Any] = {}
        if default_branch is not None:
            if not default_branch.strip() or default_branch.startswith("-"):
                raise InvalidInput("the default branch needs a name", field="default_branch")
            changes["default_branch"] = default_branch.strip()
        if poll_interval_s is not None:
            if poll_interval_s != 0 and not 10 <= poll_interval_s <= 86400:
                raise InvalidInput(
                    "poll interval: 0 (off) or 10 to 86400 seconds", field="poll_interval_s"
                )
            changes["poll_interval_s"] = poll_interval_s
        for field, patterns in (
            ("protected_branches", protected_branches),
            ("protected_tags", protected_tags),
        ):
            if patterns is not None:
                changes[field] = _ref_patterns(field, patterns)
        for key, value in changes.items():
            setattr(pipeline, key, value)
        pipeline.save()
        events.record(actor, "pipeline.configured", f"service:{slug}", changes, service=slug)
    return pipeline


def _ref_patterns(field: str, patterns: list[str]) -> list[str]:
    """Glob patterns of branch or tag names, cleaned; at most 50 of 1 to 200 characters."""
    cleaned = sorted({pattern.strip() for pattern in patterns if pattern.strip()})
    if len(cleaned) > 50:
        raise InvalidInput(f"{field}: at most 50 patterns", field=field)
    for pattern in cleaned:
        if len(pattern) > 200 or pattern.startswith("-") or any(c in pattern for c in "\0\n\r "):
            raise InvalidInput(
                f"{field}: {pattern!r} is not a branch or tag name pattern (such as "
                "release/* or v*)",
                field=field,
            )
    return cleaned


def repository_files(run: Run, suffix: str) -> dict[str, str]:
    """The files of the run's commit whose names end in ``suffix``."""
    return git.files_matching(mirror_of(run.service), run.sha, suffix)


def _landed_commits(service: Service, mirror: Path, branch: str, sha: str) -> list[dict[str, str]]:
    """The commits a run of the default branch is the first to see, each with its author
    and commit time (CI health counts commits per developer per day from these)."""
    previous = (
        Run.objects.filter(service=service, branch=branch)
        .order_by("-pk")
        .values_list("sha", flat=True)
        .first()
    )
    if previous == sha:
        return []
    try:
        found = git.commit_list(mirror, git.commits_between(mirror, previous or "", sha, 200))
    except git.GitError:  # the previous head was rewritten away: only this commit
        found = git.commit_list(mirror, [sha])
    return [
        {
            "sha": c.sha,
            "author": c.author_email or c.author_name,
            "committed_at": c.committed_at.isoformat(),
        }
        for c in found
    ]


def new_commits(run: Run, limit: int = 200) -> list[git.Commit]:
    """The commits this run brings to its branch: since the previous run of the branch."""
    previous = (
        Run.objects.filter(service=run.service, branch=run.branch, pk__lt=run.pk)
        .exclude(sha=run.sha)
        .order_by("-pk")
        .values_list("sha", flat=True)
        .first()
    )
    mirror = mirror_of(run.service)
    try:
        shas = git.commits_between(mirror, previous or "", run.sha, limit)
    except git.GitError:
        shas = git.commits_between(mirror, "", run.sha, limit)
    return git.commit_list(mirror, shas)
