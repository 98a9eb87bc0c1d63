"""Continuity as use cases (§4.4): a service's RPO/RTO policy, backup jobs, backups and
restore drills run now, and the live verdicts computed from their evidence.

We prove recovery instead of declaring it: RPO compliance is the age of the newest backup
that really succeeded; a drill passes only when its restore and its verify commands both
exit 0, and its time is compared with the RTO. Permissions are checked here; each change
is one transaction with its event. Due backups are claimed and run by
``ops/continuity_scheduler.py``; Obeya's own database is in ``continuity_database.py``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, QuerySet

from obeya.backlog import services as backlog
from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput, NotFound
from obeya.core.roles import Permission
from obeya.ops import continuity_logic as logic
from obeya.ops import continuity_shell as shell
from obeya.ops.continuity_models import BackupJob, BackupRun, ContinuityPolicy, RestoreDrill
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
    env = shell.environment(OBEYA_SERVICE=slug, OBEYA_BACKUP_JOB=job.name)
    result = shell.run(job.command, job.timeout_s, env)
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


# ---- restore drills ----------------------------------------------------------------------


def _numbered_drill(actor: Actor, service: Service, **fields: Any) -> RestoreDrill:
    for _attempt in range(5):
        number = (
            RestoreDrill.objects.filter(service=service).aggregate(n=Max("number"))["n"] or 0
        ) + 1
        try:
            with transaction.atomic():
                return RestoreDrill.objects.create(
                    service=service, number=number, started_at=actor.now(), **fields
                )
        except IntegrityError:
            continue
    raise Conflict("could not number the drill: try again")


def run_drill(actor: Actor, slug: str) -> RestoreDrill:
    """Rehearse recovery now: restore the newest good backup into a scratch directory
    (``$OBEYA_SCRATCH_DIR``), verify it there, and time both against the RTO."""
    service = catalog.get_service(slug)
    catalog.require(actor, service, Permission.OPERATE)
    policy = get_policy(slug)
    if policy is None or not policy.restore_command:
        raise InvalidInput(
            f'"{slug}" has no restore drill: set its restore_command and verify_command first',
            field="restore_command",
        )
    backup = last_good_backup(service)
    drill = _numbered_drill(
        actor,
        service,
        backup_run=backup,
        restore_command=policy.restore_command,
        verify_command=policy.verify_command,
        timeout_s=policy.drill_timeout_s,
        rto_s=objectives(service, policy).rto_s,
        started_by=actor.name,
    )
    outcome = _rehearse(drill, slug, backup)
    passed = outcome.restore.ok and outcome.verify is not None and outcome.verify.ok
    verdict = logic.rto_verdict(passed, outcome.duration_s, drill.rto_s)
    with transaction.atomic():
        RestoreDrill.objects.filter(pk=drill.pk).update(
            finished_at=actor.now(),
            status="passed" if passed else "failed",
            restore_exit_code=outcome.restore.exit_code,
            verify_exit_code=outcome.verify.exit_code if outcome.verify else None,
            duration_s=outcome.duration_s,
            rto_verdict=verdict,
            detail=outcome.detail(passed)[:300],
            output_tail=outcome.output(),
        )
        events.record(
            actor,
            "drill.passed" if passed else "drill.failed",
            f"drill:{drill.pk}",
            {
                "number": drill.number,
                "duration_s": round(outcome.duration_s, 3),
                "rto_s": drill.rto_s,
                "rto_verdict": verdict,
                "backup_run": backup.pk if backup else None,
                "detail": outcome.detail(passed)[:300],
            },
            service=slug,
        )
    drill.refresh_from_db()
    return drill


@dataclass
class _Rehearsal:
    restore: shell.CommandResult
    verify: shell.CommandResult | None
    duration_s: float

    def detail(self, passed: bool) -> str:
        if self.restore.exit_code is None:
            return f"restore command: {self.restore.output.strip().splitlines()[-1]}"
        if not self.restore.ok:
            return f"restore command exited {self.restore.exit_code}: {self.restore.last_line}"
        if self.verify is None:
            return "no time left to verify"
        if self.verify.exit_code is None:
            return f"verify command: {self.verify.output.strip().splitlines()[-1]}"
        if not self.verify.ok:
            return f"verify command exited {self.verify.exit_code}: {self.verify.last_line}"
        return f"restored and verified in {logic.format_seconds(self.duration_s)}"

    def output(self) -> str:
        text = f"$ restore\n{self.restore.output}"
        if self.verify is not None:
            text += f"\n$ verify\n{self.verify.output}"
        return logic.tail(text)


def _rehearse(drill: RestoreDrill, slug: str, backup: BackupRun | None) -> _Rehearsal:
    root = Path(settings.DATA_DIR) / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"drill-{slug}-{drill.number}-", dir=root))
    env = shell.environment(
        OBEYA_SERVICE=slug,
        OBEYA_SCRATCH_DIR=str(scratch),
        OBEYA_BACKUP_FILE=backup.location if backup else "",
        OBEYA_BACKUP_RUN=str(backup.pk) if backup else "",
    )
    try:
        restore = shell.run(drill.restore_command, drill.timeout_s, env, cwd=scratch)
        verify = None
        left = drill.timeout_s - restore.duration_s
        if restore.ok and left > 0:
            verify = shell.run(drill.verify_command, left, env, cwd=scratch)
        spent = restore.duration_s + (verify.duration_s if verify else 0.0)
        return _Rehearsal(restore, verify, spent)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def list_drills(slug: str, limit: int = 50) -> list[RestoreDrill]:
    service = catalog.get_service(slug)
    return list(
        RestoreDrill.objects.filter(service=service)
        .select_related("backup_run")
        .order_by("-started_at", "-id")[:limit]
    )


# ---- status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContinuityStatus:
    """Where a service stands on recovery, right now."""

    slug: str
    objectives: Objectives
    rpo: logic.RpoVerdict
    last_backup: BackupRun | None  # the newest that succeeded
    last_run: BackupRun | None  # the newest, whatever its outcome
    last_drill: RestoreDrill | None
    last_passed_drill: RestoreDrill | None
    max_drill_age_days: int
    drill_overdue: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return self.drill_overdue or self.rpo.state in {"breached", "no_backup"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.slug,
            "rpo_s": self.objectives.rpo_s,
            "rpo_source": self.objectives.rpo_source,
            "rto_s": self.objectives.rto_s,
            "rto_source": self.objectives.rto_source,
            "rpo_state": self.rpo.state,
            "last_backup_age_s": self.rpo.age_s,
            "last_backup": run_dict(self.last_backup) if self.last_backup else None,
            "last_run": run_dict(self.last_run) if self.last_run else None,
            "last_drill": drill_dict(self.last_drill) if self.last_drill else None,
            "last_passed_drill": (
                drill_dict(self.last_passed_drill) if self.last_passed_drill else None
            ),
            "max_drill_age_days": self.max_drill_age_days,
            "drill_overdue": self.drill_overdue,
            "flagged": self.flagged,
            "warnings": self.warnings,
        }


def status(actor: Actor, slug: str) -> ContinuityStatus:
    """The live verdicts: RPO compliance at ``actor.now()``, the last drill against the
    RTO, and whether the last passing drill is older than the policy's max age."""
    service = catalog.get_service(slug)
    policy = get_policy(slug)
    found = objectives(service, policy)
    now = actor.now()
    last_backup = last_good_backup(service)
    drills = RestoreDrill.objects.filter(service=service).exclude(status="running")
    last_passed = drills.filter(status="passed").order_by("-finished_at", "-id").first()
    max_age = policy.max_drill_age_days if policy else 30
    return ContinuityStatus(
        slug=slug,
        objectives=found,
        rpo=logic.rpo_verdict(last_backup.finished_at if last_backup else None, found.rpo_s, now),
        last_backup=last_backup,
        last_run=BackupRun.objects.filter(service=service).order_by("-started_at", "-id").first(),
        last_drill=drills.order_by("-finished_at", "-id").first(),
        last_passed_drill=last_passed,
        max_drill_age_days=max_age,
        drill_overdue=logic.drill_overdue(
            last_passed.finished_at if last_passed else None, max_age, now
        ),
        warnings=_warnings(service, found, now),
    )


