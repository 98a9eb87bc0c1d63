"""RELIABILITY B2: a release whose /health answers 500 is rolled back, and the previous one
serves again, seen over HTTP.

The service is a real HTTP app (standard library only) in the repository. The environment's
``restart`` hook stops the running app and starts the one in ``current``, detached from the
deployer (setsid, nohup), on a free port; the app records its pid in ``shared/``. Version 1
is healthy. Version 2's /health answers 500: its warm-up fails, the deployer switches back,
restarts version 1, checks it, and the deployment ends ``rolled_back`` with an incident.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.deploy_processes import Stack, deploying_stack, kill_recorded, wait_for
from tests.processes import free_port

pytestmark = pytest.mark.e2e

SPEC = """\
stages: [package, staging]
jobs:
  package:
    stage: package
    script: [echo "packaging $(cat VERSION)"]
    artifacts: {paths: [VERSION, HEALTH, app.py]}
  to-staging:
    stage: staging
    environment: staging
    deploy: {artifact: package}
"""

APP = '''\
"""A tiny service: / says its version, /health answers the status in HEALTH."""
import http.server, os, sys, time

here = os.path.dirname(os.path.abspath(__file__))
version = open(os.path.join(here, "VERSION")).read().strip()
health = int(open(os.path.join(here, "HEALTH")).read().strip())
port, shared = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = health if self.path == "/health" else 200
        body = f"version {version}\\n".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


with open(os.path.join(shared, "pids"), "a") as pids:
    pids.write(f"{os.getpid()}\\n")
deadline = time.monotonic() + 10
while True:  # the stopped app may still hold the port for a moment
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
with open(os.path.join(shared, "app.pid"), "w") as pid:
    pid.write(str(os.getpid()))
server.serve_forever()
'''

# Stop the app that runs (if any), wait until it is gone, start the current one detached.
RESTART = """\
pidfile="$OBEYA_SHARED_DIR/app.pid"
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile"); rm -f "$pidfile"
  kill "$old" 2>/dev/null
  for _ in $(seq 100); do
    state=$(ps -o stat= -p "$old" 2>/dev/null)
    case "$state" in ""|Z*) break;; esac
    sleep 0.05
  done
fi
cd "$OBEYA_CURRENT_DIR"
setsid nohup {python} "$OBEYA_CURRENT_DIR/app.py" {port} "$OBEYA_SHARED_DIR" \\
  >>"$OBEYA_SHARED_DIR/app.log" 2>&1 </dev/null &
echo "started version $(cat VERSION)"
"""


def serving_version(port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    except httpx.HTTPError:
        return None
    return response.text.strip() if response.status_code == 200 else None


def test_a_release_whose_health_answers_500_is_rolled_back_and_v1_serves_again(
    tmp_path: Path,
) -> None:
    port = free_port()
    files = {"obeya.yml": SPEC, "app.py": APP, "VERSION": "1\n", "HEALTH": "200\n"}
    shared = tmp_path / "targets" / "staging" / "shared"
    staging = {
        # The hook runs in the target's sandbox, which sees the system's Python, not ours.
        "hooks": {"restart": RESTART.format(python="python3", port=port)},
        "health": {"kind": "http", "url": f"http://127.0.0.1:{port}/health"},
        "warmup_s": 4,  # room for the app to start on a busy machine; 500s fail it at the end
        "health_passes": 2,
        "health_interval_ms": 100,
        "hook_timeout_s": 30,
    }
    try:
        with deploying_stack(tmp_path, files, {"staging": staging}) as stack:
            _deploy_then_roll_back(stack, port)
    finally:  # the server is stopped by now: no restart hook starts another app
        kill_recorded(shared / "pids", "app.py")


def _deploy_then_roll_back(stack: Stack, port: int) -> None:
    [server] = stack.start()
    first = stack.settled(stack.deployment_of_run(stack.run(server)))
    assert first["status"] == "succeeded", first["reason"]
    assert serving_version(port) == "version 1"
    pid_of_v1 = (stack.target("staging") / "shared" / "app.pid").read_text()

    stack.repo.commit({"VERSION": "2\n", "HEALTH": "500\n"}, "version 2: /health is broken")
    second = stack.settled(stack.deployment_of_run(stack.run(server)))
    assert second["status"] == "rolled_back", second["reason"]
    assert "health check failed" in second["reason"], second["reason"]
    assert "HTTP 500" in second["reason"], second["reason"]
    assert f"rolled back to {first['release_id']}" in second["reason"]

    # The previous release takes traffic again: a new process of version 1.
    assert serving_version(port) == "version 1"
    assert (stack.target("staging") / "shared" / "app.pid").read_text() != pid_of_v1
    current = (stack.target("staging") / "current").readlink()
    assert current == Path("releases") / first["release_id"]
    assert stack.lease("staging")[1] == ""
    kinds = [
        row[0]
        for row in stack.rows(
            "SELECT kind FROM core_event WHERE subject = %s ORDER BY id",
            f"deployment:{second['id']}",
        )
    ]
    assert kinds[-3:] == ["deployment.switched", "deployment.failed", "deployment.rolled_back"]
    incident = wait_for(
        lambda: stack.rows("SELECT title FROM ops_incident WHERE source = %s", "deployment"),
        30,
        "the rolled-back deployment to open an incident",
    )
    assert "rolled back" in incident[0][0]
    log = "\n".join(
        row[0]
        for row in stack.rows(
            "SELECT line FROM deploy_deploymentlog WHERE deployment_id = %s ORDER BY id",
            second["id"],
        )
    )
    assert "started version 2" in log and "started version 1" in log
    assert stack.server_errors() == []
