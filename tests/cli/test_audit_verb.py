"""`obeya audit verify` as an operator runs it: real `obeya` processes on a fresh database,
tampered with as someone holding the database would (guards lifted, rows edited)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import clean_env, fresh_postgres_database, run_obeya

pytestmark = pytest.mark.e2e
POSTGRES = os.environ.get("OBEYA_TEST_POSTGRES_URL", "")
Tamper = Callable[[str, tuple[object, ...]], None]


def _sqlite(path: Path) -> Tamper:
    def tamper(sql: str, params: tuple[object, ...]) -> None:
        with sqlite3.connect(path) as db:
            triggers = db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'core_event'"
            ).fetchall()
            for name, _ in triggers:
                db.execute(f"DROP TRIGGER {name}")
            db.execute(sql.replace("%s", "?"), params)
            for _, text in triggers:
                db.execute(text)
        db.close()

    return tamper


def _postgres(url: str) -> Tamper:
    def tamper(sql: str, params: tuple[object, ...]) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as db:
            db.execute("ALTER TABLE core_event DISABLE TRIGGER USER")
            db.execute(sql, params)  # type: ignore[arg-type]
            db.execute("ALTER TABLE core_event ENABLE TRIGGER USER")

    return tamper


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, str], Tamper]]:
    """A fresh Obeya database with a few events, and a way to tamper with it."""
    env = clean_env(tmp_path / "data")
    if request.param == "sqlite":
        yield from _with_events(env, _sqlite(tmp_path / "data" / "obeya.sqlite3"))
        return
    if not POSTGRES:
        pytest.skip("needs OBEYA_TEST_POSTGRES_URL")
    with fresh_postgres_database(POSTGRES) as url:
        env["OBEYA_DATABASE_URL"] = url
        assert run_obeya("migrate", env=env).returncode == 0
        yield from _with_events(env, _postgres(url))


def _with_events(env: dict[str, str], tamper: Tamper) -> Iterator[tuple[dict[str, str], Tamper]]:
    made = run_obeya(
        "createuser", "ops", "--admin", "--password-stdin", env=env, stdin="a long enough one\n"
    )
    assert made.returncode == 0, made.stderr
    for name in ("first", "second", "third"):
        token = run_obeya("token", "create", "--user", "ops", "--name", name, env=env)
        assert token.returncode == 0, token.stderr
    yield env, tamper


def verify(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    result = run_obeya("audit", "verify", *args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout.strip().splitlines()


def test_a_whole_log_exits_0_with_a_one_line_summary(server: tuple[dict[str, str], Tamper]) -> None:
    env, _ = server
    code, lines = verify(env)
    assert code == 0, lines
    assert len(lines) == 1 and lines[0].startswith(
        "audit log intact: 4 events (#1 to #4), head #4 "
    )
    head = lines[0].rsplit(" ", 1)[1]
    assert verify(env, "--expect", f"4:{head}") == (0, lines)
    report = json.loads(run_obeya("audit", "verify", "--json", env=env).stdout)
    assert report["ok"] and report["head"] == head and report["problems"] == []


def test_a_changed_event_exits_1_naming_it(server: tuple[dict[str, str], Tamper]) -> None:
    env, tamper = server
    tamper("UPDATE core_event SET actor_name = %s WHERE id = %s", ("someone-else", 2))
    code, lines = verify(env)
    assert code == 1
    assert lines == [
        "event #2 was changed after it was written: its content no longer matches its hash",
        "audit log BROKEN: 1 problem(s) in 4 events",
    ]


def test_a_deleted_event_exits_1_naming_the_gap(server: tuple[dict[str, str], Tamper]) -> None:
    env, tamper = server
    code, lines = verify(env)
    head = lines[0].rsplit(" ", 1)[1]
    tamper("DELETE FROM core_event WHERE id = %s", (3,))
    code, lines = verify(env)
    assert code == 1
    assert lines[0].startswith("events are missing between #2 and #4: ")
    assert lines[-1] == "audit log BROKEN: 1 problem(s) in 3 events"
    # the newest event removed as well: only an anchor noted before can tell
    tamper("DELETE FROM core_event WHERE id = %s", (4,))
    assert verify(env)[0] == 0
    code, lines = verify(env, "--expect", f"4:{head}")
    assert code == 1 and lines[0].startswith("event #4 (noted with the hash ")


def test_a_bad_anchor_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_obeya("audit", "verify", "--expect", "4:xyz", env=clean_env(tmp_path / "data"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obeya: anchor '4:xyz': give EVENT_ID:HASH")