def _warnings(service: Service, found: Objectives, now: Any) -> list[str]:
    warnings = []
    if found.rpo_s == 0:
        warnings.append(
            f"an RPO of 0 (from {found.rpo_source}) means no data may be lost: backups alone "
            "cannot meet it, that takes replication"
        )
    jobs = BackupJob.objects.filter(service=service, enabled=True)
    if found.rpo_s is not None and not jobs.exists():
        warnings.append("no enabled backup job: nothing keeps the RPO")
    for job in jobs:
        gap = logic.longest_gap_s(job.schedule, now, zone())
        problem = logic.schedule_problem_for_rpo(gap, found.rpo_s)
        if problem:
            warnings.append(f"backup job {job.name}: {problem}")
    return warnings


def flagged_services(actor: Actor) -> list[ContinuityStatus]:
    """Services with a continuity policy or backup jobs whose drill is overdue or whose
    newest good backup is older than the RPO."""
    slugs = set(ContinuityPolicy.objects.values_list("service__slug", flat=True))
    slugs |= set(BackupJob.objects.values_list("service__slug", flat=True))
    found = [status(actor, slug) for slug in sorted(slugs)]
    return [item for item in found if item.flagged]


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


def drill_dict(drill: RestoreDrill) -> dict[str, Any]:
    return {
        "number": drill.number,
        "status": drill.status,
        "started_at": drill.started_at.isoformat(),
        "finished_at": drill.finished_at.isoformat() if drill.finished_at else None,
        "duration_s": drill.duration_s,
        "rto_s": drill.rto_s,
        "rto_verdict": drill.rto_verdict,
        "restore_exit_code": drill.restore_exit_code,
        "verify_exit_code": drill.verify_exit_code,
        "backup_run": drill.backup_run_id,
        "detail": drill.detail,
        "started_by": drill.started_by,
    }
