"""RELIABILITY A2: `kill -9` of `obeya serve` mid-job never leaves a run "running" unowned.

The server runs its own embedded runner, so the kill takes the runner with it. After a
restart on the same data dir, the reaper finds the job's expired lease, the job is retried
as attempt 2 and the run succeeds; what attempt 1 logged before the kill is kept, and the
SQLite file is intact.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from obeya.pipelines.background import REAP_INTERVAL_S
from tests.pipelines.conftest import Repo
from tests.processes import OBEYA, clean_env, free_port, run_obeya

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
LEASE_S = 3
SPEC = """\
jobs:
  slow:
    stage: build
    script:
      - echo "started attempt $OBEYA_JOB_ATTEMPT"
      - sleep 3
      - echo done
"""
T = TypeVar("T")


@dataclass(frozen=True)
class Served:
    """A running `obeya serve` with embedded runners: its process, address and output."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path


@contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[Served]:
    """`obeya serve ARGS` with the embedded runners OBEYA_RUNNERS asks for, on a free port."""
    port = free_port()
    log = Path(env["OBEYA_DATA_DIR"]) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [OBEYA, "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    served = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(lambda: _healthy(served), 30, "`obeya serve` to answer /api/health")
        yield served
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _healthy(served: Served) -> bool:
    if served.process.poll() is not None:
        raise AssertionError(f"obeya serve exited {served.process.returncode}: {served.log}")
    try:
        return httpx.get(f"{served.url}/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(probe: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def admin_token(env: dict[str, str]) -> str:
    """An API token of a new administrator "ann", made with the admin verbs."""
    made = run_obeya("createuser", "ann", "--admin", "--password-stdin", env=env, stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    created = run_obeya("token", "create", "--user", "ann", env=env)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def api_client(url: str, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def _running_with_an_expired_lease(database: Path) -> list[tuple[str, str]]:
    """Jobs the database calls running with no lease, or one that has run out."""
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(database, timeout=10) as conn:
        rows = conn.execute(
            "SELECT name, lease_expires_at FROM pipelines_job WHERE status = 'running'"
        ).fetchall()
    conn.close()
    return [(name, until) for name, until in rows if until is None or until < now]


def _running_job(api: httpx.Client) -> int | None:
    jobs = api.get("/services/svc/runs/1").json()["jobs"]
    return next((job["id"] for job in jobs if job["status"] == "running"), None)


def _finished_run(api: httpx.Client) -> dict[str, Any] | None:
    run: dict[str, Any] = api.get("/services/svc/runs/1").json()
    return None if run["status"] in {"created", "running"} else run


def test_kill_9_of_the_server_mid_job_retries_the_job_after_the_restart(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"obeya.yml": SPEC}, "one slow job")
    data = tmp_path / "data"
    env = clean_env(data, OBEYA_LEASE_SECONDS=str(LEASE_S), OBEYA_RUNNERS="1")
    token = admin_token(env)
    database = data / "obeya.sqlite3"

    with serving(env) as first, api_client(first.url, token) as api:
        api.post(
            "/services", json={"slug": "svc", "name": "Svc", "repository_url": str(repo.path)}
        ).raise_for_status()
        api.post("/services/svc/runs", json={}).raise_for_status()
        job_id = wait_for(lambda: _running_job(api), 20, "the job to start")
        wait_for(
            lambda: "started attempt 1" in api.get(f"/jobs/{job_id}/log").text,
            10,
            "attempt 1 to flush its first line",
        )
        first.process.kill()  # SIGKILL: the embedded runner's threads die with the server
        first.process.wait()

    # Nothing checkpointed the WAL or closed the file: it must still be a sound database.
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()

    with serving(env) as second, api_client(second.url, token) as api:
        restarted = time.monotonic()
        wait_for(
            lambda: api.get(f"/jobs/{job_id}").json()["attempt"] >= 2,
            LEASE_S + REAP_INTERVAL_S + 10,
            "the reaper to give the lost job to a new attempt",
        )
        reaped_after = time.monotonic() - restarted
        assert _running_with_an_expired_lease(database) == []
        run = wait_for(lambda: _finished_run(api), 30, "the run to finish")
        job = api.get(f"/jobs/{job_id}").json()
        first_log = api.get(f"/jobs/{job_id}/log", params={"attempt": 1}).text
        second_log = api.get(f"/jobs/{job_id}/log", params={"attempt": 2}).text

    assert reaped_after < LEASE_S + REAP_INTERVAL_S + 5, reaped_after
    assert run["status"] == "succeeded", run
    assert (job["status"], job["attempt"]) == ("succeeded", 2)
    assert [a["outcome"] for a in job["attempts"]] == ["lost", "succeeded"]
    assert job["attempts"][0]["reason"].startswith("runner lost"), job["attempts"][0]
    assert "started attempt 1" in first_log and "done" not in first_log
    assert "started attempt 2" in second_log and "\ndone\n" in second_log
    assert [j["status"] for j in run["jobs"]] == ["succeeded"]
    assert _running_with_an_expired_lease(database) == []
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
