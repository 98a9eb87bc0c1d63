"""Continuity tables (§4.4): a service's RPO/RTO policy, backup jobs and their runs, and
restore drills. Imported by ``ops/models.py``, so they belong to the ``ops`` app.

Runs and drills keep the evidence: when each backup finished and whether it worked, how
long a restore took and whether it was verified. Compliance is computed from them, never
declared.
"""

from __future__ import annotations

from django.db import models

from obeya.catalog.models import Service


class ContinuityPolicy(models.Model):
    """A service's recovery objectives and how its recovery is rehearsed.

    ``rpo_s`` / ``rto_s`` set directly win; left empty, the service's operation stories'
    ``rpo_minutes`` / ``rto_minutes`` apply (read when the status is computed).
    """

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="continuity")
    rpo_s = models.PositiveIntegerField(null=True, blank=True)
    rto_s = models.PositiveIntegerField(null=True, blank=True)
    max_drill_age_days = models.PositiveIntegerField(default=30)
    restore_command = models.TextField(blank=True)
    verify_command = models.TextField(blank=True)
    drill_timeout_s = models.PositiveIntegerField(default=3600)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"continuity of {self.service_id}"


class BackupJob(models.Model):
    """A shell command that makes a backup, on a cron schedule.

    ``next_due_at`` and the claim fields let several server processes share the jobs: a
    due job is claimed by one of them (a conditional update), as monitors are.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="backup_jobs")
    name = models.CharField(max_length=63)
    command = models.TextField()
    schedule = models.CharField(max_length=100)
    timeout_s = models.PositiveIntegerField(default=3600)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    next_due_at = models.DateTimeField(db_index=True)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service", "name"]
        constraints = [
            models.UniqueConstraint(fields=["service", "name"], name="ops_backup_job_name")
        ]

    def __str__(self) -> str:
        return f"{self.service_id}/{self.name}"


class BackupRun(models.Model):
    """One run of a backup job: running while ``finished_at`` is empty.

    Kept when its job is deleted (``job_name`` stays), so the evidence of the last good
    backup outlives a renamed job.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="backup_runs")
    job = models.ForeignKey(
        BackupJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    job_name = models.CharField(max_length=63)
    trigger = models.CharField(max_length=8)  # schedule | manual
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    timeout_s = models.PositiveIntegerField()
    ok = models.BooleanField(null=True)
    exit_code = models.IntegerField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    output_tail = models.TextField(blank=True)
    detail = models.CharField(max_length=300, blank=True)
    location = models.CharField(max_length=500, blank=True)  # the file it says it wrote
    size_bytes = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["service", "ok", "finished_at"])]

    def __str__(self) -> str:
        return f"{self.service_id}/{self.job_name} {self.started_at:%Y-%m-%d %H:%M}"


class RestoreDrill(models.Model):
    """One rehearsal of recovery: restore into a scratch place, verify it, time both.

    ``status``: running, passed (both commands exited 0 in time) or failed.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="restore_drills")
    number = models.PositiveIntegerField()
    backup_run = models.ForeignKey(
        BackupRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="drills"
    )
    restore_command = models.TextField()
    verify_command = models.TextField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    timeout_s = models.PositiveIntegerField()
    status = models.CharField(max_length=8, default="running")
    restore_exit_code = models.IntegerField(null=True, blank=True)
    verify_exit_code = models.IntegerField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    rto_s = models.PositiveIntegerField(null=True, blank=True)  # the RTO in force then
    rto_verdict = models.CharField(max_length=12, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    output_tail = models.TextField(blank=True)
    started_by = models.CharField(max_length=150)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "number"], name="ops_drill_number")
        ]
        indexes = [models.Index(fields=["service", "status", "finished_at"])]

    def __str__(self) -> str:
        return f"{self.service_id} drill {self.number}"
