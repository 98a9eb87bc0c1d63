"""A claimed job is an offer until its runner's first call (RELIABILITY A3, A7): one that
never comes gives the job back to the queue, its attempt not spent."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from obeya.asgi import RequestHandler
from obeya.core import hangup
from obeya.core.actors import Actor
from obeya.core.clock import ManualClock
from obeya.core.errors import Conflict
from obeya.core.models import Event
from obeya.pipelines import leases, offers, runners, runs
from obeya.pipelines.models import Job, JobAttempt
from tests.conftest import SYSTEM, actor


def later(seconds: float) -> Actor:
    return Actor(user=None, clock=ManualClock(timezone.now() + timedelta(seconds=seconds)))


def _returned(job_id: int) -> list[dict[str, Any]]:
    return [
        event.data for event in Event.objects.filter(kind="job.returned", subject=f"job:{job_id}")
    ]


def test_an_offer_nobody_acknowledges_goes_back_to_the_queue_with_its_attempt(
    alice, service, runner
):
    runs.create_run(actor(alice), "svc")
    offered = leases.claim(runner)
    assert offered is not None and offered.payload["ack_seconds"] == offers.ACK_SECONDS
    queued_at = offered.job.queued_at
    assert leases.reap(clock=later(offers.ACK_SECONDS - 1)) == 0  # still within its window

    assert leases.reap(clock=later(offers.ACK_SECONDS + 1)) == 1

    job = Job.objects.get(pk=offered.job.pk)
    assert (job.status, job.attempt, job.runner_id, job.lease_token) == ("queued", 0, None, "")
    assert (job.awaiting_ack, job.lease_expires_at, job.queued_at) == (False, None, queued_at)
    assert not JobAttempt.objects.filter(job=job).exists()
    [event] = _returned(job.pk)
    assert event["runner"] == "r1" and event["attempt"] == 0
    assert "did not acknowledge it within 5 s" in event["reason"]
    with pytest.raises(leases.StaleLease):  # the runner that never answered is too late
        leases.heartbeat(runner, job.pk, offered.lease_token)

    other, _ = runners.register_runner(SYSTEM, "r2", [])
    again = leases.claim(other)
    assert again is not None and again.job.pk == job.pk
    assert again.job.attempt == 1 and again.payload["variables"]["OBEYA_JOB_ATTEMPT"] == "1"


@pytest.mark.parametrize("first_call", ["heartbeat", "log", "result"])
def test_the_runners_first_call_acknowledges_the_job(alice, service, runner, first_call):
    runs.create_run(actor(alice), "svc")
    offered = leases.claim(runner)
    assert offered is not None and offered.job.awaiting_ack
    job_id, token = offered.job.pk, offered.lease_token
    assert offered.job.lease_expires_at == offered.job.started_at + timedelta(
        seconds=offers.ACK_SECONDS
    )
    if first_call == "heartbeat":
        leases.heartbeat(runner, job_id, token)
    elif first_call == "log":
        leases.append_log(runner, job_id, token, 0, b"started\n")
    else:  # a job shorter than a log interval: its result is its first call
        leases.complete(runner, job_id, token, "succeeded", 0)
    job = Job.objects.get(pk=job_id)
    assert not job.awaiting_ack
    assert leases.reap(clock=later(offers.ACK_SECONDS + 1)) == 0
    assert Job.objects.get(pk=job_id).status == (
        "succeeded" if first_call == "result" else "running"
    )
    assert _returned(job_id) == []


def test_a_runner_that_stops_gives_an_offer_back_at_once(alice, service, runner):
    runs.create_run(actor(alice), "svc")
    offered = leases.claim(runner)
    assert offered is not None
    leases.release(runner, offered.job.pk, offered.lease_token)
    job = Job.objects.get(pk=offered.job.pk)
    assert (job.status, job.attempt) == ("queued", 0)
    assert "released it unstarted" in _returned(job.pk)[0]["reason"]
    with pytest.raises(leases.StaleLease):
        leases.release(runner, offered.job.pk, offered.lease_token)

    taken = leases.claim(runner)
    assert taken is not None and taken.job.pk == job.pk and taken.job.attempt == 1
    leases.heartbeat(runner, job.pk, taken.lease_token)
    with pytest.raises(Conflict, match="was acknowledged"):  # it may be running: never given back
        leases.release(runner, job.pk, taken.lease_token)
    assert Job.objects.get(pk=job.pk).status == "running"


def test_an_offer_of_a_run_canceled_meanwhile_ends_canceled(alice, service, runner):
    run = runs.create_run(actor(alice), "svc")
    offered = leases.claim(runner)
    assert offered is not None
    runs.cancel_run(actor(alice), "svc", run.number)
    assert leases.reap(clock=later(offers.ACK_SECONDS + 1)) == 1
    job = Job.objects.get(pk=offered.job.pk)
    assert (job.status, job.attempt, job.cancel_requested) == ("canceled", 0, True)
    run.refresh_from_db()
    assert run.status == "canceled"


def test_the_release_call_over_http(alice, service):
    _, token = runners.register_runner(SYSTEM, "r9", [])
    runs.create_run(actor(alice), "svc")
    client = Client(headers={"Authorization": f"Bearer {token}"})
    job = client.post("/api/runner/jobs/claim", {"wait": 0}, content_type="application/json")
    offered = job.json()
    path = f"/api/runner/jobs/{offered['id']}/release"
    given = client.post(path, headers={"X-Obeya-Lease": offered["lease_token"]})
    assert (given.status_code, given.json()) == (200, {"status": "queued"})
    again = client.post(path, headers={"X-Obeya-Lease": offered["lease_token"]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "stale_lease"
    assert Job.objects.get(pk=offered["id"]).attempt == 0


def _claim_scope(token: str) -> dict[str, Any]:
    path = "/api/runner/jobs/claim"
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


@pytest.mark.django_db(transaction=True)
def test_a_claim_whose_runner_hung_up_hands_out_nothing(alice, service):
    """A runner stopped while its long-poll waited: the job queued next is not its."""
    _, token = runners.register_runner(SYSTEM, "r-gone", [])
    handler = RequestHandler()
    scope = _claim_scope(token)
    statuses: list[int] = []
    body = json.dumps({"wait": 30}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}  # hung up

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def heard_the_hangup() -> bool:
        gone = scope.get(hangup.SCOPE_KEY)
        return isinstance(gone, threading.Event) and gone.is_set()

    def queue_a_run() -> None:
        try:
            runs.create_run(actor(alice), "svc")
        finally:
            connections.close_all()  # this helper thread's own connection

    async def exchange() -> None:
        answer = asyncio.create_task(handler(scope, receive, send))
        deadline = time.monotonic() + 10
        while not heard_the_hangup() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        # Queued while the long-poll of the runner that hung up may still be waiting.
        await asyncio.to_thread(queue_a_run)
        await answer

    try:
        asyncio.run(exchange())
    finally:
        handler.close()
    assert statuses == [204]
    assert not Job.objects.filter(status="running").exists()
    assert not JobAttempt.objects.exists()
