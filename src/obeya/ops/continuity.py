"""Continuity as use cases (§4.4): a service's RPO/RTO policy, its backup jobs, and
backups run now (by hand or by ``continuity_scheduler.py``) with their evidence kept.

We prove recovery instead of declaring it: RPO compliance is the age of the newest backup
that really succeeded (``continuity_status.py``), and a drill passes only when its restore
and verify commands both exit 0 (``continuity_drills.py``). Permissions are checked here;
each change is one transaction with its event. Obeya's own database is in
``continuity_database.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from obeya.backlog import services as backlog
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.core.roles import Permission
from obeya.ops import continuity_logic as logic
from obeya.ops import continuity_shell as shell
from obeya.ops.continuity_models import BackupJob, BackupRun, ContinuityPolicy
from obeya.ops.logic import NAME

POLICY_FIELDS = (
    "rpo_s",
    "rto_s",
    "max_drill_age_days",
    "restore_command",
    "verify_command",
    "drill_timeout_s",
)
JOB_FIELDS = ("command", "schedule", "timeout_s", "enabled")


def _first_problem(problems: list[tuple[str, str]]) -> None:
    if problems:
        name, message = problems[0]
        raise InvalidInput(message, field=name)


def _unknown(fields: dict[str, Any], known: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise InvalidInput(
            f"unknown {what} setting {unknown[0]!r}: use {', '.join(known)}", field=unknown[0]
        )


def zone() -> ZoneInfo:
    """Schedules are read in the server's time zone (OBEYA_TIME_ZONE)."""
    return ZoneInfo(settings.TIME_ZONE)


# ---- policy ------------------------------------------------------------------------------


def get_policy(slug: str) -> ContinuityPolicy | None:
    return ContinuityPolicy.objects.filter(service=catalog.get_service(slug)).first()


def _policy_settings(policy: ContinuityPolicy) -> dict[str, Any]:
    return {key: getattr(policy, key) for key in POLICY_FIELDS}


def set_policy(actor: Actor, slug: str, **fields: Any) -> ContinuityPolicy:
    """Set some of a service's continuity settings; ``rpo_s=None`` / ``rto_s=None`` hand
    the objective back to the operation stories."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.CONFIGURE_MONITORING)
    _unknown(fields, POLICY_FIELDS, "continuity")
    for name in ("restore_command", "verify_command"):
        if name in fields:
            fields[name] = str(fields[name] or "").strip()
    with transaction.atomic():
        policy = ContinuityPolicy.objects.select_for_update().filter(service=service).first()
        created = policy is None
        if policy is None:
            policy = ContinuityPolicy(service=service, updated_at=actor.now())
        before = _policy_settings(policy)
        _first_problem(logic.policy_problems({**before, **fields}))
        for key, value in fields.items():
            setattr(policy, key, value)
        policy.updated_at = actor.now()
        policy.save()
        changes = {k: {"from": before[k], "to": v} for k, v in fields.items() if before[k] != v}
        events.record(
            actor,
            "continuity.policy_set",
            f"service:{slug}",
            {"created": created, "changes": changes},
            service=slug,
        )
    return policy


@dataclass(frozen=True)
class Objectives:
    """The RPO and RTO in force, and where each comes from ("set directly", "S-4" or "")."""

    rpo_s: int | None
    rpo_source: str
    rto_s: int | None
    rto_source: str


def objectives(service: Service, policy: ContinuityPolicy | None = None) -> Objectives:
    """Values set directly win; otherwise the first operation story (in backlog order)
    that states ``rpo_minutes`` / ``rto_minutes``."""
    found: dict[str, tuple[int | None, str]] = {"rpo": (None, ""), "rto": (None, "")}
    for name in found:
        direct = getattr(policy, f"{name}_s", None) if policy else None
        if direct is not None:
            found[name] = (direct, "set directly")
    if any(value is None for value, _ in found.values()):
        for story in backlog.slr_sheet(service.slug):
            for name, (value, _) in found.items():
                minutes = (story.details or {}).get(f"{name}_minutes")
                if value is None and isinstance(minutes, int):
                    found[name] = (minutes * 60, story.key)
    return Objectives(found["rpo"][0], found["rpo"][1], found["rto"][0], found["rto"][1])


# ---- backup jobs -------------------------------------------------------------------------


def list_jobs(slug: str) -> QuerySet[BackupJob]:
    return BackupJob.objects.filter(service=catalog.get_service(slug)).order_by("name")


def get_job(slug: str, name: str) -> BackupJob:
    try:
        return BackupJob.objects.select_related("service").get(service__slug=slug, name=name)
    except BackupJob.DoesNotExist:
        raise NotFound(f'"{slug}" has no backup job "{name}"', field="job") from None


def _job_settings(job: BackupJob) -> dict[str, Any]:
    return {key: getattr(job, key) for key in JOB_FIELDS}


def _clean_job(fields: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    _unknown(fields, JOB_FIELDS, "backup job")
    for name in ("command", "schedule"):
        if name in fields:
            fields[name] = str(fields[name] or "").strip()
    _first_problem(logic.job_problems({**current, **fields}))
    return fields


def create_job(actor: Actor, slug: str, name: str, **fields: Any) -> BackupJob:
    """A backup command on a cron schedule; first due at the schedule's next firing."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.CONFIGURE_MONITORING)
    name = (name or "").strip()
    if not NAME.match(name):
        raise InvalidInput(
            f"backup job name {name!r}: lower-case letters, digits, - and _, up to 63",
            field="name",
        )
    cleaned = _clean_job(fields, _job_settings(BackupJob(timeout_s=3600, enabled=True)))
    now = actor.now()
    try:
        with transaction.atomic():
            job = BackupJob.objects.create(
                service=service,
                name=name,
                created_at=now,
                next_due_at=logic.next_due(cleaned["schedule"], now, zone()),
                **cleaned,
            )
            events.record(
                actor,
                "backup_job.created",
                f"backup_job:{job.pk}",
                {"name": name, **_job_settings(job)},
                service=slug,
            )
    except IntegrityError:
        raise Conflict(f'"{slug}" already has a backup job "{name}"', field="name") from None
    return job


