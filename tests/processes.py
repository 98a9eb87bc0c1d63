"""Real `obeya` processes for tests: one-shot commands and servers on free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from obeya.runner import keeper

OBEYA = str(Path(sys.executable).with_name("obeya"))


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """An environment for a child `obeya`: its own data dir and config, embedded SQLite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBEYA_")}
    env.update(
        OBEYA_DATA_DIR=str(data_dir),
        XDG_CONFIG_HOME=str(data_dir / "config"),
        PYTHONWARNINGS="ignore",
    )
    env.update(extra)
    return env


def run_obeya(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OBEYA, *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def obeya_server(env: dict[str, str], *extra_args: str) -> Iterator[str]:
    """`obeya serve` on a free port; yields its base URL once /api/health answers."""
    port = free_port()
    log = Path(env["OBEYA_DATA_DIR"]) / f"serve-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                OBEYA,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-runners",
                *extra_args,
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"obeya serve exited {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"obeya serve did not answer: {log.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        keeper.stop_all(Path(env["OBEYA_DATA_DIR"]) / "keepers")  # and the services in them


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``server_url``; dropped after."""
    import psycopg

    name = f"obeya_t_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(server_url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def processes_with(token: str) -> list[int]:
    """This host's live processes whose command line holds ``token`` (zombies left out):
    how a test finds what a sandbox started, whose own pids mean nothing out here."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            running = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
            if running and token.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until_gone(token: str, timeout_s: float = 5.0) -> list[int]:
    """Wait for every process holding ``token`` to end; those still left at the timeout."""
    deadline = time.monotonic() + timeout_s
    while (left := processes_with(token)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left
