"""A claimed job is an offer until its runner answers (RELIABILITY A3, A7).

A runner that got SIGTERM while idle exits with its claim long-poll still pending; the
server may hand that poll the next job after the runner is gone. So a claim gives the job
a short lease, `ACK_SECONDS`, and the runner's first call with the lease token (any call:
heartbeat, log, source, result) turns it into a full one. An offer nobody acknowledged
is given back: the attempt it would have been is removed, the job goes back to the queue
in its old place, and an event (``job.returned``) says why. A runner that is handed a job
it will not run (it is stopping) gives it back at once through `leases.release`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from obeya.core import events
from obeya.core.actors import Actor
from obeya.pipelines import runs, wakeup
from obeya.pipelines.models import Job, JobAttempt, JobStatus

# How long a runner has to acknowledge a job it was handed: long enough for a claim's
# answer to reach a runner on a slow link and its first call to come back; short enough
# that a job handed to a dead runner is soon someone else's.
ACK_SECONDS = 5.0


def ack_seconds() -> float:
    """The acknowledgement window (never longer than the lease itself)."""
    return min(ACK_SECONDS, float(settings.OBEYA_LEASE_SECONDS))


def ack_deadline(now: datetime) -> datetime:
    return now + timedelta(seconds=ack_seconds())


GIVEN_BACK_FIELDS = [
    "attempt",
    "runner",
    "lease_token",
    "lease_expires_at",
    "awaiting_ack",
    "started_at",
    "status",
    "failure_reason",
    "finished_at",
]


def give_back(actor: Actor, job: Job, why: str) -> None:
    """Undo the offer of ``job`` (locked, awaiting its runner's acknowledgement): the
    attempt it would have been is removed and its number given back; the job is queued
    again in its old place, or canceled if its run was canceled meanwhile."""
    now = actor.now()
    runner_name = job.runner.name if job.runner is not None else ""
    # The runner never called with the lease, so the attempt has no log, artifact or report.
    JobAttempt.objects.filter(job=job, number=job.attempt).delete()
    job.attempt -= 1
    job.runner, job.lease_token, job.lease_expires_at = None, "", None
    job.awaiting_ack, job.started_at = False, None
    if job.cancel_requested:
        job.status, job.failure_reason, job.finished_at = JobStatus.CANCELED, "canceled", now
    else:
        job.status = JobStatus.QUEUED  # queued_at unchanged: it keeps its place in the queue
        wakeup.job_queued()
    job.save(update_fields=GIVEN_BACK_FIELDS)
    events.record(
        actor,
        "job.returned",
        f"job:{job.pk}",
        {
            "name": job.name,
            "run": job.run.number,
            "runner": runner_name,
            "attempt": job.attempt,
            "status": job.status,
            "reason": why,
        },
        service=job.run.service.slug,
    )
    runs.advance(actor, job.run)
