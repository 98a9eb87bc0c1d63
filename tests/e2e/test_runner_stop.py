"""Stopping runners (RELIABILITY A7): real `obeya serve` and `obeya runner` processes.

A runner told to stop takes no job with it: stopped while idle, its pending long-poll
hands the next job to nobody; stopped mid-step, the step finishes and is reported, and
nothing new is started. Jobs here wait for the test to open a TCP port (bash's /dev/tcp,
which works inside the job sandbox), so a step lasts exactly as long as the test needs.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_server_crash import admin_token, api_client, serving, wait_for
from tests.pipelines.conftest import Repo
from tests.processes import OBEYA, clean_env, free_port, obeya_server, run_obeya

pytestmark = pytest.mark.e2e
LEASE_S = "600"  # a job stuck with a dead runner would stay stuck for the whole test
WAIT_S = 60.0


def _spec(port: int, runs_on: str) -> str:
    return f"""\
jobs:
  hold:
    stage: build
    {runs_on}
    script:
      - echo "holding attempt $OBEYA_JOB_ATTEMPT"
      - until (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; do sleep 0.05; done
      - echo "released"
"""


@contextmanager
def _released(port: int) -> Iterator[None]:
    """Open ``port``: every job waiting for it goes on."""
    with socket.create_server(("127.0.0.1", port)) as sock:
        sock.listen(16)
        yield


def _register(env: dict[str, str], name: str) -> str:
    made = run_obeya("runners", "register", name, "--labels", "remote", env=env)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def _runner(url: str, env: dict[str, str], token: str, work: Path, *extra: str) -> Any:
    command = [OBEYA, "runner", "--server", url, "--token", token, "--labels", "remote"]
    with work.with_suffix(".log").open("wb") as log:
        return subprocess.Popen(
            [*command, "--work-dir", str(work), *extra],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _job(api: httpx.Client, run: int) -> dict[str, Any]:
    listed = api.get(f"/services/svc/runs/{run}").json()["jobs"][0]
    detail: dict[str, Any] = api.get(f"/jobs/{listed['id']}").json()
    return detail


def _stop(process: Any) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], httpx.Client, int, Path]]:
    """A server without embedded runners, the service "svc" and a port its job waits on."""
    port = free_port()
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": _spec(port, "runs_on: [remote]")}, "one job that waits")
    env = clean_env(tmp_path / "data", OBEYA_LEASE_SECONDS=LEASE_S, OBEYA_RUNNERS="0")
    token = admin_token(env)
    with obeya_server(env) as url, api_client(url, token) as api:
        made = api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        )
        assert made.status_code == 201, made.text
        yield url, env, api, port, tmp_path


def _polling(api: httpx.Client, name: str) -> bool:
    """Whether runner ``name`` has been seen claiming (its long-poll is under way)."""
    return any(r["name"] == name and r["last_seen_at"] for r in api.get("/runners").json())


def test_a_runner_stopped_while_idle_takes_no_job_with_it(remote) -> None:
    url, env, api, port, tmp = remote
    first = _runner(url, env, _register(env, "first"), tmp / "first")
    second_token = _register(env, "second")
    try:
        wait_for(lambda: _polling(api, "first"), WAIT_S, "the first runner to poll")
        first.send_signal(signal.SIGTERM)
        assert first.wait(WAIT_S) == 0  # idle: nothing to drain

        api.post("/services/svc/runs", json={}).raise_for_status()
        second = _runner(url, env, second_token, tmp / "second")
        try:
            held = wait_for(
                lambda: (lambda j: j if j["status"] == "running" else None)(_job(api, 1)),
                WAIT_S,
                "a live runner to take the job (not one with a dead runner's 600 s lease)",
            )
            assert [(a["number"], a["runner"]) for a in held["attempts"]] == [(1, "second")]
            with _released(port):
                done = wait_for(
                    lambda: (lambda j: j if j["status"] == "succeeded" else None)(_job(api, 1)),
                    WAIT_S,
                    "the job to succeed",
                )
            assert done["attempt"] == 1  # the stopped runner spent no attempt
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(WAIT_S)
    finally:
        _stop(first)


def test_sigterm_mid_step_finishes_the_step_reports_it_and_starts_nothing_new(remote) -> None:
    url, env, api, port, tmp = remote
    # Two workers: one runs the step, the other waits in a long-poll when the signal comes.
    runner = _runner(url, env, _register(env, "box"), tmp / "box", "--concurrency", "2")
    try:
        api.post("/services/svc/runs", json={}).raise_for_status()
        first = wait_for(
            lambda: (lambda j: j if "holding" in api.get(f"/jobs/{j['id']}/log").text else None)(
                _job(api, 1)
            ),
            WAIT_S,
            "the step to start",
        )
        runner.send_signal(signal.SIGTERM)
        # Queued while the runner drains: its idle worker must not start it.
        api.post("/services/svc/runs", json={}).raise_for_status()
        with _released(port):
            assert runner.wait(WAIT_S) == 0
            done = _job(api, 1)
            assert (done["status"], done["attempt"]) == ("succeeded", 1)
            assert "released" in api.get(f"/jobs/{first['id']}/log").text
            waiting = _job(api, 2)
            assert waiting["attempts"] == [] and waiting["attempt"] == 0, waiting
            assert waiting["status"] == "queued"
    finally:
        _stop(runner)


def test_a_second_sigterm_stops_hard_and_the_job_runs_again(remote) -> None:
    url, env, api, _, tmp = remote
    runner = _runner(url, env, _register(env, "box"), tmp / "box")
    try:
        api.post("/services/svc/runs", json={}).raise_for_status()
        job = wait_for(
            lambda: (lambda j: j if "holding" in api.get(f"/jobs/{j['id']}/log").text else None)(
                _job(api, 1)
            ),
            WAIT_S,
            "the step to start",
        )
        runner.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining" in (tmp / "box.log").read_text(), WAIT_S, "the drain")
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(WAIT_S) == 1
        again = api.get(f"/jobs/{job['id']}").json()
        assert again["status"] == "queued" and again["attempt"] == 1
        assert (again["attempts"][0]["outcome"], again["attempts"][0]["reason"]) == (
            "error",
            "the runner shut down mid-job",
        )
    finally:
        _stop(runner)


def test_stopping_the_server_lets_its_embedded_runners_finish_the_step(tmp_path: Path) -> None:
    port = free_port()
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": _spec(port, "")}, "one job that waits")
    env = clean_env(tmp_path / "data", OBEYA_RUNNERS="1", OBEYA_LEASE_SECONDS=LEASE_S)
    token = admin_token(env)
    with serving(env) as first, api_client(first.url, token) as api:
        api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        ).raise_for_status()
        api.post("/services/svc/runs", json={}).raise_for_status()
        job = wait_for(
            lambda: (lambda j: j if "holding" in api.get(f"/jobs/{j['id']}/log").text else None)(
                _job(api, 1)
            ),
            WAIT_S,
            "the step to start",
        )
        first.process.terminate()
        with _released(port):
            first.process.wait(timeout=WAIT_S)

    with serving(env) as second, api_client(second.url, token) as api:
        done = api.get(f"/jobs/{job['id']}").json()
        assert (done["status"], done["attempt"]) == ("succeeded", 1), done
        assert "released" in api.get(f"/jobs/{job['id']}/log").text
