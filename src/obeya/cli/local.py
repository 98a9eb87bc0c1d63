"""Set-up for the admin verbs that run on the server machine itself (no HTTP)."""

from __future__ import annotations

import os

from obeya.cli.output import fail


def setup_django() -> None:
    """Configure Django once, on first use: nothing is built at import time."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obeya.settings")
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as error:  # a malformed OBEYA_* setting
        fail(str(error))


def pending_migrations() -> list[str]:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def migrate(verbosity: int = 1) -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=verbosity)


def check_sqlite_durability() -> None:
    """Refuse to serve an embedded database that could lose a commit on power loss (A1)."""
    from django.db import connection

    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        synchronous = cursor.fetchone()[0]
        cursor.execute("PRAGMA journal_mode")
        journal = str(cursor.fetchone()[0]).lower()
    if synchronous != 2 or journal != "wal":
        fail(
            f"SQLite runs with synchronous={synchronous}, journal_mode={journal}; Obeya needs "
            "synchronous=FULL (2) and WAL so a commit survives a crash"
        )


def prepare_database() -> None:
    """Embedded SQLite migrates itself; PostgreSQL on an old schema refuses to start."""
    from django.db import OperationalError, connection

    try:
        pending = pending_migrations()
    except OperationalError as error:
        fail(f"cannot open the database: {error}")
    if pending:
        if connection.vendor == "sqlite":
            migrate(verbosity=0)
        else:
            fail(
                f"the database schema is out of date ({len(pending)} migrations pending, "
                f"first {pending[0]}): run: obeya migrate"
            )
    check_sqlite_durability()
