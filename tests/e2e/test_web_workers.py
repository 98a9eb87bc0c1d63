"""`obeya serve` answering HTTP from several processes on one port (OBEYA_WEB_WORKERS).

The main process runs the background work (embedded runners, deployers); its web workers
only answer HTTP. What a request to a web worker asks for is found by the main process in
the database: a run's job is picked up by an embedded runner, a deployment is started by
the deployer. A web worker that dies is started again; when the server stops or dies, its
web workers go with it.

Which process answered is read from /proc: the one holding the connection's socket.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import closing, suppress
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.deploy_processes import Stack, deploying_stack, wait_for
from tests.e2e.test_server_crash import Served, api_client, serving
from tests.processes import clean_env

pytestmark = pytest.mark.e2e
SPEC = """\
stages: [package, staging]
jobs:
  package:
    stage: package
    script: [echo "packaging $(cat VERSION)"]
    artifacts: {paths: [VERSION]}
  to-staging:
    stage: staging
    environment: staging
    deploy: {artifact: package}
    when: manual
"""
# A job queued by a web worker waits for the embedded runner's next look at the database
# (every 0.5 s); a deployment for the deployer's (every 0.5 s). The rest is a loaded machine.
PICKED_UP_WITHIN_S = 5.0


def web_workers(server: int) -> set[int]:
    """The web workers of the `obeya serve` process ``server``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            if parent == server and b"--http-only" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
    return found


def answered_by(response: httpx.Response, candidates: set[int]) -> int | None:
    """Which of ``candidates`` holds the server's end of the connection ``response`` came on."""
    stream = response.extensions["network_stream"]
    client = stream.get_extra_info("client_addr")[1]
    server = stream.get_extra_info("server_addr")[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        ports = (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16))
        if ports == (server, client):
            inode = fields[9]
    for pid in candidates:
        with suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with suppress(OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
    return None


def client_on(served: Served, token: str, wanted: set[int], timeout_s: float = 30) -> httpx.Client:
    """An API client whose (kept-alive) connection one of the processes ``wanted`` accepted."""
    everyone = wanted | {served.process.pid} | web_workers(served.process.pid)

    def connect() -> httpx.Client | None:
        client = api_client(served.url, token)
        if answered_by(client.get("/health").raise_for_status(), everyone) in wanted:
            return client
        client.close()
        return None

    return wait_for(connect, timeout_s, f"a connection accepted by one of {sorted(wanted)}")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Served]]:
    """One `obeya serve` with two processes, an embedded runner and a deployer."""
    root = tmp_path_factory.mktemp("web-workers")
    files = {"obeya.yml": SPEC, "VERSION": "1\n"}
    with deploying_stack(root, files, {"staging": {}}, OBEYA_WEB_WORKERS="2") as made:
        [served] = made.start()
        yield made, served


def test_two_processes_answer_on_one_port(stack: tuple[Stack, Served]) -> None:
    made, served = stack
    main = served.process.pid
    workers = wait_for(lambda: web_workers(main), 10, "the web worker to start")
    assert len(workers) == 1
    client_on(served, made.token, workers).close()
    client_on(served, made.token, {main}).close()


def test_what_a_web_worker_is_asked_for_is_done_by_the_main_process(
    stack: tuple[Stack, Served],
) -> None:
    made, served = stack
    workers = wait_for(lambda: web_workers(served.process.pid), 10, "the web worker to start")
    with closing(client_on(served, made.token, workers)) as api:
        created = api.post("/services/svc/runs", json={})
        assert created.status_code == 201, created.text
        number = created.json()["number"]
        package = (
            "SELECT j.queued_at, j.started_at FROM pipelines_job j JOIN pipelines_run r"
            " ON j.run_id = r.id WHERE r.number = %s AND j.name = 'package'"
            " AND j.status = 'succeeded'"
        )
        [(queued, started)] = wait_for(
            lambda: made.rows(package, number), 60, "the embedded runner to run the package job"
        )
        assert (at(started) - at(queued)).total_seconds() < PICKED_UP_WITHIN_S

        asked = api.post("/services/svc/environments/staging/deploy", json={})
        assert asked.status_code == 201, asked.text
        deployment = made.settled(asked.json()["id"])
    assert deployment["status"] == "succeeded", deployment
    [(requested, began)] = made.rows(
        "SELECT requested_at, started_at FROM deploy_deployment WHERE id = %s", deployment["id"]
    )
    assert (at(began) - at(requested)).total_seconds() < PICKED_UP_WITHIN_S
    assert made.server_errors() == []


def test_a_web_worker_that_dies_is_started_again(stack: tuple[Stack, Served]) -> None:
    made, served = stack
    main = served.process.pid
    [dead] = wait_for(lambda: web_workers(main), 10, "the web worker to start")
    os.kill(dead, signal.SIGKILL)
    [again] = wait_for(lambda: web_workers(main) - {dead}, 15, "a new web worker")
    client_on(served, made.token, {again}).close()
    assert f"web worker {dead} exited with signal SIGKILL" in served.log.read_text()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_web_workers_end_with_their_server(tmp_path: Path, stop: signal.Signals) -> None:
    env = clean_env(tmp_path / "data", OBEYA_RUNNERS="0", OBEYA_DEPLOYERS="0")
    with serving(env, "--workers", "3") as served:
        main = served.process.pid
        workers = wait_for(
            lambda: len(found := web_workers(main)) == 2 and found, 10, "the web workers to start"
        )
        served.process.send_signal(stop)
        served.process.wait(timeout=20)

        def gone() -> bool:
            for pid in workers:
                with suppress(FileNotFoundError):
                    state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
                    if state != "Z":
                        return False
            return True

        wait_for(gone, 15, f"web workers {sorted(workers)} to end after {stop.name}")
    assert served.process.returncode == -stop, served.log.read_text()
