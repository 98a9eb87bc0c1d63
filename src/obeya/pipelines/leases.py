"""The runner protocol: claim a job under a lease, heartbeat, append logs, complete; reap.

A runner holds a job only while its lease is fresh. Every call after the claim must carry
the lease token: a runner that was presumed lost (and whose job went to someone else)
cannot write to the job any more (RELIABILITY A3, A5).

A claim only offers the job (``obeya.pipelines.offers``): the lease is short until the
runner's first call with the lease token, which acknowledges it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction

from obeya.catalog.models import Service
from obeya.core import events, rows
from obeya.core.actors import Actor, system_actor
from obeya.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)
from obeya.pipelines import git, logic, offers, runs, secrets_store, wakeup
from obeya.pipelines.models import (
    Job,
    JobAttempt,
    JobKind,
    JobStatus,
    LogChunk,
    Pipeline,
    Run,
    Runner,
    RunStatus,
)

logger = logging.getLogger("obeya.pipelines")
MAX_LOG_CHUNK = 1024 * 1024
# "error": the runner could not run the script at all (checkout failed...): infrastructure.
OUTCOMES = {"succeeded", "failed", "timed_out", "canceled", "error"}


def lease_seconds() -> int:
    return int(settings.OBEYA_LEASE_SECONDS)


class StaleLease(Conflict):
    """The lease token does not hold this job any more (expired and reaped, or reassigned)."""

    code = "stale_lease"


@dataclass(frozen=True)
class Claim:
    job: Job
    attempt: JobAttempt
    lease_token: str
    payload: dict[str, Any]


# ---- the lease protocol --------------------------------------------------------------------
#
# Every job goes through claim and complete, so they read and write with plain statements
# (obeya.core.rows): the ORM's query building cost more than the statements themselves.


def _jobs(where: str, params: list[Any], *, lock: bool = False) -> list[Job]:
    """Jobs ``WHERE …`` (aliases j, r, s) with their run and its service, in one statement;
    with ``lock``, the job rows are locked (not their runs)."""
    sql = (
        f"SELECT {rows.columns(Job, 'j')}, {rows.columns(Run, 'r')}, {rows.columns(Service, 's')} "  # noqa: S608 (names from the models; values are parameters)
        f"FROM {rows.quote(Job._meta.db_table)} j "
        f"JOIN {rows.quote(Run._meta.db_table)} r ON r.id = j.run_id "
        f"JOIN {rows.quote(Service._meta.db_table)} s ON s.id = r.service_id {where}"
    )
    if lock:
        sql += rows.lock_clause("j")
    job_end = rows.width(Job)
    run_end = job_end + rows.width(Run)
    found = []
    for row in rows.fetch(sql, params):
        job, run = rows.build(Job, row[:job_end]), rows.build(Run, row[job_end:run_end])
        run.service = rows.build(Service, row[run_end:])
        job.run = run
        found.append(job)
    return found


# While a result and the next claim are recorded together, a service's secrets are read
# (and decrypted) once for both (masking the log's tail, then the next job's payload).
_read_once = threading.local()


def _secrets(service_id: int) -> list[logic.StoredSecret]:
    memo: dict[int, list[logic.StoredSecret]] | None = getattr(_read_once, "secrets", None)
    if memo is not None and service_id in memo:
        return memo[service_id]
    found = secrets_store.stored_secrets(service_id)
    if memo is not None:
        memo[service_id] = found
    return found


def _job_secrets(job: Job) -> dict[str, str]:
    """The secrets this job may have: its environment's, and protected ones only on a
    protected ref (``logic.secrets_for_job``). Settings are read only when they matter."""
    run = job.run
    stored = _secrets(run.service_id)
    if not stored:
        return {}
    scoped = any(secret.environment for secret in stored)
    guarded_envs = secrets_store.protected_environments(run.service_id) if scoped else frozenset()
    protected_ref = False
    if any(s.protected or s.environment in guarded_envs for s in stored):
        settings_row = (
            Pipeline.objects.filter(service_id=run.service_id)
            .values_list("default_branch", "protected_branches", "protected_tags")
            .first()
        )
        if settings_row is not None:
            default_branch, branches, tags = settings_row
            protected_ref = logic.ref_is_protected(
                run.branch, run.tag, default_branch, branches or [], tags or []
            )
    environment = str(job.spec.get("environment") or "")
    return logic.secrets_for_job(stored, environment, protected_ref, guarded_envs)


def _seen(runner: Runner, now: datetime) -> None:
    """Note that the runner is alive; written at most every few seconds (each is a commit)."""
    if runner.last_seen_at is None or (now - runner.last_seen_at).total_seconds() > 5:
        rows.update(Runner, {"last_seen_at": now}, pk=runner.pk)
        runner.last_seen_at = now


def _fits(job: Job, labels: set[str]) -> bool:
    return set(job.spec.get("runs_on") or []) <= labels


def claim(runner: Runner, *, clock: Actor | None = None) -> Claim | None:
    """Give ``runner`` the oldest queued job it can run, under a fresh lease."""
    actor = clock or system_actor()
    now = actor.now()
    _seen(runner, now)
    if runner.paused:
        return None
    labels = set(runner.labels)
    candidates = _jobs(
        "WHERE j.status = %s AND j.kind = %s ORDER BY j.queued_at, j.id LIMIT 100",
        [JobStatus.QUEUED, JobKind.SCRIPT],
    )
    for job in candidates:
        if not _fits(job, labels):
            continue
        token = secrets.token_urlsafe(24)
        expires = offers.ack_deadline(now)  # the full lease once the runner answers
        # No savepoint of its own: nothing here is undone alone (a claim inside a
        # larger transaction fails with it).
        with transaction.atomic(savepoint=False):
            # Still queued and still at the attempt we read: nobody took it meanwhile, so
            # the row we hold in memory is the row in the database (no re-read needed).
            taken = rows.update(
                Job,
                {
                    "status": JobStatus.RUNNING,
                    "runner": runner,
                    "lease_token": token,
                    "lease_expires_at": expires,
                    "awaiting_ack": True,
                    "attempt": job.attempt + 1,
                    "started_at": now,
                },
                pk=job.pk,
                status=JobStatus.QUEUED,
                attempt=job.attempt,
            )
            if not taken:
                continue  # another runner won this one
            job.status, job.runner, job.lease_token = JobStatus.RUNNING, runner, token
            job.lease_expires_at, job.attempt, job.started_at = expires, job.attempt + 1, now
            job.awaiting_ack = True
            attempt = JobAttempt(job=job, number=job.attempt, runner=runner, started_at=now)
            rows.insert(attempt)
            run = job.run
            # A queued job of a running run starting changes nothing else in the graph;
            # only a run's first job moves the run itself on.
            if run.status != RunStatus.RUNNING:
                runs.advance(actor, run)
            events.record(
                actor,
                "job.started",
                f"job:{job.pk}",
                {
                    "name": job.name,
                    "attempt": job.attempt,
                    "runner": runner.name,
                    "run": run.number,
                },
                service=run.service.slug,
            )
        return Claim(job, attempt, token, _payload(job, token))
    return None


def _payload(job: Job, lease_token: str) -> dict[str, Any]:
    run = job.run
    spec = job.spec
    variables = dict(spec.get("variables", {}))
    variables.update(
        {
            "CI": "true",
            "OBEYA": "true",
            "OBEYA_SERVICE": run.service.slug,
            "OBEYA_RUN_NUMBER": str(run.number),
            "OBEYA_JOB_ID": str(job.pk),
            "OBEYA_JOB_NAME": job.name,
            "OBEYA_JOB_ATTEMPT": str(job.attempt),
            "OBEYA_COMMIT_SHA": run.sha,
            "OBEYA_BRANCH": run.branch,
            "OBEYA_COMMIT_MESSAGE": run.message,
        }
    )
    return {
        "id": job.pk,
        "attempt": job.attempt,
        "lease_token": lease_token,
        "lease_seconds": lease_seconds(),
        "ack_seconds": offers.ack_seconds(),
        "name": job.name,
        "service": run.service.slug,
        "run": run.number,
        "sha": run.sha,
        "branch": run.branch,
        "script": spec.get("script", []),
        "timeout_seconds": spec.get("timeout_seconds", 3600),
        "variables": variables,
        "secrets": _job_secrets(job),
        "artifacts": {"paths": spec.get("artifact_paths", [])},
        "reports": {"junit": spec.get("junit", [])},
        "source": f"/api/runner/jobs/{job.pk}/source",
    }


def held_job(
    runner: Runner, job_id: int, lease_token: str, now: datetime, *, acknowledge: bool = True
) -> Job:
    """The job, locked, if ``lease_token`` still holds it; StaleLease otherwise.

    A call with the lease is the runner's acknowledgement of the job: the first one turns
    the short lease of the offer into a full one (unless ``acknowledge`` is False: the
    caller writes the lease itself, or gives the job back).
    """
    found = _jobs("WHERE j.id = %s", [job_id], lock=True)
    if not found:
        raise NotFound(f"no job with id {job_id}")
    job = found[0]
    if (
        job.status != JobStatus.RUNNING
        or job.runner_id != runner.pk
        or not secrets.compare_digest(job.lease_token, lease_token)
    ):
        raise StaleLease(
            f"job {job_id}: this lease is no longer valid (the job was "
            "reassigned or finished); stop working on it"
        )
    if job.lease_expires_at is not None and job.lease_expires_at < now:
        raise StaleLease(f"job {job_id}: the lease expired at {job.lease_expires_at:%H:%M:%S}")
    if job.awaiting_ack and acknowledge:
        job.awaiting_ack, job.lease_expires_at = False, now + timedelta(seconds=lease_seconds())
        rows.save(job, ["awaiting_ack", "lease_expires_at"])
    return job


def heartbeat(
    runner: Runner, job_id: int, lease_token: str, *, clock: Actor | None = None
) -> tuple[datetime, bool]:
    """Extend the lease; the answer says whether someone asked to cancel the job."""
    now = (clock or system_actor()).now()
    with transaction.atomic():
        job = held_job(runner, job_id, lease_token, now, acknowledge=False)
        job.awaiting_ack, job.lease_expires_at = False, now + timedelta(seconds=lease_seconds())
        rows.save(job, ["awaiting_ack", "lease_expires_at"])
    _seen(runner, now)
    return job.lease_expires_at, job.cancel_requested


def _mask(data: bytes, secret_values: list[str]) -> bytes:
    for value in secret_values:
        if len(value) >= 4:
            data = data.replace(value.encode(), b"[MASKED]")
    return data


def append_log(
    runner: Runner,
    job_id: int,
    lease_token: str,
    offset: int,
    data: bytes,
    *,
    clock: Actor | None = None,
) -> int:
    """Append ``data`` at byte ``offset`` of the attempt's log; resending is harmless."""
    _check_chunk(data)
    now = (clock or system_actor()).now()
    with transaction.atomic():
        job = held_job(runner, job_id, lease_token, now)
        attempt = _current_attempt(job)
        before = attempt.log_size
        if _append(job, attempt, offset, data) != before:
            rows.save(attempt, ["log_size"])
        return attempt.log_size


