"""The demo's deployments: hello-service in staging and production on local ports.

`obeya demo` defines the two environments (local targets in the data dir, a restart hook
that starts the service, an HTTP health check) and prepares a `release/1.1` branch whose
release needs a config file that was provisioned in staging only. `obeya demo --serve`
then lets a director play the people: once the pipeline of main has deployed to staging,
the gatekeeper approves production; once production runs, the developer runs the pipeline
of `release/1.1`, which passes staging; the gatekeeper approves it for production, where
its warm-up fails and Obeya rolls production back to 1.0.0 by itself (an incident opens).
The metrics then have a real failed production deployment, its recovery, and a defect
that passed staging.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.core.errors import ObeyaError

log = logging.getLogger("obeya.demo")
SLUG = "hello-service"
PORTS = {"staging": 8101, "production": 8102}
RELEASE_BRANCH = "release/1.1"
DIRECTOR_TICK_S = 1.0
DIRECTOR_PATIENCE_S = 900.0

# Starts the service from `current`, after stopping the one before (its pid is in shared/).
RESTART = """\
pidfile="$OBEYA_SHARED_DIR/app.pid"
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  kill "$old" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
fi
cd "$OBEYA_CURRENT_DIR"
PORT={port} HELLO_CONFIG="$OBEYA_SHARED_DIR/hello.json" \\
  setsid nohup python3 -m hello.app >>"$OBEYA_SHARED_DIR/app.log" 2>&1 </dev/null &
echo $! >"$pidfile"
# A service that cannot start (its port taken by another process) must fail the restart,
# not leave the other process to answer the health check.
sleep 0.5
if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "hello-service did not start (port {port} taken?):"; tail -n 3 "$OBEYA_SHARED_DIR/app.log"
  exit 1
fi
"""

# Release 1.1 reads its greeting from the file HELLO_CONFIG names, and says it is unhealthy
# when that file is missing: the tests never set HELLO_CONFIG, so they pass; the
# environments set it to a file nobody provisioned, so the warm-up fails.
CONFIG_PATCH = (
    "hello/app.py",
    "class Handler(BaseHTTPRequestHandler):\n",
    "def config_ok() -> bool:\n"
    '    """1.1: the greeting comes from the file HELLO_CONFIG names, which must exist."""\n'
    '    path = os.environ.get("HELLO_CONFIG")\n'
    "    return not path or os.path.exists(path)\n"
    "\n\n"
    "class Handler(BaseHTTPRequestHandler):\n",
)
HEALTH_PATCH = (
    "hello/app.py",
    '        if url.path == "/health":\n',
    '        if url.path == "/health" and not config_ok():\n'
    '            self._send(503, json.dumps({"status": "config missing", "version": version()}),\n'
    '                       "application/json")\n'
    '        elif url.path == "/health":\n',
)


def environments(echo: Callable[[str], None]) -> None:
    """Staging and (protected) production for hello-service, defined by the administrator:
    a local environment's loopback health URL is reached only once an administrator
    approved it (obeya.deploy.reach), and the demo's monitors check the same URLs."""
    from obeya.deploy import services as deploy

    if deploy.list_environments(SLUG).exists():
        return
    admin = Actor(user=core.get_user("admin"), channel="cli")
    root = Path(settings.DATA_DIR) / "deploy" / SLUG
    for position, (name, port) in enumerate(PORTS.items(), start=1):
        production = name == "production"
        deploy.create_environment(
            admin,
            SLUG,
            name,
            tier=name,
            position=position * 10,
            protected=production,
            required_approvals=1 if production else 0,
            target={"kind": "local", "root": str(root / name)},
            health={"kind": "http", "url": f"http://127.0.0.1:{port}/health"},
            hooks={"restart": RESTART.replace("{port}", str(port))},
            warmup_s=10,
            health_passes=3,
            health_interval_ms=300,
            retention=5,
        )
    # Release 1.1's config file, provisioned by hand in staging only: production was
    # forgotten, so 1.1 passes staging and fails its warm-up in production.
    shared = root / "staging" / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    (shared / "hello.json").write_text('{"greeting": "Hello"}\n')
    echo(
        f"  environments of {SLUG}: staging on http://127.0.0.1:{PORTS['staging']}/, "
        f"production on http://127.0.0.1:{PORTS['production']}/ (protected)"
    )


def release_branch(repo: Path, commit: Callable[[Path, str, str, str], None]) -> None:
    """The release/1.1 branch of the demo repository (its config need fails production's
    warm-up: the file is provisioned in staging only)."""
    from obeya.pipelines.git import git

    if git("branch", "--list", RELEASE_BRANCH, cwd=repo):
        return
    git("checkout", "-q", "-b", RELEASE_BRANCH, "main", cwd=repo)
    for path, old, new in (CONFIG_PATCH, HEALTH_PATCH):
        source = repo / path
        text = source.read_text()
        if old not in text:
            raise RuntimeError(f"the demo patch no longer fits {path}: update demo_deploy.py")
        source.write_text(text.replace(old, new, 1))
    (repo / "VERSION").write_text("1.1.0\n")
    commit(repo, "Release 1.1.0: greeting from a config file", "bob", "1 hour ago")
    git("checkout", "-q", "main", cwd=repo)


def _step() -> bool:
    """One look at the demo's deployments; True once the director has nothing left to do."""
    from obeya import demo_ops
    from obeya.deploy import services as deploy
    from obeya.pipelines import services as pipelines

    demo_ops.enable_deployed_monitors()
    production = deploy.list_deployments(SLUG, "production")
    waiting = production.filter(status="waiting_approval").first()
    if waiting is not None:
        carol = Actor(user=core.get_user("carol"), channel="web")
        deploy.decide(
            carol,
            waiting.pk,
            "Staging is healthy and the change log is clear: approved for production.",
        )
        return False
    if pipelines.list_runs(SLUG, RELEASE_BRANCH).exists():
        ended = production.filter(status__in=["rolled_back", "failed"]).exists()
        return ended and all(monitor.enabled for monitor in demo_ops.monitors())
    if production.filter(status="succeeded").exists():
        bob = Actor(user=core.get_user("bob"), channel="cli")
        pipelines.create_run(bob, SLUG, RELEASE_BRANCH, trigger="manual")
    return False


def _direct(stop: threading.Event) -> None:
    waited = 0.0
    while waited < DIRECTOR_PATIENCE_S and not stop.wait(DIRECTOR_TICK_S):
        waited += DIRECTOR_TICK_S
        try:
            close_old_connections()
            if _step():
                return
        except ObeyaError as error:
            log.warning("demo director: %s", error.message)
        except Exception:  # the demo must never take the server down
            log.exception("demo director failed")
            return
        finally:
            close_old_connections()


def start_director() -> threading.Event:
    """Play the demo's people in the background while `obeya demo --serve` runs."""
    stop = threading.Event()
    threading.Thread(target=_direct, args=(stop,), name="demo-director", daemon=True).start()
    return stop
