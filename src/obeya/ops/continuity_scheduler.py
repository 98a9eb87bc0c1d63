"""The backup scheduler inside `obeya serve`: claims due backup jobs, runs them in a pool.

A due job is claimed with a conditional update of its row (still due at the time we
read, not claimed or its claim expired), which also moves ``next_due_at`` to the
schedule's next firing; so with several server processes each firing runs once. A claim
lasts the job's timeout plus some slack, and the command is killed at its timeout, so a
claim never expires while its backup still runs. Runs left unfinished by a server that
stopped are marked failed once their time is up.
"""

from __future__ import annotations

import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.db import close_old_connections, transaction
from django.db.models import Q

from obeya.core import events
from obeya.core.actors import Actor, system_actor
from obeya.ops import continuity
from obeya.ops import continuity_logic as logic
from obeya.ops.continuity_models import BackupJob, BackupRun, RestoreDrill

log = logging.getLogger("obeya.ops")
TICK_S = 1.0
BATCH = 50
CLAIM_SLACK_S = 60.0
POOL_SIZE = 4


def claim_due(actor: Actor) -> list[BackupJob]:
    """Claim the backup jobs that are due now."""
    now = actor.now()
    due = (
        BackupJob.objects.filter(enabled=True, next_due_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_due_at")
        .values_list("pk", "next_due_at", "schedule", "timeout_s")[:BATCH]
    )
    claimed = []
    for pk, due_at, schedule, timeout_s in list(due):
        taken = (
            BackupJob.objects.filter(pk=pk, next_due_at=due_at)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
            .update(
                claim_token=secrets.token_hex(8),
                claimed_until=now + timedelta(seconds=timeout_s + CLAIM_SLACK_S),
                next_due_at=logic.next_due(schedule, now, continuity.zone()),
            )
        )
        if taken:
            claimed.append(BackupJob.objects.select_related("service").get(pk=pk))
    return claimed


def run_claimed(job: BackupJob, actor: Actor | None = None) -> None:
    """Run a claimed job's backup, then let go of the claim."""
    try:
        continuity.execute_backup(actor or system_actor(), job, "schedule")
    except Exception:  # one broken backup must not stop the others
        log.exception("backup job %s: failed to run", job.pk)
    finally:
        BackupJob.objects.filter(pk=job.pk).update(claimed_until=None, claim_token="")


def reap(actor: Actor) -> int:
    """Fail the backup runs and drills a stopped server left running past their time."""
    now = actor.now()
    reaped = 0
    slack = timedelta(seconds=CLAIM_SLACK_S)
    for run in BackupRun.objects.filter(finished_at__isnull=True).select_related("service"):
        if run.started_at + timedelta(seconds=run.timeout_s) + slack >= now:
            continue
        with transaction.atomic():
            if BackupRun.objects.filter(pk=run.pk, finished_at__isnull=True).update(
                finished_at=now, ok=False, detail="lost: the server stopped while it ran"
            ):
                events.record(
                    actor,
                    "backup.failed",
                    f"backup_run:{run.pk}",
                    {"job": run.job_name, "trigger": run.trigger, "detail": "lost"},
                    service=run.service.slug,
                )
                reaped += 1
    for drill in RestoreDrill.objects.filter(status="running").select_related("service"):
        if drill.started_at + timedelta(seconds=drill.timeout_s) + slack >= now:
            continue
        with transaction.atomic():
            if RestoreDrill.objects.filter(pk=drill.pk, status="running").update(
                finished_at=now,
                status="failed",
                rto_verdict="failed",
                detail="lost: the process running it stopped",
            ):
                events.record(
                    actor,
                    "drill.failed",
                    f"drill:{drill.pk}",
                    {"number": drill.number, "detail": "lost"},
                    service=drill.service.slug,
                )
                reaped += 1
    return reaped


def _pooled(job: BackupJob) -> None:
    try:
        run_claimed(job)
    finally:
        close_old_connections()  # this pool thread's connection, not the caller's


def _loop(stop: threading.Event) -> None:
    last_reap: datetime | None = None
    with ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="backup") as pool:
        while not stop.wait(TICK_S):
            try:
                close_old_connections()
                actor = system_actor()
                for job in claim_due(actor):
                    pool.submit(_pooled, job)
                if last_reap is None or actor.now() - last_reap > timedelta(minutes=1):
                    reap(actor)
                    last_reap = actor.now()
            except Exception:
                log.exception("backup scheduler tick failed")
            finally:
                close_old_connections()


def start() -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(stop,), name="backups", daemon=True)
    thread.start()
    return stop, thread