def _current_attempt(job: Job) -> JobAttempt:
    """The job's current attempt, locked."""
    return rows.select(
        JobAttempt, "WHERE t.job_id = %s AND t.number = %s", [job.pk, job.attempt], lock=True
    )[0]


def _check_chunk(data: bytes) -> None:
    if len(data) > MAX_LOG_CHUNK:
        raise InvalidInput(f"a log chunk may hold at most {MAX_LOG_CHUNK} bytes", field="data")


def _append(job: Job, attempt: JobAttempt, offset: int, data: bytes) -> int:
    """Store what of ``data`` (starting at ``offset``) is new; the caller saves the size."""
    size = attempt.log_size
    if offset > size:
        raise Conflict(
            f"log offset {offset} is past the end ({size}): resend from {size}", field="offset"
        )
    fresh = data[size - offset :]
    if fresh:
        # Every secret of the service, whichever this job was given.
        secret_values = [secret.value for secret in _secrets(job.run.service_id)]
        rows.insert(LogChunk(attempt=attempt, offset=size, data=_mask(fresh, secret_values)))
        attempt.log_size = size + len(fresh)
    return attempt.log_size


def complete(
    runner: Runner,
    job_id: int,
    lease_token: str,
    outcome: str,
    exit_code: int | None = None,
    reason: str = "",
    *,
    log_offset: int = 0,
    log: bytes = b"",
    clock: Actor | None = None,
) -> Job:
    """Record the runner's result, and the last bytes of its log (``log`` at byte
    ``log_offset``, appended as `append_log` would); the job graph moves on."""
    _check_result(outcome, log)
    with transaction.atomic():
        return _complete(
            runner, job_id, lease_token, outcome, exit_code, reason, log_offset, log, clock
        )


