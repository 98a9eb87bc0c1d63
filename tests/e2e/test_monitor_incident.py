"""A stopped hello-service opens an incident by itself within two intervals.

A real tiny HTTP service (standard library, its own process, a free port) and a real
`obeya serve` on its own data dir. An HTTP monitor on the app's /health at the shortest
interval passes; the app is killed; the scheduler's failing checks open an incident from
source "monitor" before a deadline computed from the monitor's own settings. The app comes
back: the incident's timeline gains the monitor's recovery and the incident stays open
(recovering never resolves it).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.processes import clean_env, free_port, obeya_server, run_obeya

pytestmark = pytest.mark.e2e
PASSWORD = "a long enough password"
SLUG = "hello-service"
MONITOR = "production-health"
T = TypeVar("T")

APP = """\
import http.server, sys, time

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok"}' if self.path == "/health" else b"hello"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

deadline = time.monotonic() + 10
while True:  # the killed app's socket may hold the port for a moment
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Health)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
server.serve_forever()
"""


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


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def hello_service(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The tiny app on ``port``, answering /health; killed when the block ends."""
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/health"), 15, "the app to answer")
        yield app
    finally:
        if app.poll() is None:
            app.kill()
        app.wait(timeout=10)


def admin_token(env: dict[str, str]) -> str:
    made = run_obeya("createuser", "ann", "--admin", "--password-stdin", env=env, stdin=PASSWORD)
    assert made.returncode == 0, made.stderr
    created = run_obeya("token", "create", "--user", "ann", env=env)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def _monitor(api: httpx.Client) -> dict[str, Any]:
    response = api.get(f"/services/{SLUG}/monitors/{MONITOR}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _monitor_incidents(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get(f"/services/{SLUG}/incidents")
    assert response.status_code == 200, response.text
    return [i for i in response.json()["items"] if i["source"] == "monitor"]


def _incident(api: httpx.Client, number: int) -> dict[str, Any]:
    response = api.get(f"/services/{SLUG}/incidents/{number}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_stopped_hello_service_opens_an_incident_by_itself_within_two_intervals(
    tmp_path: Path,
) -> None:
    env = clean_env(tmp_path / "data", OBEYA_RUNNERS="0")
    token = admin_token(env)
    port = free_port()
    health = f"http://127.0.0.1:{port}/health"
    with (
        obeya_server(env) as url,
        httpx.Client(
            base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as api,
    ):
        # The app runs before the monitor exists, so no check fails before the kill.
        with hello_service(port) as app:
            made = api.post("/services", json={"slug": SLUG, "name": "Hello service"})
            assert made.status_code == 201, made.text
            # Served on this machine: its local environment, whose loopback health URL the
            # administrator approves by creating it, is what the monitor may reach.
            made = api.post(
                f"/services/{SLUG}/environments",
                json={
                    "name": "production",
                    "target": {"kind": "local", "root": str(tmp_path / "production")},
                    "health": {"kind": "http", "url": health},
                },
            )
            assert made.status_code == 201, made.text
            made = api.post(
                f"/services/{SLUG}/monitors",
                json={
                    "name": MONITOR,
                    "kind": "http",
                    "url": health,
                    "contains": '"status": "ok"',
                    "interval_s": 5,  # the shortest interval a monitor may have
                    "timeout_s": 2,
                    "failure_threshold": 2,
                },
            )
            assert made.status_code == 201, made.text
            interval = float(made.json()["interval_s"])
            threshold = int(made.json()["failure_threshold"])
            check_timeout = float(made.json()["timeout_s"])
            # The first failing check comes at most one interval after the kill, and each check
            # the threshold still needs one interval later; each may take its timeout. One more
            # interval of slack keeps a loaded machine from failing the test.
            deadline = (threshold + 1) * interval + threshold * check_timeout

            wait_for(
                lambda: _monitor(api)["last_ok"] is True,
                interval + check_timeout + 30,
                "the monitor to pass against the running app",
            )
            assert _monitor_incidents(api) == []
            app.kill()
            app.wait(timeout=10)
            stopped = time.monotonic()
            opened = wait_for(
                lambda: _monitor_incidents(api),
                deadline,
                f"an incident from the monitor within {deadline:.0f} s of the app stopping",
            )
            took = time.monotonic() - stopped
        assert len(opened) == 1, opened
        incident = opened[0]
        assert (incident["status"], incident["monitor"]) == ("open", MONITOR), incident
        failing = _monitor(api)
        assert failing["last_ok"] is False and failing["consecutive_failures"] >= threshold
        print(f"incident INC-{incident['number']} opened {took:.1f} s after the app stopped")

        with hello_service(port):
            detail = wait_for(
                lambda: _recovered(_incident(api, incident["number"])),
                interval + check_timeout + 30,
                "the monitor's recovery on the incident's timeline",
            )
        assert detail["status"] == "open", detail  # recovering never resolves the incident
        assert detail["resolved_at"] is None
        assert [i["number"] for i in _monitor_incidents(api)] == [incident["number"]]
        kinds = [entry["kind"] for entry in detail["timeline"]]
        assert kinds.index("incident.opened") < kinds.index("incident.monitor_recovered")


def _recovered(incident: dict[str, Any]) -> dict[str, Any] | None:
    """The incident once its timeline says the monitor recovered, else None."""
    for entry in incident["timeline"]:
        if entry["kind"] == "incident.monitor_recovered" and "recovered" in entry["what"]:
            return incident
    return None
