"""`obeya serve` checkpoints the SQLite log in the background, not in the commits of
requests and jobs: within moments of a write, the database file alone holds it."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from obeya.pipelines.background import checkpoint
from tests.processes import clean_env, obeya_server, run_obeya

pytestmark = pytest.mark.e2e


def _services_in_file_alone(database: Path, copy: Path) -> list[str]:
    """The service slugs the database file holds without its log (-wal)."""
    shutil.copyfile(database, copy)
    with sqlite3.connect(copy) as alone:
        return [row[0] for row in alone.execute("SELECT slug FROM catalog_service")]


def test_a_write_reaches_the_database_file_without_waiting_for_1000_pages(tmp_path: Path):
    env = clean_env(tmp_path / "data")
    run_obeya(
        "createuser", "ada", "--admin", "--password-stdin", env=env, stdin="a long password\n"
    )
    token = run_obeya("token", "create", "--user", "ada", env=env).stdout.strip().splitlines()[-1]
    database = tmp_path / "data" / "obeya.sqlite3"
    with obeya_server(env) as url:
        made = httpx.post(
            f"{url}/api/services",
            json={"slug": "shop", "name": "Shop"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert made.status_code == 201, made.text
        deadline = time.monotonic() + 10
        while "shop" not in _services_in_file_alone(database, tmp_path / "alone.sqlite3"):
            assert time.monotonic() < deadline, "no checkpoint within 10 s of the write"
            time.sleep(0.1)
        # The server still runs: the log was copied by the checkpointer, not at a close.
        assert httpx.get(f"{url}/api/health").status_code == 200


def test_a_passive_checkpoint_copies_the_log_and_blocks_nobody(tmp_path: Path):
    path = tmp_path / "db.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.executescript(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x);"
    )
    keeper = sqlite3.connect(path, isolation_level=None)
    writer.execute("INSERT INTO t VALUES (1)")
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1,)  # holds a snapshot

    busy, frames, copied = checkpoint(keeper)
    assert (busy, frames > 0, copied == frames) == (0, True, True)
    writer.execute("INSERT INTO t VALUES (2)")  # not blocked by the checkpoint or the reader
    reader.execute("COMMIT")
    assert _count_in_file_alone(path, tmp_path / "copy.sqlite3") == 1
    for connection in (writer, keeper, reader):
        connection.close()


def _count_in_file_alone(database: Path, copy: Path) -> int:
    shutil.copyfile(database, copy)
    with sqlite3.connect(copy) as alone:
        return int(alone.execute("SELECT count(*) FROM t").fetchone()[0])
