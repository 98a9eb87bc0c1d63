"""The pipelines capability as other capabilities see it (rule 3 of DESIGN.md)."""

from obeya.pipelines.andon import andon_is_pulled, pull_andon, reset_andon
from obeya.pipelines.hooks import list_deliveries, receive_webhook, rotate_webhook_secret
from obeya.pipelines.leases import reap, register_runner
from obeya.pipelines.polling import poll_due
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
    new_commits,
    pipeline_of,
    play_job,
    repository_files,
    retry_job,
    set_pipeline,
    settle_deploy_job,
)
from obeya.pipelines.secrets_store import delete_secret, secret_names, set_secret

__all__ = [
    "DEPLOY_CANCELED",
    "DEPLOY_DISPATCHERS",
    "RUN_CREATED",
    "RUN_FINISHED",
    "andon_is_pulled",
    "cancel_run",
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
