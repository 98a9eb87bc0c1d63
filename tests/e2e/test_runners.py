"""Real processes: `obeya serve` plus `obeya runner`, a git repository, kill -9 mid-step."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.pipelines.conftest import Repo
from tests.processes import OBEYA, clean_env, obeya_server, run_obeya

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"

SPEC = """\
stages: [build, test]
jobs:
  build:
    stage: build
    runs_on: [remote]
    script:
      - echo "built $OBEYA_COMMIT_SHA"
      - mkdir -p dist reports && echo "$OBEYA_COMMIT_SHA" > dist/VERSION
      - printf '<testsuite name="u"><testcase name="test_ok"/></testsuite>' > reports/u.xml
    artifacts: {paths: [dist/]}
    reports: {junit: reports/*.xml}
  slow:
    stage: test
    runs_on: [remote]
    script:
      - echo "before the kill"
      - sleep 4
      - echo "after the sleep"
"""


def _wait(predicate, timeout_s: float = 40.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stack(tmp_path: Path):
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": SPEC}, "first")
    env = clean_env(tmp_path / "data", OBEYA_LEASE_SECONDS="3", OBEYA_RUNNERS="0")
    run_obeya("createuser", "ann", "--admin", "--password-stdin", env=env, stdin=PASSWORD)
    token = run_obeya("token", "create", "--user", "ann", env=env).stdout.strip().splitlines()[-1]
    runner_token = run_obeya("runners", "register", "box", env=env).stdout.strip().splitlines()[-1]
    with obeya_server(env) as url:
        api = httpx.Client(base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"})
        api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        ).raise_for_status()
        yield url, env, api, runner_token, tmp_path
        api.close()


def _start_runner(url, env, token, work: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            OBEYA,
            "runner",
            "--server",
            url,
            "--token",
            token,
            "--labels",
            "remote",
            "--work-dir",
            str(work),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _job(api, name):
    run = api.get("/services/svc/runs/1").json()
    return next(job for job in run["jobs"] if job["name"] == name)


def test_a_remote_runner_runs_the_pipeline(stack):
    url, env, api, runner_token, tmp = stack
    runner = _start_runner(url, env, runner_token, tmp / "work")
    try:
        started = api.post("/services/svc/runs", json={}).json()
        assert started["number"] == 1
        _wait(
            lambda: api.get("/services/svc/runs/1").json()["status"] == "succeeded",
            what="the run to succeed",
        )
        build = _job(api, "build")
        log = api.get(f"/jobs/{build['id']}/log").text
        assert f"built {started['sha']}" in log
        stored = api.get(f"/jobs/{build['id']}/artifacts").json()
        assert stored[0]["paths"] == ["dist/VERSION"]
        blob = api.get(f"/jobs/{build['id']}/artifacts/artifacts")
        assert hashlib.sha256(blob.content).hexdigest() == stored[0]["sha256"]
        tests = api.get("/services/svc/runs/1/tests").json()
        assert (tests["total"], tests["passed"]) == (1, 1)
        runners = api.get("/runners").json()
        assert runners[0]["name"] == "box" and runners[0]["online"]
        assert runners[0]["labels"] == ["remote"]
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(20)


def test_kill_9_of_a_runner_mid_step_loses_the_job_and_another_runner_retries_it(stack):
    url, env, api, runner_token, tmp = stack
    first = _start_runner(url, env, runner_token, tmp / "work1")
    api.post("/services/svc/runs", json={}).raise_for_status()
    slow = _wait(
        lambda: (lambda j: j if j["status"] == "running" else None)(_job(api, "slow")),
        what="the slow job to start",
    )
    _wait(
        lambda: "before the kill" in api.get(f"/jobs/{slow['id']}/log").text,
        what="the first line to be flushed",
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    second = _start_runner(url, env, runner_token, tmp / "work2")
    try:
        _wait(
            lambda: api.get("/services/svc/runs/1").json()["status"] == "succeeded",
            timeout_s=60,
            what="the retried run to succeed",
        )
        job = api.get(f"/jobs/{slow['id']}").json()
        assert job["attempt"] == 2
        assert [a["outcome"] for a in job["attempts"]] == ["lost", "succeeded"]
        first_log = api.get(f"/jobs/{slow['id']}/log", params={"attempt": 1}).text
        assert "before the kill" in first_log and "after the sleep" not in first_log
        events = api.get("/events", params={"kind": "job.", "limit": 50}).json()["items"]
        assert any(e["kind"] == "job.started" and e["data"]["attempt"] == 2 for e in events)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)


def test_the_cli_starts_a_run_and_waits(stack):
    url, env, api, runner_token, tmp = stack
    runner = _start_runner(url, env, runner_token, tmp / "work")
    token = api.headers["Authorization"].removeprefix("Bearer ")
    cli = {**env, "OBEYA_URL": url, "OBEYA_TOKEN": token}
    try:
        result = run_obeya("pipeline", "run", "svc", "--wait", "--json", env=cli, timeout=90)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "succeeded"
        logs = run_obeya("logs", str(json.loads(result.stdout)["jobs"][0]["id"]), env=cli)
        assert "built" in logs.stdout
        listed = run_obeya("pipeline", "list", "svc", env=cli)
        assert "succeeded" in listed.stdout
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(20)


def test_the_cli_pauses_and_resumes_a_runner(stack):
    url, env, api, _, _ = stack
    made = run_obeya("token", "create", "--user", "ann", "--scope", "admin", env=env)
    admin = {**env, "OBEYA_URL": url, "OBEYA_TOKEN": made.stdout.strip().splitlines()[-1]}
    writer = {**admin, "OBEYA_TOKEN": api.headers["Authorization"].removeprefix("Bearer ")}

    paused = run_obeya("runners", "pause", "box", env=admin)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == "runner box paused"
    listed = json.loads(run_obeya("runners", "list", "--json", env=admin).stdout)
    assert [(r["name"], r["paused"]) for r in listed] == [("box", True)]
    assert "paused" in run_obeya("runners", "list", env=admin).stdout

    refused = run_obeya("runners", "resume", "box", env=writer)
    assert refused.returncode != 0 and "admin-scope token" in refused.stderr
    unknown = run_obeya("runners", "pause", "nobody", env=admin)
    assert unknown.returncode != 0 and 'no runner named "nobody"' in unknown.stderr

    resumed = run_obeya("runners", "resume", "box", "--json", env=admin)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["paused"] is False


SLOW_EMBEDDED = """\
jobs:
  slow:
    stage: build
    script:
      - echo "started attempt $OBEYA_JOB_ATTEMPT"
      - sleep 30
"""


def test_stopping_the_server_hard_mid_job_hands_the_job_back(tmp_path: Path):
    """Two SIGTERMs of `obeya serve` (the first drains, the second stops now): its embedded
    runner reports the job as an infrastructure error (not canceled), so it runs again
    after the restart, without waiting for a lease."""
    from tests.e2e.test_server_crash import admin_token, api_client, serving, wait_for

    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": SLOW_EMBEDDED}, "one slow job")
    env = clean_env(tmp_path / "data", OBEYA_RUNNERS="1", OBEYA_LEASE_SECONDS="600")
    token = admin_token(env)
    with serving(env) as first, api_client(first.url, token) as api:
        api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        ).raise_for_status()
        api.post("/services/svc/runs", json={}).raise_for_status()
        job_id = wait_for(
            lambda: next((j["id"] for j in _job_list(api) if j["status"] == "running"), None),
            30,
            "the job to start",
        )
        first.process.terminate()
        wait_for(lambda: "shutting down" in first.log.read_text(), 30, "the drain to start")
        first.process.terminate()
        first.process.wait(timeout=30)  # uvicorn exits by the signal it caught: -15

    with serving(env) as second, api_client(second.url, token) as api:
        job = wait_for(
            lambda: (lambda j: j if j["status"] == "running" else None)(
                api.get(f"/jobs/{job_id}").json()
            ),
            30,
            "attempt 2 to start (a 600 s lease: no reaper involved)",
        )
        assert job["attempt"] == 2
        first_attempt = job["attempts"][0]
        assert (first_attempt["outcome"], first_attempt["reason"]) == (
            "error",
            "the runner shut down mid-job",
        )
        api.post("/services/svc/runs/1/cancel").raise_for_status()


def _job_list(api):
    return api.get("/services/svc/runs/1").json()["jobs"]