def _check_result(outcome: str, log: bytes) -> None:
    if outcome not in OUTCOMES:
        raise InvalidInput(
            f"unknown outcome {outcome!r}: use {', '.join(sorted(OUTCOMES))}", field="outcome"
        )
    _check_chunk(log)


def _complete(
    runner: Runner,
    job_id: int,
    lease_token: str,
    outcome: str,
    exit_code: int | None,
    reason: str,
    log_offset: int,
    log: bytes,
    clock: Actor | None = None,
) -> Job:
    """`complete` inside the caller's transaction."""
    actor = clock or system_actor()
    # The result acknowledges the job too (a short job's first call): _settle ends the lease.
    job = held_job(runner, job_id, lease_token, actor.now(), acknowledge=False)
    log_size = None
    if log:
        attempt = _current_attempt(job)
        log_size = _append(job, attempt, log_offset, log)
    failure = {
        "failed": "script_failure",
        "timed_out": "timeout",
        "canceled": "canceled",
        "error": "infrastructure",
    }.get(outcome, "")
    _settle(actor, job, outcome, exit_code, failure, reason, log_size=log_size)
    return job


def complete_then_claim(
    runner: Runner,
    job_id: int,
    lease_token: str,
    outcome: str,
    exit_code: int | None = None,
    reason: str = "",
    *,
    log_offset: int = 0,
    log: bytes = b"",
) -> tuple[Job, Claim | None]:
    """`complete`, then `claim` the runner's next job, in one transaction (one commit).

    The claim runs in a savepoint: if it fails, the result is kept all the same, and the
    runner claims its next job the usual way.
    """
    _check_result(outcome, log)
    _read_once.secrets = {}
    try:
        with transaction.atomic():
            # No savepoint around the result: if it fails, the whole call does.
            job = _complete(
                runner, job_id, lease_token, outcome, exit_code, reason, log_offset, log
            )
            try:
                with transaction.atomic():
                    following = claim(runner)
            except DatabaseError:
                logger.exception("runner %s: claiming after job %s failed", runner, job_id)
                following = None
    finally:
        _read_once.secrets = None
    return job, following


