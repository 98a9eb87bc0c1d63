"""Obeya's own database, backed up and restored by Obeya (it eats its own cooking).

SQLite goes through the online backup API, so a copy taken while the server writes is
consistent; the copy is checked (``PRAGMA quick_check``) and written beside the target,
then renamed into place. PostgreSQL goes through ``pg_dump -Fc`` and ``pg_restore --clean
--if-exists`` in one transaction. A restore refuses a database that already holds data
unless forced. ``drill_obeya`` rehearses the whole round trip into a scratch place and
compares every table's row count with the backup's.

A backup leaves out the rows of ``django_session``: a live session key is a password for
as long as it lasts. With a passphrase the file is encrypted (``continuity_crypt``); secret
values inside stay sealed with the secrets key, which is never in a backup.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

from obeya.core.errors import Conflict, InvalidInput
from obeya.ops import continuity_crypt as crypt

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
# Tables Django fills by itself on a fresh migrate: rows there do not make a database "used".
BOOKKEEPING = frozenset({"django_migrations", "django_content_type", "auth_permission"})
# Tables whose rows a backup never holds: browser sessions (a session key signs anyone in).
LEFT_OUT = ("django_session",)
DJANGO_ONLY_OPTIONS = frozenset(
    {"isolation_level", "server_side_binding", "pool", "assume_role", "cursor_factory"}
)


@dataclass(frozen=True)
class Copy:
    """A backup or restore that happened: where, how big, and the rows per table."""

    engine: str
    path: Path
    size_bytes: int
    counts: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def describe(self, verb: str) -> str:
        return (
            f"{verb} the {self.engine} database ({len(self.counts)} tables, "
            f"{self.rows} rows) {'to' if verb == 'backed up' else 'from'} {self.path} "
            f"({self.size_bytes} bytes)"
        )


def engine() -> str:
    return "sqlite" if connection.vendor == "sqlite" else "postgresql"


def _sqlite_path() -> Path:
    return Path(str(settings.DATABASES["default"]["NAME"]))


# ---- backup ------------------------------------------------------------------------------


def backup(target: Path, *, passphrase: str | None = None) -> Copy:
    """Write a consistent copy of Obeya's database to ``target`` (replaced atomically),
    without sessions; encrypted under ``passphrase`` when one is given."""
    if passphrase is not None:
        crypt.check_passphrase(passphrase)
    target = target.expanduser().resolve()
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent} is not a directory: create it first", field="file")
    if engine() == "sqlite":
        live = _sqlite_path().resolve()
        if target.name.startswith(live.name) and target.parent == live.parent:
            raise InvalidInput(
                f"{target} is the live database (or its journal): back up to another file",
                field="file",
            )
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    sealed = target.with_name(f".{target.name}.{secrets.token_hex(4)}.sealed")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # secrets inside
    try:
        counts = _backup_sqlite(partial) if engine() == "sqlite" else _backup_postgres(partial)
        if passphrase is not None:
            fd = os.open(sealed, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                crypt.encrypt_file(partial, handle, passphrase)
            partial.unlink()
            sealed.rename(partial)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, target)
        _fsync_dir(target.parent)
    finally:
        partial.unlink(missing_ok=True)
        sealed.unlink(missing_ok=True)
    return Copy(engine(), target, target.stat().st_size, counts)


def _backup_sqlite(partial: Path) -> dict[str, int]:
    live = _sqlite_path()
    if not live.is_file():
        raise InvalidInput(f"there is no database at {live} yet: nothing to back up")
    source = sqlite3.connect(live, timeout=20)
    copy = sqlite3.connect(partial)
    try:
        source.backup(copy)
        present = {name for (name,) in copy.execute("SELECT name FROM sqlite_master")}
        for table in LEFT_OUT:
            if table in present:
                copy.execute(f"DELETE FROM {_identifier(table)}")  # noqa: S608 (a constant)
        copy.commit()
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside
        # VACUUM rewrites the file, so the deleted rows leave no trace in free pages.
        copy.execute("VACUUM")
        checked = copy.execute("PRAGMA quick_check").fetchone()[0]
        if checked != "ok":
            raise Conflict(f"the copy of {live} failed its integrity check: {checked}")
        return _sqlite_counts(copy)
    finally:
        copy.close()
        source.close()


def _backup_postgres(partial: Path) -> dict[str, int]:
    """``pg_dump`` of a snapshot, with each table counted in that same snapshot."""
    conninfo, env = _libpq()
    with _psycopg() as conn:  # its own connection: Django's may be inside a transaction
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        counts = _postgres_counts(conn)
        left_out = [f"--exclude-table-data={table}" for table in LEFT_OUT]
        _tool(
            [
                "pg_dump",
                "-Fc",
                f"--snapshot={snapshot}",
                *left_out,
                "-f",
                str(partial),
                "--dbname",
                conninfo,
            ],
            env,
        )
        conn.execute("COMMIT")
    return {name: 0 if name in LEFT_OUT else rows for name, rows in counts.items()}


# ---- restore -----------------------------------------------------------------------------


def restore(source: Path, *, force: bool = False, passphrase: str | None = None) -> Copy:
    """Load a backup made by ``backup`` into Obeya's database (an encrypted one with the
    ``passphrase`` it was made with).

    Refuses a database that already holds data unless ``force``: then it is replaced.
    """
    source = source.expanduser().resolve()
    if not crypt.is_encrypted(source):
        return _restore_plain(source, source, force)
    if passphrase is None:
        raise InvalidInput(
            f"{source} is encrypted: give its passphrase (--passphrase-file, or "
            "OBEYA_BACKUP_PASSPHRASE)",
            field="passphrase",
        )
    scratch_root = Path(settings.DATA_DIR)
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="restore-", dir=scratch_root))  # mode 0700
    try:
        plain = scratch / "obeya.backup"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            crypt.decrypt_file(source, handle, passphrase)
        done = _restore_plain(plain, source, force)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Copy(done.engine, source, source.stat().st_size, done.counts)


def _restore_plain(source: Path, named: Path, force: bool) -> Copy:
    """Restore the unencrypted backup ``source`` (``named`` is the file the user gave)."""
    kind = backup_kind(source)
    if kind != engine():
        where = (
            "with OBEYA_DATABASE_URL empty (the embedded SQLite)"
            if kind == "sqlite"
            else "with OBEYA_DATABASE_URL set to a PostgreSQL database"
        )
        raise InvalidInput(
            f"{named} is a {kind} backup but this Obeya uses {engine()}: restore it {where}",
            field="file",
        )
    if kind == "sqlite":
        return restore_sqlite(source, _sqlite_path(), force=force)
    with _psycopg() as conn:
        used = _used_tables(_postgres_counts(conn))
    connection.close()
    _refuse_used(used, str(settings.DATABASES["default"]["NAME"]), force)
    return _restore_postgres(source, None)


def backup_kind(source: Path) -> str:
    """``sqlite`` or ``postgresql``, from the file's first bytes."""
    try:
        with source.open("rb") as handle:
            head = handle.read(16)
    except OSError as error:
        raise InvalidInput(f"cannot read {source}: {error.strerror}", field="file") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "postgresql"
    raise InvalidInput(
        f"{source} is not an Obeya backup (neither SQLite nor pg_dump custom format)",
        field="file",
    )


