"""Continuity over the API (§4.4): a service's RPO/RTO policy and its live verdicts, backup
jobs and their runs, and restore drills. Every rule lives in ``ops/continuity*.py``.

Running a backup or a drill here runs it now, in the request: the answer is the finished
run or drill, with its evidence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status
from pydantic import ConfigDict

from obeya.core.actors import actor_for_request
from obeya.ops import continuity, continuity_drills, continuity_status
from obeya.ops.api import sent_fields

router = Router(tags=["continuity"])
MAX_LISTED = 200


# ---- shapes ------------------------------------------------------------------------------


class PolicyIn(Schema):
    """Some of a service's continuity settings; only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    rpo_s: int | None = Field(
        None, description="RPO in seconds; null hands it back to the operation stories."
    )
    rto_s: int | None = Field(
        None, description="RTO in seconds; null hands it back to the operation stories."
    )
    max_drill_age_days: int | None = Field(None, description="Older passing drill: flagged.")
    restore_command: str | None = Field(None, description="Restores into $OBEYA_SCRATCH_DIR.")
    verify_command: str | None = Field(None, description="Checks what was restored.")
    drill_timeout_s: int | None = None


class ContinuityOut(Schema):
    service: str
    rpo_s: int | None
    rpo_source: str = Field(description='"set directly", a story key, or "" when none.')
    rto_s: int | None
    rto_source: str
    rpo_state: str
    last_backup_age_s: float | None
    last_backup: dict[str, Any] | None = Field(description="The newest backup that succeeded.")
    last_run: dict[str, Any] | None
    last_drill: dict[str, Any] | None
    last_passed_drill: dict[str, Any] | None
    max_drill_age_days: int
    drill_overdue: bool
    flagged: bool
    warnings: list[str]
    policy: dict[str, Any] = Field(description="The settings set directly.")


class JobSettings(Schema):
    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(None, description="The shell command that makes the backup.")
    schedule: str | None = Field(None, description="A cron expression, e.g. 0 * * * *.")
    timeout_s: int | None = None
    enabled: bool | None = None


class JobIn(JobSettings):
    name: str = Field(description="Lower-case letters, digits, - and _; never changes.")


class JobOut(Schema):
    name: str
    service: str
    command: str
    schedule: str
    timeout_s: int
    enabled: bool
    created_at: datetime
    next_due_at: datetime


class BackupRunOut(Schema):
    id: int
    job: str
    trigger: str = Field(description="schedule or manual.")
    started_at: datetime
    finished_at: datetime | None
    ok: bool | None
    exit_code: int | None
    duration_s: float | None
    location: str
    size_bytes: int | None
    detail: str


class DrillOut(Schema):
    number: int
    status: str = Field(description="running, passed or failed.")
    started_at: datetime
    finished_at: datetime | None
    duration_s: float | None
    rto_s: int | None
    rto_verdict: str
    restore_exit_code: int | None
    verify_exit_code: int | None
    backup_run: int | None
    detail: str
    started_by: str


# ---- bodies ------------------------------------------------------------------------------


def _policy(slug: str) -> dict[str, Any]:
    policy = continuity.get_policy(slug)
    return {key: getattr(policy, key) for key in continuity.POLICY_FIELDS} if policy else {}


def _continuity(request: HttpRequest, slug: str) -> dict[str, Any]:
    live = continuity_status.status(actor_for_request(request, "api"), slug)
    return {**live.as_dict(), "policy": _policy(slug)}


def _job(job: Any) -> dict[str, Any]:
    return {
        "name": job.name,
        "service": job.service.slug,
        **{key: getattr(job, key) for key in continuity.JOB_FIELDS},
        "created_at": job.created_at,
        "next_due_at": job.next_due_at,
    }


# ---- policy and status -------------------------------------------------------------------


@router.get(
    "/services/{slug}/continuity",
    response=ContinuityOut,
    summary="RPO/RTO in force, RPO compliance now, the last drill and the overdue flag",
)
def get_continuity(request: HttpRequest, slug: str) -> dict[str, Any]:
    return _continuity(request, slug)


