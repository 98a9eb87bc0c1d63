"""Pipeline tables: runs of a commit, their jobs and attempts, logs, runners, secrets, andon."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from obeya.catalog.models import Service


class RunStatus(models.TextChoices):
    CREATED = "created"
    RUNNING = "running"
    BLOCKED = "blocked"  # the jobs left wait on a manual job
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class JobStatus(models.TextChoices):
    CREATED = "created"
    MANUAL = "manual"
    WAITING_APPROVAL = "waiting_approval"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    LOST = "lost"
    SKIPPED = "skipped"


class Pipeline(models.Model):
    """A service's pipeline settings: where its code is and how runs start."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="pipeline")
    default_branch = models.CharField(max_length=200, default="main")
    # Write-only, and sealed (obeya.core.crypto): the column holds a Fernet token.
    webhook_secret = models.TextField(blank=True)
    poll_interval_s = models.PositiveIntegerField(default=0, help_text="0 = no polling")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    known_heads = models.JSONField(default=dict, help_text="branch -> last sha seen by polling")
    # Runs of these refs (and of the default branch) receive protected secrets.
    protected_branches = models.JSONField(default=list, help_text="glob patterns of branches")
    protected_tags = models.JSONField(default=list, help_text="glob patterns of tags")

    def __str__(self) -> str:
        return f"pipeline of {self.service_id}"


class Run(models.Model):
    """One pipeline run of one commit of a service."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.CREATED)
    trigger = models.CharField(max_length=16)  # manual | push | poll | retry | demo
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ref = models.CharField(max_length=255)
    branch = models.CharField(max_length=255, blank=True)
    tag = models.CharField(max_length=255, blank=True)  # the tag run, when ref named one
    sha = models.CharField(max_length=64)
    author_name = models.CharField(max_length=255, blank=True)
    author_email = models.CharField(max_length=255, blank=True)
    authored_at = models.DateTimeField(null=True, blank=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)
    spec_text = models.TextField(blank=True)
    errors = models.JSONField(default=list)  # obeya.yml problems, one line each
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["service", "number"], name="pipelines_run_number")
        ]
        indexes = [models.Index(fields=["service", "branch", "-id"])]

    def __str__(self) -> str:
        return f"{self.service.slug} #{self.number}"

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - (self.started_at or self.created_at)).total_seconds()


class Runner(models.Model):
    """A machine (or an embedded thread group) that pulls jobs over HTTP with its token."""

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=16)
    labels = models.JSONField(default=list)
    embedded = models.BooleanField(default=False)
    paused = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(null=True, blank=True)
    version = models.CharField(max_length=40, blank=True)
    # What its jobs run in, as it last said: bwrap, off (unconfined) or unavailable.
    sandbox = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class JobKind(models.TextChoices):
    SCRIPT = "script"  # a runner runs its script
    DEPLOY = "deploy"  # Obeya's deployer deploys an artifact to an environment


class Job(models.Model):
    """One job of a run; attempts record each time a runner took it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(max_length=63)
    kind = models.CharField(max_length=8, choices=JobKind.choices, default=JobKind.SCRIPT)
    stage = models.CharField(max_length=63)
    stage_index = models.PositiveIntegerField()
    position = models.PositiveIntegerField()
    needs = models.JSONField(default=list)
    spec = models.JSONField(default=dict)  # the normalised JobSpec as run
    status = models.CharField(max_length=20, choices=JobStatus.choices, default=JobStatus.CREATED)
    attempt = models.PositiveIntegerField(default=0)
    retry_max = models.PositiveIntegerField(default=0)
    retry_when = models.CharField(max_length=16, default="infrastructure")
    exit_code = models.IntegerField(null=True, blank=True)
    failure_reason = models.CharField(max_length=200, blank=True)
    runner = models.ForeignKey(Runner, null=True, blank=True, on_delete=models.SET_NULL)
    lease_token = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Handed to a runner that has not answered yet: until it does (any call with the lease),
    # the lease runs out after offers.ACK_SECONDS and the job goes back to the queue with
    # its attempt given back (a runner that died holding a long-poll never starts it).
    awaiting_ack = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="pipelines_job_name")]
        indexes = [models.Index(fields=["status", "queued_at"])]

    def __str__(self) -> str:
        return f"{self.run} {self.name}"

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None or self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class JobAttempt(models.Model):
    """One runner's go at a job; (job, number) is unique, so a redelivery cannot run twice."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    runner = models.ForeignKey(Runner, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    log_size = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="pipelines_attempt_number")
        ]

    def __str__(self) -> str:
        return f"{self.job_id} attempt {self.number}"


class LogChunk(models.Model):
    """A piece of an attempt's log at a byte offset; appends are idempotent by offset."""

    attempt = models.ForeignKey(JobAttempt, on_delete=models.CASCADE, related_name="chunks")
    offset = models.PositiveBigIntegerField()
    data = models.BinaryField()

    class Meta:
        ordering = ["attempt", "offset"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "offset"], name="pipelines_log_offset")
        ]

    def __str__(self) -> str:
        return f"log {self.attempt_id}@{self.offset}"


class Secret(models.Model):
    """A value a service's jobs receive in their environment; write-only, masked in logs.

    ``value`` is sealed (obeya.core.crypto). A protected secret reaches only runs of
    protected refs; one scoped to an environment only jobs that name that environment.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100)
    environment = models.CharField(max_length=63, blank=True)  # "" = every job
    protected = models.BooleanField(default=False)
    value = models.TextField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "environment"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "name", "environment"], name="pipelines_secret_scope"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Andon(models.Model):
    """The stop-the-line cord of a service (§3.1.6): pulled while main is red."""

    service = models.OneToOneField(Service, on_delete=models.CASCADE, related_name="andon")
    pulled = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    pulled_by = models.CharField(max_length=150, blank=True)
    pulled_at = models.DateTimeField(null=True, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL)

    def __str__(self) -> str:
        return "pulled" if self.pulled else "released"


class WebhookDelivery(models.Model):
    """A push notification received; the (service, delivery id) pair makes replays no-ops."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deliveries")
    provider = models.CharField(max_length=16)  # github | gitlab | generic
    delivery_id = models.CharField(max_length=200)
    received_at = models.DateTimeField()
    ref = models.CharField(max_length=255, blank=True)
    sha = models.CharField(max_length=64, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service", "delivery_id"], name="pipelines_delivery_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.delivery_id}"


class WebhookSignature(models.Model):
    """A generic webhook signature seen lately: the same signed body under another
    delivery id is a replay. Rows older than the timestamp tolerance are pruned."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)  # sha256 of the signature (t and body)
    delivery_id = models.CharField(max_length=200)
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["service", "digest"], name="pipelines_signature_once")
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} {self.digest[:12]}"


class Artifact(models.Model):
    """A job's packed files, stored once by content (sha256) in the data dir."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="artifacts")
    attempt = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField()
    paths = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["job", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "attempt", "name"], name="pipelines_artifact_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.sha256[:12]}"


class TestCase(models.Model):
    """One test case result from a job's JUnit XML report."""

    __test__ = False  # not a pytest class

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="test_cases")
    attempt = models.PositiveIntegerField()
    suite = models.CharField(max_length=255, blank=True)
    classname = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=500)
    status = models.CharField(max_length=16)  # passed | failed | error | skipped
    duration_s = models.FloatField(default=0)
    message = models.TextField(blank=True)
    file = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["job", "id"]
        indexes = [models.Index(fields=["job", "attempt"])]

    def __str__(self) -> str:
        return f"{self.classname}.{self.name}: {self.status}"
