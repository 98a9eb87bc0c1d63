"""The database itself refuses to update an event row: the log is append-only (C9)."""

from django.db import migrations

SQLITE = """
CREATE TRIGGER core_event_append_only BEFORE UPDATE ON core_event
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
"""
SQLITE_REVERSE = "DROP TRIGGER IF EXISTS core_event_append_only;"

POSTGRES = """
CREATE OR REPLACE FUNCTION core_event_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'events are append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER core_event_append_only BEFORE UPDATE ON core_event
FOR EACH ROW EXECUTE FUNCTION core_event_append_only();
"""
POSTGRES_REVERSE = """
DROP TRIGGER IF EXISTS core_event_append_only ON core_event;
DROP FUNCTION IF EXISTS core_event_append_only();
"""


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute(SQLITE)
    elif vendor == "postgresql":
        schema_editor.execute(POSTGRES)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute(SQLITE_REVERSE)
    elif vendor == "postgresql":
        schema_editor.execute(POSTGRES_REVERSE)


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
