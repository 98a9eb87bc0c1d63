"""Deployment tables: environments, deployments, approvals, releases kept on targets."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from obeya.catalog.models import Service
from obeya.pipelines.models import Job, Run


class Tier(models.TextChoices):
    DEVELOPMENT = "development"
    TESTING = "testing"
    STAGING = "staging"
    PRODUCTION = "production"


class Environment(models.Model):
    """Where a service runs, defined on the server so no commit can loosen its protection.

    ``target`` says where releases go ({"kind": "local", "root": …} or {"kind": "ssh",
    "hosts": […], …}); ``health`` how to tell the release works ({"kind": "http", "url": …}
    or {"kind": "command", "command": …}); ``hooks`` the commands run around the switch.
    The lease fields make one deployment at a time per environment, across processes.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="environments")
    name = models.CharField(max_length=63)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.DEVELOPMENT)
    position = models.PositiveIntegerField(default=0)  # order of promotion
    protected = models.BooleanField(default=False)
    required_approvals = models.PositiveIntegerField(default=0)
    approval_role = models.CharField(max_length=32, default="gatekeeper")
    target = models.JSONField(default=dict)
    health = models.JSONField(default=dict)
    # Loopback origins ("http://127.0.0.1:8101") of its URLs an administrator approved
    # (obeya.deploy.reach): what a local environment's checks and monitors may reach.
    approved_origins = models.JSONField(default=list, blank=True)
    hooks = models.JSONField(default=dict)
    hook_timeout_s = models.PositiveIntegerField(default=300)
    warmup_s = models.PositiveIntegerField(default=30)
    health_passes = models.PositiveIntegerField(default=3)
    health_interval_ms = models.PositiveIntegerField(default=500)
    retention = models.PositiveIntegerField(default=5)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # the lease: which deployment holds the environment, until when
    lease_deployment = models.PositiveBigIntegerField(null=True, blank=True)
    lease_token = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["service", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["service", "name"], name="deploy_environment_name")
        ]

    def __str__(self) -> str:
        return f"{self.service_id}/{self.name}"


class DeploymentStatus(models.TextChoices):
    WAITING_APPROVAL = "waiting_approval"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    OUTDATED = "outdated"
    CANCELED = "canceled"
    REJECTED = "rejected"


class Deployment(models.Model):
    """One attempt to make an artifact (or, for a rollback, a kept release) current."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="deployments"
    )
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deployments")
    kind = models.CharField(max_length=10, default="deploy")  # deploy | rollback
    status = models.CharField(
        max_length=20, choices=DeploymentStatus.choices, default=DeploymentStatus.QUEUED
    )
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sha = models.CharField(max_length=64, blank=True)
    branch = models.CharField(max_length=255, blank=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    version = models.CharField(max_length=100, blank=True)
    artifact_job = models.CharField(max_length=63, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    release_id = models.CharField(max_length=100, blank=True)  # the release it makes current
    previous_release_id = models.CharField(max_length=100, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    switched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    step = models.CharField(max_length=32, blank=True)  # the step it is at, while running
    reason = models.TextField(blank=True)
    # The environment's approval rules when it was requested: a change to the environment
    # meanwhile never changes who may let a waiting deployment through.
    required_approvals = models.PositiveIntegerField(default=0)
    approval_role = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-id"]
        # What an environment runs now: its newest succeeded deployment (deployer.serving).
        indexes = [models.Index(fields=["environment", "status", "finished_at", "id"])]

    def __str__(self) -> str:
        return f"deployment {self.pk} to {self.environment}"

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None or self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Approval(models.Model):
    """A person's approval or rejection of a deployment to a protected environment."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="approvals")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8)  # approve | reject
    comment = models.TextField()
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "user"], name="deploy_approval_once")
        ]

    def __str__(self) -> str:
        return f"{self.decision} by {self.user_id}"


class Release(models.Model):
    """A release unpacked on an environment's target, with its files' checksums."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="releases")
    release_id = models.CharField(max_length=100)
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    sha = models.CharField(max_length=64, blank=True)
    version = models.CharField(max_length=100, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(default=dict)  # relative path -> sha256 (links: "->target")
    state = models.CharField(max_length=10, default="kept")  # kept | archived
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-release_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "release_id"], name="deploy_release_once"
            )
        ]

    def __str__(self) -> str:
        return self.release_id


class DeploymentLog(models.Model):
    """One line of a deployment's log: what each step did, hook output included."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField()
    step = models.CharField(max_length=32)
    line = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.step}: {self.line[:40]}"
