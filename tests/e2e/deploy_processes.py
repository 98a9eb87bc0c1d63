"""Real `obeya serve` processes that deploy, for the deployment e2e tests.

Each stack has its own data dir, a git repository whose pipeline packages a release, and a
service "svc". Environments are defined through the deploy services in a separate Python
process on the same database (as `obeya` admin verbs do), deployments are asked for by
pipeline runs over the HTTP API, and the tests read deployments straight from the
database, so they see exactly what the servers wrote.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.e2e.test_server_crash import Served, api_client, serving
from tests.pipelines.conftest import Repo
from tests.processes import clean_env, fresh_postgres_database, run_obeya

T = TypeVar("T")
LEASE_S = 3
TERMINAL = ("succeeded", "failed", "rolled_back", "outdated", "canceled", "rejected")

# One admin process sets a stack up: a user "ann" with a token, the service "svc" of the
# repository, and its environments (JSON on stdin); it prints the token.
SET_UP = """
import json, sys
from obeya.cli.local import prepare_database, setup_django
setup_django()
prepare_database()
from obeya.catalog import services as catalog
from obeya.core import services as core
from obeya.core.actors import Actor
from obeya.deploy import services as deploy
given = json.load(sys.stdin)
cli = Actor(user=None, channel="cli")
ann = core.create_user(cli, "ann", "a long enough password", is_admin=True)
_, token = core.create_token(cli, ann, name="e2e", scope="admin", days=1)
catalog.create_service(Actor(user=ann, channel="cli"), "svc", "Svc", repository_url=given["repo"])
for name, fields in given["environments"].items():
    deploy.create_environment(cli, "svc", name, **fields)
print(token)
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
        time.sleep(0.05)


@dataclass
class Stack:
    """One deployment set-up: its settings, admin token, repository and targets."""

    env: dict[str, str]
    token: str
    repo: Repo
    targets: Path
    database_url: str = ""
    processes: ExitStack = field(default_factory=ExitStack)

    @property
    def data(self) -> Path:
        return Path(self.env["OBEYA_DATA_DIR"])

    def target(self, name: str) -> Path:
        return self.targets / name

    # ---- reading the database ----

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of a read-only query written with %s placeholders, on SQLite or PostgreSQL."""
        if self.database_url:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as conn:
                return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]
        conn = sqlite3.connect(self.data / "obeya.sqlite3", timeout=20)
        try:
            return conn.execute(sql.replace("%s", "?"), params).fetchall()
        finally:
            conn.close()

    def deployments(self) -> list[dict[str, Any]]:
        columns = ("id", "status", "step", "sha", "version", "release_id", "reason", "kind")
        found = self.rows(f"SELECT {', '.join(columns)} FROM deploy_deployment ORDER BY id")
        return [dict(zip(columns, row, strict=True)) for row in found]

    def deployment(self, pk: int) -> dict[str, Any]:
        return next(d for d in self.deployments() if d["id"] == pk)

    def lease(self, environment: str) -> tuple[Any, ...]:
        [row] = self.rows(
            "SELECT lease_deployment, lease_token, lease_expires_at FROM deploy_environment "
            "WHERE name = %s",
            environment,
        )
        return tuple(row)

    def settled(self, pk: int, timeout_s: float = 60) -> dict[str, Any]:
        """Deployment ``pk`` once it has ended."""
        return wait_for(
            lambda: (d := self.deployment(pk))["status"] in TERMINAL and d,
            timeout_s,
            f"deployment {pk} to end",
        )

    def deployment_of_run(self, number: int, timeout_s: float = 60) -> int:
        """The id of the deployment run #``number`` asked for, once it exists."""

        def find() -> int | None:
            found = self.rows(
                "SELECT d.id FROM deploy_deployment d JOIN pipelines_run r ON d.run_id = r.id "
                "WHERE r.number = %s",
                number,
            )
            return int(found[0][0]) if found else None

        return wait_for(find, timeout_s, f"run #{number} to ask for its deployment")

    # ---- changing things ----

    def server_errors(self) -> list[str]:
        """Lines of the servers' logs where deploying, or a request, went wrong unexpectedly."""
        signs = ("ERROR obeya.deploy", "deadlock detected", "Internal Server Error")
        return [
            f"{log.name}: {line}"
            for log in sorted(self.data.glob("serve-*.log"))
            for line in log.read_text(errors="replace").splitlines()
            if any(sign in line for sign in signs)
        ]

    def api(self, server: Served) -> httpx.Client:
        return api_client(server.url, self.token)

    def run(self, server: Served, ref: str | None = None) -> int:
        """Start a pipeline run through ``server``'s API; its number."""
        with self.api(server) as api:
            made = api.post("/services/svc/runs", json={"ref": ref} if ref else {})
        assert made.status_code == 201, made.text
        return int(made.json()["number"])

    def start(self, count: int = 1, **settings: str) -> list[Served]:
        """``count`` `obeya serve` processes on this stack's database, started together
        (settings override the stack's); each is stopped when the stack ends, if the test
        did not kill it first."""
        servers = [serving({**self.env, **settings}) for _ in range(count)]
        with ThreadPoolExecutor(count) as pool:
            started = [pool.submit(server.__enter__) for server in servers]
        for server, future in zip(servers, started, strict=True):
            if future.exception() is None:
                self.processes.push(server.__exit__)
        return [future.result() for future in started]