def update_job(actor: Actor, slug: str, name: str, **fields: Any) -> BackupJob:
    job = get_job(slug, name)
    catalog.require(actor, job.service, Permission.CONFIGURE_MONITORING)
    cleaned = _clean_job(fields, _job_settings(job))
    with transaction.atomic():
        job = BackupJob.objects.select_for_update().get(pk=job.pk)
        before = _job_settings(job)
        for key, value in cleaned.items():
            setattr(job, key, value)
        if job.schedule != before["schedule"] or (job.enabled and not before["enabled"]):
            job.next_due_at = logic.next_due(job.schedule, actor.now(), zone())
        job.save()
        changes = {k: {"from": before[k], "to": v} for k, v in cleaned.items() if before[k] != v}
        events.record(
            actor,
            "backup_job.changed",
            f"backup_job:{job.pk}",
            {"name": name, "changes": changes},
            service=slug,
        )
    return job


def delete_job(actor: Actor, slug: str, name: str) -> None:
    """Remove a job; its runs stay as evidence (they keep the job's name)."""
    job = get_job(slug, name)
    catalog.require(actor, job.service, Permission.CONFIGURE_MONITORING)
    with transaction.atomic():
        events.record(
            actor, "backup_job.deleted", f"backup_job:{job.pk}", {"name": name}, service=slug
        )
        job.delete()


# ---- backups -----------------------------------------------------------------------------


def run_backup(actor: Actor, slug: str, name: str) -> BackupRun:
    """Run a backup job now, in this process, and return its finished run."""
    job = get_job(slug, name)
    catalog.require(actor, job.service, Permission.OPERATE)
    return execute_backup(actor, job, "manual")


def execute_backup(actor: Actor, job: BackupJob, trigger: str) -> BackupRun:
    """Run ``job``'s command and keep what happened (the scheduler calls this too)."""
    slug = job.service.slug
    run = BackupRun.objects.create(
        service_id=job.service_id,
        job=job,
        job_name=job.name,
        trigger=trigger,
        started_at=actor.now(),
        timeout_s=job.timeout_s,
    )
    folder = shell.backup_dir(slug)
    env = shell.environment(
        OBEYA_SERVICE=slug, OBEYA_BACKUP_JOB=job.name, OBEYA_BACKUP_DIR=str(folder)
    )
    result = shell.run(job.command, job.timeout_s, env, cwd=folder)
    ok, detail, evidence, size = _judge_backup(result)
    with transaction.atomic():
        BackupRun.objects.filter(pk=run.pk).update(
            finished_at=actor.now(),
            ok=ok,
            exit_code=result.exit_code,
            duration_s=result.duration_s,
            output_tail=result.output,
            detail=detail[:300],
            location=evidence.location[:500],
            size_bytes=size,
        )
        events.record(
            actor,
            "backup.succeeded" if ok else "backup.failed",
            f"backup_run:{run.pk}",
            {
                "job": job.name,
                "trigger": trigger,
                "exit_code": result.exit_code,
                "duration_s": round(result.duration_s, 3),
                "location": evidence.location,
                "size_bytes": size,
                "detail": detail[:300],
            },
            service=slug,
        )
    run.refresh_from_db()
    return run


def _judge_backup(
    result: shell.CommandResult,
) -> tuple[bool, str, logic.BackupEvidence, int | None]:
    """A backup succeeded when its command exited 0 and the file it names (if it names
    one) exists and is not empty."""
    evidence = logic.backup_evidence(result.output)
    size = evidence.size_bytes
    path = Path(evidence.location) if evidence.location.startswith("/") else None
    if path is not None and size is None and path.is_file():
        size = path.stat().st_size
    if result.exit_code is None:
        return False, result.output.strip().splitlines()[-1], evidence, size
    if not result.ok:
        return False, f"exit code {result.exit_code}: {result.last_line}", evidence, size
    if path is not None and not path.exists():
        return False, f"exited 0, but the file it names, {path}, does not exist", evidence, size
    if size == 0:
        return False, f"exited 0, but the backup {evidence.location or ''} is empty", evidence, 0
    return True, result.last_line or "exit code 0", evidence, size


def list_runs(slug: str, limit: int = 50) -> list[BackupRun]:
    service = catalog.get_service(slug)
    return list(BackupRun.objects.filter(service=service).order_by("-started_at", "-id")[:limit])


def last_good_backup(service: Service) -> BackupRun | None:
    return (
        BackupRun.objects.filter(service=service, ok=True).order_by("-finished_at", "-id").first()
    )


def run_dict(run: BackupRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "job": run.job_name,
        "trigger": run.trigger,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "ok": run.ok,
        "exit_code": run.exit_code,
        "duration_s": run.duration_s,
        "location": run.location,
        "size_bytes": run.size_bytes,
        "detail": run.detail,
    }
