"""Upgrading a database whose events were written before the chain: the migration hashes
them in id order, and from then on the database refuses DELETE as well as UPDATE."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from obeya.core import audit, chain
from obeya.core.models import Event
from tests.conftest import SYSTEM

BEFORE = ("core", "0004_sign_in_attempt")


@pytest.mark.django_db(transaction=True)
def test_the_events_already_written_are_chained_by_the_migration() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    old = executor.loader.project_state([BEFORE]).apps.get_model("core", "Event")
    written = [
        old.objects.create(
            at=datetime(2026, 1, 5, 9, 30, n, 250_000 * n, tzinfo=UTC),
            actor_name="alice",
            channel="web",
            ip="127.0.0.1" if n else None,
            kind="thing.happened",
            subject=f"thing:{n}",
            data={"n": n, "nested": {"b": [1, 2.0], "a": "é"}},
        ).pk
        for n in range(3)
    ]
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_event SET kind = 'x.y'")  # 0002 guarded updates already

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    chained = list(Event.objects.filter(pk__in=written).order_by("id"))
    assert chained[0].prev_hash == chain.GENESIS
    assert [e.prev_hash for e in chained[1:]] == [e.hash for e in chained[:-1]]
    assert audit.verify(SYSTEM).ok
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM core_event WHERE id = %s", [written[0]])
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute("UPDATE core_event SET kind = 'x.y' WHERE id = %s", [written[0]])
    assert Event.objects.filter(pk__in=written).count() == 3


def _columns_and_guards() -> tuple[set[str], set[str]]:
    with connection.cursor() as cursor:
        table = connection.introspection.get_table_description(cursor, "core_event")
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'core_event'::regclass "
                "AND NOT tgisinternal"
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'core_event'"
            )
        return {column.name for column in table}, {name for (name,) in cursor.fetchall()}


@pytest.mark.django_db(transaction=True)
def test_undoing_the_migration_leaves_the_update_guard_of_before() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    columns, guards = _columns_and_guards()
    assert "hash" not in columns and "prev_hash" not in columns
    assert guards == {"core_event_append_only"}
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    columns, guards = _columns_and_guards()
    assert {"hash", "prev_hash"} <= columns and "core_event_no_delete" in guards
