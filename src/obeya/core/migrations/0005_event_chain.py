"""The event log becomes a hash chain, and the database refuses DELETE too (issue #13, audit).

1. The UPDATE guard of 0002 is lifted for the length of this migration: the events already
   written get their hashes, chained in id order, by an UPDATE each.
2. Two columns: ``prev_hash`` and ``hash`` (see ``obeya.core.chain``).
3. The guards, all refusing with "events are append-only": UPDATE and DELETE of a row on
   SQLite and PostgreSQL, and TRUNCATE of the table on PostgreSQL.

On SQLite, adding a column that is NOT NULL rebuilds the table, which drops its triggers:
any later migration that rebuilds ``core_event`` must create the guards again
(tests/core/test_audit_chain.py checks they exist).
"""

from django.db import migrations, models

from obeya.core import chain

SQLITE_UPDATE = """
CREATE TRIGGER core_event_append_only BEFORE UPDATE ON core_event
BEGIN SELECT RAISE(ABORT, 'events are append-only: UPDATE refused'); END;
"""
SQLITE_DELETE = """
CREATE TRIGGER core_event_no_delete BEFORE DELETE ON core_event
BEGIN SELECT RAISE(ABORT, 'events are append-only: DELETE refused'); END;
"""
POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION core_event_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'events are append-only: % refused', TG_OP; END;
$$ LANGUAGE plpgsql;
"""
POSTGRES_UPDATE = """
CREATE TRIGGER core_event_append_only BEFORE UPDATE ON core_event
FOR EACH ROW EXECUTE FUNCTION core_event_append_only();
"""
POSTGRES_DELETE = """
CREATE TRIGGER core_event_no_delete BEFORE DELETE ON core_event
FOR EACH ROW EXECUTE FUNCTION core_event_append_only();
"""
POSTGRES_TRUNCATE = """
CREATE TRIGGER core_event_no_truncate BEFORE TRUNCATE ON core_event
FOR EACH STATEMENT EXECUTE FUNCTION core_event_append_only();
"""
SQLITE_GUARDS = (SQLITE_UPDATE, SQLITE_DELETE)
POSTGRES_GUARDS = (POSTGRES_UPDATE, POSTGRES_DELETE, POSTGRES_TRUNCATE)
BATCH = 1000


def _execute(schema_editor, statements):
    """Run ``statements[vendor]``, one statement at a time (SQLite takes no more), without
    parameters (PL/pgSQL's ``%`` is no placeholder)."""
    for statement in statements.get(schema_editor.connection.vendor, []):
        schema_editor.execute(statement, None)


def lift_update_guard(apps, schema_editor):
    _execute(
        schema_editor,
        {
            "sqlite": ["DROP TRIGGER IF EXISTS core_event_append_only"],
            "postgresql": ["DROP TRIGGER IF EXISTS core_event_append_only ON core_event"],
        },
    )


def restore_update_guard(apps, schema_editor):
    _execute(
        schema_editor,
        {
            "sqlite": ["DROP TRIGGER IF EXISTS core_event_append_only", SQLITE_UPDATE],
            "postgresql": [POSTGRES_FUNCTION, POSTGRES_UPDATE],
        },
    )


def chain_existing_events(apps, schema_editor):
    """Hash every event already written, oldest first, each chained to the one before."""
    Event = apps.get_model("core", "Event")
    names = ("id", *chain.CONTENT)
    previous, after = chain.GENESIS, 0
    with schema_editor.connection.cursor() as cursor:
        while True:
            batch = list(
                Event.objects.filter(id__gt=after).order_by("id").values_list(*names)[:BATCH]
            )
            if not batch:
                return
            updates = []
            for row in batch:
                content = dict(zip(chain.CONTENT, row[1:], strict=True))
                content["ip"] = content["ip"] or None
                digest = chain.digest(content, previous)
                updates.append((previous, digest, row[0]))
                previous = digest
            cursor.executemany(
                "UPDATE core_event SET prev_hash = %s, hash = %s WHERE id = %s", updates
            )
            after = batch[-1][0]


def create_guards(apps, schema_editor):
    _execute(
        schema_editor,
        {
            # (a rebuild of the table dropped 0002's trigger already on SQLite)
            "sqlite": ["DROP TRIGGER IF EXISTS core_event_append_only", *SQLITE_GUARDS],
            "postgresql": [POSTGRES_FUNCTION, *POSTGRES_GUARDS],
        },
    )


def drop_guards(apps, schema_editor):
    _execute(
        schema_editor,
        {
            "sqlite": [
                "DROP TRIGGER IF EXISTS core_event_append_only",
                "DROP TRIGGER IF EXISTS core_event_no_delete",
            ],
            "postgresql": [
                f"DROP TRIGGER IF EXISTS {name} ON core_event"
                for name in (
                    "core_event_append_only",
                    "core_event_no_delete",
                    "core_event_no_truncate",
                )
            ],
        },
    )


class Migration(migrations.Migration):
    dependencies = [("core", "0004_sign_in_attempt")]

    operations = [
        migrations.RunPython(lift_update_guard, restore_update_guard),
        migrations.AddField(
            model_name="event",
            name="prev_hash",
            field=models.CharField(default="", max_length=64),
        ),
        migrations.AddField(
            model_name="event",
            name="hash",
            field=models.CharField(default="", max_length=64),
        ),
        migrations.RunPython(chain_existing_events, migrations.RunPython.noop),
        migrations.RunPython(create_guards, drop_guards),
    ]