def kill_9(served: Served) -> None:
    served.process.send_signal(signal.SIGKILL)
    served.process.wait()


@contextmanager
def deploying_stack(
    tmp_path: Path,
    files: dict[str, str],
    environments: dict[str, dict[str, Any]],
    *,
    postgres: str = "",
    **settings: str,
) -> Iterator[Stack]:
    """A stack whose repository holds ``files`` (obeya.yml among them), with the service
    "svc" and its ``environments`` (local targets under the test's tmp dir by default)."""
    repo = Repo(tmp_path / "repo")
    repo.commit(files, "first release")
    targets = tmp_path / "targets"
    environments = {
        name: {"tier": "staging", "target": {"kind": "local", "root": str(targets / name)}} | fields
        for name, fields in environments.items()
    }
    with _database(postgres) as url:
        defaults = {
            "OBEYA_LEASE_SECONDS": str(LEASE_S),
            "OBEYA_RUNNERS": "1",
            "OBEYA_DEPLOYERS": "1",
        }
        env = clean_env(tmp_path / "data", **{**defaults, **settings})
        if url:
            env["OBEYA_DATABASE_URL"] = url
            migrated = run_obeya("migrate", env=env, timeout=120)
            assert migrated.returncode == 0, migrated.stderr
        else:
            _copy_migrated_sqlite(tmp_path / "data" / "obeya.sqlite3")
        made = subprocess.run(
            [sys.executable, "-c", SET_UP],
            input=json.dumps({"repo": str(repo.path), "environments": environments}),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        stack = Stack(env, made.stdout.strip().splitlines()[-1], repo, targets, url)
        with stack.processes:
            yield stack


_template: list[Path] = []


def _copy_migrated_sqlite(database: Path) -> None:
    """Start ``database`` from a migrated copy: migrating a new SQLite file takes seconds,
    so each test process migrates one once (in a directory removed when it exits)."""
    if not _template:
        scratch = Path(tempfile.mkdtemp(prefix="obeya-migrated-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        migrated = run_obeya("migrate", env=clean_env(scratch), timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        _template.append(scratch / "obeya.sqlite3")
    database.parent.mkdir(parents=True, exist_ok=True)
    source, copy = sqlite3.connect(_template[0]), sqlite3.connect(database)
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()


@contextmanager
def _database(postgres: str) -> Iterator[str]:
    if not postgres:
        yield ""
        return
    with fresh_postgres_database(postgres) as url:
        yield url


def kill_recorded(pid_file: Path, marker: str) -> None:
    """End the processes whose ids a test app wrote to ``pid_file`` (one per line), if they
    still are that app (``marker`` in their command line: a pid may have been reused)."""
    if not pid_file.exists():
        return
    for line in pid_file.read_text().split():
        pid = int(line)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                break
            if marker.encode() not in command:
                break
            os.kill(pid, sig)
            time.sleep(0.2)
