"""The chaos's `obeya serve`: set up, started, killed with its whole group, looked at while down."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.chaos.book import LEASE_S, Book
from tests.processes import OBEYA, clean_env, free_port, processes_with, run_obeya

START_S = 60.0  # for `obeya serve` to answer /api/health
GONE_S = 10.0  # for a killed server's processes, and its jobs', to be gone
PASSWORD = "chaos monkey password"
LINES = 'for i in $(seq 20); do echo "$OBEYA_JOB_NAME#$OBEYA_JOB_ATTEMPT line $i"; sleep 0.05; done'
JOBS = [("compile", "build"), ("lint", "build"), ("unit", "test"), ("smoke", "test")]
SPEC = "stages: [build, test, package]\njobs:\n" + "".join(
    f"  {name}:\n    stage: {stage}\n    script:\n      - '{LINES}'\n"
    for name, stage in [*JOBS, ("package", "package")]
)


def setup(root: Path) -> dict[str, str]:
    """A git repository holding the pipeline; a data dir with an administrator, whose API
    token is left in root/token. Returns the server's environment."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    (repo / "obeya.yml").write_text(SPEC)
    who = ["-c", "user.name=Chaos", "-c", "user.email=chaos@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "chaos"]):
        subprocess.run(["git", "-C", str(repo), *who, *args], check=True, capture_output=True)
    env = clean_env(root / "data", OBEYA_LEASE_SECONDS=str(LEASE_S), OBEYA_RUNNERS="2")
    made = run_obeya("createuser", "chaos", "--admin", "--password-stdin", env=env, stdin=PASSWORD)
    token = run_obeya("token", "create", "--user", "chaos", env=env)
    if made.returncode or token.returncode:
        raise RuntimeError(f"could not make a user and token: {made.stderr}{token.stderr}")
    (root / "token").write_text(token.stdout.strip().splitlines()[-1])
    return env


class Server:
    """`obeya serve` (embedded SQLite, embedded runners, web workers) in a process group of
    its own, so that one SIGKILL takes all of it; started again on the same data dir."""

    def __init__(self, root: Path) -> None:
        self.root, self.env = root, setup(root)
        self.process: subprocess.Popen[bytes] | None = None
        self.started = datetime.now(UTC)
        self.killed = threading.Event()

    def start(self) -> httpx.Client:
        """Start it on a free port; an API client once /api/health answers."""
        port = free_port()
        with (self.root / "serve.log").open("ab") as output:
            self.process = subprocess.Popen(
                [OBEYA, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started, url = datetime.now(UTC), f"http://127.0.0.1:{port}"
        self.killed.clear()
        deadline = time.monotonic() + START_S
        while not _answers(f"{url}/api/health"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"obeya serve did not start: see {self.root / 'serve.log'}")
            time.sleep(0.05)
        token = (self.root / "token").read_text()
        return httpx.Client(
            base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def kill(self) -> None:
        """SIGKILL to the whole group; returns once none of it is left."""
        assert self.process is not None
        self.killed.set()  # first: the requests that fail from here on were meant to
        with suppress(ProcessLookupError):  # it died by itself (while_up says so)
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + GONE_S
        while _group_members(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, and time to drain; SIGKILL if that does not end it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def check_while_down(self, book: Book) -> None:
        """No job's process outlived the server, and the database file is sound."""
        data = str(self.root / "data")  # jobs run in workspaces under it
        deadline = time.monotonic() + GONE_S
        while (left := processes_with(data)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in left:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:160]
            book.violate([(f"orphan {pid}", f"process {pid} outlived the server: {command!r}")])
        # Read-only: the restarted server must find the files as the kill left them.
        database = f"file:{self.root / 'data' / 'obeya.sqlite3'}?mode=ro"
        with sqlite3.connect(database, uri=True, timeout=10) as conn:
            found = conn.execute("PRAGMA integrity_check").fetchall()
        conn.close()
        if found != [("ok",)]:
            book.violate([(f"integrity {book.kills}", f"after kill {book.kills}: {found}")])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _group_members(group: int) -> list[int]:
    """Live (not zombie) processes of process group ``group``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] not in "ZX":
            found.append(int(entry.name))
    return found
