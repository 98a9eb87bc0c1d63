"""The lease protocol: one holder per job, stale tokens refused, logs idempotent, reaping."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import DatabaseError
from django.test import Client
from django.utils import timezone

from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import InvalidInput
from obeya.pipelines import leases, runners, runs, secrets_store
from obeya.pipelines.models import Job, JobAttempt
from tests.conftest import SYSTEM, actor


def later(seconds: float) -> Actor:
    return Actor(user=None, clock=ManualClock(timezone.now() + timedelta(seconds=seconds)))


def test_two_runners_never_hold_the_same_job(alice, service, runner):
    other, _ = runners.register_runner(SYSTEM, "r2", [])
    runs.create_run(actor(alice), "svc")
    first = leases.claim(runner)
    assert first is not None
    assert leases.claim(other) is None  # the only queued job is taken


def test_labels_decide_who_may_take_a_job(alice, service, repo):
    repo.commit(
        {"obeya.yml": "jobs:\n  gpu:\n    stage: build\n    script: [x]\n    runs_on: [gpu]\n"}
    )
    runs.create_run(actor(alice), "svc")
    plain, _ = runners.register_runner(SYSTEM, "plain", ["linux"])
    assert leases.claim(plain) is None
    gpu, _ = runners.register_runner(SYSTEM, "gpu-box", ["gpu", "linux"])
    assert leases.claim(gpu) is not None


def test_a_stale_lease_token_is_refused_everywhere(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    for call in (
        lambda: leases.heartbeat(runner, claim.job.pk, "forged"),
        lambda: leases.append_log(runner, claim.job.pk, "forged", 0, b"x"),
        lambda: leases.complete(runner, claim.job.pk, "forged", "succeeded", 0),
    ):
        with pytest.raises(leases.StaleLease):
            call()


def test_a_lost_runner_is_reaped_and_the_job_retried_then_failed(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    first = leases.claim(runner)
    leases.append_log(runner, first.job.pk, first.lease_token, 0, b"line flushed before the kill\n")
    assert leases.reap(clock=later(leases.lease_seconds() - 1)) == 0
    assert leases.reap(clock=later(leases.lease_seconds() + 1)) == 1
    job = Job.objects.get(pk=first.job.pk)
    assert job.status == "queued" and job.attempt == 1
    # The late runner comes back with its old token: refused.
    with pytest.raises(leases.StaleLease):
        leases.complete(runner, job.pk, first.lease_token, "succeeded", 0)
    # The log of the lost attempt is kept.
    assert leases.log_bytes(job, attempt=1) == b"line flushed before the kill\n"
    for attempt in (2, 3):
        claim = leases.claim(runner)
        assert claim.job.attempt == attempt
        leases.heartbeat(runner, job.pk, claim.lease_token)  # it starts, then is lost
        leases.reap(clock=later(leases.lease_seconds() * attempt + 5))
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.failure_reason.startswith("retry_limit: the runner was lost 3 time(s)")
    assert list(JobAttempt.objects.filter(job=job).values_list("outcome", flat=True)) == [
        "lost",
        "lost",
        "lost",
    ]


def test_a_heartbeat_keeps_a_long_job_alive(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    leases.heartbeat(runner, claim.job.pk, claim.lease_token)  # acknowledged at once
    for minute in range(1, 10):
        leases.heartbeat(runner, claim.job.pk, claim.lease_token, clock=later(minute * 20))
        assert leases.reap(clock=later(minute * 20 + 10)) == 0
    assert Job.objects.get(pk=claim.job.pk).status == "running"


def test_a_script_failure_is_not_retried_by_default(alice, service, finish):
    runs.create_run(actor(alice), "svc")
    job = finish("failed", 1)
    assert job.status == "failed" and job.attempt == 1


def test_log_appends_are_idempotent_by_offset(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    job, token = claim.job, claim.lease_token
    assert leases.append_log(runner, job.pk, token, 0, b"hello ") == 6
    assert leases.append_log(runner, job.pk, token, 0, b"hello ") == 6  # resent: no-op
    assert leases.append_log(runner, job.pk, token, 3, b"lo world") == 11  # overlap
    with pytest.raises(Exception, match="resend from 11"):
        leases.append_log(runner, job.pk, token, 20, b"gap")
    assert leases.log_bytes(job) == b"hello world"
    assert leases.log_bytes(job, offset=6) == b"world"
    with pytest.raises(InvalidInput):
        leases.append_log(runner, job.pk, token, 11, b"x" * (leases.MAX_LOG_CHUNK + 1))


def test_secrets_reach_the_job_and_are_masked_in_stored_logs(alice, service, runner):
    secrets_store.set_secret(actor(alice), "svc", "API_TOKEN", "s3cr3t-value")
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    assert claim.payload["secrets"] == {"API_TOKEN": "s3cr3t-value"}
    assert claim.payload["variables"]["OBEYA_COMMIT_SHA"] == claim.job.run.sha
    leases.append_log(runner, claim.job.pk, claim.lease_token, 0, b"token=s3cr3t-value\n")
    assert leases.log_bytes(claim.job) == b"token=[MASKED]\n"
    assert "s3cr3t-value" not in str(list(secrets_store.secret_names("svc")))


def test_complete_refuses_an_unknown_outcome(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    with pytest.raises(InvalidInput, match="unknown outcome"):
        leases.complete(runner, claim.job.pk, claim.lease_token, "great")


def test_reading_from_the_offset_where_the_next_chunk_lands(alice, service, runner):
    """A live reader at the end of the log must get only the new bytes once they land."""
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    job, token = claim.job, claim.lease_token
    leases.append_log(runner, job.pk, token, 0, b"first line\n")
    assert leases.log_bytes(job, offset=11) == b""
    leases.append_log(runner, job.pk, token, 11, b"second\n")
    assert leases.log_bytes(job, offset=11) == b"second\n"
    assert leases.log_bytes(job, offset=14) == b"ond\n"


def test_the_result_carries_the_last_bytes_of_the_log(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    leases.append_log(runner, claim.job.pk, claim.lease_token, 0, b"hello ")
    with pytest.raises(leases.StaleLease):
        leases.complete(runner, claim.job.pk, "forged", "succeeded", 0, log_offset=6, log=b"x")
    job = leases.complete(
        runner, claim.job.pk, claim.lease_token, "succeeded", 0, log_offset=3, log=b"lo world\n"
    )
    assert leases.log_bytes(job) == b"hello world\n"
    assert JobAttempt.objects.get(job=job, number=1).log_size == 12


def _runner_call(client: Client, path: str, body: dict[str, Any], lease: str = "") -> Any:
    headers = {"X-Obeya-Lease": lease} if lease else {}
    return client.post(
        f"/api/runner/jobs/{path}", body, content_type="application/json", headers=headers
    )


def test_the_answer_to_a_result_brings_the_next_job_unless_paused(alice, service):
    made, token = runners.register_runner(SYSTEM, "r9", [])
    runs.create_run(actor(alice), "svc")
    client = Client(headers={"Authorization": f"Bearer {token}"})
    build = _runner_call(client, "claim", {"wait": 0}).json()
    tail = {"offset": 0, "data": base64.b64encode(b"built\n").decode()}
    refused = _runner_call(
        client,
        f"{build['id']}/complete",
        {"outcome": "succeeded", "log": {"offset": 0, "data": "%%"}},
        build["lease_token"],
    )
    assert refused.status_code == 400

    answer = _runner_call(
        client,
        f"{build['id']}/complete",
        {"outcome": "succeeded", "exit_code": 0, "log": tail, "next": True},
        build["lease_token"],
    ).json()

    assert answer["status"] == "succeeded"
    assert answer["next"]["name"] in {"unit", "lint"}
    assert leases.log_bytes(Job.objects.get(pk=build["id"])) == b"built\n"
    runners.set_paused(SYSTEM, made.pk, True)
    following = answer["next"]
    answer = _runner_call(
        client,
        f"{following['id']}/complete",
        {"outcome": "succeeded", "next": True},
        following["lease_token"],
    ).json()
    assert answer == {"status": "succeeded", "next": None}
    assert _runner_call(client, "claim", {"wait": 0}).status_code == 204


def test_a_job_shows_its_lease_expiry(alice, service, runner, api_for):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)
    shown = api_for(alice).get(f"/jobs/{claim.job.pk}").body
    assert shown["lease_expires_at"] is not None
    shown_at = datetime.fromisoformat(shown["lease_expires_at"])
    assert abs(shown_at - claim.job.lease_expires_at) < timedelta(milliseconds=1)  # JSON: ms
    leases.complete(runner, claim.job.pk, claim.lease_token, "succeeded", 0)
    assert api_for(alice).get(f"/jobs/{claim.job.pk}").body["lease_expires_at"] is None


def test_a_claim_failing_after_a_result_keeps_the_result(alice, service, runner, monkeypatch):
    runs.create_run(actor(alice), "svc")
    claim = leases.claim(runner)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(leases, "claim", broken)
    job, following = leases.complete_then_claim(
        runner, claim.job.pk, claim.lease_token, "succeeded", 0, log=b"done\n"
    )
    assert following is None
    assert Job.objects.get(pk=job.pk).status == "succeeded"
    assert leases.log_bytes(job) == b"done\n"
    assert Job.objects.filter(run=job.run, status="queued").count() == 2
