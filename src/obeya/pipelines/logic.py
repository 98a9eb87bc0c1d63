"""Rules of the job graph (when a job may start, what a run's status is) and of which
secrets a job receives. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase


class Decision(StrEnum):
    WAIT = "wait"
    QUEUE = "queue"
    MANUAL = "manual"
    SKIP = "skip"


# A job in one of these states will not change again by itself.
FINAL = frozenset({"succeeded", "failed", "canceled", "skipped"})
# States a run waits on before it can finish ("manual" jobs do not hold a run open).
ACTIVE = frozenset({"created", "queued", "running", "waiting_approval"})
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    # A deploy job goes from created to waiting_approval or queued, or fails when its
    # deployment is refused (promotion order, unknown environment).
    "created": frozenset({"queued", "manual", "skipped", "canceled", "waiting_approval", "failed"}),
    "manual": frozenset({"queued", "canceled", "waiting_approval", "failed"}),
    "waiting_approval": frozenset({"queued", "canceled", "failed"}),
    "queued": frozenset({"running", "canceled"}),
    "running": frozenset({"succeeded", "failed", "canceled", "queued"}),  # queued: lost, retried
    "succeeded": frozenset(),
    "failed": frozenset({"queued"}),  # a person retries it
    "canceled": frozenset({"queued"}),
    "skipped": frozenset(),
}


def can_move(current: str, target: str) -> bool:
    return target in JOB_TRANSITIONS.get(current, frozenset())


def decide(when: str, need_statuses: Iterable[str]) -> Decision:
    """What a created job does next, given the statuses of the jobs it needs.

    on_success (and manual) need every need to have succeeded; on_failure runs when a need
    failed; always runs once its needs are done, whatever their result.
    """
    statuses = list(need_statuses)
    if any(status not in FINAL for status in statuses):
        return Decision.WAIT
    if when == "always":
        return Decision.QUEUE
    if when == "on_failure":
        return Decision.QUEUE if any(s == "failed" for s in statuses) else Decision.SKIP
    if all(status == "succeeded" for status in statuses):
        return Decision.MANUAL if when == "manual" else Decision.QUEUE
    return Decision.SKIP


def run_status(job_statuses: Iterable[str]) -> str:
    """A run is running while a job is active, blocked when the jobs left wait on a
    manual one; then failed, canceled or succeeded."""
    statuses = list(job_statuses)
    if not statuses:
        return "failed"
    if any(status in {"queued", "running", "waiting_approval"} for status in statuses):
        return "running"
    if "created" in statuses:
        started = any(status != "created" for status in statuses)
        if not started:
            return "created"
        # nothing can move until someone starts a manual job the waiting ones need
        return "blocked" if "manual" in statuses else "running"
    if "failed" in statuses:
        return "failed"
    if "canceled" in statuses:
        return "canceled"
    return "succeeded"


# A lost runner or a failed checkout is the machine's fault, not the change's: such a job
# gets this many retries even when obeya.yml asks for fewer (Zuul stops after 3 attempts).
INFRASTRUCTURE_RETRIES = 2


def should_retry(reason: str, attempt: int, retry_max: int, retry_when: str) -> bool:
    """Infrastructure failures retry by default; a script's own failure only with
    ``retry: {when: always}`` (RELIABILITY A6). ``attempt`` is the one that just ended."""
    if reason in {"runner_lost", "infrastructure"}:
        return attempt <= max(retry_max, INFRASTRUCTURE_RETRIES)
    return (
        retry_when == "always" and reason in {"script_failure", "timeout"} and attempt <= retry_max
    )


# ---- which secrets a job receives ------------------------------------------------------


@dataclass(frozen=True)
class StoredSecret:
    """A secret as the claim sees it (value already decrypted)."""

    name: str
    value: str
    environment: str = ""  # "" = every job
    protected: bool = False


def ref_is_protected(
    branch: str,
    tag: str,
    default_branch: str,
    branch_patterns: Iterable[str],
    tag_patterns: Iterable[str],
) -> bool:
    """A run's ref is protected when it is the default branch, a branch matching one of
    ``branch_patterns``, or a tag matching one of ``tag_patterns`` (shell globs, ``*``
    crossing ``/``). A bare commit is never protected."""
    if branch:
        return branch == default_branch or any(fnmatchcase(branch, p) for p in branch_patterns)
    return bool(tag) and any(fnmatchcase(tag, p) for p in tag_patterns)


def secrets_for_job(
    stored: Iterable[StoredSecret],
    job_environment: str,
    protected_ref: bool,
    protected_environments: frozenset[str],
) -> dict[str, str]:
    """The secrets a job gets, by name.

    A secret scoped to an environment goes only to jobs naming that environment, and wins
    over an unscoped secret of the same name. A protected secret, or one scoped to a
    protected environment, goes only to runs of a protected ref: a branch anyone may push
    cannot reach it by writing ``environment: production`` in its obeya.yml.
    """
    chosen: dict[str, StoredSecret] = {}
    for secret in stored:
        if secret.environment and secret.environment != job_environment:
            continue
        guarded = secret.protected or secret.environment in protected_environments
        if guarded and not protected_ref:
            continue
        earlier = chosen.get(secret.name)
        if earlier is None or (secret.environment and not earlier.environment):
            chosen[secret.name] = secret
    return {name: secret.value for name, secret in sorted(chosen.items())}