_SETTLED_FIELDS = [
    "status",
    "queued_at",
    "finished_at",
    "runner",
    "lease_token",
    "lease_expires_at",
    "awaiting_ack",
    "exit_code",
    "failure_reason",
]


def _settle(
    actor: Actor,
    job: Job,
    outcome: str,
    exit_code: int | None,
    failure: str,
    detail: str,
    *,
    log_size: int | None = None,
) -> None:
    """End the current attempt; retry it, or finish the job; then move the run on."""
    now = actor.now()
    ended: dict[str, Any] = {"log_size": log_size} if log_size is not None else {}
    rows.update(
        JobAttempt,
        {
            "finished_at": now,
            "outcome": outcome,
            "exit_code": exit_code,
            "reason": detail or failure,
            **ended,
        },
        job=job.pk,
        number=job.attempt,
    )
    job.lease_token, job.lease_expires_at, job.exit_code = "", None, exit_code
    job.awaiting_ack = False
    if (
        failure
        and failure != "canceled"
        and not job.cancel_requested  # someone stopped it: never start it again by itself
        and logic.should_retry(failure, job.attempt, job.retry_max, job.retry_when)
    ):
        job.status, job.queued_at, job.runner = JobStatus.QUEUED, now, None
        wakeup.job_queued()
        job.failure_reason = f"attempt {job.attempt}: {detail or failure}; retrying"
    else:
        if outcome == "succeeded":
            job.status, job.failure_reason = JobStatus.SUCCEEDED, ""
        elif outcome == "canceled":
            job.status, job.failure_reason = JobStatus.CANCELED, "canceled"
        else:
            job.status = JobStatus.FAILED
            job.failure_reason = _failure_text(job, failure, detail, exit_code)
        job.finished_at = now
    rows.save(job, _SETTLED_FIELDS)  # not the spec: it does not change
    if job.status != JobStatus.QUEUED:
        started = job.started_at or now
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
                "exit_code": exit_code,
                "duration_s": round((now - started).total_seconds(), 3),
                "reason": job.failure_reason,
            },
            service=job.run.service.slug,
        )
    runs.advance(actor, job.run)


