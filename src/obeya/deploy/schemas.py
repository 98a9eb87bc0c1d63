"""The JSON shapes of the deployments API: environments, their state, deployments, logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict


class EnvironmentSettings(Schema):
    """The settings of an environment that a person may change (all optional on PATCH)."""

    model_config = ConfigDict(extra="forbid")

    tier: str | None = Field(None, description="development, testing, staging or production.")
    position: int | None = Field(None, description="Order of promotion: lower comes first.")
    protected: bool | None = Field(None, description="Deploys wait for approvals.")
    required_approvals: int | None = Field(None, description="Approvals needed (0-5).")
    approval_role: str | None = Field(None, description="Role that approves (gatekeeper).")
    target: dict[str, Any] | None = Field(
        None, description='Where releases go: {"kind": "local", "root": "/abs/path"} or ssh.'
    )
    health: dict[str, Any] | None = Field(
        None,
        description='{"kind": "http", "url": …} or {"kind": "command", "command": …}; {} none.',
    )
    hooks: dict[str, str] | None = Field(
        None, description="Shell commands: before_switch, restart, after_switch."
    )
    hook_timeout_s: int | None = None
    warmup_s: int | None = Field(None, description="Seconds the health check has to pass.")
    health_passes: int | None = Field(None, description="Passing checks in a row needed.")
    health_interval_ms: int | None = None
    retention: int | None = Field(None, description="Releases kept on the target.")


class EnvironmentIn(EnvironmentSettings):
    name: str = Field(description="Lower-case letters, digits, - and _; never changes.")


class EnvironmentOut(Schema):
    name: str
    service: str
    tier: str
    position: int
    protected: bool
    required_approvals: int
    approval_role: str
    target: dict[str, Any]
    health: dict[str, Any]
    hooks: dict[str, Any]
    hook_timeout_s: int
    warmup_s: int
    health_passes: int
    health_interval_ms: int
    retention: int
    approved_origins: list[str] = Field(
        description="Loopback scheme://host:port of its URLs an administrator approved."
    )
    created_at: datetime
    updated_at: datetime


class ApprovalOut(Schema):
    user: str
    decision: str
    comment: str
    at: datetime


class DeploymentOut(Schema):
    id: int
    service: str
    environment: str
    kind: str = Field(description="deploy, or rollback to a kept release.")
    status: str
    run: int | None
    job: int | None
    sha: str
    branch: str
    committed_at: datetime | None
    version: str
    artifact_job: str
    artifact_sha256: str
    release_id: str
    previous_release_id: str
    requested_by: str | None
    requested_at: datetime
    started_at: datetime | None
    switched_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    step: str
    reason: str
    required_approvals: int = Field(description="Approvals it needs, as when it was requested.")
    approval_role: str = Field(description="The role an approver must hold, as when requested.")
    approvals: list[ApprovalOut]

    @staticmethod
    def resolve_id(deployment: Any) -> int:
        return int(deployment.pk)

    @staticmethod
    def resolve_service(deployment: Any) -> str:
        return str(deployment.service.slug)

    @staticmethod
    def resolve_environment(deployment: Any) -> str:
        return str(deployment.environment.name)

    @staticmethod
    def resolve_run(deployment: Any) -> int | None:
        return deployment.run.number if deployment.run_id and deployment.run else None

    @staticmethod
    def resolve_job(deployment: Any) -> int | None:
        return int(deployment.job_id) if deployment.job_id else None

    @staticmethod
    def resolve_requested_by(deployment: Any) -> str | None:
        return deployment.requested_by.username if deployment.requested_by_id else None

    @staticmethod
    def resolve_approvals(deployment: Any) -> list[dict[str, Any]]:
        return [
            {"user": a.user.username, "decision": a.decision, "comment": a.comment, "at": a.at}
            for a in deployment.approvals.all()
        ]


class RunningOut(Schema):
    """What runs in an environment: the release its last successful deployment made current."""

    deployment: int
    kind: str
    release_id: str
    artifact_sha256: str
    sha: str
    version: str
    run: int | None
    since: datetime | None
    deployed_by: str | None
    approved_by: list[str]


class DriftOut(Schema):
    found: bool
    summary: str
    changed: list[str]
    added: list[str]
    missing: list[str]


class CommitOut(Schema):
    sha: str
    author_name: str
    committed_at: datetime
    message: str


class ReleaseOut(Schema):
    release_id: str
    version: str
    sha: str
    artifact_sha256: str
    created_at: datetime
    current: bool


class EnvironmentDetail(EnvironmentOut):
    current_release: str = Field(description='The release "current" points at ("" if none).')
    running: RunningOut | None
    health_state: str = Field(description="healthy, deploying, failed, rolled back or unknown.")
    drift: DriftOut | None = Field(description="null when it cannot be told.")
    last: DeploymentOut | None = Field(description="The last deployment that ran here.")
    waiting: list[DeploymentOut]
    next_environment: str
    not_yet_in_next: list[CommitOut] = Field(
        description="Commits running here that the next environment does not have yet."
    )
    kept_releases: list[ReleaseOut]


class DeployIn(Schema):
    model_config = ConfigDict(extra="forbid")

    run: int | None = Field(
        None, description="Run number; default: the newest deployable run of the default branch."
    )


class RollbackIn(Schema):
    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, description="A kept release; default: the one before current.")


class DecisionIn(Schema):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(description="Why: required.")


class LogLineOut(Schema):
    id: int
    at: datetime
    step: str
    line: str


class LogOut(Schema):
    deployment: int
    status: str
    step: str
    lines: list[LogLineOut]
    after: int = Field(description="Pass as ?after= to read only the lines that follow.")
