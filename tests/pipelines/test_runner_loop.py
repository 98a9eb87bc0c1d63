"""The real runner loop against this process's server, as the embedded runners run it.

Requests go through `InProcessTransport`: the same routes, authentication and views a
remote runner reaches. Jobs run real bash in real git checkouts.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from obeya.pipelines import leases, runners, runs, secrets_store
from obeya.pipelines.background import InProcessTransport
from obeya.pipelines.models import Job, JobAttempt, Run
from obeya.runner import main
from obeya.runner.client import ServerClient
from obeya.runner.main import RunnerLoop
from tests.conftest import SYSTEM, actor
from tests.pipelines.conftest import Repo

pytestmark = pytest.mark.django_db(transaction=True)


class CountingTransport(InProcessTransport):
    """Counts calls by their last path segment, and the jobs handed back by `complete`."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.handed_back = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[request.url.path.rsplit("/", 1)[-1]] += 1
        response = super().handle_request(request)
        if request.url.path.endswith("/complete"):
            response.read()
            if response.status_code == 200 and response.json().get("next"):
                self.handed_back += 1
        return response


Start = Callable[..., tuple[RunnerLoop, CountingTransport]]


@pytest.fixture
def start_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Start]:
    monkeypatch.setattr(main, "CLAIM_WAIT_S", 0.5)  # idle workers notice a stop quickly
    started: list[tuple[RunnerLoop, list[Any]]] = []

    def start(labels: list[str] | None = None) -> tuple[RunnerLoop, CountingTransport]:
        _, token = runners.register_runner(SYSTEM, f"box-{len(started)}", ["linux"])
        transport = CountingTransport()
        client = ServerClient("http://127.0.0.1", token, transport=transport)
        loop = RunnerLoop(client, tmp_path / f"work-{len(started)}", 1, labels)
        started.append((loop, loop.start()))
        return loop, transport

    yield start
    for loop, threads in started:
        loop.abort(timeout_s=20)
        for thread in threads:
            thread.join(20)


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def run_status(number: int) -> str:
    return str(Run.objects.get(service__slug="svc", number=number).status)


def log_of(job: Job) -> str:
    """The log of the job's latest attempt, as stored now."""
    return leases.log_bytes(Job.objects.get(pk=job.pk)).decode()


SPEC = """\
stages: [build, test]
jobs:
  build:
    stage: build
    script:
      - echo "building $OBEYA_COMMIT_SHA"
      - mkdir -p dist reports && echo built > dist/app.txt
      - printf '<testsuite name="u"><testcase name="t"/></testsuite>' > reports/u.xml
    artifacts: {paths: [dist/]}
    reports: {junit: reports/*.xml}
  unit:
    stage: test
    script: [test ! -e dist, echo unit]
  lint:
    stage: test
    script: [echo lint]
"""


def test_a_run_goes_green_each_result_bringing_the_next_job(
    alice, service, repo: Repo, start_runner: Start
):
    repo.commit({"obeya.yml": SPEC})
    _, transport = start_runner()
    run = runs.create_run(actor(alice), "svc")
    wait_for(lambda: run_status(run.number) == "succeeded", "the run to succeed")

    jobs = {job.name: job for job in Job.objects.filter(run=run)}
    assert f"building {run.sha}" in log_of(jobs["build"])
    for job in jobs.values():
        assert job.attempt == 1
        assert "[obeya-runner] finished: succeeded" in log_of(job)
        stored = JobAttempt.objects.get(job=job, number=1)
        assert stored.log_size == len(leases.log_bytes(job))
    assert jobs["build"].artifacts.get().paths == ["dist/app.txt"]
    assert jobs["build"].test_cases.count() == 1
    # build's result brought unit or lint, whose result brought the other one.
    assert transport.handed_back == 2
    assert transport.calls["claim"] >= 1


ASK = """\
jobs:
  ask:
    stage: build
    script:
      - "printf 'Continue? [y/N] '"
      - 'printf "token=%s" "${TOKEN:0:7}"; sleep 1; printf "%s\\n" "${TOKEN:7}"'
      - sleep 60
"""


def test_a_partial_line_shows_while_the_job_still_runs(
    alice, service, repo: Repo, start_runner: Start, settings
):
    settings.OBEYA_LEASE_SECONDS = 3  # heartbeats every second: the cancel lands soon
    secrets_store.set_secret(actor(alice), "svc", "TOKEN", "zq-very-secret-value")
    repo.commit({"obeya.yml": ASK})
    start_runner()
    run = runs.create_run(actor(alice), "svc")
    job = Job.objects.get(run=run)

    wait_for(lambda: "Continue? [y/N] " in log_of(job), "the prompt to show without a newline")
    wait_for(lambda: "token=[MASKED]\n" in log_of(job), "the secret's second half")
    runs.cancel_run(actor(alice), "svc", run.number)
    wait_for(lambda: run_status(run.number) == "canceled", "the cancel")
    assert "zq-very" not in log_of(job)


def test_a_runner_shutting_down_mid_job_gives_the_job_back(
    alice, service, repo: Repo, start_runner: Start
):
    repo.commit({"obeya.yml": "jobs:\n  slow:\n    stage: build\n    script: [sleep 60]\n"})
    loop, _ = start_runner()
    run = runs.create_run(actor(alice), "svc")
    job = Job.objects.get(run=run)
    # the runner's own first log line: it holds the job (claimed is not yet enough; a job
    # claimed as the runner goes away comes back when its lease expires)
    wait_for(lambda: "attempt 1 of run" in log_of(job), "the runner to start the job")

    loop.abort(timeout_s=30)

    job.refresh_from_db()
    assert (job.status, job.attempt) == ("queued", 1)
    first = JobAttempt.objects.get(job=job, number=1)
    assert (first.outcome, first.reason) == ("error", "the runner shut down mid-job")


def test_a_paused_runner_claims_nothing_until_resumed(alice, service):
    runner, token = runners.register_runner(SYSTEM, "pausable", [])
    runners.set_paused(SYSTEM, runner.pk, True)
    runs.create_run(actor(alice), "svc")
    client = ServerClient("http://127.0.0.1", token, transport=InProcessTransport())
    assert client.claim(0) is None
    runners.set_paused(SYSTEM, runner.pk, False)
    assert client.claim(0) is not None
