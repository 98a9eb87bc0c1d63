"""The event log's guards, lifted for a moment: for tests that play the attacker, and for
the test database's flush between transactional tests.

The database refuses UPDATE, DELETE and (PostgreSQL) TRUNCATE of ``core_event``
(core migration 0005). Someone with the database owner's rights can lift that, and so can
a test: on PostgreSQL by disabling the table's triggers, on SQLite by dropping them and
creating them again from the text SQLite keeps of each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "core_event"


def lift_statements(wrapper: BaseDatabaseWrapper) -> tuple[list[str], list[str]]:
    """The statements that lift the guards, and those that put them back."""
    if wrapper.vendor == "postgresql":
        # ALTER TABLE refuses while deferred foreign-key checks of the transaction's own
        # inserts are pending: check them now, and defer again after.
        return (
            ["SET CONSTRAINTS ALL IMMEDIATE", f"ALTER TABLE {TABLE} DISABLE TRIGGER USER"],
            [f"ALTER TABLE {TABLE} ENABLE TRIGGER USER", "SET CONSTRAINTS ALL DEFERRED"],
        )
    with wrapper.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s",
            [TABLE],
        )
        triggers = cursor.fetchall()
    return [f"DROP TRIGGER {name}" for name, _ in triggers], [sql for _, sql in triggers]


@contextmanager
def guards_lifted() -> Iterator[None]:
    """Inside, the test may UPDATE and DELETE events as an attacker with the database would."""
    lift, restore = lift_statements(connection)
    with connection.cursor() as cursor:
        for statement in lift:
            cursor.execute(statement)
        try:
            yield
        finally:
            for statement in restore:
                cursor.execute(statement)


def allow_flushing() -> None:
    """Let Django's flush (between transactional tests) empty the event log too."""
    operations = type(connection.ops)
    if getattr(operations.sql_flush, "lifts_event_guards", False):
        return
    original = operations.sql_flush

    def sql_flush(self: Any, style: Any, tables: Sequence[str], *args: Any, **kw: Any) -> list[str]:
        statements: list[str] = original(self, style, tables, *args, **kw)
        if TABLE not in tables or not statements:
            return statements
        lift, restore = lift_statements(self.connection)
        return [*lift, *statements, *restore]

    sql_flush.lifts_event_guards = True  # type: ignore[attr-defined]
    operations.sql_flush = sql_flush  # type: ignore[method-assign]
