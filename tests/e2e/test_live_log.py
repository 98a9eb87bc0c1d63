"""A job's log streams live to a signed-in person over server-sent events, secrets masked."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_server_crash import PASSWORD, admin_token, api_client, serving
from tests.pipelines.conftest import Repo
from tests.processes import OBEYA, clean_env, run_obeya

pytestmark = pytest.mark.e2e
SECRET = "hunter2-deploy-key"
SPEC = """\
jobs:
  count:
    stage: build
    script:
      - echo "deploying with $DEPLOY_KEY"
      - for i in 1 2 3 4 5; do echo line $i; sleep 0.4; done
"""


@dataclass(frozen=True)
class Event:
    """One server-sent event, with when it arrived (time.monotonic())."""

    at: float
    kind: str
    data: dict[str, Any]


def read_events(response: httpx.Response) -> Iterator[Event]:
    """The events of a text/event-stream response as they arrive; comments are skipped."""
    kind, data = "message", ""
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            yield Event(time.monotonic(), kind, json.loads(data))
            kind, data = "message", ""


@contextmanager
def signed_in(url: str, username: str, password: str) -> Iterator[httpx.Client]:
    """A browser-like session: the login form's CSRF cookie and token, then the session."""
    with httpx.Client(base_url=url, timeout=10) as client:
        client.get("/login/").raise_for_status()
        answer = client.post(
            "/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        assert answer.status_code == 302, answer.text
        yield client


def test_the_log_streams_while_the_job_runs_and_ends_with_its_status(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": SPEC}, "a job that counts slowly")
    env = clean_env(tmp_path / "data", OBEYA_RUNNERS="1")
    token = admin_token(env)

    with serving(env) as server, api_client(server.url, token) as api:
        api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        ).raise_for_status()
        api.put("/services/svc/secrets/DEPLOY_KEY", json={"value": SECRET}).raise_for_status()
        with signed_in(server.url, "ann", PASSWORD) as browser:
            job_id = api.post("/services/svc/runs", json={}).json()["jobs"][0]["id"]
            with browser.stream(
                "GET",
                f"/services/svc/jobs/{job_id}/log/events",
                params={"offset": 0},
                timeout=httpx.Timeout(10, read=30),
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                events = list(read_events(response))
        stored = api.get(f"/jobs/{job_id}/log").text

    logs = [event for event in events if event.kind == "log"]
    assert logs, f"the stream ended without a line of the log: {events}"
    assert [event.kind for event in events] == ["log"] * len(logs) + ["end"], events
    end = events[-1]
    assert end.data == {"status": "succeeded"}
    assert end.at - logs[0].at >= 1.0, "the log arrived only when the job was done"
    # The job prints "line 1" about 2 s before it ends: a live log shows it well before.
    lead = end.at - arrival(logs, "line 1\n")
    assert lead >= 1.0, f"line 1 arrived only {lead:.2f} s before the end: {logs}"
    offsets = [event.data["offset"] for event in logs]
    assert offsets == sorted(set(offsets)), offsets
    text = "".join(event.data["text"] for event in logs)
    positions = [text.index(f"line {i}\n") for i in range(1, 6)]
    assert positions == sorted(positions), text
    assert "deploying with [MASKED]" in text and SECRET not in text
    assert text == stored and offsets[-1] == len(stored.encode())


def test_a_stream_opened_while_the_job_waits_for_a_runner_follows_it(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": SPEC.replace("stage: build", "stage: build\n    runs_on: [late]")})
    env = clean_env(tmp_path / "data", OBEYA_RUNNERS="0")
    token = admin_token(env)
    registered = run_obeya("runners", "register", "late-box", env=env)
    runner_token = registered.stdout.strip().splitlines()[-1]

    with serving(env) as server, api_client(server.url, token) as api:
        api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        ).raise_for_status()
        with signed_in(server.url, "ann", PASSWORD) as browser:
            job = api.post("/services/svc/runs", json={}).json()["jobs"][0]
            assert (job["status"], job["attempt"]) == ("queued", 0)  # no runner has "late"
            with browser.stream(
                "GET",
                f"/services/svc/jobs/{job['id']}/log/events",
                params={"offset": 0},
                timeout=httpx.Timeout(10, read=30),
            ) as response:
                assert response.status_code == 200
                runner = subprocess.Popen(
                    [
                        OBEYA,
                        "runner",
                        "--server",
                        server.url,
                        "--token",
                        runner_token,
                        "--labels",
                        "late",
                        "--work-dir",
                        str(tmp_path / "work"),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    events = list(read_events(response))
                finally:
                    runner.send_signal(signal.SIGTERM)
                    runner.wait(20)

    logs = [event for event in events if event.kind == "log"]
    assert events[-1].data == {"status": "succeeded"}, events
    assert logs, f"the stream ended without a line of the log: {events}"
    lead = events[-1].at - arrival(logs, "line 1\n")
    assert lead >= 1.0, f"line 1 arrived only {lead:.2f} s before the end: {logs}"


def arrival(logs: list[Event], needle: str) -> float:
    """When ``needle`` was first complete in the text streamed so far."""
    text = ""
    for event in logs:
        text += event.data["text"]
        if needle in text:
            return event.at
    raise AssertionError(f"{needle!r} never arrived")
