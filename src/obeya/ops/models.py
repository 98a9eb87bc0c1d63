"""Operations tables: monitors and their results, incidents with notes and causes.

Only the minimum required information (§1.3.2): what is watched, what failed, who leads
the response, and how long acknowledging and restoring took.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from obeya.catalog.models import Service


class Monitor(models.Model):
    """A check of a service in an environment, run by the scheduler every ``interval_s``.

    ``next_due_at`` and the claim fields let several server processes share the checks:
    each due check is claimed by one of them per tick.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="monitors")
    name = models.CharField(max_length=63)
    environment = models.CharField(max_length=63, blank=True)
    kind = models.CharField(max_length=8)  # http | command
    url = models.CharField(max_length=500, blank=True)
    expect_status = models.PositiveIntegerField(default=200)
    contains = models.CharField(max_length=200, blank=True)
    command = models.TextField(blank=True)
    interval_s = models.PositiveIntegerField(default=30)
    timeout_s = models.FloatField(default=5.0)
    failure_threshold = models.PositiveIntegerField(default=3)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    next_due_at = models.DateTimeField(db_index=True)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_ok = models.BooleanField(null=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["service", "name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="ops_monitor_name")]

    def __str__(self) -> str:
        return f"{self.service_id}/{self.name}"


class CheckResult(models.Model):
    """One check's outcome, kept raw for 7 days, then rolled up per hour."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="results")
    at = models.DateTimeField()
    ok = models.BooleanField()
    latency_ms = models.FloatField()
    detail = models.CharField(max_length=300, blank=True)
    lateness_ms = models.FloatField(default=0)  # how long after it was due it ran

    class Meta:
        ordering = ["monitor", "at"]
        indexes = [models.Index(fields=["monitor", "at"])]

    def __str__(self) -> str:
        return f"{self.monitor_id} {self.at:%H:%M:%S} {'ok' if self.ok else 'FAIL'}"


class CheckRollup(models.Model):
    """An hour of a monitor's results, once the raw ones have aged out."""

    monitor = models.ForeignKey(Monitor, on_delete=models.CASCADE, related_name="rollups")
    hour = models.DateTimeField()
    checks = models.PositiveIntegerField()
    failures = models.PositiveIntegerField()
    latency_sum_ms = models.FloatField()
    latency_max_ms = models.FloatField()

    class Meta:
        ordering = ["monitor", "hour"]
        constraints = [models.UniqueConstraint(fields=["monitor", "hour"], name="ops_rollup_hour")]

    def __str__(self) -> str:
        return f"{self.monitor_id} {self.hour:%Y-%m-%d %H}:00"


class Severity(models.TextChoices):
    SEV1 = "sev1", "SEV1 — service down for everyone"
    SEV2 = "sev2", "SEV2 — major degradation"
    SEV3 = "sev3", "SEV3 — minor, workaround exists"
    SEV4 = "sev4", "SEV4 — cosmetic or internal"


class IncidentStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"


class Incident(models.Model):
    """Something that hurt (or could hurt) the service's users, and the response to it."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="incidents")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=4, choices=Severity.choices, default=Severity.SEV3)
    status = models.CharField(
        max_length=12, choices=IncidentStatus.choices, default=IncidentStatus.OPEN
    )
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source = models.CharField(max_length=12, default="manual")  # manual|monitor|deployment|andon
    source_event = models.PositiveBigIntegerField(null=True, blank=True, unique=True)
    monitor = models.ForeignKey(
        Monitor, null=True, blank=True, on_delete=models.SET_NULL, related_name="incidents"
    )
    opened_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "number"], name="ops_incident_number")
        ]
        indexes = [models.Index(fields=["service", "status"])]

    def __str__(self) -> str:
        return f"{self.service_id} INC-{self.number}"

    @property
    def key(self) -> str:
        return f"INC-{self.number}"


class IncidentNote(models.Model):
    """A line a person adds to an incident's timeline."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notes")
    at = models.DateTimeField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    text = models.TextField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return self.text[:40]


class IncidentCause(models.Model):
    """An explicit causal link from an incident to the deployment that caused it."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="causes")
    deployment_id = models.PositiveBigIntegerField()
    automatic = models.BooleanField(default=False)
    linked_at = models.DateTimeField()
    linked_by = models.CharField(max_length=150)

    class Meta:
        ordering = ["linked_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "deployment_id"], name="ops_incident_cause_once"
            )
        ]

    def __str__(self) -> str:
        return f"INC {self.incident_id} ← deployment {self.deployment_id}"


class Slo(models.Model):
    """A service level objective over a rolling window, measured by a monitor's checks.

    Availability: the share of checks that passed. Latency: the share of checks that
    answered within ``latency_threshold_ms``. The error budget is what the objective
    leaves: at 99.9 % over 30 days, 0.1 % of the checks may fail.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="slos")
    name = models.CharField(max_length=63)
    kind = models.CharField(max_length=12)  # availability | latency
    objective_percent = models.FloatField()
    window_days = models.PositiveIntegerField(default=30)
    latency_threshold_ms = models.FloatField(null=True, blank=True)
    monitor = models.ForeignKey(Monitor, on_delete=models.PROTECT, related_name="slos")
    story = models.CharField(max_length=20, blank=True)  # the operation story it came from
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["service", "name"]
        constraints = [models.UniqueConstraint(fields=["service", "name"], name="ops_slo_name")]

    def __str__(self) -> str:
        return f"{self.service_id}/{self.name}"


class Postmortem(models.Model):
    """The blameless review of an incident (§1.1.1): what happened and what we change."""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="postmortem")
    summary = models.TextField()
    impact = models.TextField()
    timeline = models.TextField(blank=True)  # pre-filled from the incident, editable
    factors = models.JSONField(default=list)  # contributing factors: more than one
    went_well = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"postmortem of {self.incident}"


class FollowUp(models.Model):
    """A postmortem's action, kept as a change request in the backlog (its key)."""

    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="actions")
    title = models.CharField(max_length=200)
    story_key = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.title


class Problem(models.Model):
    """The cause shared by several incidents: known error, workaround, root-cause notes."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="problems")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, default="open")  # open|known_error|resolved
    known_error = models.TextField(blank=True)
    workaround = models.TextField(blank=True)
    analysis = models.TextField(blank=True)
    incidents = models.ManyToManyField(Incident, blank=True, related_name="problems")
    change_requests = models.JSONField(default=list)  # story keys
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "number"], name="ops_problem_number")
        ]

    def __str__(self) -> str:
        return f"{self.service_id} PRB-{self.number}"

    @property
    def key(self) -> str:
        return f"PRB-{self.number}"


# Continuity (§4.4) lives in its own module; imported here so Django finds its tables.
from obeya.ops.continuity_models import (  # noqa: E402, F401
    BackupJob,
    BackupRun,
    ContinuityPolicy,
    RestoreDrill,
)

# Notifications (§3.1.5) too.
from obeya.ops.notify_models import Channel, Delivery, DeliveryAttempt  # noqa: E402, F401
