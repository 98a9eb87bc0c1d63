"""Restore drills (§4.4): rehearse recovery now, restoring the newest good backup into a
scratch directory (``$OBEYA_SCRATCH_DIR``) and verifying it there, timed against the RTO.

A drill passes only when its restore and its verify commands both exit 0 within its
timeout; a restore that fails makes it failed, and its verify command never runs.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from obeya.catalog import services as catalog
from obeya.catalog.models import Service
from obeya.core import events
from obeya.core.actors import Actor
from obeya.core.errors import Conflict, InvalidInput
from obeya.core.roles import Permission
from obeya.ops import continuity_logic as logic
from obeya.ops import continuity_shell as shell
from obeya.ops.continuity import get_policy, last_good_backup, objectives
from obeya.ops.continuity_models import BackupRun, RestoreDrill


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
    try:
        root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"drill-{slug}-{drill.number}-", dir=root))
    except OSError as error:
        failed = shell.CommandResult(
            shell.CANNOT_START, 0.0, f"could not make a scratch directory in {root}: {error}"
        )
        return _Rehearsal(failed, None, 0.0)
    env = shell.environment(
        OBEYA_SERVICE=slug,
        OBEYA_SCRATCH_DIR=str(scratch),
        OBEYA_BACKUP_FILE=backup.location if backup else "",
        OBEYA_BACKUP_RUN=str(backup.pk) if backup else "",
    )
    # The service's backups are read-only to a drill: it restores from them, never into
    # them. Only the folders a backup could write are shown: a backup naming some other
    # file (the database's) as its own must not open that file's folder to the drill.
    backups = [shell.backup_dir(slug)]
    try:
        restore = shell.run(
            drill.restore_command, drill.timeout_s, env, cwd=scratch, readonly=backups
        )
        verify = None
        left = drill.timeout_s - restore.duration_s
        if restore.ok and left > 0:
            verify = shell.run(drill.verify_command, left, env, cwd=scratch, readonly=backups)
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