def restore_sqlite(source: Path, database: Path, *, force: bool) -> Copy:
    with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as backup_db:
        checked = backup_db.execute("PRAGMA quick_check").fetchone()[0]
        if checked != "ok":
            raise InvalidInput(f"{source} failed its integrity check: {checked}", field="file")
        counts = _sqlite_counts(backup_db)
        if "django_migrations" not in counts:
            raise InvalidInput(f"{source} is an SQLite file but not an Obeya database")
        database.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(database, timeout=20)) as target:
            _refuse_used(_used_tables(_sqlite_counts(target)), str(database), force)
            # The backup API replaces the whole database through SQLite itself, so a -wal
            # file beside it can never be replayed over the restored pages.
            backup_db.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
            restored = _sqlite_counts(target)
    return Copy("sqlite", source, source.stat().st_size, restored)


def _restore_postgres(source: Path, dbname: str | None) -> Copy:
    conninfo, env = _libpq(dbname)
    _tool(
        [
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-acl",
            "--single-transaction",
            "--dbname",
            conninfo,
            str(source),
        ],
        env,
    )
    with _psycopg(dbname) as conn:
        counts = _postgres_counts(conn)
    return Copy("postgresql", source, source.stat().st_size, counts)


def _used_tables(counts: dict[str, int]) -> dict[str, int]:
    return {name: rows for name, rows in counts.items() if rows and name not in BOOKKEEPING}


def _refuse_used(used: dict[str, int], where: str, force: bool) -> None:
    if used and not force:
        some = ", ".join(f"{name} ({rows})" for name, rows in sorted(used.items())[:3])
        raise Conflict(
            f"the database {where} already holds data ({len(used)} tables with rows: "
            f"{some}{', …' if len(used) > 3 else ''}): restore into an empty one, or pass "
            "--force to replace it"
        )


# ---- the drill for Obeya itself ----------------------------------------------------------