@router.patch(
    "/services/{slug}/continuity",
    response=ContinuityOut,
    summary="Set some of the continuity policy (only the fields sent)",
)
def set_policy(request: HttpRequest, slug: str, payload: PolicyIn) -> dict[str, Any]:
    fields = sent_fields(payload, nullable=frozenset({"rpo_s", "rto_s"}))
    continuity.set_policy(actor_for_request(request, "api"), slug, **fields)
    return _continuity(request, slug)


@router.get(
    "/continuity/flagged",
    response=list[ContinuityOut],
    summary="Services whose drill is overdue or whose newest good backup is older than the RPO",
)
def flagged(request: HttpRequest) -> list[dict[str, Any]]:
    found = continuity_status.flagged_services(actor_for_request(request, "api"))
    return [{**item.as_dict(), "policy": _policy(item.slug)} for item in found]


# ---- backup jobs and runs ----------------------------------------------------------------


@router.get(
    "/services/{slug}/backup-jobs", response=list[JobOut], summary="A service's backup jobs"
)
def list_jobs(request: HttpRequest, slug: str) -> list[dict[str, Any]]:
    return [_job(job) for job in continuity.list_jobs(slug).select_related("service")]


@router.post(
    "/services/{slug}/backup-jobs",
    response={201: JobOut},
    summary="A backup command on a cron schedule",
)
def create_job(request: HttpRequest, slug: str, payload: JobIn) -> Status[Any]:
    fields = sent_fields(payload)
    job = continuity.create_job(
        actor_for_request(request, "api"), slug, fields.pop("name"), **fields
    )
    return Status(201, _job(job))


@router.get("/services/{slug}/backup-jobs/{name}", response=JobOut, summary="One backup job")
def get_job(request: HttpRequest, slug: str, name: str) -> dict[str, Any]:
    return _job(continuity.get_job(slug, name))


@router.patch(
    "/services/{slug}/backup-jobs/{name}",
    response=JobOut,
    summary="Change a backup job (only the fields sent)",
)
def update_job(request: HttpRequest, slug: str, name: str, payload: JobSettings) -> Any:
    job = continuity.update_job(
        actor_for_request(request, "api"), slug, name, **sent_fields(payload)
    )
    return _job(job)


@router.delete(
    "/services/{slug}/backup-jobs/{name}",
    response={204: None},
    summary="Remove a backup job; its runs stay as evidence",
)
def delete_job(request: HttpRequest, slug: str, name: str) -> Status[None]:
    continuity.delete_job(actor_for_request(request, "api"), slug, name)
    return Status(204, None)


@router.post(
    "/services/{slug}/backup-jobs/{name}/run",
    response={201: BackupRunOut},
    summary="Run a backup job now and answer with the finished run",
)
def run_backup(request: HttpRequest, slug: str, name: str) -> Status[Any]:
    run = continuity.run_backup(actor_for_request(request, "api"), slug, name)
    return Status(201, continuity.run_dict(run))


@router.get(
    "/services/{slug}/backups",
    response=list[BackupRunOut],
    summary="A service's backup runs, newest first (up to ?limit=, at most 200)",
)
def list_backups(request: HttpRequest, slug: str, limit: int = 50) -> list[dict[str, Any]]:
    runs = continuity.list_runs(slug, max(1, min(limit, MAX_LISTED)))
    return [continuity.run_dict(run) for run in runs]


# ---- restore drills ----------------------------------------------------------------------


@router.get(
    "/services/{slug}/drills",
    response=list[DrillOut],
    summary="A service's restore drills, newest first (up to ?limit=, at most 200)",
)
def list_drills(request: HttpRequest, slug: str, limit: int = 50) -> list[dict[str, Any]]:
    drills = continuity_drills.list_drills(slug, max(1, min(limit, MAX_LISTED)))
    return [continuity_drills.drill_dict(drill) for drill in drills]


@router.post(
    "/services/{slug}/drills",
    response={201: DrillOut},
    summary="Run a restore drill now: restore, verify, time it against the RTO",
)
def run_drill(request: HttpRequest, slug: str) -> Status[Any]:
    drill = continuity_drills.run_drill(actor_for_request(request, "api"), slug)
    return Status(201, continuity_drills.drill_dict(drill))
