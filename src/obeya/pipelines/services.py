"""The pipelines capability as other capabilities see it (rule 3 of DESIGN.md)."""

from obeya.pipelines.andon import andon_is_pulled, pull_andon, reset_andon
from obeya.pipelines.leases import reap, register_runner
from obeya.pipelines.runs import (
    cancel_run,
    create_run,
    get_job,
    get_run,
    jobs_of,
    list_runs,
    play_job,
    retry_job,
    set_pipeline,
)
from obeya.pipelines.secrets_store import delete_secret, secret_names, set_secret

__all__ = [
    "andon_is_pulled",
    "cancel_run",
    "create_run",
    "delete_secret",
    "get_job",
    "get_run",
    "jobs_of",
    "list_runs",
    "play_job",
    "pull_andon",
    "reap",
    "register_runner",
    "reset_andon",
    "retry_job",
    "secret_names",
    "set_pipeline",
    "set_secret",
]