@dataclass
class SelfDrill:
    """Obeya's own recovery, rehearsed: backed up, restored apart, every table counted."""

    engine: str
    passed: bool
    duration_s: float
    backup_bytes: int
    tables: int
    rows: int
    mismatches: list[str] = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "passed": self.passed,
            "duration_s": round(self.duration_s, 3),
            "backup_bytes": self.backup_bytes,
            "tables": self.tables,
            "rows": self.rows,
            "mismatches": self.mismatches,
            "detail": self.detail,
        }


def drill_obeya(scratch_root: Path | None = None) -> SelfDrill:
    """Back Obeya's database up to a file, restore it into a scratch data dir (SQLite) or
    a scratch database (PostgreSQL), and check every table has the backup's row count.

    Nothing of the live database is changed; the scratch place is removed afterwards.
    """
    root = scratch_root or Path(settings.DATA_DIR) / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="drill-obeya-", dir=root))
    started = time.monotonic()
    try:
        made = backup(scratch / "obeya.backup")
        if made.engine == "sqlite":
            restored = restore_sqlite(made.path, scratch / "data" / "obeya.sqlite3", force=False)
        else:
            restored = _restore_into_scratch_database(made.path)
        duration = time.monotonic() - started
    except (InvalidInput, Conflict) as error:
        return SelfDrill(engine(), False, time.monotonic() - started, 0, 0, 0, [], error.message)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    mismatches = [
        f"{name}: {made.counts.get(name)} in the backup, {restored.counts.get(name)} restored"
        for name in sorted(set(made.counts) | set(restored.counts))
        if made.counts.get(name) != restored.counts.get(name)
    ]
    passed = not mismatches
    detail = (
        f"restored {len(restored.counts)} tables, {restored.rows} rows, all counts match"
        if passed
        else f"{len(mismatches)} tables differ after the restore"
    )
    return SelfDrill(
        made.engine,
        passed,
        duration,
        made.size_bytes,
        len(restored.counts),
        restored.rows,
        mismatches,
        detail,
    )


def _restore_into_scratch_database(dump: Path) -> Copy:
    import psycopg
    from psycopg import sql

    name = f"{settings.DATABASES['default']['NAME']}_drill_{secrets.token_hex(4)}"[:63]
    with _psycopg() as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as error:
            raise Conflict(
                f"cannot create a scratch database for the drill: {error}".strip()
                + " (the database user needs CREATEDB)"
            ) from None
    try:
        return _restore_postgres(dump, name)
    finally:
        with _psycopg() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ---- plumbing ----------------------------------------------------------------------------


def _sqlite_counts(db: sqlite3.Connection) -> dict[str, int]:
    names = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    # Names come from the database's own catalog, quoted as identifiers.
    return {
        name: db.execute(f"SELECT count(*) FROM {_identifier(name)}").fetchone()[0]  # noqa: S608
        for name in names
    }


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _postgres_counts(conn: Any) -> dict[str, int]:
    from psycopg import sql

    names = [
        row[0]
        for row in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        )
    ]
    count = sql.SQL("SELECT count(*) FROM {}")
    return {name: conn.execute(count.format(sql.Identifier(name))).fetchone()[0] for name in names}


def _libpq(dbname: str | None = None) -> tuple[str, dict[str, str]]:
    """A libpq connection string for Obeya's database (without the password, which goes
    in the environment, so it never shows in a process list)."""
    db: dict[str, Any] = settings.DATABASES["default"]
    params = {
        "dbname": dbname or db["NAME"],
        "user": db.get("USER"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
        **{k: v for k, v in (db.get("OPTIONS") or {}).items() if k not in DJANGO_ONLY_OPTIONS},
    }
    conninfo = " ".join(
        f"{key}={_quoted(str(value))}" for key, value in params.items() if value not in (None, "")
    )
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    return conninfo, env


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@contextlib.contextmanager
def _psycopg(dbname: str | None = None, *, autocommit: bool = True) -> Iterator[Any]:
    import psycopg

    conninfo, _ = _libpq(dbname)
    password = str(settings.DATABASES["default"].get("PASSWORD") or "") or None
    with psycopg.connect(conninfo, autocommit=autocommit, password=password) as conn:
        yield conn


def _tool(argv: list[str], env: dict[str, str]) -> None:
    if shutil.which(argv[0]) is None:
        raise InvalidInput(
            f"{argv[0]} is not installed: install PostgreSQL's client tools "
            "(Debian: apt-get install postgresql-client)"
        )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise Conflict(
            f"{argv[0]} failed (exit code {done.returncode}): "
            f"{lines[-1] if lines else 'no message'}"
        )


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