def _failure_text(job: Job, failure: str, detail: str, exit_code: int | None) -> str:
    if failure in {"runner_lost", "infrastructure"}:
        what = "the runner was lost" if failure == "runner_lost" else "infrastructure failed"
        last = f" (last: {detail})" if detail else ""
        return f"retry_limit: {what} {job.attempt} time(s){last}"
    if failure == "timeout":
        return f"timeout: ran longer than {job.spec.get('timeout_seconds')} s"
    if failure == "script_failure":
        return f"script_failure: exit code {exit_code}" + (f" ({detail})" if detail else "")
    return detail or failure


def reap(*, clock: Actor | None = None) -> int:
    """Turn expired leases into lost attempts: retried within the limit, then failed. An
    offer nobody acknowledged goes back to the queue instead, its attempt not spent."""
    actor = clock or system_actor()
    now = actor.now()
    expired = Job.objects.filter(status=JobStatus.RUNNING, lease_expires_at__lt=now)
    count = 0
    for job_id in list(expired.values_list("pk", flat=True)[:500]):
        with transaction.atomic():
            job = Job.objects.select_for_update().select_related("run__service").get(pk=job_id)
            if (
                job.status != JobStatus.RUNNING
                or not job.lease_expires_at
                or job.lease_expires_at >= now
            ):
                continue
            if job.awaiting_ack:
                offers.give_back(
                    actor,
                    job,
                    f"the runner did not acknowledge it within {offers.ack_seconds():g} s",
                )
            elif job.cancel_requested:
                _settle(actor, job, "canceled", None, "canceled", "canceled; runner gone")
            else:
                _settle(
                    actor,
                    job,
                    "lost",
                    None,
                    "runner_lost",
                    f"runner lost: no heartbeat since lease expired at "
                    f"{job.lease_expires_at:%H:%M:%S}",
                )
            count += 1
    return count


def release(runner: Runner, job_id: int, lease_token: str, *, clock: Actor | None = None) -> Job:
    """Give back a job the runner was handed and will not run (it is shutting down): back
    in the queue at once, its attempt not spent. Only before the runner acknowledged it."""
    actor = clock or system_actor()
    with transaction.atomic():
        job = held_job(runner, job_id, lease_token, actor.now(), acknowledge=False)
        if not job.awaiting_ack:
            raise Conflict(
                f"job {job_id} was acknowledged and may be running: report its result instead"
            )
        job.runner = runner
        offers.give_back(actor, job, "the runner released it unstarted (it is stopping)")
    return job


def source_bundle(runner: Runner, job_id: int, lease_token: str) -> Path:
    """The git bundle of the job's commit (a path), for the runner's checkout.

    The periodic sweep removes bundles of finished runs and, later, the refs that pin
    their commits; a retried job of such a run gets both back here, as long as the
    mirror still holds the commit.
    """
    with transaction.atomic():
        job = held_job(runner, job_id, lease_token, system_actor().now())
    run = job.run
    mirror = runs.mirror_of(run.service)
    out = bundle_path(run.pk)
    if not out.exists():
        try:
            git.pin(mirror, run.pk, run.sha)
        except git.GitError:
            raise git.GitError(
                f"the commit {run.sha[:12]} of run #{run.number} is no longer in the "
                "repository mirror: start a new run"
            ) from None
    return git.bundle(mirror, run.pk, out)


def bundle_path(run_id: int) -> Path:
    return Path(settings.DATA_DIR) / "bundles" / f"run-{run_id}.bundle"


def log_bytes(job: Job, attempt: int | None = None, offset: int = 0) -> bytes:
    """The stored log of an attempt (default: the latest) from ``offset``."""
    number = attempt or job.attempt
    # One start for both the query and the slice: a chunk appended between two lookups
    # would otherwise shift the slice and repeat text to a live reader.
    start = _chunk_start(job, number, offset)
    chunks = LogChunk.objects.filter(attempt__job=job, attempt__number=number, offset__gte=start)
    data = b"".join(bytes(chunk.data) for chunk in chunks.order_by("offset"))
    return data[offset - start :]


def _chunk_start(job: Job, number: int, offset: int) -> int:
    first = (
        LogChunk.objects.filter(attempt__job=job, attempt__number=number, offset__lte=offset)
        .order_by("-offset")
        .values_list("offset", flat=True)
        .first()
    )
    return first or 0
