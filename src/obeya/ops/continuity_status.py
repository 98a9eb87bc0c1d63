"""Where a service stands on recovery, right now (§4.4): RPO compliance from the newest
backup that really succeeded, the last drill against the RTO, and the overdue-drill flag.

Nothing here is stored: every verdict is computed from the runs and drills at the
actor's ``now()``, so it is live and can never be stale or declared by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core.actors import Actor
from obeya.ops import continuity_logic as logic
from obeya.ops.continuity import (
    Objectives,
    get_policy,
    last_good_backup,
    objectives,
    run_dict,
    zone,
)
from obeya.ops.continuity_drills import drill_dict
from obeya.ops.continuity_models import BackupJob, BackupRun, ContinuityPolicy, RestoreDrill


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


def _warnings(service: Service, found: Objectives, now: datetime) -> list[str]:
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
