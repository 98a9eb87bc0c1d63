"""The pipelines capability as other capabilities see it (rule 3 of DESIGN.md)."""

from pathlib import Path

from obeya.core.errors import NotFound
from obeya.pipelines import artifacts as _artifacts
from obeya.pipelines import git as _git
from obeya.pipelines.andon import andon_is_pulled, pull_andon, reset_andon
from obeya.pipelines.hooks import list_deliveries, receive_webhook, rotate_webhook_secret
from obeya.pipelines.leases import reap
from obeya.pipelines.models import Andon, Artifact, Job, JobStatus, Run
from obeya.pipelines.polling import poll_due
from obeya.pipelines.runners import register_runner
from obeya.pipelines.runs import (
    DEPLOY_CANCELED,
    DEPLOY_DISPATCHERS,
    RUN_CREATED,
    RUN_FINISHED,
    cancel_run,
    create_run,
    get_job,
    get_run,
    jobs_of,
    list_runs,
    mirror_of,
    new_commits,
    pipeline_of,
    play_job,
    repository_files,
    retry_job,
    set_pipeline,
    settle_deploy_job,
)
from obeya.pipelines.secrets_store import (
    PROTECTED_ENVIRONMENTS,
    delete_secret,
    secret_names,
    set_secret,
)


def artifact_of(run: Run, job_name: str) -> Artifact | None:
    """The newest unexpired artifact the job ``job_name`` of ``run`` kept, if any."""
    job = Job.objects.filter(run=run, name=job_name, status=JobStatus.SUCCEEDED).first()
    if job is None:
        return None
    for artifact in _artifacts.artifacts_of(job).order_by("-attempt", "name"):
        if _artifacts.blob_path(artifact.sha256).exists():
            return artifact
    return None


def artifact_blob(sha256: str) -> Path:
    """The stored archive with this content hash; NotFound when it is gone."""
    path = _artifacts.blob_path(sha256)
    if not path.exists():
        raise NotFound(f"artifact {sha256[:12]} is no longer stored (expired?)")
    return path


def andon_reason(slug: str) -> str:
    """Why the service's andon is pulled ("" when it is not)."""
    andon = Andon.objects.filter(service__slug=slug, pulled=True).first()
    return f"{andon.reason} (pulled by {andon.pulled_by})" if andon else ""


def commits_between(slug: str, old_sha: str, new_sha: str, limit: int = 50) -> list[_git.Commit]:
    """Commits reachable from ``new_sha`` but not ``old_sha`` (newest first)."""
    from obeya.catalog import services as catalog

    mirror = mirror_of(catalog.get_service(slug))
    try:
        return _git.commit_list(mirror, _git.commits_between(mirror, old_sha, new_sha, limit))
    except _git.GitError:
        return []


__all__ = [
    "DEPLOY_CANCELED",
    "DEPLOY_DISPATCHERS",
    "PROTECTED_ENVIRONMENTS",
    "RUN_CREATED",
    "RUN_FINISHED",
    "andon_is_pulled",
    "andon_reason",
    "artifact_blob",
    "artifact_of",
    "cancel_run",
    "commits_between",
    "create_run",
    "delete_secret",
    "get_job",
    "get_run",
    "jobs_of",
    "list_deliveries",
    "list_runs",
    "new_commits",
    "pipeline_of",
    "play_job",
    "poll_due",
    "pull_andon",
    "reap",
    "receive_webhook",
    "register_runner",
    "repository_files",
    "reset_andon",
    "retry_job",
    "rotate_webhook_secret",
    "secret_names",
    "set_pipeline",
    "set_secret",
    "settle_deploy_job",
]
